"""Fixtures of the API tests: ``env``, one seeded app per test module (see ``support.api_env``), and
``browser`` / ``page``: Debian's chromium driven by Playwright, requests outside loopback blocked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import web_live
from support.api_env import Env, build_env


@pytest.fixture(scope="module")
def env(tmp_path_factory, influxd) -> Env:
    e = build_env(tmp_path_factory.mktemp("api"), influxd)
    yield e
    e.client.close()
    e.influx.close()
    e.store.close()


# ----------------------------------------------------------------------------- real browser (Debian chromium)
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=web_live.CHROMIUM, args=web_live.CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page whose requests outside loopback are aborted; the test asserts none was tried."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    blocked: list[str] = []
    web_live.block_outside(ctx, blocked)
    p = ctx.new_page()
    p.set_default_timeout(20000)
    p.blocked = blocked
    yield p
    ctx.close()


# ----------------------------------------------------------------------------- service contracts
@pytest.fixture
def acme_only(tmp_path) -> Path:
    """A contracts folder holding ACME's contract only."""
    d = tmp_path / "contracts"
    d.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "contracts" / "acme.toml", d)
    return d


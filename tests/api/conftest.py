"""Fixtures of the API tests: ``env``, one seeded app per test module (see ``support.api_env``)."""

from __future__ import annotations

import pytest
from support.api_env import Env, build_env


@pytest.fixture(scope="module")
def env(tmp_path_factory, influxd) -> Env:
    e = build_env(tmp_path_factory.mktemp("api"), influxd)
    yield e
    e.client.close()
    e.influx.close()
    e.store.close()

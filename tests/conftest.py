"""Shared process fixtures: real ``influxd`` and ``mosquitto`` on free loopback ports.

* ``influxd`` (session): one InfluxDB 1.x for the whole run; use ``influx_db`` for a fresh database.
* ``influx_db`` (function): name of a new, unique database on the session ``influxd``.
* ``mosquitto`` (session): one broker for the whole run (use unique topics / client ids per test).
* ``dedicated_influxd`` (function): a private influxd that a test may stop, kill and restart.
* ``dedicated_mosquitto`` (function): a private broker that a test may stop, kill and restart.
* ``make_influxd`` (function): factory ``make_influxd(**Influxd kwargs)`` for special configs
  (auth, small ``max_body_size``); every instance is stopped at teardown.
"""

from __future__ import annotations

import itertools
import os

import pytest

from energyhost.devstack import Influxd, Mosquitto

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    d = Influxd(tmp_path_factory.mktemp("influxd"))
    d.start()
    yield d
    d.stop()


@pytest.fixture
def influx_db(influxd, request) -> str:
    """A fresh database on the session influxd, named after the test (unique per call)."""
    stem = "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:40]
    name = f"t{os.getpid()}_{next(_counter)}_{stem}"
    influxd.create_database(name)
    return name


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    m = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    m.start()
    yield m
    m.stop()


@pytest.fixture
def make_influxd(tmp_path):
    started: list[Influxd] = []

    def make(**kwargs) -> Influxd:
        d = Influxd(tmp_path / f"influxd{len(started)}", **kwargs)
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def dedicated_influxd(make_influxd) -> Influxd:
    return make_influxd()


@pytest.fixture
def dedicated_mosquitto(tmp_path):
    m = Mosquitto(tmp_path / "mosquitto")
    m.start()
    yield m
    m.stop()


# ----------------------------------------------------------------------------- workflow store
@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a free loopback port for the whole run (skipped without its binaries)."""
    from energyhost.devstack.postgres import Postgres, postgres_available

    if not postgres_available():
        pytest.skip("PostgreSQL binaries or root (to run them as user postgres) not available")
    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture
def clock():
    """A controllable clock at 2026-01-01T00:00:00Z."""
    from support.waiting import Clock
    from support.workflow import T0

    return Clock(T0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh workflow database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wf.db'}"
    pg = request.getfixturevalue("postgres")
    return pg.url(pg.create_database())


@pytest.fixture
def store(store_url, clock):
    """A workflow store with the example fleet and users of every role, on SQLite and on PostgreSQL."""
    from support.workflow import seeded_store

    s = seeded_store(store_url, clock)
    yield s
    s.close()

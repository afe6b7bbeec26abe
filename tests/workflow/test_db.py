"""Workflow database layer: migrations on SQLite and PostgreSQL, WAL, foreign keys, upgrades."""

from __future__ import annotations

import sqlite3

import pytest

from workflow import MIGRATIONS, Invalid, Store


def test_postgres_migrations_recorded_once(postgres, clock):
    url = postgres.url(postgres.create_database())
    s = Store(url, clock=clock)
    assert s.db.dialect == "postgresql" and s.schema_version() == len(MIGRATIONS)
    s.close()
    again = Store(url, clock=clock)
    assert again.schema_version() == len(MIGRATIONS)
    assert again.db.one("SELECT COUNT(*) AS n FROM schema_version")["n"] == len(MIGRATIONS)
    again.close()


def test_migrations_recorded_wal_and_foreign_keys(tmp_path, clock):
    path = tmp_path / "m.db"
    s = Store(f"sqlite:///{path}", clock=clock)
    assert s.schema_version() == len(MIGRATIONS)
    s.close()
    again = Store(f"sqlite:///{path}", clock=clock)        # re-opening applies nothing twice
    assert again.schema_version() == len(MIGRATIONS)
    again.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [v for v, in con.execute("SELECT version FROM schema_version ORDER BY version")] == \
        list(range(1, len(MIGRATIONS) + 1))
    con.close()
    with pytest.raises(Invalid, match="sqlite:///"):
        Store("mysql://x", clock=clock)


def test_migration_from_version_1_applies_only_the_new_steps(tmp_path, clock):
    """A database created by schema 1 is upgraded in place, its data kept."""
    import workflow.db as cs

    path = tmp_path / "old.db"
    saved = cs.MIGRATIONS
    try:
        cs.MIGRATIONS = saved[:1]
        old = Store(f"sqlite:///{path}", clock=clock)
        old.create_customer("c1", "Customer 1")
        assert old.schema_version() == 1
        old.close()
    finally:
        cs.MIGRATIONS = saved
    new = Store(f"sqlite:///{path}", clock=clock)
    assert new.schema_version() == len(MIGRATIONS) and new.customer("c1")["name"] == "Customer 1"
    assert new.db.one("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'alarms_raised'")
    new.close()

"""A real PostgreSQL server on loopback for the workflow-store tests and benchmarks."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from energyhost.devstack.process import free_port, stop_process


def _pg_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (the newest installed major version)."""
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True):
        if (d / "postgres").exists():
            return d
    return None


PG_BIN = _pg_bin() or Path("/usr/lib/postgresql/15/bin")
_pg_db = itertools.count(1)


class Postgres:
    """A real PostgreSQL server on a free loopback port, run as the ``postgres`` user in its own temp dir.

    Trust authentication on 127.0.0.1 only (a throw-away test cluster); stopped by its PID.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eh-pg-"))
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def _as_postgres(self, *cmd: str) -> list[str]:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *cmd]

    def start(self) -> Postgres:
        import psycopg

        data = self.dir / "data"
        subprocess.run(self._as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "eh",
                                         "--no-sync", "-E", "UTF8"), check=True, capture_output=True, timeout=120)
        self.proc = subprocess.Popen(
            self._as_postgres(str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.dir),
                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                              "-c", "full_page_writes=off"),
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "pg.log", "wb"))
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=1, autocommit=True) as c:
                    pid = c.execute("SELECT pg_backend_pid(), current_setting('data_directory')").fetchone()
                    assert pid[1] == str(data), f"another server answers on port {self.port}"
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"postgres did not start: {(self.dir / 'pg.log').read_text()[-2000:]}") from None
                time.sleep(0.1)
        return self

    def url(self, db: str) -> str:
        return f"postgresql://eh@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        import psycopg

        name = f"t{next(_pg_db)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        stop_process(self.proc, 20, signal.SIGINT)       # SIGINT: postgres' fast shutdown
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_available() -> bool:
    return (PG_BIN / "postgres").exists() and shutil.which("setpriv") is not None and os.geteuid() == 0

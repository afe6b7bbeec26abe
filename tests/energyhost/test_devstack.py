"""The real daemons start on free loopback ports, are the processes listening there, and restart."""

from __future__ import annotations

import base64
import multiprocessing
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from energyhost.devstack import (
    Influxd,
    Mosquitto,
    ServiceError,
    free_port,
    listener_pid_matches,
    stop_process,
)

pytestmark = pytest.mark.integration


def _query(url: str, q: str, user: str | None = None, password: str | None = None, db: str = "") -> int:
    req = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode({"q": q, "db": db}).encode())
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _write(url: str, db: str, line: str, user: str, password: str) -> int:
    req = urllib.request.Request(f"{url}/write?db={db}", data=line.encode())
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_free_port_is_bindable():
    import socket
    p = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", p))


def test_session_influxd_is_ours(influxd, influx_db):
    assert influxd.host == "127.0.0.1"
    assert listener_pid_matches(influxd.pid, influxd.port)
    assert listener_pid_matches(influxd.pid, influxd.backup_port)
    body = influxd.query("SHOW DATABASES")
    names = [v[0] for v in body["results"][0]["series"][0]["values"]]
    assert influx_db in names


def test_session_mosquitto_is_ours(mosquitto):
    assert listener_pid_matches(mosquitto.pid, mosquitto.port)
    assert not listener_pid_matches(mosquitto.pid, free_port())


def test_influxd_restart_keeps_data_and_port(dedicated_influxd):
    d = dedicated_influxd
    d.create_database("keep")
    req = urllib.request.Request(f"{d.url}/write?db=keep", data=b"m,device=a v=1 1700000000000000000")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 204
    port, old_pid = d.port, d.pid
    d.kill()
    assert not d.running
    d.start()
    assert d.port == port and d.pid != old_pid
    body = d.query('SELECT count("v") FROM "m"', db="keep")
    assert body["results"][0]["series"][0]["values"][0][1] == 1


def test_influxd_auth_users(make_influxd):
    d = make_influxd(auth=True)
    d.add_user("writer", "w-pass", database="db1", privilege="WRITE")
    d.add_user("reader", "r-pass", database="db1", privilege="READ")
    assert _query(d.url, "SHOW DATABASES") == 401
    assert _write(d.url, "db1", "m v=1 1", "writer", "w-pass") == 204
    assert _write(d.url, "db1", "m v=1 1", "reader", "r-pass") == 403
    assert _write(d.url, "db1", "m v=1 1", "writer", "wrong") == 401
    assert _query(d.url, "DROP DATABASE db1", "reader", "r-pass") == 403


def test_mosquitto_password_and_persistence(tmp_path):
    m = Mosquitto(tmp_path / "mq", users={"alice": "secret"}, acl="user alice\ntopic readwrite eh/#\n")
    with m:
        ok = subprocess.run(["mosquitto_pub", "-h", m.host, "-p", str(m.port), "-u", "alice", "-P", "secret",
                             "-t", "eh/x", "-m", "1", "-q", "1", "-r"], capture_output=True, timeout=10)
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run(["mosquitto_pub", "-h", m.host, "-p", str(m.port), "-t", "eh/x", "-m", "1"],
                             capture_output=True, timeout=10)
        assert bad.returncode != 0
    # a clean stop saves the database in our own dir: the broker could write it (runs as user root)
    assert m.db_path.exists() and m.db_path.stat().st_size > 0
    m.start()
    try:
        got = subprocess.run(["mosquitto_sub", "-h", m.host, "-p", str(m.port), "-u", "alice", "-P", "secret",
                              "-t", "eh/x", "-C", "1", "-W", "5"], capture_output=True, timeout=10)
        assert got.stdout.strip() == b"1"   # the retained message survived the restart
    finally:
        m.stop()


def test_port_held_by_other_process_is_detected(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        m = Mosquitto(tmp_path / "mq", port=port)
        m.start_timeout_s = 3.0
        with pytest.raises(ServiceError, match="mosquitto"):
            m.start()
        assert not m.running


def test_influx_query_error_is_clear(influxd):
    with pytest.raises(ServiceError, match="SELEC"):
        influxd.query("SELEC 1")


def test_influxd_auth_reopen_existing_dir(tmp_path):
    d = Influxd(tmp_path / "db", auth=True, admin_password="first-pw").start()
    d.create_database("kept")
    d.stop()
    again = Influxd(tmp_path / "db", auth=True, admin_password="first-pw").start()   # admin already exists
    try:
        names = [v[0] for v in again.query("SHOW DATABASES")["results"][0]["series"][0]["values"]]
        assert "kept" in names
        assert _query(again.url, "SHOW DATABASES") == 401
    finally:
        again.stop()


def _sleep_forever() -> None:
    time.sleep(300)


def test_stop_process_terminates_then_kills():
    """SIGTERM first (a polite child exits with -15); a child that ignores it is killed after the wait."""
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    assert stop_process(polite, 10) == -signal.SIGTERM
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                 "print('ready', flush=True)\ntime.sleep(300)"], stdout=subprocess.PIPE)
    assert stubborn.stdout.readline().strip() == b"ready"
    t0 = time.monotonic()
    assert stop_process(stubborn, 0.5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 10
    stubborn.stdout.close()
    assert stop_process(stubborn) == -signal.SIGKILL       # already reaped: only the code
    assert stop_process(None) is None


def test_stop_process_multiprocessing():
    proc = multiprocessing.get_context("spawn").Process(target=_sleep_forever, daemon=True)
    proc.start()
    assert stop_process(proc, 10) == -signal.SIGTERM
    assert not proc.is_alive()

"""Pieces of the API hardening tests shared with the probe and fuzz suites: out-of-range dates
filled into every time input, and an app served by uvicorn on loopback for chunked uploads.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from contextlib import contextmanager

import uvicorn

from energyhost.devstack import free_port, listener_pid_matches

EXTREME = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2300-01-01T00:00:00Z", "1700-01-01T00:00:00Z",
           "1969-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]


def _date_cases(env) -> list[tuple[str, str, str, dict]]:
    """(user, method, path, params or json) of every route taking a time, with ``{t}`` for the bad value."""
    dev, site = env.ids["acme"]["device_id"], env.ids["acme"]["site_id"]
    return [
        ("acme-user", "GET", "/alarms", {"since": "{t}"}),
        ("acme-user", "GET", "/alarms", {"until": "{t}"}),
        ("acme-user", "GET", "/alarms/kpi", {"end": "{t}"}),
        ("acme-user", "GET", "/alarms/kpi", {"start": "{t}"}),
        ("acme-user", "GET", "/surveys", {"start": "{t}"}),
        ("acme-user", "GET", "/surveys/results", {"end": "{t}"}),
        ("acme-user", "GET", f"/telemetry/{dev}/series", {"start": "{t}"}),
        ("acme-user", "GET", f"/telemetry/{dev}/series", {"end": "{t}"}),
        ("acme-user", "GET", f"/telemetry/sites/{site}/energy", {"start": "{t}"}),
        ("acme-user", "GET", f"/telemetry/sites/{site}/energy", {"end": "{t}"}),
        ("engineer1", "POST", "/inspections/plans", {"json": {"site_id": site, "name": "p", "interval_days": 7,
                                                              "checklist": ["doors"], "first_due": "{t}"}}),
        ("engineer1", "POST", "/alarms/events", {"json": [{"key": "k/x", "type": "x", "site_id": site,
                                                           "severity": "minor", "raised_at": "{t}"}]}),
        ("engineer1", "POST", "/alarms/events", {"json": [{"key": "k/x", "type": "x", "site_id": site,
                                                           "severity": "minor", "raised_at": "2026-01-01T00:00:00Z",
                                                           "cleared_at": "{t}"}]}),
    ]


def _fill(obj, t: str):
    if isinstance(obj, str):
        return obj.replace("{t}", t)
    if isinstance(obj, dict):
        return {k: _fill(v, t) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, t) for v in obj]
    return obj


@contextmanager
def served(app, **config):
    """``app`` under uvicorn on a free loopback port in this process; yields the port.

    ``config``: more ``uvicorn.Config`` arguments (``log_config=None`` leaves logging to the caller).
    """
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           **config))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started and listener_pid_matches(os.getpid(), port)
        yield port
    finally:
        server.should_exit = True
        th.join(timeout=10)


def send_chunked(port: int, path: str, total: int, chunk: int = 64 * 1024, time_limit_s: float = 30) -> tuple[bytes, int]:
    """POST ``total`` bytes as ``Transfer-Encoding: chunked``; stop early when the server answers.

    Returns (the answer's bytes, bytes of body sent).  Bounded in bytes and in time.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent, answer = 0, b""
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        data = b"x" * chunk
        deadline = time.monotonic() + time_limit_s
        while sent < total and time.monotonic() < deadline:
            if select.select([s], [], [], 0)[0]:
                break                                   # the server has answered (or closed)
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(data)
        else:
            if sent >= total:
                s.sendall(b"0\r\n\r\n")
        s.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                part = s.recv(65536)
                if not part:
                    break
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    finally:
        s.close()
    return answer, sent

"""Shared pieces of the fault-injection suite: fleets, a deterministic gateway, collector
processes, a fault-injecting HTTP proxy in front of the real influxd, and the accounting line.

Every fault test ends with :func:`account`, which prints one line::

    FAULT <name>: received=N written=N pending=N rejected=N lost=N [extra]

and, when ``EH_FAULT_REPORT`` names a file, appends the same figures as JSON (used to fill
the table in docs/reliability.md).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from core.config import load_fleet
from core.influx import InfluxClient
from energyhost.devstack import free_port, stop_process
from support.waiting import wait_for  # re-exported to the fault tests

ROOT = Path(__file__).resolve().parents[2]

CHANNELS = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
            "active_power", "reactive_power", "power_factor", "frequency", "energy_import"]


def values_fn(device, t: float) -> dict[str, float]:
    """A deterministic reading per (device, t): a resend carries the same values."""
    base = (sum(device.id.encode()) % 1000) / 10.0
    return {ch: base + i + (t % 1000) / 1000.0 for i, ch in enumerate(CHANNELS)}


def mqtt_fleet(tmp: Path, tag: str, *, n_devices: int = 10, kind: str = "meter",
               extra_kind: str | None = None, n_extra: int = 0):
    """A one-site fleet of MQTT devices (``kind``; plus ``n_extra`` devices of ``extra_kind``)."""
    lines = ["[[customer]]", f'id = "c-{tag}"', "  [[customer.site]]", f'  id = "s-{tag}"']
    for d in range(n_devices):
        lines += ["    [[customer.site.device]]", f'    id = "d-{tag}-{d}"', f'    kind = "{kind}"',
                  '    transport = "mqtt"']
    for d in range(n_extra):
        lines += ["    [[customer.site.device]]", f'    id = "x-{tag}-{d}"', f'    kind = "{extra_kind}"',
                  '    transport = "mqtt"']
    path = tmp / f"fleet-{tag}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, load_fleet(path)


def count(client: InfluxClient, measurement: str = "meter", field: str = "active_power",
          where: str = "") -> int:
    """Stored points of ``measurement`` (one per key: rewrites of a key are not counted twice)."""
    s = client.query(f'SELECT count("{field}") FROM "{measurement}" {where}')
    return int(s[0]["values"][0][1]) if s else 0




def account(name: str, *, received: int, written: int, pending: int, rejected: int, lost: int,
            **extra) -> dict:
    """Print the one accounting line of a fault test (and record it when EH_FAULT_REPORT is set)."""
    rec = {"fault": name, "received": received, "written": written, "pending": pending,
           "rejected": rejected, "lost": lost, **extra}
    tail = " ".join(f"{k}={v}" for k, v in extra.items())
    print(f"FAULT {name}: received={received} written={written} pending={pending} "
          f"rejected={rejected} lost={lost}" + (f" {tail}" if tail else ""), flush=True)
    out = os.environ.get("EH_FAULT_REPORT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    return rec


def invariant(ws: dict) -> bool:
    """The Writer's accounting identity (core/influx/writer.py)."""
    return ws["received"] == ws["written"] + ws["pending"] + ws["rejected"] + ws["dropped"]


# ---------------------------------------------------------------------- collector processes
class CollectorProc:
    """A collector subprocess (``energyhost collect-mqtt`` or ``energyhost collect``), started and
    killed by its own PID only; its stdout is a log file we parse."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, *, preload: dict | None = None,
                 marker: str = '"started": true'):
        self.argv, self.log, self.marker = argv, log, marker
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env, **(preload or {})}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @classmethod
    def mqtt(cls, fleet_path: Path, influx_url: str, db: str, mqtt_port: int, spool: Path, log: Path,
             client_id: str, **kw) -> CollectorProc:
        env = {"EH_INFLUX_URL": influx_url, "EH_INFLUX_DB": db, "EH_MQTT_HOST": "127.0.0.1",
               "EH_MQTT_PORT": str(mqtt_port), "EH_SPOOL_DIR": str(spool)}
        return cls([sys.executable, "-m", "energyhost", "collect-mqtt", "--fleet", str(fleet_path), "--client-id", client_id,
                    "--flush-interval", "0.2", "--stats-interval", "0.5"], env, log, **kw)

    @classmethod
    def service(cls, fleet_path: Path, influx_url: str, db: str, mqtt_port: int, spool: Path, log: Path,
                *args: str, **kw) -> CollectorProc:
        """``energyhost collect`` (Modbus + MQTT in one process, the production entry point)."""
        env = {"EH_INFLUX_URL": influx_url, "EH_INFLUX_DB": db, "EH_MQTT_HOST": "127.0.0.1",
               "EH_MQTT_PORT": str(mqtt_port), "EH_SPOOL_DIR": str(spool)}
        return cls([sys.executable, "-m", "energyhost", "collect", "--fleet", str(fleet_path), *args], env, log,
                   marker="collector started:", **kw)

    def service_stats(self) -> list[dict]:
        """Writer stats of every clean stop of ``energyhost collect`` (its last log line per run)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if "collector stopped" in line and ": {" in line:
                out.append(json.loads(line[line.index(": {") + 2:]))
        return out

    def start(self, wait_s: float = 20.0) -> CollectorProc:
        marker = self.marker
        before = self.log.read_text().count(marker) if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.starts += 1
        ok = wait_for(lambda: self.log.read_text().count(marker) > before or self.proc.poll() is not None,
                      wait_s, 0.05)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"collector did not start: {self.log_tail()}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        stop_process(self.proc, 10, signal.SIGKILL)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        return stop_process(self.proc, timeout)

    def stats_lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def last_stats(self) -> dict:
        lines = [s for s in self.stats_lines() if "writer" in s]
        return lines[-1] if lines else {}

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------------- fault-injecting proxy
class FaultProxy:
    """A loopback HTTP proxy in front of the real influxd that can answer ``/write`` itself.

    ``mode`` is ``"pass"`` (forward everything), or an HTTP status (e.g. 500, 503) answered to
    every ``/write`` without forwarding (the database stays untouched and real).  Counts requests
    per outcome in ``counts``.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode: str | int = "pass"
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:      # quiet
                pass

            def _relay(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                mode = proxy.mode
                if self.path.startswith("/write") and mode != "pass":
                    proxy._count(f"injected_{mode}")
                    msg = json.dumps({"error": f"injected {mode} by the fault proxy"}).encode()
                    self.send_response(int(mode))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                req = urllib.request.Request(proxy.upstream + self.path, data=body, method=method)
                for k in ("Content-Type", "Authorization", "Accept"):
                    if self.headers.get(k):
                        req.add_header(k, self.headers[k])
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
                except urllib.error.HTTPError as e:
                    status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
                except OSError:
                    status, data, ctype = 502, b'{"error":"upstream down"}', "application/json"
                proxy._count(f"{'write' if self.path.startswith('/write') else 'other'}_{status}")
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:      # noqa: N802
                self._relay("POST")

            def do_GET(self) -> None:       # noqa: N802
                self._relay("GET")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.port = free_port()
        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

"""``energyhost status``: the health of every component of a running demo (or deployment).

Reads ``state.json`` written by ``energyhost demo`` and checks, for each component, that its
PID is alive and that it answers on its port (InfluxDB ``/ping`` — over HTTPS verified against
``influx_ca`` of the state file when the URL is ``https://`` —, an MQTT CONNECT, the API's
``/healthz``, the collector's metrics).  Exit code 0 when everything is up, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _http(url: str, timeout: float = 2.0, ca_file: str | None = None) -> tuple[bool, str]:
    context = None
    if url.startswith("https://"):    # verified: against ca_file, or the default trust store
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            return False, f"CA file {ca_file!r} cannot be loaded: {exc}"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            return True, f"HTTP {r.status}" + (" (TLS verified)" if context else "")
    except urllib.error.HTTPError as exc:
        return exc.code < 500, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return False, f"TLS certificate of {url} not verified: {reason.verify_message} (CA {ca_file or 'default'})"
        return False, str(reason)


def _mqtt(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
            # MQTT 3.1.1 CONNECT, clean session, keepalive 5 s, client id "eh-status"
            cid = b"eh-status"
            var = b"\x00\x04MQTT\x04\x02\x00\x05" + len(cid).to_bytes(2, "big") + cid
            s.sendall(bytes([0x10, len(var)]) + var)
            ack = s.recv(4)
            s.sendall(b"\xe0\x00")
            if len(ack) == 4 and ack[0] == 0x20:
                return ack[3] in (0, 5), ("CONNACK ok" if ack[3] == 0 else "up, authentication required")
            return False, f"unexpected answer {ack!r}"
    except OSError as exc:
        return False, str(exc)


def collect_status(var: Path) -> dict:
    state_file = var / "state.json"
    if not state_file.exists():
        raise FileNotFoundError(f"{state_file}: no running demo found (start one with `energyhost demo`)")
    state = json.loads(state_file.read_text())
    pids = state.get("pids", {})
    out: dict[str, dict] = {}
    checks = {
        "influxd": lambda: _http(state["influx_url"] + "/ping", ca_file=state.get("influx_ca")),
        "mosquitto": lambda: _mqtt(state["mqtt"]),
        "serve": lambda: _http(state["api_url"] + "/healthz"),
        "simulate": lambda: _http(state["control_url"] + "/faults"),
        "collect": lambda: _http(state["metrics_url"]) if state.get("metrics_url") else (True, "running"),
    }
    for name, pid in pids.items():
        alive = _alive(pid)
        ok, detail = (alive, "running" if alive else "not running")
        if alive and name in checks:
            ok, detail = checks[name]()
        out[name] = {"pid": pid, "ok": ok, "detail": detail}
    spool = Path(state.get("var", var)) / "spool"
    if spool.exists():
        size = sum(f.stat().st_size for f in spool.rglob("*") if f.is_file())
        out["spool"] = {"ok": True, "detail": f"{size} bytes on disk in {spool}"}
        drops = spool_drops(spool)
        if drops["dropped_total"]:
            out["spool"]["ok"] = drops["unrecorded"] == 0
            out["spool"]["drops"] = drops
            out["spool"]["detail"] += drops["detail"]
    return out


def spool_drops(spool: Path) -> dict:
    """What the spool byte cap dropped, from every ``dropped.json`` under ``spool`` (core.spool.DropLedger)."""
    total = unrecorded = 0
    last = None
    where: dict[str, int] = {}
    errors = []
    for f in sorted(spool.rglob("dropped.json")):
        try:
            st = json.loads(f.read_text(encoding="utf-8"))
            total += int(st.get("dropped_total", 0))
            for r in st.get("unrecorded", {}).values():
                unrecorded += int(r["points"])
                where[f"{r['site']}/{r['device']}"] = where.get(f"{r['site']}/{r['device']}", 0) + int(r["points"])
            if st.get("last_drop_ns"):
                last = max(last or 0, int(st["last_drop_ns"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            errors.append(f"{f}: {exc}")
            unrecorded += 1                                   # unreadable: treat as not recorded
    detail = ""
    if total or errors:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last / 1e9)) if last else "?"
        detail = f"; READINGS DROPPED by the spool cap: {total} (last at {at})"
        detail += (f", {unrecorded} not yet recorded in InfluxDB ({', '.join(f'{k}={n}' for k, n in where.items())})"
                   if unrecorded else ", all recorded (alarm readings_dropped)")
        detail += "".join(f"; {e}" for e in errors)
    return {"dropped_total": total, "unrecorded": unrecorded, "unrecorded_by_device": where, "last_drop_ns": last,
            "detail": detail}


def print_status(args) -> int:
    status = collect_status(Path(args.var))
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for name, s in status.items():
            mark = "up  " if s["ok"] else "DOWN"
            pid = f"pid {s['pid']:<7}" if s.get("pid") else " " * 11
            print(f"{mark} {name:10s} {pid} {s['detail']}")
    return 0 if all(s["ok"] for s in status.values()) else 1

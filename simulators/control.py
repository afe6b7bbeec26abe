"""Run-time fault injection over a small loopback HTTP/JSON control server (stdlib, threaded).

Endpoints (JSON in, JSON out)::

    GET    /faults                      {"faults": [active fault, ...]}   (see FleetSignals.active_faults)
    GET    /faults/types                {"types": {fault: {"kinds": [...], "params": {name: default}}}}
    POST   /faults                      {"device": id, "fault": name, "params": {...},
                                         "start": unix s (opt.), "end": unix s (opt.), "duration_s": s (opt.)}
                                        -> 201 {"fault": {...}}
    DELETE /faults/<device>             end every active fault of the device -> {"cleared": n}
    DELETE /faults/<device>/<fault>     end that fault only                  -> {"cleared": n}

Bad input answers 400 with ``{"error": "..."}`` naming what was wrong (unknown device, unknown fault,
a fault that does not apply to the device kind, a bad parameter, bad JSON); unknown paths 404.
The server binds 127.0.0.1 by default: it is a test/demo tool without authentication.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulators.signals import FAULT_TYPES, FleetSignals

MAX_BODY = 64 * 1024


class ControlError(RuntimeError):
    """The control server refused a request; the message is the server's reason."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class _BadRequest(Exception):
    pass


def _fault_types() -> dict[str, Any]:
    return {name: {"kinds": list(kinds), "params": {k: (list(v) if isinstance(v, tuple) else v)
                                                     for k, v in defaults.items()}}
            for name, (kinds, defaults) in FAULT_TYPES.items()}


def _number(body: dict, key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _BadRequest(f"{key!r} must be a number of seconds, got {v!r}")
    return float(v)


class _Handler(BaseHTTPRequestHandler):
    server: ControlServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: the demo logs elsewhere

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _parts(self) -> list[str]:
        path = urllib.parse.urlsplit(self.path).path
        return [urllib.parse.unquote(p) for p in path.strip("/").split("/") if p]

    def do_GET(self) -> None:  # noqa: N802
        parts = self._parts()
        if parts == ["faults"]:
            self._send(200, {"faults": self.server.signals.active_faults()})
        elif parts == ["faults", "types"]:
            self._send(200, {"types": _fault_types()})
        else:
            self._send(404, {"error": f"no such resource {self.path!r}; try GET /faults"})

    def do_POST(self) -> None:  # noqa: N802
        if self._parts() != ["faults"]:
            self._send(404, {"error": f"no such resource {self.path!r}; POST to /faults"})
            return
        try:
            body = self._json_body()
            w = self._inject(body)
        except _BadRequest as exc:
            self._send(400, {"error": str(exc)})
            return
        self._send(201, {"fault": w})

    def do_DELETE(self) -> None:  # noqa: N802
        parts = self._parts()
        if len(parts) not in (2, 3) or parts[0] != "faults":
            self._send(404, {"error": f"no such resource {self.path!r}; DELETE /faults/<device>[/<fault>]"})
            return
        device = parts[1]
        fault = parts[2] if len(parts) == 3 else None
        try:
            n = self.server.signals.clear(device, fault)
        except (KeyError, ValueError) as exc:
            self._send(400, {"error": exc.args[0] if exc.args else str(exc)})
            return
        self._send(200, {"cleared": n})

    def _json_body(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise _BadRequest("bad Content-Length header") from None
        if length <= 0:
            raise _BadRequest("empty body: expected a JSON object with 'device' and 'fault'")
        if length > MAX_BODY:
            raise _BadRequest(f"body of {length} bytes is larger than {MAX_BODY}")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _BadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest("body must be a JSON object with 'device' and 'fault'")
        return body

    def _inject(self, body: dict) -> dict:
        unknown = set(body) - {"device", "fault", "params", "start", "end", "duration_s"}
        if unknown:
            raise _BadRequest(f"unknown key {sorted(unknown)[0]!r}; keys are device, fault, params, start, end, "
                              f"duration_s")
        device, fault = body.get("device"), body.get("fault")
        if not isinstance(device, str) or not device:
            raise _BadRequest("'device' (a device id string) is required")
        if not isinstance(fault, str) or not fault:
            raise _BadRequest(f"'fault' is required; one of {sorted(FAULT_TYPES)}")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise _BadRequest("'params' must be a JSON object")
        start = _number(body, "start")
        if start is not None and start < time.time() - 1.0:
            raise _BadRequest(f"'start' ({start}) is in the past: a live fault cannot change readings already "
                              f"served; omit it to start now")
        end = _number(body, "end")
        duration = _number(body, "duration_s")
        if duration is not None:
            if end is not None:
                raise _BadRequest("give 'end' or 'duration_s', not both")
            if duration <= 0:
                raise _BadRequest(f"'duration_s' must be > 0, got {duration!r}")
            end = (start if start is not None else time.time()) + duration
        try:
            w = self.server.signals.inject(device, fault, start=start, end=end, **params)
        except (KeyError, ValueError, TypeError) as exc:
            raise _BadRequest(exc.args[0] if exc.args else str(exc)) from None
        return w.as_dict()


class ControlServer(ThreadingHTTPServer):
    """Fault-injection HTTP server for one :class:`FleetSignals`; ``start()`` runs it in a thread."""

    daemon_threads = True

    def __init__(self, signals: FleetSignals, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.signals = signals
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ControlServer:
        self._thread = threading.Thread(target=self.serve_forever, name="fault-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------- client
def _request(method: str, url: str, payload: dict | None = None, timeout: float = 5.0) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            msg = json.loads(raw).get("error", raw.decode(errors="replace"))
        except (json.JSONDecodeError, AttributeError):
            msg = raw.decode(errors="replace")
        raise ControlError(exc.code, msg) from None
    except urllib.error.URLError as exc:
        raise ControlError(0, f"cannot reach the fault control server at {url}: {exc.reason}") from None


def inject_remote(url: str, device: str, fault: str, params: dict | None = None, *,
                  start: float | None = None, duration_s: float | None = None, timeout: float = 5.0) -> dict:
    """Inject ``fault`` on ``device`` through the control server at ``url``; returns the fault record.

    Raises :class:`ControlError` with the server's reason on bad input or when unreachable.
    """
    body: dict[str, Any] = {"device": device, "fault": fault, "params": params or {}}
    if start is not None:
        body["start"] = start
    if duration_s is not None:
        body["duration_s"] = duration_s
    return _request("POST", url.rstrip("/") + "/faults", body, timeout)["fault"]


def clear_remote(url: str, device: str, fault: str | None = None, *, timeout: float = 5.0) -> int:
    """End the active faults of ``device`` (only ``fault`` if given); returns how many were ended."""
    path = "/faults/" + urllib.parse.quote(device, safe="")
    if fault:
        path += "/" + urllib.parse.quote(fault, safe="")
    return int(_request("DELETE", url.rstrip("/") + path, None, timeout)["cleared"])


def list_remote(url: str, *, timeout: float = 5.0) -> list[dict]:
    """The active faults known to the control server at ``url``."""
    return list(_request("GET", url.rstrip("/") + "/faults", None, timeout)["faults"])

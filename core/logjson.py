"""Structured (JSON lines) logging for the long-running processes.

``configure_logging("json")`` makes every record one JSON object per line on stdout::

    {"ts": "2026-11-28T03:10:00.123Z", "level": "WARNING", "logger": "energyhost.modbus",
     "msg": "acme-plant1-t1-meter: timeout", "site": "acme-plant1", "device": "acme-plant1-t1-meter"}

Context ids travel as ``logging`` extras (``log.warning(..., extra={"site": s, "device": d})``);
the keys in :data:`CONTEXT_KEYS` are copied into the object when present, so a log pipeline
(Loki, Elasticsearch, ...) can filter by site or device without parsing the message.
``configure_logging("text")`` keeps the classic one-line format.  ``EH_LOG_FORMAT`` selects it
for ``energyhost collect``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

CONTEXT_KEYS = ("site", "device", "gateway", "topic", "instance")
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, context ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for key in CONTEXT_KEYS:
            v = record.__dict__.get(key)
            if v is not None:
                out[key] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", level: int = logging.INFO, stream=None) -> None:
    """Install one stdout handler on the root logger in ``fmt`` ("text" or "json").

    Like ``logging.basicConfig``, "text" leaves a root logger that already has handlers alone
    (e.g. under pytest); a handler installed by an earlier call is replaced, no other one.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {fmt!r} (EH_LOG_FORMAT)")
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_energyhost", False)]:
        root.removeHandler(h)
    if fmt == "text" and root.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler._energyhost = True
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)

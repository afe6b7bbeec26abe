"""The alarm list as pre-serialised JSON, and a response cache that is correct across processes.

``GET /api/v1/alarms`` is the console's hottest read: every open console polls it.  Two
things make it cheap:

* the list route asks the store for the body built by the database (``Store.alarms_json`` with
  :data:`ALARM_FIELDS`: no Python object per alarm); :func:`encode_alarms` is the same body from
  store rows with ``orjson`` (no pydantic object per row) and splices each alarm's ``evidence`` in as the JSON text the store holds
  (``orjson.Fragment``), instead of decoding and re-encoding it.  The bytes equal what
  ``TypeAdapter(list[AlarmOut]).dump_json`` would produce, apart from the whitespace inside
  ``evidence`` (the field-hiding of :func:`api.models.alarm_out` is applied to every row).
* :class:`AlarmListCache` keeps such bodies keyed on (staff or not, visible site ids, query).
  An entry is used only while

  - the store's alarm change counter (:meth:`workflow.Store.alarms_version`, bumped by
    database triggers on every write to the alarms table, by this or any other process or
    instance sharing the database) still has the value read *before* the rows were read, and
  - the store clock lies in ``[computed at, next shelve expiry)``: the only part of an
    alarm's derived state that changes without a write is a shelve running out.

  Lookups happen after authentication, tenancy (``Scope``) and the 404 checks of the list
  filters, and the key holds the exact set of visible sites and the staff flag, so one
  tenant's entry can never answer another's request.  Memory is bounded by total body bytes.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import orjson

from api.models import AlarmOut, alarm_out

_OPTS = orjson.OPT_UTC_Z      # datetimes as 2026-01-01T00:00:00.123456Z, like pydantic
ALARM_FIELDS: tuple[str, ...] = tuple(AlarmOut.model_fields)   # the objects the database writes for the list


def _evidence(text: Any) -> Any:
    """The stored evidence JSON text as a fragment; decoded and re-encoded only if it holds NaN/Infinity.

    The store writes evidence with ``json.dumps`` (allow_nan): ``NaN``/``Infinity`` are not JSON,
    so such a value is decoded and encoded again, the non-finite numbers becoming ``null``.
    """
    if not isinstance(text, str):                     # already decoded (a dict)
        return text
    if "NaN" in text or "Infinity" in text:
        return json.loads(text)
    return orjson.Fragment(text)


def encode_alarms(rows: list[dict], staff: bool) -> bytes:
    """Store alarm rows (``Store.alarms(..., raw_evidence=True)``) as the JSON body of ``list[AlarmOut]``."""
    out = []
    for a in rows:
        d = alarm_out(a, staff)
        d["evidence"] = _evidence(d["evidence"])
        out.append(d)
    return orjson.dumps(out, option=_OPTS)


class AlarmListCache:
    """Response bodies of the alarm list, validated by the store's alarm change counter.

    ``max_bytes <= 0`` disables it (every request reads the store).
    """

    def __init__(self, max_bytes: int = 16 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._d: OrderedDict[Hashable, tuple[int, int, int | None, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: Hashable, version: int, now_ns: int) -> bytes | None:
        """The body stored under ``key`` if it was computed at ``version`` and is still valid at ``now_ns``."""
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                v, computed_ns, valid_until_ns, body = hit
                if v == version and computed_ns <= now_ns and (valid_until_ns is None or now_ns < valid_until_ns):
                    self._d.move_to_end(key)
                    self.hits += 1
                    return body
            self.misses += 1
            return None

    def put(self, key: Hashable, version: int, computed_ns: int, valid_until_ns: int | None, body: bytes) -> None:
        """Store ``body``, computed at ``computed_ns`` from rows read after the counter showed ``version``."""
        if len(body) > self.max_bytes // 4:           # one huge page never evicts everything else
            return
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self._bytes -= len(old[3])
            self._d[key] = (version, computed_ns, valid_until_ns, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._d:
                _, dropped = self._d.popitem(last=False)
                self._bytes -= len(dropped[3])

    def __len__(self) -> int:
        return len(self._d)

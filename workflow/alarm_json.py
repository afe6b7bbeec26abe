"""The alarm list as JSON built by the database: one text per alarm, joined into an array.

The hottest read of the console is the alarm list.  Building a Python dict, six datetimes
and an encoder call per alarm cost more than the query itself; here SQLite (``json_object``)
or PostgreSQL (``json_build_object``) writes each alarm's JSON object and Python only joins
the texts.  A field name maps to the record like :func:`api.models.record_fields`:

* ``state``: the derived ISA-18.2 state; ``customer_id``: the site's customer;
* ``evidence``: the stored evidence, embedded as JSON;
* ``acked`` (and any name in :data:`BOOLEANS`): true/false;
* ``x`` or ``x_at`` with a column ``x_ns``: the time as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``
  (microseconds, as pydantic and orjson write an aware UTC datetime);
* any other name: the column of that name.

What the console may not see is blanked: shelving fields while the alarm is not shelved, and
the operators' names and notes for customer users (``staff=False``).  Evidence holding
NaN or Infinity (not JSON) is decoded and re-encoded in Python with those values as null.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson

from workflow.db import Database

BOOLEANS = frozenset({"acked", "active"})
SHELVING = {"shelved_until": "NULL", "shelve_reason": "''"}          # shown only while shelved
STAFF_ONLY = {"acked_by": "NULL", "ack_note": "''", "shelve_reason": "''"}
ALARM_COLUMNS = frozenset({
    "id", "key", "type", "site_id", "device_id", "severity", "first_raised_ns", "raised_ns", "cleared_ns",
    "active", "acked", "acked_ns", "acked_by", "ack_note", "shelved_until_ns", "shelved_by", "shelve_reason",
    "suppressed_by", "closed_ns", "activations", "message_zh", "message_en", "evidence", "updated_ns"})
STATE = "CASE WHEN a.base_state <> 'cleared' AND a.shelved_until_ns > ? THEN 'shelved' ELSE a.base_state END"


def _bad_evidence(dialect: str) -> str:
    """SQL: the stored evidence holds NaN or Infinity (no '%' anywhere: psycopg reads it as a placeholder)."""
    find = "instr" if dialect == "sqlite" else "strpos"
    return f"({find}(a.evidence, 'NaN') > 0 OR {find}(a.evidence, 'Infinity') > 0)"


def _iso(col: str, dialect: str) -> str:
    """SQL of an ns column as an ISO 8601 UTC text with microseconds, or NULL."""
    us = f"mod({col} / 1000, 1000000)" if dialect == "postgresql" else f"({col} / 1000) % 1000000"
    if dialect == "sqlite":
        date = f"strftime('%Y-%m-%dT%H:%M:%S', {col} / 1000000000, 'unixepoch')"
        frac = f"printf('.%06d', {us})"
    else:
        date = f"to_char(to_timestamp({col} / 1000000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        frac = f"'.' || lpad(({us})::text, 6, '0')"
    return f"CASE WHEN {col} IS NULL THEN NULL ELSE {date} || CASE WHEN {us} = 0 THEN '' ELSE {frac} END || 'Z' END"


def _value(name: str, dialect: str) -> str:
    """SQL of one output field (see the module docstring for the mapping)."""
    true, false = ("json('true')", "json('false')") if dialect == "sqlite" else ("true", "false")
    if name == "state":
        return "state"
    if name == "customer_id":
        return "s.customer_id"
    if name == "evidence":
        raw = "json(a.evidence)" if dialect == "sqlite" else "a.evidence::json"
        return f"CASE WHEN {_bad_evidence(dialect)} THEN NULL ELSE {raw} END"
    if name in BOOLEANS:
        return f"CASE WHEN a.{name} = 1 THEN {true} ELSE {false} END"
    stem = name[:-3] if name.endswith("_at") else name
    if name not in ALARM_COLUMNS and f"{stem}_ns" in ALARM_COLUMNS:
        return _iso(f"a.{stem}_ns", dialect)
    if name in ALARM_COLUMNS:
        return f"a.{name}"
    raise ValueError(f"alarm JSON: no column for field {name!r}")


def select_json(fields: Sequence[str], staff: bool, dialect: str) -> str:
    """SQL expression of one alarm's JSON object (``a`` alarms, ``s`` sites, a ``state`` column in scope)."""
    parts = []
    for name in fields:
        value = _value(name, dialect)
        if not staff and name in STAFF_ONLY:
            value = STAFF_ONLY[name]
        elif name in SHELVING:
            value = f"CASE WHEN state = 'shelved' THEN {value} ELSE {SHELVING[name]} END"
        parts += [f"'{name}'", value]
    return ("json_object(" if dialect == "sqlite" else "json_build_object(") + ", ".join(parts) + ")"


def list_body(db: Database, where: str, params: list[Any], now_ns: int, fields: Sequence[str], staff: bool,
              limit: int, offset: int) -> bytes:
    """The JSON array of the alarms matching ``where``, newest first."""
    obj = select_json(fields, staff, db.dialect)
    text = "::text" if db.dialect == "postgresql" else ""
    sql = (f"SELECT ({obj}){text}, CASE WHEN {_bad_evidence(db.dialect)} THEN a.evidence END FROM "
           f"(SELECT a.*, {STATE} AS state FROM alarms a JOIN sites s ON s.id = a.site_id WHERE {where} "
           f"ORDER BY a.raised_ns DESC, a.id DESC LIMIT ? OFFSET ?) a JOIN sites s ON s.id = a.site_id "
           f"ORDER BY a.raised_ns DESC, a.id DESC")
    rows = db.tuples(sql, (now_ns, *params, limit, offset))
    return ("[" + ",".join(j if bad is None else _with_evidence(j, bad) for j, bad in rows) + "]").encode()


def _with_evidence(obj_text: str, evidence_text: str) -> str:
    """One alarm's object with evidence that is not JSON (NaN, Infinity) put in as null."""
    obj = json.loads(obj_text)
    obj["evidence"] = json.loads(evidence_text)
    return orjson.dumps(obj).decode()

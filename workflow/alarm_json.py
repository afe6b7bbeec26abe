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

Each alarm row also keeps its two objects (``json_staff``, ``json_public``, UTF-8 bytes) as the same
expression wrote them when the row or its site's customer was last written (database triggers of
migration 7), for the state without a shelve in force.  A list of :data:`STORED_FIELDS` reads the page
with one indexed query and joins those bytes; only an alarm whose shelve is in force gets its object
built by the query (a correlated subquery, evaluated for that row alone).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from workflow.db import Database

BOOLEANS = frozenset({"acked", "active"})
SHELVING = {"shelved_until": "NULL", "shelve_reason": "''"}          # shown only while shelved
STAFF_ONLY = {"acked_by": "NULL", "ack_note": "''", "shelve_reason": "''"}
ALARM_COLUMNS = frozenset({
    "id", "key", "type", "site_id", "device_id", "severity", "first_raised_ns", "raised_ns", "cleared_ns",
    "active", "acked", "acked_ns", "acked_by", "ack_note", "shelved_until_ns", "shelved_by", "shelve_reason",
    "suppressed_by", "closed_ns", "activations", "message_zh", "message_en", "evidence", "updated_ns"})
# the fields of the API's alarm object (api.models.AlarmOut, in its order): the objects stored in each row
STORED_FIELDS: tuple[str, ...] = (
    "id", "key", "type", "site_id", "customer_id", "device_id", "severity", "state", "first_raised_at",
    "raised_at", "cleared_at", "closed_at", "acked", "acked_at", "acked_by", "ack_note", "shelved_until",
    "shelve_reason", "suppressed_by", "activations", "message_zh", "message_en", "evidence")
# columns whose change rewrites the stored objects (all but the stored objects themselves)
STORED_FROM = tuple(sorted(ALARM_COLUMNS))
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


def _object_of(fields: Sequence[str], staff: bool, dialect: str, alarm_id: str, state: str) -> str:
    """SQL: the object of the alarm whose id is the SQL expression ``alarm_id`` (``NEW.id``, ``a.id``),
    in UTF-8 bytes, with ``state`` (SQL over the alarm ``x``) as its state."""
    obj = select_json(fields, staff, dialect)
    utf8 = (lambda v: f"CAST(({v}) AS BLOB)") if dialect == "sqlite" else (lambda v: f"convert_to(({v})::text, 'UTF8')")
    return (f"(SELECT {utf8(obj)} FROM "
            f"(SELECT x.*, {state} AS state FROM alarms x WHERE x.id = {alarm_id}) a "
            f"JOIN sites s ON s.id = a.site_id)")


def store_statements(alarm_id: str, dialect: str) -> str:
    """SQL: ``SET`` both stored objects (no shelve in force) of the alarm ``alarm_id``."""
    return ", ".join(f"json_{who} = {_object_of(STORED_FIELDS, staff, dialect, alarm_id, 'x.base_state')}"
                     for who, staff in (("staff", True), ("public", False)))


@functools.lru_cache(maxsize=64)
def _list_sql(where: str, fields: tuple[str, ...], staff: bool, dialect: str) -> str:
    """SQL of :func:`list_body`; parameters: now, now, the ``where`` parameters, limit, offset."""
    bad = _bad_evidence(dialect)
    col = "a.json_staff" if staff else "a.json_public"
    shelved = "a.base_state <> 'cleared' AND a.shelved_until_ns > ?"
    if fields != STORED_FIELDS:             # no stored object: a NULL column, every object built
        col, shelved = "NULL", "CAST(? AS BIGINT) IS NOT NULL"
    built = _object_of(fields, staff, dialect, "a.id", STATE.replace("a.", "x."))
    join = "JOIN sites s ON s.id = a.site_id " if "s." in where else ""
    return (f"SELECT CASE WHEN {col} IS NULL OR ({shelved}) THEN {built} ELSE {col} END, "
            f"CASE WHEN {bad} THEN a.evidence END FROM alarms a {join}WHERE {where} "
            f"ORDER BY a.raised_ns DESC, a.id DESC LIMIT ? OFFSET ?")


def list_body(db: Database, where: str, params: list[Any], now_ns: int, fields: Sequence[str], staff: bool,
              limit: int, offset: int) -> bytes:
    """The JSON array of the alarms matching ``where``, newest first: the objects stored in the rows
    (:data:`STORED_FIELDS`, no shelve in force), the others built by the database."""
    sql = _list_sql(where, tuple(fields), staff, db.dialect)
    rows = db.tuples(sql, (now_ns, now_ns, *params, limit, offset))
    return b"[" + b",".join(j if bad is None else _with_evidence(j, bad) for j, bad in rows) + b"]"


def _with_evidence(obj_text: bytes, evidence_text: str) -> bytes:
    """One alarm's object with evidence that is not JSON (NaN, Infinity) put in as null."""
    obj = json.loads(obj_text)
    obj["evidence"] = json.loads(evidence_text)
    return orjson.dumps(obj)

"""Domain records shared by every package.

A :class:`Point` is one device snapshot at one instant: the unit of storage.  Its
``measurement`` is the device kind (``meter``, ``transformer``, ``pv_inverter``,
``ev_charger``) or a bookkeeping series (``collector_status``); ``tags`` are
``customer``, ``site``, ``device`` (low cardinality, never changed between resends);
``fields`` are channels from :mod:`core.channels` in their canonical units;
``time_ns`` is the device's or the poll schedule's time in ns since the epoch — never
the arrival time, so writing the same point twice is idempotent in InfluxDB.
"""

from __future__ import annotations

from typing import NamedTuple

FieldValue = float | int | bool | str


class FloatFields(dict):
    """A ``fields`` dict its builder has checked clean: every key a :mod:`core.channels` name
    (``[a-z][a-z0-9_]*``, nothing to escape in line protocol) and every value a finite Python
    ``float``.  :mod:`core.influx` writes such a set in one C call (orjson) instead of formatting
    each field, the hot path of MQTT ingest; a plain dict gets the general per-field encoder."""

    __slots__ = ()


class Point(NamedTuple):
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int


SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "warning")


class Finding(NamedTuple):
    """One analytics result: a fault, a power-quality verdict or a priced saving.

    ``evidence`` holds the numbers the finding rests on; for savings, ``kwh_month`` and
    ``yuan_month`` are the estimates and ``inputs`` the inputs of the formula used.
    Times are ns since the epoch (UTC).
    """

    type: str
    site_id: str
    device_id: str | None
    start_ns: int
    end_ns: int
    severity: str
    evidence: dict
    explanation_zh: str
    explanation_en: str
    recommendation_zh: str = ""
    recommendation_en: str = ""
    kwh_month: float | None = None
    yuan_month: float | None = None
    inputs: dict | None = None


class AlarmEvent(NamedTuple):
    """An alarm raise or clear, as produced by ``analytics.alarms`` and stored by the workflow store.

    ``key`` is the dedup key (``site/device/type``): at most one active alarm per key.
    ``cleared_ns`` is None while the condition is active.  ``suppressed_by`` names the key
    of the alarm that suppresses this one by design (e.g. the device's comms-loss alarm).
    """

    key: str
    type: str
    site_id: str
    device_id: str | None
    severity: str
    raised_ns: int
    cleared_ns: int | None
    message_zh: str
    message_en: str
    evidence: dict
    suppressed_by: str | None = None

"""Domain records shared by every wing.

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


class Point(NamedTuple):
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int

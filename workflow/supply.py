"""Supplier records and the field data of a rating year.

* :class:`Deliveries` — the delivery records of suppliers (promised and delivered date), an
  aggregate of the store (``store.add_delivery``, ``store.deliveries``);
* :func:`year_data` — gathers one calendar year of :class:`workflow.suppliers.YearData` from the
  store (devices with their supplier, fault alarms, work orders, deliveries) and InfluxDB
  (availability from ``collector_status.online``, PV yield against same-site peers from the
  inverters' ``energy_export`` counters).

Dates are stored as ISO text ``YYYY-MM-DD``; a date becomes an instant at local midnight of the
rating time zone (default Asia/Shanghai), where the year is cut too.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.units import NS
from workflow.db import Ctx, Invalid, check_id
from workflow.suppliers import Device, Rating, RatingRules, YearData, last_two_years, load_rules, rate_year
from workflow.vocab import DEVICE_KINDS

log = logging.getLogger(__name__)
RATING_TZ = "Asia/Shanghai"


def parse_date(what: str, value: Any) -> date:
    """A :class:`date` from a date or ``YYYY-MM-DD`` text; :class:`Invalid` naming ``what`` otherwise."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise Invalid(f"{what} must be a date YYYY-MM-DD, got {value!r}") from None


def date_ns(d: date | str, tz: str = RATING_TZ) -> int:
    """Local midnight of date ``d`` in ``tz`` [ns since the epoch]."""
    d = parse_date("date", d)
    return int(datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).timestamp()) * NS


def year_bounds_ns(year: int, tz: str = RATING_TZ) -> tuple[int, int]:
    if not 1990 <= year <= 2101:
        raise Invalid(f"year must be 1990..2101, got {year}")
    return date_ns(date(year, 1, 1), tz), date_ns(date(year + 1, 1, 1), tz)


class Deliveries:
    """Delivery records: what a supplier promised for when, and when it arrived."""

    def __init__(self, ctx: Ctx) -> None:
        self.db, self.clock = ctx.db, ctx.clock

    def add_delivery(self, supplier: str, category: str, promised: date | str, delivered: date | str | None = None,
                     note: str = "", created_by: str = "") -> dict:
        check_id("supplier", supplier)
        if category not in DEVICE_KINDS:
            raise Invalid(f"category must be one of {DEVICE_KINDS}, got {category!r}")
        p = parse_date("promised", promised)
        d = None if delivered is None else parse_date("delivered", delivered)
        with self.db.tx():
            new_id = self.db.insert(
                "INSERT INTO supplier_deliveries (supplier, category, promised, delivered, note, created_ns, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (supplier, category, p.isoformat(), None if d is None else d.isoformat(), note, self.clock(),
                 created_by))
        return self.db.one("SELECT * FROM supplier_deliveries WHERE id = ?", (new_id,)) or {}

    def deliveries(self, year: int | None = None, supplier: str | None = None) -> list[dict]:
        """Delivery records, oldest promise first; ``year`` selects by the promised date."""
        where, params = ["1=1"], []
        if year is not None:
            where.append("promised >= ? AND promised < ?")
            params += [f"{year:04d}-01-01", f"{year + 1:04d}-01-01"]
        if supplier is not None:
            where.append("supplier = ?")
            params.append(supplier)
        return self.db.rows(f"SELECT * FROM supplier_deliveries WHERE {' AND '.join(where)} "
                            "ORDER BY promised, id", params)


def _devices(store) -> list[Device]:
    out = []
    for d in store.devices():
        if not d.get("supplier"):
            continue
        installed = date_ns(d["installed"]) if d.get("installed") else int(d["created_ns"])
        out.append(Device(d["id"], d["supplier"], d["kind"], installed, d["site_id"]))
    return out


def _faults(db, start: int, end: int) -> list[dict]:
    """Fault alarms of devices first raised in the year: not warnings, not suppressed by another alarm."""
    return db.rows("SELECT device_id, first_raised_ns FROM alarms WHERE device_id IS NOT NULL "
                   "AND severity <> 'warning' AND suppressed_by IS NULL "
                   "AND first_raised_ns >= ? AND first_raised_ns < ?", (start, end))


def _work_orders(db, start: int, end: int) -> list[dict]:
    return db.rows("SELECT COALESCE(w.device_id, a.device_id) AS device_id, w.created_ns, w.resolved_ns "
                   "FROM work_orders w LEFT JOIN alarms a ON a.id = w.alarm_id "
                   "WHERE w.created_ns >= ? AND w.created_ns < ?", (start, end))


def availability(influx, start: int, end: int) -> dict[str, float]:
    """Device id -> mean of ``collector_status.online`` over ``[start, end)``."""
    series = influx.query('SELECT mean("online") FROM "collector_status" WHERE time >= $a AND time < $b '
                          'GROUP BY "device"', {"a": start, "b": end})
    out = {}
    for s in series:
        dev = (s.get("tags") or {}).get("device")
        value = s["values"][0][1] if s.get("values") else None
        if dev and value is not None:
            out[dev] = float(value)
    return out


def peer_yield(influx, start: int, end: int, rated_kw: dict[str, float]) -> dict[str, float]:
    """PV device id -> specific yield (kWh per kW rated) / median of its site's inverters.

    The energy of a year is the spread of the ``energy_export`` counter; a site with one
    inverter, or an inverter without a rating, has no peer figure.
    """
    series = influx.query('SELECT spread("energy_export") FROM "pv_inverter" WHERE time >= $a AND time < $b '
                          'GROUP BY "site", "device"', {"a": start, "b": end})
    by_site: dict[str, dict[str, float]] = defaultdict(dict)
    for s in series:
        tags = s.get("tags") or {}
        dev, kwh = tags.get("device"), s["values"][0][1] if s.get("values") else None
        if dev in rated_kw and kwh is not None and math.isfinite(kwh):
            by_site[tags.get("site", "")][dev] = float(kwh) / rated_kw[dev]
    out = {}
    for devs in by_site.values():
        if len(devs) < 2:
            continue
        median = statistics.median(devs.values())
        if median > 0:
            out.update({dev: y / median for dev, y in devs.items()})
    return out


def year_data(store, influx, year: int, tz: str = RATING_TZ) -> YearData:
    """The field records of calendar year ``year`` for :func:`workflow.suppliers.rate_year`."""
    start, end = year_bounds_ns(year, tz)
    db = store.db
    rated = {d["id"]: float(d["rated_power_kw"]) for d in store.devices(kind="pv_inverter")
             if d.get("rated_power_kw")}
    deliveries = [{"supplier": r["supplier"], "category": r["category"], "promised_ns": date_ns(r["promised"], tz),
                   "delivered_ns": date_ns(r["delivered"], tz) if r["delivered"] else None}
                  for r in store.deliveries(year)]
    av = availability(influx, start, end) if influx is not None else {}
    py = peer_yield(influx, start, end, rated) if influx is not None else {}
    return YearData(start, end, _devices(store), faults=_faults(db, start, end), availability=av,
                    peer_yield=py, work_orders=_work_orders(db, start, end), deliveries=deliveries)


RULES_PATH = Path(__file__).resolve().parents[1] / "suppliers" / "rating.toml"


@dataclass(frozen=True)
class Review:
    """The supplier review of one year: ratings ranked per category and the two-year flags."""

    year: int
    ratings: list[Rating]
    previous: list[Rating]
    flagged: list[tuple[str, str]]      # (supplier, category) last in its category this year and last year

    def is_flagged(self, r: Rating) -> bool:
        return (r.supplier, r.category) in self.flagged


def review(store, influx, year: int, *, rules: RatingRules | None = None, tz: str = RATING_TZ) -> Review:
    """Rate ``year`` and ``year - 1`` from the records and flag who was last in both."""
    rules = rules or load_rules(RULES_PATH)
    now = rate_year(year_data(store, influx, year, tz), rules)
    before = rate_year(year_data(store, influx, year - 1, tz), rules)
    return Review(year, now, before, last_two_years(before, now))

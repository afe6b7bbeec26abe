"""Yearly supplier rating (供方评审) from field data.

Every device carries its supplier, category and installation date.  Per supplier and
category, per year, four aspects are scored 0–100 from what the system already records, and
weighted into a total by ``suppliers/rating.toml``:

* **quality** — faults per device-year from the alarms of the supplier's devices; a fault
  within ``early_failure_days`` of installation counts double;
* **operation** — availability (the devices' online share) and, for PV inverters, the yield
  against the median of same-site peers;
* **after-sales** — mean repair time of the work orders on the supplier's devices;
* **delivery** — share of deliveries made on or before the promised date.

Suppliers are ranked within each category; one ranked last in its category in two
consecutive years is flagged for removal, as the service model requires.  An aspect with no
data is left out of that supplier's total (the remaining weights are renormalised) and says
so, rather than scoring 0 or 100.
"""

from __future__ import annotations

import math
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.units import NS

DAY_NS = 86_400 * NS
YEAR_DAYS = 365.25
ASPECTS: tuple[str, ...] = ("quality", "operation", "after_sales", "delivery")


@dataclass(frozen=True)
class RatingRules:
    weights: Mapping[str, float]
    quality: Mapping[str, float]
    operation: Mapping[str, float]
    after_sales: Mapping[str, float]


def load_rules(path: str | Path) -> RatingRules:
    p = Path(path)
    data = tomllib.loads(p.read_text(encoding="utf-8"))
    w = data.get("weights", {})
    missing = [a for a in ASPECTS if a not in w]
    if missing:
        raise ValueError(f"{p}: [weights] lacks '{missing[0]}'")
    if not math.isclose(sum(float(w[a]) for a in ASPECTS), 1.0, abs_tol=1e-9):
        raise ValueError(f"{p}: [weights] must add up to 1")
    return RatingRules({a: float(w[a]) for a in ASPECTS}, data["quality"], data["operation"], data["after_sales"])


@dataclass(frozen=True)
class Device:
    id: str
    supplier: str
    category: str              # meter, transformer, pv_inverter, ev_charger, ...
    installed_ns: int
    site_id: str = ""


@dataclass(frozen=True)
class YearData:
    """The field records of one year, ``[start_ns, end_ns)``."""

    start_ns: int
    end_ns: int
    devices: Sequence[Device]
    faults: Sequence[Mapping[str, Any]] = ()          # device_id, first_raised_ns (fault alarms only)
    availability: Mapping[str, float] = field(default_factory=dict)   # device id -> online share 0..1
    peer_yield: Mapping[str, float] = field(default_factory=dict)     # PV device id -> yield / site median
    work_orders: Sequence[Mapping[str, Any]] = ()     # device_id, created_ns, resolved_ns
    deliveries: Sequence[Mapping[str, Any]] = ()      # supplier, category, promised_ns, delivered_ns


@dataclass(frozen=True)
class Rating:
    supplier: str
    category: str
    devices: int
    scores: Mapping[str, float]        # aspect -> 0..100, NaN where there was no data
    evidence: Mapping[str, str]        # aspect -> the figures behind the score (en)
    total: float
    rank: int = 0
    of: int = 0
    evidence_zh: Mapping[str, str] = field(default_factory=dict)   # the same figures in Chinese


def _linear(value: float, zero: float, full: float) -> float:
    """100 at ``full``, 0 at ``zero``, linear between, clipped."""
    if not math.isfinite(value):
        return float("nan")
    return 100.0 * min(1.0, max(0.0, (value - zero) / (full - zero)))


def _device_years(devs: Sequence[Device], year: YearData) -> float:
    total = 0.0
    for d in devs:
        begin = max(d.installed_ns, year.start_ns)
        total += max(0, year.end_ns - begin) / DAY_NS / YEAR_DAYS
    return total


def _quality(devs, year, rules) -> tuple[float, str, str]:
    ids = {d.id: d for d in devs}
    early_ns = float(rules.quality["early_failure_days"]) * DAY_NS
    count = early = 0
    for f in year.faults:
        d = ids.get(f["device_id"])
        if d is None or not year.start_ns <= f["first_raised_ns"] < year.end_ns:
            continue
        is_early = f["first_raised_ns"] - d.installed_ns < early_ns
        count += 1
        early += is_early
    dy = _device_years(devs, year)
    if dy <= 0:
        return float("nan"), "no device in service this year", "本年无在役设备"
    rate = (count + early) / dy
    score = _linear(rate, float(rules.quality["faults_per_device_year_zero_score"]), 0.0)
    return score, (f"{count} faults ({early} early, counted double) in {dy:.2f} device-years: "
                   f"{rate:.2f} per device-year"), (f"故障 {count} 次（其中早期故障 {early} 次，加倍计）/"
                                                    f"{dy:.2f} 台·年：每台·年 {rate:.2f} 次")


def _operation(devs, year, rules) -> tuple[float, str, str]:
    av = [year.availability[d.id] for d in devs if d.id in year.availability]
    py = [year.peer_yield[d.id] for d in devs if d.id in year.peer_yield]
    parts, words, zh = [], [], []
    if av:
        mean = sum(av) / len(av)
        parts.append(_linear(mean, float(rules.operation["availability_zero_score"]), 1.0))
        words.append(f"availability {100 * mean:.2f} % over {len(av)} devices")
        zh.append(f"{len(av)} 台设备可用率 {100 * mean:.2f}%")
    if py:
        mean = sum(py) / len(py)
        parts.append(_linear(mean, float(rules.operation["peer_yield_zero_score"]), 1.0))
        words.append(f"yield {100 * mean:.1f} % of same-site peers")
        zh.append(f"发电量为同站同类设备的 {100 * mean:.1f}%")
    if not parts:
        return float("nan"), "no availability data", "无可用率数据"
    return sum(parts) / len(parts), "; ".join(words), "；".join(zh)


def _after_sales(devs, year, rules) -> tuple[float, str, str]:
    ids = {d.id for d in devs}
    hours = [(w["resolved_ns"] - w["created_ns"]) / 3600 / NS for w in year.work_orders
             if w.get("device_id") in ids and w.get("resolved_ns") is not None
             and year.start_ns <= w["created_ns"] < year.end_ns]
    if not hours:
        return float("nan"), "no work order on these devices", "无相关工单"
    mean = sum(hours) / len(hours)
    score = _linear(mean, float(rules.after_sales["repair_hours_zero_score"]),
                    float(rules.after_sales["repair_hours_full_score"]))
    return score, f"{len(hours)} work orders, mean repair {mean:.1f} h", f"工单 {len(hours)} 张，平均修复 {mean:.1f} 小时"


def _delivery(supplier, category, year) -> tuple[float, str, str]:
    rows = [r for r in year.deliveries if r["supplier"] == supplier and r["category"] == category
            and year.start_ns <= r["promised_ns"] < year.end_ns]
    if not rows:
        return float("nan"), "no delivery recorded", "无交货记录"
    on_time = sum(r["delivered_ns"] is not None and r["delivered_ns"] <= r["promised_ns"] for r in rows)
    return (100.0 * on_time / len(rows), f"{on_time} of {len(rows)} deliveries on time",
            f"交货 {len(rows)} 批，按期 {on_time} 批")


def rate_year(year: YearData, rules: RatingRules) -> list[Rating]:
    """Every (supplier, category) of the year's devices, scored and ranked within its category."""
    groups: dict[tuple[str, str], list[Device]] = defaultdict(list)
    for d in year.devices:
        if d.installed_ns < year.end_ns:
            groups[(d.supplier, d.category)].append(d)
    ratings = []
    for (supplier, category), devs in sorted(groups.items()):
        results = {"quality": _quality(devs, year, rules), "operation": _operation(devs, year, rules),
                   "after_sales": _after_sales(devs, year, rules), "delivery": _delivery(supplier, category, year)}
        scores = {a: results[a][0] for a in ASPECTS}
        known = [a for a in ASPECTS if math.isfinite(scores[a])]
        weight = sum(rules.weights[a] for a in known)
        total = sum(rules.weights[a] * scores[a] for a in known) / weight if weight else float("nan")
        ratings.append(Rating(supplier, category, len(devs), scores, {a: results[a][1] for a in ASPECTS}, total,
                              evidence_zh={a: results[a][2] for a in ASPECTS}))
    return _ranked(ratings)


def _ranked(ratings: list[Rating]) -> list[Rating]:
    out = []
    by_cat: dict[str, list[Rating]] = defaultdict(list)
    for r in ratings:
        by_cat[r.category].append(r)
    for category in sorted(by_cat):
        rows = sorted(by_cat[category], key=lambda r: (-(r.total if math.isfinite(r.total) else -1), r.supplier))
        for i, r in enumerate(rows, 1):
            out.append(Rating(r.supplier, r.category, r.devices, r.scores, r.evidence, r.total, i, len(rows),
                              r.evidence_zh))
    return out


def last_two_years(previous: Iterable[Rating], current: Iterable[Rating]) -> list[tuple[str, str]]:
    """(supplier, category) ranked last in its category in both years.

    Last means at least two suppliers ranked and a total strictly below every other one of the
    category: a tie at the bottom (e.g. a year without field data, every score equal) names nobody.
    """
    def lasts(rows):
        by_cat: dict[str, list[Rating]] = defaultdict(list)
        for r in rows:
            by_cat[r.category].append(r)
        out = set()
        for rs in by_cat.values():
            last = [r for r in rs if r.of >= 2 and r.rank == r.of and math.isfinite(r.total)]
            if last and all(math.isfinite(o.total) and o.total > last[0].total for o in rs if o is not last[0]):
                out.add((last[0].supplier, last[0].category))
        return out
    return sorted(lasts(previous) & lasts(current))

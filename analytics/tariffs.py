"""Electricity tariffs as data: TOU calendar, energy prices, basic (capacity/demand) charge, PF standard.

A tariff lives in ``tariffs/<id>.toml`` (see ``tariffs/sichuan_large_industry_2023.toml``
for the schema).  :func:`load_tariff` validates the whole file once and raises
:class:`TariffError` naming the file and the key; the loaded :class:`Tariff` maps
any UTC timestamps to its TOU period by a (month, minute-of-day) lookup table in the
tariff's local time zone.

Billing rules implemented (docs/standards.md §6, NDRC 发改价格〔2021〕1093号 for TOU,
State Grid 国家电网财〔2016〕633号 for contract demand):

* energy charge = Σ kWh_period × price_period;
* basic charge by capacity (yuan/kVA·month × kVA) or by maximum demand (yuan/kW·month
  × the highest 15-min average demand, or contract demand with excess above 105 %
  charged double, configurable reading A or B);
* PF adjustment on the configured base (see :mod:`analytics.power_quality`).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from analytics import _checks

TARIFF_DIR = Path(__file__).resolve().parent.parent / "tariffs"
PERIOD_NAMES = ("deep_valley", "valley", "flat", "peak", "critical")


class TariffError(ValueError):
    """A tariff file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Tariff:
    """A validated tariff.  ``periods`` lists the period names used; ``prices`` [yuan/kWh] align with it."""

    id: str
    name: str
    timezone: str
    periods: tuple[str, ...]
    prices: np.ndarray                      # yuan/kWh per period index
    calendar: np.ndarray                    # (13, 1440) int8: [month, minute of day] -> period index
    capacity_price: float                   # yuan/kVA·month
    demand_price: float                     # yuan/kW·month
    demand_window_min: int = 15
    demand_sliding: bool = True
    contract_excess_threshold: float = 1.05
    contract_excess_rule: str = "A"
    contract_floor_fraction: float = 0.40
    pf_standard: float = 0.90
    pf_base: str = "basic+energy"
    document: str = ""
    effective_from: str = ""
    prices_are_example: bool = True
    province: str = ""
    source_path: str = ""
    extra: dict = field(default_factory=dict)

    def price(self, period: str) -> float:
        """Energy price of a period [yuan/kWh]."""
        if period not in self.periods:
            raise KeyError(f"tariff {self.id!r} has no period {period!r}; periods: {', '.join(self.periods)}")
        return float(self.prices[self.periods.index(period)])

    def period_index(self, time_ns) -> np.ndarray:
        """TOU period index (into :attr:`periods`) of each UTC timestamp [ns]."""
        month, minute = _local_month_minute(_checks.time_ns(time_ns), self.timezone)
        return self.calendar[month, minute]

    def price_at(self, time_ns) -> np.ndarray:
        """Energy price at each UTC timestamp [yuan/kWh]."""
        return self.prices[self.period_index(time_ns)]


def local_fields(time_ns, tz: str) -> dict[str, np.ndarray]:
    """Local calendar fields of UTC ns timestamps in zone ``tz`` (DST-aware through zoneinfo).

    Returns
    -------
    dict of ndarray
        ``month`` (1..12), ``minute`` (minute of day, 0..1439), ``weekday`` (0 = Monday),
        ``day`` (local days since 1970-01-01).
    """
    t = _checks.time_ns(time_ns)
    if t.size == 0:
        z = np.zeros(0, np.int64)
        return {"month": z, "minute": z, "weekday": z, "day": z}
    zone = ZoneInfo(tz)
    # UTC offset per distinct UTC hour (offsets change on the hour in every zone we serve)
    hours = t // (3600 * 10**9)
    uh, inv = np.unique(hours, return_inverse=True)
    off = np.array([zone.utcoffset(dt.datetime.fromtimestamp(int(h) * 3600, dt.UTC).replace(tzinfo=None))
                    .total_seconds() for h in uh], dtype=np.int64)
    local = t + off[inv] * 10**9
    days = local // (86400 * 10**9)
    minute = (local - days * 86400 * 10**9) // (60 * 10**9)
    month = (days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12) + 1
    return {"month": month, "minute": minute, "weekday": (days + 3) % 7, "day": days}


def _local_month_minute(t: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    f = local_fields(t, tz)
    return f["month"], f["minute"]


def _hhmm(text, path: str, key: str) -> int:
    try:
        h, m = str(text).split(":")
        v = int(h) * 60 + int(m)
    except ValueError:
        raise TariffError(f"{path}: {key}: expected 'HH:MM', got {text!r}") from None
    if not 0 <= v <= 1440 or int(m) >= 60:
        raise TariffError(f"{path}: {key}: time {text!r} out of 00:00..24:00")
    return v


def _number(table: dict, key: str, path: str, where: str, minimum: float = 0.0) -> float:
    if key not in table:
        raise TariffError(f"{path}: {where}.{key}: missing")
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < minimum:
        raise TariffError(f"{path}: {where}.{key}: expected a number ≥ {minimum}, got {v!r}")
    return float(v)


def parse_tariff(data: dict, path: str = "<tariff>") -> Tariff:
    """Validate a tariff table (as read from TOML) and build a :class:`Tariff`."""
    for key in ("id", "name", "timezone", "energy_price", "basic", "season"):
        if key not in data:
            raise TariffError(f"{path}: key {key!r}: missing")
    tz = data["timezone"]
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(f"{path}: timezone: unknown time zone {tz!r}") from None
    periods, prices = _energy_prices(data["energy_price"], path)
    cal = _season_calendar(data["season"], periods, path)
    b = data["basic"]
    pf = data.get("power_factor", {})
    rule, std, window = _basic_rules(b, pf, path)
    known = {"id", "name", "timezone", "energy_price", "basic", "season", "power_factor", "document",
             "effective_from", "prices_are_example", "province", "customer_class", "voltage_level", "currency"}
    return Tariff(
        id=str(data["id"]), name=str(data["name"]), timezone=str(tz), periods=periods, prices=prices,
        calendar=cal,
        capacity_price=_number(b, "capacity_yuan_per_kva_month", path, "basic"),
        demand_price=_number(b, "demand_yuan_per_kw_month", path, "basic"),
        demand_window_min=window, demand_sliding=bool(b.get("demand_sliding", True)),
        contract_excess_threshold=float(b.get("contract_excess_threshold", 1.05)),
        contract_excess_rule=rule,
        contract_floor_fraction=float(b.get("contract_floor_fraction", 0.40)),
        pf_standard=float(std), pf_base=str(pf.get("base", "basic+energy")),
        document=str(data.get("document", "")), effective_from=str(data.get("effective_from", "")),
        prices_are_example=bool(data.get("prices_are_example", True)), province=str(data.get("province", "")),
        source_path=path,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _energy_prices(ep, path: str) -> tuple[tuple[str, ...], np.ndarray]:
    """The priced periods (valley to critical) and their energy prices [yuan/kWh], non-decreasing."""
    if not isinstance(ep, dict) or not ep:
        raise TariffError(f"{path}: energy_price: expected a table of period = yuan/kWh")
    for p in ep:
        if p not in PERIOD_NAMES:
            raise TariffError(f"{path}: energy_price.{p}: unknown period; allowed: {', '.join(PERIOD_NAMES)}")
    periods = tuple(p for p in PERIOD_NAMES if p in ep)
    prices = np.array([_number(ep, p, path, "energy_price") for p in periods])
    order = [prices[periods.index(p)] for p in PERIOD_NAMES if p in periods]
    if any(b < a for a, b in zip(order, order[1:], strict=False)):
        raise TariffError(f"{path}: energy_price: prices must not decrease from valley to critical, got "
                          + ", ".join(f"{p}={prices[periods.index(p)]}" for p in periods))
    return periods, prices


def _season_calendar(seasons, periods: tuple[str, ...], path: str) -> np.ndarray:
    """(13, 1440) period index per month (row 0 unused) and minute of day; every month in one season."""
    cal = np.full((13, 1440), -1, np.int8)
    seen: dict[int, str] = {}
    if not isinstance(seasons, list) or not seasons:
        raise TariffError(f"{path}: season: expected at least one [[season]]")
    for si, s in enumerate(seasons):
        where = f"season[{si}]"
        months = s.get("months")
        if not isinstance(months, list) or not months:
            raise TariffError(f"{path}: {where}.months: expected a list of months 1..12")
        row = _season_row(s.get("periods"), periods, path, where)
        for m in months:
            if not isinstance(m, int) or not 1 <= m <= 12:
                raise TariffError(f"{path}: {where}.months: {m!r} is not a month 1..12")
            if m in seen:
                raise TariffError(f"{path}: {where}.months: month {m} already in season {seen[m]!r}")
            seen[m] = s.get("name", where)
            cal[m] = row
    missing = sorted(set(range(1, 13)) - set(seen))
    if missing:
        raise TariffError(f"{path}: season: months {missing} are in no season")
    return cal


def _season_row(segs, periods: tuple[str, ...], path: str, where: str) -> np.ndarray:
    """1440 period indexes of one season's day from its [start, end, period] segments, gap- and overlap-free."""
    if not isinstance(segs, list) or not segs:
        raise TariffError(f"{path}: {where}.periods: expected a list of [start, end, period]")
    row = np.full(1440, -1, np.int8)
    for k, seg in enumerate(segs):
        key = f"{where}.periods[{k}]"
        if not isinstance(seg, list) or len(seg) != 3:
            raise TariffError(f"{path}: {key}: expected [\"HH:MM\", \"HH:MM\", period], got {seg!r}")
        a, b = _hhmm(seg[0], path, key), _hhmm(seg[1], path, key)
        if seg[2] not in periods:
            raise TariffError(f"{path}: {key}: period {seg[2]!r} has no price; priced: {', '.join(periods)}")
        if b <= a:
            raise TariffError(f"{path}: {key}: end {seg[1]} must be after start {seg[0]}")
        if (row[a:b] >= 0).any():
            raise TariffError(f"{path}: {key}: overlaps an earlier segment")
        row[a:b] = periods.index(seg[2])
    if (row < 0).any():
        gap = int(np.flatnonzero(row < 0)[0])
        raise TariffError(f"{path}: {where}.periods: minute {gap // 60:02d}:{gap % 60:02d} not covered")
    return row


def _basic_rules(b: dict, pf: dict, path: str) -> tuple[str, float, int]:
    """Contract-excess rule, power-factor standard and demand window [min] from the basic and pf tables."""
    rule = b.get("contract_excess_rule", "A")
    if rule not in ("A", "B"):
        raise TariffError(f"{path}: basic.contract_excess_rule: must be 'A' or 'B', got {rule!r}")
    std = pf.get("standard", 0.90)
    if std not in (0.90, 0.85, 0.80):
        raise TariffError(f"{path}: power_factor.standard: must be 0.90, 0.85 or 0.80, got {std!r}")
    window = b.get("demand_window_min", 15)
    if not isinstance(window, int) or window < 1:
        raise TariffError(f"{path}: basic.demand_window_min: expected an integer ≥ 1, got {window!r}")
    return rule, std, window


def load_tariff(name_or_path: str | Path, directory: str | Path | None = None) -> Tariff:
    """Load and validate a tariff by id (``tariffs/<id>.toml``) or by file path."""
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = Path(directory or TARIFF_DIR) / f"{name_or_path}.toml"
    if not p.is_file():
        have = sorted(q.stem for q in Path(directory or TARIFF_DIR).glob("*.toml"))
        raise TariffError(f"{p}: no such tariff file; available: {', '.join(have) or 'none'}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TariffError(f"{p}: not valid TOML: {e}") from None
    t = parse_tariff(data, str(p))
    if t.id != p.stem:
        raise TariffError(f"{p}: id: {t.id!r} must equal the file name {p.stem!r}")
    return t


def check_site_tariff(site_id: str, province: str, example_ok: bool, tariff: Tariff) -> None:
    """Refuse to bill a site on a tariff that is not a verified schedule of its province.

    A tariff with example prices (``prices_are_example``) or of another province bills the
    site only when the fleet file says ``tariff_example_ok = true`` for it; otherwise
    :class:`TariffError` names the site and the key to set.
    """
    if example_ok:
        return
    where = f"site {site_id!r}"
    if tariff.prices_are_example:
        raise TariffError(f"{where}: tariff {tariff.id!r} ({tariff.name}) has example prices, not a verified "
                          f"schedule{' for ' + province if province else ''}; set tariff_example_ok = true for the "
                          "site in the fleet file to accept example figures, or give it a verified tariff")
    have = tariff.province
    if province and have and province.lower() != have.lower():
        raise TariffError(f"{where}: province {province!r} is billed on tariff {tariff.id!r} of {have!r}; give the "
                          "site its province's tariff or set tariff_example_ok = true in the fleet file")


# ---------------------------------------------------------------- energy and cost


def interval_energy_kwh(time_ns, power_w, max_gap_s: float | None = None) -> np.ndarray:
    """Energy of each interval [kWh] from power samples [W] by left-rectangle integration.

    Sample i holds for ``t[i+1] - t[i]`` (the last sample for the median step).  Steps
    longer than ``max_gap_s`` (comms loss) contribute nothing; NaN power contributes nothing.
    """
    t = _checks.time_ns(time_ns)
    p = _checks.as_float(power_w, "power_w")
    _checks.same_shape("power_w", p, "time_ns", t)
    if t.size == 0:
        return np.zeros(0)
    dt_s = np.diff(t) / 1e9
    last = np.median(dt_s) if dt_s.size else 0.0
    dt_s = np.r_[dt_s, last]
    if max_gap_s is not None:
        dt_s = np.where(dt_s > max_gap_s, 0.0, dt_s)
    return np.nan_to_num(p) * dt_s / 3.6e6


def energy_by_period(time_ns, energy_kwh, tariff: Tariff) -> dict[str, float]:
    """Sum interval energies [kWh] per TOU period of ``tariff`` (interval labelled by its start time)."""
    e = _checks.as_float(energy_kwh, "energy_kwh")
    idx = tariff.period_index(time_ns)
    _checks.same_shape("energy_kwh", e, "time_ns", idx)
    sums = np.bincount(idx, weights=np.nan_to_num(e), minlength=len(tariff.periods))
    return {p: float(sums[i]) for i, p in enumerate(tariff.periods)}


def energy_cost(time_ns, energy_kwh, tariff: Tariff) -> dict:
    """Energy charge [yuan] per period and in total, with the kWh per period."""
    kwh = energy_by_period(time_ns, energy_kwh, tariff)
    yuan = {p: kwh[p] * tariff.price(p) for p in kwh}
    return {"kwh": kwh, "yuan": yuan, "total_kwh": sum(kwh.values()), "total_yuan": sum(yuan.values())}


def max_demand_kw(power_kw, window: int = 15, sliding: bool = True) -> float:
    """Maximum demand [kW]: highest ``window``-sample average of 1-min power, docs/standards.md §6.1.

    Sliding by one sample (meter practice) or fixed blocks.  NaN samples make their
    window invalid.
    """
    p = _checks.as_float(power_kw, "power_kw")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer ≥ 1, got {window!r}")
    if p.size < window:
        return float("nan")
    if sliding:
        # NaN-free running sums, and a count of NaNs per window: a NaN spoils only its own windows
        # (a plain cumsum would carry it into every later window)
        bad = ~np.isfinite(p)
        c = np.r_[0.0, np.cumsum(np.where(bad, 0.0, p))]
        nbad = np.r_[0, np.cumsum(bad)]
        means = (c[window:] - c[:-window]) / window
        means[(nbad[window:] - nbad[:-window]) > 0] = np.nan
    else:
        n = p.size // window * window
        means = p[:n].reshape(-1, window).mean(axis=1)
    means = means[np.isfinite(means)]
    return float(means.max()) if means.size else float("nan")


def demand_charge(max_demand: float, price: float, contract_kw: float | None = None,
                  threshold: float = 1.05, rule: str = "A") -> float:
    """Basic charge on maximum demand [yuan/month], 国家电网财〔2016〕633号 (docs/standards.md §6.1).

    Without a contract: ``price × D``.  With contract demand C: ``price × C`` while
    D ≤ threshold·C; above it reading A = ``p·(2D − 1.05C)``, reading B = ``p·C + 2p·(D − 1.05C)``.
    """
    d = _checks.non_negative(max_demand, "max_demand")
    p = _checks.non_negative(price, "price")
    _checks.choice(rule, "rule", ("A", "B"))
    if contract_kw is None:
        return p * d
    c = _checks.positive(contract_kw, "contract_kw")
    if d <= threshold * c + 1e-9:
        return p * c
    return p * (2 * d - threshold * c) if rule == "A" else p * c + 2 * p * (d - threshold * c)


def capacity_charge(rated_kva: float, price: float) -> float:
    """Basic charge by capacity [yuan/month] = yuan/kVA·month × (transformer + HV motor) kVA."""
    return _checks.non_negative(rated_kva, "rated_kva") * _checks.non_negative(price, "price")


def monthly_bill(time_ns, power_w, tariff: Tariff, rated_kva: float, method: str = "capacity",
                 contract_kw: float | None = None, kvarh: float | None = None) -> dict:
    """Indicative monthly bill [yuan]: energy by TOU period + basic charge (+ PF adjustment if kvarh given).

    Parameters
    ----------
    time_ns : array-like of int
        1-min sample times [ns] covering the month.
    power_w : array-like
        Site import active power [W] (grid meter, > 0 = import).
    tariff : Tariff
    rated_kva : float
        Billed transformer capacity [kVA].
    method : {'capacity', 'demand'}
        Basic-charge method.
    contract_kw : float, optional
        Contract demand [kW] for demand billing.
    kvarh : float, optional
        Month's reactive energy |import| + |export| [kvarh].
    """
    _checks.choice(method, "method", ("capacity", "demand"))
    p = np.clip(_checks.as_float(power_w, "power_w"), 0, None)
    e = interval_energy_kwh(time_ns, p, max_gap_s=600)
    cost = energy_cost(time_ns, e, tariff)
    dmax = max_demand_kw(p / 1000.0, tariff.demand_window_min, tariff.demand_sliding)
    if method == "capacity":
        basic = capacity_charge(rated_kva, tariff.capacity_price)
    else:
        basic = demand_charge(0.0 if np.isnan(dmax) else dmax, tariff.demand_price, contract_kw,
                              tariff.contract_excess_threshold, tariff.contract_excess_rule)
    out = {"energy": cost, "max_demand_kw": dmax, "basic_method": method, "basic_yuan": basic,
           "pf": None, "pf_adjust_pct": 0.0, "pf_adjust_yuan": 0.0}
    if kvarh is not None and cost["total_kwh"] > 0:
        from analytics import power_quality as pq

        pf = float(pq.monthly_power_factor(cost["total_kwh"], kvarh))
        pct = float(pq.pf_adjustment_pct(pf, tariff.pf_standard))
        out.update(pf=pf, pf_adjust_pct=pct, pf_adjust_yuan=pct / 100.0 * (basic + cost["total_yuan"]))
    out["total_yuan"] = cost["total_yuan"] + basic + out["pf_adjust_yuan"]
    return out

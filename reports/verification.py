"""Verified savings of a month: the hosting contract's baseline terms and IPMVP Option C.

``load_contracts`` reads the customers' baseline terms (``EH_REPORT_BASELINES``);
``daily_conditions`` and ``site_regression`` compute one site's avoided energy with
:mod:`analytics.baseline` (ASHRAE Guideline 14 statistics and uncertainty);
``savings_vs_baseline`` decides whether the month's saving is verified and, if not, why.
See docs/reports.md, "Baseline".
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from analytics import baseline as bl
from analytics import tariffs as tf
from core import workdays
from core.units import NS
from reports.archive import ReportArchive
from reports.model import MonthlyReport, Savings, SiteRegression
from reports.weather import Feed, daily_temperature, load_feed

BASELINE_MONTHS = 3             # previous archived months averaged for the fallback baseline


# ---------------------------------------------------------------- baseline


@dataclasses.dataclass(frozen=True)
class BaselineContract:
    """A customer's baseline terms from the hosting contract (``EH_REPORT_BASELINES``, see docs/reports.md).

    ``yuan_per_kwh``: the contracted unit cost (fallback method ``configured``).  ``baseline_start``
    .. ``baseline_end`` (local days, inclusive): the baseline period of the IPMVP Option C
    regression; ``heating_base_c`` / ``cooling_base_c`` its degree-day balance points and
    ``confidence`` the level of the savings band (0.68 or 0.90 in Guideline 14's examples);
    ``weather_feed`` the operator's file of hourly outdoor temperatures (:func:`reports.weather.load_feed`).
    """

    yuan_per_kwh: float | None = None
    baseline_start: date | None = None
    baseline_end: date | None = None
    heating_base_c: float = 18.0
    cooling_base_c: float = 18.0
    confidence: float = 0.90
    weather_feed: Feed | None = dataclasses.field(default=None, compare=False)

    @property
    def has_period(self) -> bool:
        return self.baseline_start is not None and self.baseline_end is not None


_CONTRACT_KEYS = ("yuan_per_kwh", "hosting_start", "baseline_days", "baseline_start", "baseline_end",
                  "heating_base_c", "cooling_base_c", "confidence", "weather_feed")


def _contract(p: Path, cid: str, table: Any) -> BaselineContract:
    where = f"{p}: customer.{cid}"
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table")
    unknown = sorted(set(table) - set(_CONTRACT_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {list(_CONTRACT_KEYS)}")

    def num(key: str, lo: float, hi: float, default: float | None) -> float | None:
        v = table.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo < v < hi:
            raise ValueError(f"{where}.{key} must be a number in ({lo}, {hi}), got {v!r}")
        return float(v)

    def day(key: str) -> date | None:
        v = table.get(key)
        if v is None:
            return None
        if isinstance(v, datetime):
            raise ValueError(f"{where}.{key} must be a date (YYYY-MM-DD), got a date-time {v!r}")
        if isinstance(v, date):
            return v
        try:
            return date.fromisoformat(str(v))
        except ValueError:
            raise ValueError(f"{where}.{key} must be a date (YYYY-MM-DD), got {v!r}") from None

    yuan = num("yuan_per_kwh", 0.0, math.inf, None)
    start, end, hosting = day("baseline_start"), day("baseline_end"), day("hosting_start")
    if hosting is not None:
        if start is not None or end is not None:
            raise ValueError(f"{where}: give hosting_start (+ baseline_days) or baseline_start/baseline_end, not both")
        n = table.get("baseline_days", 28)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 3660:
            raise ValueError(f"{where}.baseline_days must be a whole number of days 1..3660, got {n!r}")
        start, end = hosting - timedelta(days=n), hosting - timedelta(days=1)
    elif "baseline_days" in table:
        raise ValueError(f"{where}.baseline_days needs hosting_start")
    if (start is None) != (end is None):
        raise ValueError(f"{where}: baseline_start and baseline_end go together")
    if start is not None and end < start:
        raise ValueError(f"{where}: baseline_end {end} is before baseline_start {start}")
    feed = table.get("weather_feed")
    if feed is not None and (not isinstance(feed, str) or not feed.strip()):
        raise ValueError(f"{where}.weather_feed must be a file name (CSV), got {feed!r}")
    return BaselineContract(yuan_per_kwh=yuan, baseline_start=start, baseline_end=end,
                            heating_base_c=num("heating_base_c", -50.0, 50.0, 18.0),
                            cooling_base_c=num("cooling_base_c", -50.0, 50.0, 18.0),
                            confidence=num("confidence", 0.0, 1.0, 0.90),
                            weather_feed=None if feed is None else load_feed(p.parent / feed))


def load_contracts(path: str | os.PathLike) -> dict[str, BaselineContract]:
    """Every customer's :class:`BaselineContract` from the baselines TOML file.

    ``[customer.<id>]`` with any of ``yuan_per_kwh``; ``hosting_start`` (a date) and
    ``baseline_days`` (default 28: the baseline is the N days before hosting starts) or
    ``baseline_start`` / ``baseline_end`` (inclusive); ``heating_base_c``, ``cooling_base_c``
    (default 18 °C); ``confidence`` (default 0.90); ``weather_feed`` (a CSV of hourly outdoor temperatures,
    relative to this file, see :mod:`reports.weather`).  ``ValueError`` names the file and key.
    """
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{p}: cannot read baselines: {exc}") from None
    return {cid: _contract(p, cid, table) for cid, table in (raw.get("customer") or {}).items()}


def load_baselines(path: str | os.PathLike) -> dict[str, float]:
    """Contracted unit costs: customer id -> ``yuan_per_kwh`` [yuan/kWh] of :func:`load_contracts`."""
    return {cid: c.yuan_per_kwh for cid, c in load_contracts(path).items() if c.yuan_per_kwh is not None}


# ---------------------------------------------------------------- verified savings (IPMVP Option C)


def _local_midnight_ns(d: date, tz: str) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).timestamp()) * NS


def daily_conditions(t_ns: np.ndarray, power_w: np.ndarray, wt_ns: np.ndarray, temp_c: np.ndarray, tz: str,
                     first_day: date, n_days: int) -> dict[str, np.ndarray]:
    """Per local day from ``first_day``: energy [kWh], daily mean outdoor temperature [°C], coverage, day type.

    ``energy_kwh`` = mean of the day's valid 1-min consumption × the day's hours (so a day with a
    few missing minutes is not counted low); ``coverage`` = the share of the day's 1-min energy
    samples present (``baseline.daily_sums``); ``t_mean_c`` = the mean of the day's hourly mean
    temperatures, NaN when fewer than 20 hours hold one (``reports.weather.daily_temperature``:
    such a day is not compared, ``no_temperature`` marks it); ``day_type`` from the Chinese
    working-day calendar (``core.workdays``).
    """
    days = [first_day + timedelta(days=i) for i in range(n_days + 1)]
    hours = np.diff([_local_midnight_ns(d, tz) for d in days]) / 3600e9
    epoch_day = (first_day - date(1970, 1, 1)).days
    def index(t: np.ndarray) -> np.ndarray:
        return tf.local_fields(t, tz)["day"] - epoch_day if t.size else np.empty(0, np.int64)
    p_mean, p_cov = bl.daily_sums(index(t_ns), power_w, n_days, expected_per_day=hours * 60.0)
    t_mean, t_hours = daily_temperature(wt_ns, temp_c, tz, first_day, n_days)
    return {"energy_kwh": p_mean * hours / 1000.0, "t_mean_c": t_mean, "coverage": p_cov,
            "t_hours": t_hours, "no_temperature": ~np.isfinite(t_mean),
            "day_type": np.array([workdays.day_type(d) for d in days[:-1]], dtype=np.int64),
            "calendar": np.array([workdays.source(d) for d in days[:-1]])}


def site_regression(site_id: str, contract: BaselineContract, base: dict[str, np.ndarray],
                    month: dict[str, np.ndarray], price_yuan_per_kwh: float | None) -> SiteRegression:
    """One site's verified savings from :func:`daily_conditions` of the baseline days and the month's days.

    The model and the savings are :func:`analytics.baseline.fit_baseline` and
    :func:`analytics.baseline.avoided_energy`; a refusal (too few complete days, degenerate
    data) is kept in ``error`` and no saving is claimed for the site.
    """
    r = SiteRegression(site_id=site_id, baseline_start=contract.baseline_start.isoformat(),
                       baseline_end=contract.baseline_end.isoformat(), confidence=contract.confidence)
    cal = set(base["calendar"].tolist()) | set(month["calendar"].tolist())
    r.calendar = "approximate" if "approximate" in cal else "official"
    r.n_baseline_no_temperature_days = int(np.count_nonzero(base["no_temperature"]))
    r.n_no_temperature_days = int(np.count_nonzero(month["no_temperature"]))
    try:
        model = bl.fit_baseline(base["energy_kwh"], base["day_type"], base["t_mean_c"], coverage=base["coverage"],
                                heating_base_c=contract.heating_base_c, cooling_base_c=contract.cooling_base_c)
    except ValueError as exc:
        r.error = f"baseline model: {exc}"
        return r
    r.n_baseline_days, r.n_baseline_excluded = model.n, model.n_excluded
    r.terms, r.coefficients = list(model.terms), model.coefficients()
    r.baseline_t_min_c, r.baseline_t_max_c = model.t_range_c
    r.r2, r.cv_rmse_pct, r.nmbe_pct, r.rho = model.r2, model.cv_rmse_pct, model.nmbe_pct, model.rho
    r.meets_guideline14 = model.meets_guideline14
    try:
        res = bl.avoided_energy(model, month["energy_kwh"], month["day_type"], month["t_mean_c"],
                                coverage=month["coverage"], confidence=contract.confidence)
    except ValueError as exc:
        r.error = f"reporting period: {exc}"
        return r
    r.m_days, r.n_excluded_days, r.n_extrapolated_days = res.m, res.n_excluded, res.n_extrapolated
    r.adjusted_baseline_kwh, r.measured_kwh = res.adjusted_baseline_kwh, res.measured_kwh
    r.savings_kwh, r.savings_pct = res.savings_kwh, res.savings_pct
    r.uncertainty_kwh = res.uncertainty_kwh
    if res.uncertainty_kwh is None:
        r.error = f"savings uncertainty: {res.uncertainty_error}"
    else:
        r.uncertainty_68_kwh = bl.savings_uncertainty(model, res.m, res.adjusted_baseline_kwh,
                                                      bl.FSU_CONFIDENCE)["uncertainty_kwh"]
    r.daily_adjusted_kwh = [None if not math.isfinite(v) else float(v) for v in res.daily_adjusted_kwh]
    r.daily_measured_kwh = [None if not math.isfinite(v) else float(v) for v in res.daily_measured_kwh]
    if price_yuan_per_kwh is not None:
        r.price_yuan_per_kwh = float(price_yuan_per_kwh)
        r.savings_yuan = r.savings_kwh * r.price_yuan_per_kwh
        if r.uncertainty_kwh is not None:
            r.uncertainty_yuan = r.uncertainty_kwh * r.price_yuan_per_kwh
    return r


def _site_reasons(x: SiteRegression) -> list[dict]:
    """Why one site's saving cannot be verified (empty when it can)."""
    if x.error:
        return [{"code": "no_model", "site": x.site_id}]
    out = []
    if not x.meets_guideline14:
        out.append({"code": "model_fit", "site": x.site_id, "cv_rmse_pct": round(x.cv_rmse_pct or 0.0, 1),
                    "nmbe_pct": round(x.nmbe_pct or 0.0, 3)})
    if x.n_extrapolated_days:
        out.append({"code": "out_of_range", "site": x.site_id, "days": x.n_extrapolated_days, "of": x.m_days,
                    "t_min": round(x.baseline_t_min_c, 1), "t_max": round(x.baseline_t_max_c, 1)})
    return out


def _regression_totals(s: Savings, lines: list[SiteRegression]) -> None:
    """Status, verdict and customer totals of the sites' verified savings (bands added in quadrature).

    Verified only when every site's model meets Guideline 14 (CV(RMSE), NMBE), every reporting day's
    temperature lies inside the baseline's range, and the 68 % band is at most 50 % of the saving.
    """
    s.regression = lines
    s.confidence = lines[0].confidence if lines else None
    s.reasons = [r for x in lines for r in _site_reasons(x)]
    if not lines or any(x.error or not x.meets_guideline14 or x.savings_yuan is None for x in lines):
        s.regression_status, s.verdict = "model_failed", "not_verifiable"
        s.reasons = s.reasons or [{"code": "no_model", "site": ""}]
        return
    saved_kwh = float(sum(x.savings_kwh for x in lines))
    u68 = math.sqrt(sum(x.uncertainty_68_kwh ** 2 for x in lines))
    s.fsu_68_pct = 100.0 * u68 / abs(saved_kwh) if saved_kwh else None
    precise = s.fsu_68_pct is not None and s.fsu_68_pct <= 100 * bl.FSU_MAX
    s.regression_status = "verified" if precise and not s.reasons else "uncertain"
    if not precise:
        s.reasons.append({"code": "uncertain", "saved_kwh": round(saved_kwh), "u68_kwh": round(u68),
                          "fsu_pct": None if s.fsu_68_pct is None else round(s.fsu_68_pct)})
    if s.reasons:
        s.verdict = "not_verifiable"
        return
    s.verdict, s.method = "verified", "regression"
    s.saved_kwh = saved_kwh
    s.uncertainty_kwh = float(math.sqrt(sum(x.uncertainty_kwh ** 2 for x in lines)))
    s.uncertainty_yuan = float(math.sqrt(sum(x.uncertainty_yuan ** 2 for x in lines)))
    s.saved_yuan = float(sum(x.savings_yuan for x in lines))
    base_kwh = sum(x.adjusted_baseline_kwh for x in lines)
    s.saved_pct = 100.0 * s.saved_kwh / base_kwh if base_kwh > 0 else None


def _previous_months(month: str, n: int) -> list[str]:
    y, m = int(month[:4]), int(month[5:])
    out = []
    for _ in range(n):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y:04d}-{m:02d}")
    return out


def savings_vs_baseline(report: MonthlyReport, baseline_yuan_per_kwh: float | None,
                        archive: ReportArchive | None, regression: list[SiteRegression] | None = None) -> Savings:
    """Savings against the customer's baseline, and whether they are verified.

    ``verdict`` "verified" only for IPMVP Option C savings (``regression``, from
    :func:`site_regression`) of a complete month within the Guideline 14 limits (see
    :func:`_regression_totals`); otherwise "not_verifiable" with ``reasons`` (a month in
    progress, a model outside the limits, reporting days outside the baseline's temperature
    range, a saving within the model's uncertainty), or "no_baseline".

    A saving that is not verified may still be estimated by comparing unit costs [yuan/kWh]:
    the contracted one (``configured``, ``EH_REPORT_BASELINES``) or the mean of up to 3 previous
    complete archived months (``previous_months``), ``saved = (baseline − actual) × kWh`` —
    the report labels it an unverified estimate.
    """
    kwh, bill = report.energy_kwh, report.bill_yuan
    actual = bill / kwh if kwh > 0 else None
    s = Savings(method="none", actual_yuan_per_kwh=actual, actual_kwh=kwh)
    if regression is not None:
        _regression_totals(s, regression)
    if report.partial:
        s.reasons.insert(0, {"code": "partial_month", "days": round(report.days_covered, 1),
                             "of": round(report.days_in_month)})
        if s.verdict == "verified":
            s.method, s.saved_kwh, s.saved_yuan, s.saved_pct = "none", None, None, None
            s.uncertainty_kwh = s.uncertainty_yuan = None
        s.verdict = "not_verifiable"
    if s.method == "regression":
        return s
    if baseline_yuan_per_kwh is not None:
        s.method, s.baseline_yuan_per_kwh = "configured", float(baseline_yuan_per_kwh)
    elif archive is not None:
        costs, used = [], []
        for m in _previous_months(report.month, BASELINE_MONTHS):
            if archive.has(report.customer_id, m):
                f = archive.figures(report.customer_id, m)
                if f.get("energy_kwh", 0) > 0 and not f.get("partial"):
                    costs.append(f["bill_yuan"] / f["energy_kwh"])
                    used.append(m)
        if costs:
            s.method, s.baseline_yuan_per_kwh, s.baseline_months = "previous_months", float(np.mean(costs)), used
    if s.baseline_yuan_per_kwh is not None and actual is not None:
        s.saved_yuan = (s.baseline_yuan_per_kwh - actual) * kwh
        s.saved_pct = 100.0 * (s.baseline_yuan_per_kwh - actual) / s.baseline_yuan_per_kwh
    if s.verdict == "no_baseline" and s.method != "none":
        s.verdict = "not_verifiable"
        s.reasons.append({"code": "unit_cost_only"})
    return s

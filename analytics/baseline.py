"""Verified savings, IPMVP Option C style: a daily whole-facility baseline model and its uncertainty.

Pure numpy on arrays of **days** (one value per local calendar day).  The model is an
ordinary-least-squares regression of daily energy on the routine adjustment variables
(IPMVP Core Concepts 2016, Option C "whole facility"; ASHRAE Guideline 14 "whole building
approach" with a regression baseline model):

    E_day = b0 + Σ_k b_k · [day type = k] + b_h · HDD + b_c · CDD            [kWh/day]

* day type: an integer category per day (e.g. 0 = working day, 1 = rest Saturday,
  2 = Sunday / public holiday, from the Chinese working-day calendar incl. make-up days);
  the first category seen in the baseline is the reference;
* HDD / CDD: heating / cooling degree days of the day's mean outdoor temperature against
  balance points (daily-mean method; GB 50176-2016 defines HDD18 and CDD26 this way); a degree-day term enters the model only when the baseline holds enough days
  with a non-zero value of it (otherwise its slope cannot be learned).

Savings (IPMVP "avoided energy consumption"): adjusted baseline − measured,
the adjusted baseline being the model evaluated on the reporting period's own conditions.
Statistics and their limits follow ASHRAE Guideline 14 (see :func:`goodness_of_fit`,
:func:`savings_uncertainty`, :data:`CV_RMSE_MAX_PCT`).  Days with incomplete data are not
used, and are counted (``n_excluded``).

``ValueError`` names the bad argument on bad input, too few usable days or degenerate data
(constant energy, collinear regressors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

#: ASHRAE Guideline 14 whole-building approach, compliance requirements (GL14-2002 §5.2.2.4):
#: CV(RMSE) of the baseline model ≤ 20 % for energy when < 12 months of reporting-period
#: data are used (25 % for 12-60 months, 30 % beyond); net determination bias (NMBE) ≤ 0.005 %;
#: savings uncertainty ≤ 50 % of the savings at 68 % confidence.  [K: from the guideline as widely
#: quoted; check against the text before contractual use.]  The 15 % monthly / 30 % hourly CV(RMSE)
#: and ±5 % / ±10 % NMBE limits are GL14's *calibrated simulation* criteria (Option D), not these.
CV_RMSE_MAX_PCT = 20.0
NMBE_MAX_PCT = 0.005
FSU_MAX = 0.50
FSU_CONFIDENCE = 0.68
#: Reddy & Claridge (2000) empirical factor in GL14's fractional savings uncertainty formula.
GL14_FACTOR = 1.26


def degree_days(t_mean_c: np.ndarray, base_c: float, kind: str) -> np.ndarray:
    """Daily degree days [K·d] from daily mean outdoor temperatures (daily-mean method).

    ``kind="heating"``: max(0, base − T); ``"cooling"``: max(0, T − base) (the daily-mean
    method; GB 50176-2016 uses HDD18 and CDD26, i.e. bases 18 °C and 26 °C).
    NaN in, NaN out.
    """
    t = np.asarray(t_mean_c, dtype=np.float64)
    if kind == "heating":
        return np.where(np.isfinite(t), np.maximum(0.0, base_c - t), np.nan)
    if kind == "cooling":
        return np.where(np.isfinite(t), np.maximum(0.0, t - base_c), np.nan)
    raise ValueError(f"kind must be 'heating' or 'cooling', got {kind!r}")


def daily_sums(day_index: np.ndarray, values: np.ndarray, n_days: int, *,
               expected_per_day: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Per-day mean of ``values`` and the day's coverage, from samples tagged with their day.

    Parameters
    ----------
    day_index : int array, the day (0 .. n_days-1) of each sample; others are ignored.
    values : float array, same length; NaN = no data.
    n_days : number of days.
    expected_per_day : samples a complete day holds (scalar or per-day array, e.g. 1380 or
        1500 min on DST-change days).

    Returns
    -------
    (mean, coverage) : per-day mean of the finite samples (NaN if none) and the fraction of
        the expected samples that hold data, clipped to [0, 1].
    """
    idx = np.asarray(day_index, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if idx.shape != v.shape:
        raise ValueError(f"day_index and values must have the same shape, got {idx.shape} and {v.shape}")
    if n_days < 1:
        raise ValueError(f"n_days must be >= 1, got {n_days!r}")
    ok = (idx >= 0) & (idx < n_days) & np.isfinite(v)
    s = np.bincount(idx[ok], weights=v[ok], minlength=n_days)[:n_days]
    c = np.bincount(idx[ok], minlength=n_days)[:n_days].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        cov = np.clip(c / np.asarray(expected_per_day, dtype=np.float64), 0.0, 1.0)
    return mean, cov


@dataclass(frozen=True)
class BaselineModel:
    """A fitted daily baseline model (see the module docstring) and its Guideline 14 statistics."""

    terms: tuple[str, ...]          # "intercept", "day_type_<k>", "hdd", "cdd"
    coef: np.ndarray                # [kWh/day] intercept and day-type offsets, [kWh/K·d] slopes
    reference_day_type: int
    day_types: tuple[int, ...]      # categories seen in the baseline
    heating_base_c: float
    cooling_base_c: float
    t_range_c: tuple[float, float]  # daily mean temperatures seen in the baseline [°C]
    n: int                          # baseline days used
    n_excluded: int                 # baseline days left out (incomplete / missing data)
    p: int                          # parameters
    mean_kwh: float                 # mean daily energy of the baseline days used
    rmse_kwh: float                 # sqrt(SSE / (n − p))
    r2: float
    cv_rmse_pct: float
    nmbe_pct: float
    rho: float                      # lag-1 autocorrelation of the residuals (consecutive days used)
    residuals: np.ndarray = field(repr=False)

    @property
    def meets_guideline14(self) -> bool:
        """CV(RMSE) ≤ 20 % and |NMBE| ≤ 0.005 % (:data:`CV_RMSE_MAX_PCT`, :data:`NMBE_MAX_PCT`)."""
        return self.cv_rmse_pct <= CV_RMSE_MAX_PCT and abs(self.nmbe_pct) <= NMBE_MAX_PCT

    def coefficients(self) -> dict[str, float]:
        return {t: float(c) for t, c in zip(self.terms, self.coef, strict=True)}


def usable_days(energy_kwh: np.ndarray, t_mean_c: np.ndarray, day_type: np.ndarray,
                coverage: np.ndarray | None, min_coverage: float) -> np.ndarray:
    """Days with finite energy, temperature and day type and ``coverage ≥ min_coverage``."""
    e = np.asarray(energy_kwh, dtype=np.float64)
    ok = np.isfinite(e) & np.isfinite(np.asarray(t_mean_c, dtype=np.float64)) & (np.asarray(day_type) >= 0)
    if coverage is not None:
        cov = np.asarray(coverage, dtype=np.float64)
        if cov.shape != e.shape:
            raise ValueError(f"coverage must have one value per day ({e.shape}), got {cov.shape}")
        ok &= np.nan_to_num(cov) >= min_coverage
    return ok


def _check_days(energy_kwh, day_type, t_mean_c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = np.asarray(energy_kwh, dtype=np.float64)
    d = np.asarray(day_type)
    t = np.asarray(t_mean_c, dtype=np.float64)
    if e.ndim != 1 or d.shape != e.shape or t.shape != e.shape:
        raise ValueError(f"energy_kwh, day_type and t_mean_c must be 1-D of equal length, got "
                         f"{e.shape}, {d.shape}, {t.shape}")
    if d.size and not np.issubdtype(d.dtype, np.integer):
        raise ValueError(f"day_type must hold integer categories, got dtype {d.dtype}")
    return e, d.astype(np.int64), t


def _design(model_terms: tuple[str, ...], day_type: np.ndarray, hdd: np.ndarray, cdd: np.ndarray) -> np.ndarray:
    cols = []
    for term in model_terms:
        if term == "intercept":
            cols.append(np.ones(day_type.size))
        elif term.startswith("day_type_"):
            cols.append((day_type == int(term[9:])).astype(np.float64))
        elif term == "hdd":
            cols.append(hdd)
        elif term == "cdd":
            cols.append(cdd)
    return np.column_stack(cols)


def goodness_of_fit(measured: np.ndarray, predicted: np.ndarray, p: int) -> dict[str, float]:
    """R², CV(RMSE) and NMBE of a model with ``p`` parameters (ASHRAE Guideline 14-2014 Annex B).

    ``CV(RMSE) = 100 · sqrt(Σ(y − ŷ)² / (n − p)) / ȳ`` and ``NMBE = 100 · Σ(y − ŷ) / ((n − p) · ȳ)``
    [%]; ``R² = 1 − SSE / SST``.  Raises ``ValueError`` when n ≤ p, ȳ ≤ 0 or y is constant.
    """
    y = np.asarray(measured, dtype=np.float64)
    yh = np.asarray(predicted, dtype=np.float64)
    if y.shape != yh.shape or y.ndim != 1:
        raise ValueError(f"measured and predicted must be 1-D of equal length, got {y.shape}, {yh.shape}")
    n = y.size
    if n <= p:
        raise ValueError(f"need more observations than parameters: n={n}, p={p}")
    ybar = float(y.mean())
    if not ybar > 0:
        raise ValueError(f"mean measured energy must be > 0 for CV(RMSE) and NMBE, got {ybar!r}")
    r = y - yh
    sse = float(r @ r)
    sst = float(((y - ybar) ** 2).sum())
    if sst <= 1e-12 * max(1.0, ybar * ybar) * n:
        raise ValueError("measured energy is constant: R² is undefined (degenerate data)")
    rmse = (sse / (n - p)) ** 0.5
    return {"r2": 1.0 - sse / sst, "rmse": rmse, "cv_rmse_pct": 100.0 * rmse / ybar,
            "nmbe_pct": 100.0 * float(r.sum()) / ((n - p) * ybar), "mean": ybar}


def _lag1(r: np.ndarray, days: np.ndarray) -> float:
    """Lag-1 autocorrelation of residuals over pairs of consecutive days."""
    pair = np.diff(days) == 1
    if pair.sum() < 3:
        return 0.0
    a, b = r[:-1][pair], r[1:][pair]
    den = float(np.sqrt(((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum()))
    return float(((a - a.mean()) * (b - b.mean())).sum() / den) if den > 0 else 0.0


def fit_baseline(energy_kwh: np.ndarray, day_type: np.ndarray, t_mean_c: np.ndarray, *,
                 coverage: np.ndarray | None = None, min_coverage: float = 0.95,
                 heating_base_c: float = 18.0, cooling_base_c: float = 18.0, min_days: int = 21,
                 min_degree_days: int = 5) -> BaselineModel:
    """Fit the daily baseline model on the baseline period (module docstring).

    Parameters
    ----------
    energy_kwh : float[n], whole-facility energy of each baseline day [kWh]; NaN = no data.
    day_type : int[n], day category (0 = working day, ...); negative = unknown (day not used).
    t_mean_c : float[n], daily mean outdoor temperature [°C]; NaN = no data.
    coverage : float[n] in [0, 1], share of the day's expected data present (the smaller of
        energy and temperature coverage); days below ``min_coverage`` are excluded and counted.
    heating_base_c, cooling_base_c : balance points of HDD and CDD [°C].
    min_days : fewest usable days accepted (default 21: three weeks, each day type several times).
    min_degree_days : a degree-day term is fitted only if at least this many usable days have a
        non-zero value of it.

    Raises ``ValueError`` on too few usable days (naming how many were excluded) or degenerate
    data: constant energy, a non-positive mean, or collinear regressors.
    """
    e, d, t = _check_days(energy_kwh, day_type, t_mean_c)
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage!r}")
    if min_days < 3:
        raise ValueError(f"min_days must be >= 3, got {min_days!r}")
    ok = usable_days(e, t, d, coverage, min_coverage)
    n = int(ok.sum())
    if n < min_days:
        raise ValueError(f"too few usable baseline days: {n} of {e.size} (need >= {min_days}; "
                         f"{e.size - n} excluded for missing or incomplete data)")
    ey, dy, ty = e[ok], d[ok], t[ok]
    hdd = degree_days(ty, heating_base_c, "heating")
    cdd = degree_days(ty, cooling_base_c, "cooling")
    cats = tuple(int(c) for c in np.unique(dy))
    # reference = the most common category (working days in practice), so offsets are read against it
    ref = int(max(cats, key=lambda c: (int((dy == c).sum()), -c)))
    terms = ["intercept"] + [f"day_type_{c}" for c in cats if c != ref]
    for name, x in (("hdd", hdd), ("cdd", cdd)):
        if int((x > 0).sum()) >= min_degree_days and float(np.ptp(x)) > 0:
            terms.append(name)
    x = _design(tuple(terms), dy, hdd, cdd)
    p = x.shape[1]
    if np.linalg.matrix_rank(x) < p:
        raise ValueError(f"degenerate baseline: the regressors {terms} are collinear on the {n} baseline days")
    if n - p < 2:
        raise ValueError(f"too few usable baseline days for {p} parameters: {n}")
    coef, *_ = np.linalg.lstsq(x, ey, rcond=None)
    yh = x @ coef
    g = goodness_of_fit(ey, yh, p)
    r = ey - yh
    return BaselineModel(terms=tuple(terms), coef=coef, reference_day_type=ref, day_types=cats,
                         heating_base_c=float(heating_base_c), cooling_base_c=float(cooling_base_c),
                         t_range_c=(float(ty.min()), float(ty.max())), n=n, n_excluded=int(e.size - n), p=p,
                         mean_kwh=g["mean"], rmse_kwh=g["rmse"], r2=g["r2"], cv_rmse_pct=g["cv_rmse_pct"],
                         nmbe_pct=g["nmbe_pct"], rho=_lag1(r, np.nonzero(ok)[0]), residuals=r)


def predict(model: BaselineModel, day_type: np.ndarray, t_mean_c: np.ndarray) -> np.ndarray:
    """Daily energy the baseline model expects under the given conditions [kWh/day].

    NaN for a day with no temperature or an unknown (negative) day type; ``ValueError`` for a
    day type the baseline never saw (its energy cannot be predicted).
    """
    d = np.asarray(day_type).astype(np.int64)
    t = np.asarray(t_mean_c, dtype=np.float64)
    if d.shape != t.shape:
        raise ValueError(f"day_type and t_mean_c must have equal shapes, got {d.shape}, {t.shape}")
    unseen = sorted(set(np.unique(d[d >= 0]).tolist()) - set(model.day_types))
    if unseen:
        raise ValueError(f"day types {unseen} do not occur in the baseline (seen: {list(model.day_types)})")
    hdd = degree_days(t, model.heating_base_c, "heating")
    cdd = degree_days(t, model.cooling_base_c, "cooling")
    y = _design(model.terms, d, hdd, cdd) @ model.coef
    return np.where(np.isfinite(t) & (d >= 0), y, np.nan)


def savings_uncertainty(model: BaselineModel, m: int, adjusted_baseline_kwh: float,
                        confidence: float = 0.90) -> dict[str, float]:
    """Absolute uncertainty of the savings over ``m`` reporting days (ASHRAE Guideline 14-2014 Annex B).

    GL14's fractional savings uncertainty

        ΔE_save / E_save = t · 1.26 · CV · sqrt((n / n′) · (1 + 2/n) · (1/m)) / F,   F = E_save / E_base

    gives the half-width ``ΔE_save = t · 1.26 · CV · E_base · sqrt((n/n′)(1 + 2/n)/m)`` [kWh], with
    CV = CV(RMSE) as a fraction, E_base the adjusted baseline over the m days, n′ = n·(1 − ρ)/(1 + ρ)
    the number of independent baseline days for a lag-1 residual autocorrelation ρ > 0 (n′ = n
    when ρ ≤ 0), and t Student's two-sided quantile at ``confidence`` with n′ − p degrees of freedom.

    Raises ``ValueError`` for m < 1, a confidence outside (0, 1) or n′ − p < 1.
    """
    if m < 1:
        raise ValueError(f"m (reporting days) must be >= 1, got {m!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.68 or 0.90, got {confidence!r}")
    rho = max(0.0, model.rho)
    n = model.n
    n_eff = n * (1.0 - rho) / (1.0 + rho)
    dof = n_eff - model.p
    if dof < 1.0:
        raise ValueError(f"too few independent baseline days: n′ = {n_eff:.1f} for {model.p} parameters "
                         f"(residual autocorrelation ρ = {model.rho:.2f})")
    t = float(stats.t.ppf(0.5 + confidence / 2.0, dof))
    cv = model.cv_rmse_pct / 100.0
    half = t * GL14_FACTOR * cv * abs(adjusted_baseline_kwh) * np.sqrt((n / n_eff) * (1.0 + 2.0 / n) / m)
    return {"uncertainty_kwh": float(half), "t": t, "n_eff": float(n_eff), "dof": float(dof),
            "confidence": float(confidence)}


@dataclass
class SavingsResult:
    """Avoided energy over a reporting period (IPMVP Option C), per day and in total."""

    adjusted_baseline_kwh: float     # Σ model prediction over the m usable reporting days
    measured_kwh: float              # Σ measured energy over the same days
    savings_kwh: float               # adjusted baseline − measured
    savings_pct: float | None        # 100 · savings / adjusted baseline (F in %)
    uncertainty_kwh: float | None    # half-width of the band at ``confidence`` (None if not computable)
    confidence: float
    fsu: float | None                # uncertainty / |savings| (fractional savings uncertainty)
    fsu_68: float | None             # the same at 68 % confidence (Guideline 14 test: ≤ 50 %)
    m: int                           # reporting days used
    n_excluded: int                  # reporting days left out (incomplete data)
    n_extrapolated: int              # used days whose temperature lies outside the baseline's range
    daily_adjusted_kwh: np.ndarray   # per reporting day, NaN where not used
    daily_measured_kwh: np.ndarray
    used: np.ndarray                 # bool per reporting day
    uncertainty_error: str = ""      # why no uncertainty, if so

    @property
    def significant(self) -> bool:
        """The band excludes zero: a saving (or an increase) beyond the model's uncertainty."""
        return self.uncertainty_kwh is not None and abs(self.savings_kwh) > self.uncertainty_kwh


def avoided_energy(model: BaselineModel, energy_kwh: np.ndarray, day_type: np.ndarray, t_mean_c: np.ndarray, *,
                   coverage: np.ndarray | None = None, min_coverage: float = 0.95,
                   confidence: float = 0.90) -> SavingsResult:
    """Savings = adjusted baseline − measured over the usable reporting days, with the GL14 band.

    Days with missing/incomplete energy or temperature (``coverage < min_coverage``) are not used
    on either side and are counted in ``n_excluded``.  Raises ``ValueError`` when no reporting day
    is usable or a day type never seen in the baseline occurs on a usable day.
    """
    e, d, t = _check_days(energy_kwh, day_type, t_mean_c)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.68 or 0.90, got {confidence!r}")
    ok = usable_days(e, t, d, coverage, min_coverage)
    m = int(ok.sum())
    if m == 0:
        raise ValueError(f"no usable reporting day: all {e.size} days lack complete energy or temperature data")
    adj = np.full(e.size, np.nan)
    adj[ok] = predict(model, d[ok], t[ok])
    meas = np.where(ok, e, np.nan)
    e_base = float(np.sum(adj[ok]))
    e_meas = float(np.sum(e[ok]))
    saved = e_base - e_meas
    lo, hi = model.t_range_c
    extrap = int(((t[ok] < lo) | (t[ok] > hi)).sum())
    unc = fsu = fsu68 = None
    err = ""
    try:
        unc = savings_uncertainty(model, m, e_base, confidence)["uncertainty_kwh"]
        u68 = savings_uncertainty(model, m, e_base, FSU_CONFIDENCE)["uncertainty_kwh"]
        if saved != 0:
            fsu, fsu68 = unc / abs(saved), u68 / abs(saved)
    except ValueError as exc:
        err = str(exc)
    return SavingsResult(adjusted_baseline_kwh=e_base, measured_kwh=e_meas, savings_kwh=saved,
                         savings_pct=100.0 * saved / e_base if e_base > 0 else None, uncertainty_kwh=unc,
                         confidence=float(confidence), fsu=fsu, fsu_68=fsu68, m=m, n_excluded=int(e.size - m),
                         n_extrapolated=extrap, daily_adjusted_kwh=adj, daily_measured_kwh=meas, used=ok,
                         uncertainty_error=err)

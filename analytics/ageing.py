"""Transformer insulation ageing: relative ageing rate, hot spot from load, loss of life.

Pure numpy functions.  Temperatures in [degC], times in ns since the epoch (int64) or [min]
where a name says so, load as the per-unit load factor ``K = S / S_rated``.

* Oil-immersed units (IEC 60076-7): relative ageing ``V = 2^((θh − 98)/6)`` for
  non-upgraded paper, ``exp(15000/383 − 15000/(θh + 273))`` for thermally upgraded paper;
  the hot spot follows from load and ambient by the exponential thermal model
  (difference equations of the standard's annex; ONAN distribution-transformer defaults).
* Dry-type units (IEC 60076-12): expected life ``L = A·exp(B/(θh + 273))`` hours per
  insulation class, 180,000 h at the class's rated hot spot, halved by every 6 K more;
  ``V = L(θ_rated) / L(θh)``.  Units with a winding-temperature controller give the hot
  spot from the measured windings (hottest phase plus a configurable hot-spot allowance).

docs/standards.md §7.5 has the formulas and the known values the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.units import NS

DAY_S = 86_400.0

#: IEC 60076-12 Table 1: insulation class [degC] -> (A [h], B [K], rated hot spot [degC])
DRY_CLASSES: dict[int, tuple[float, float, float]] = {
    105: (3.10e-14, 15_900.0, 95.0),
    120: (5.48e-15, 17_212.0, 110.0),
    130: (1.72e-15, 18_115.0, 120.0),
    155: (9.60e-17, 20_475.0, 145.0),
    180: (5.35e-18, 22_979.0, 170.0),
    200: (5.31e-19, 25_086.0, 190.0),
    220: (5.26e-20, 27_285.0, 210.0),
}


def relative_ageing_oil(hot_spot_c, *, upgraded_paper: bool = False) -> np.ndarray:
    """Relative ageing rate of oil-immersed insulation (IEC 60076-7), 1.0 at the design hot spot.

    Parameters
    ----------
    hot_spot_c : array-like
        Winding hot-spot temperature [degC]; NaN gives NaN.
    upgraded_paper : bool
        Thermally upgraded paper (design hot spot 110 degC) instead of plain kraft (98 degC).
    """
    t = np.asarray(hot_spot_c, float)
    if upgraded_paper:
        return np.exp(15_000.0 / (110.0 + 273.0) - 15_000.0 / (t + 273.0))
    return np.exp2((t - 98.0) / 6.0)


def dry_life_hours(hot_spot_c, insulation_class: int = 155) -> np.ndarray:
    """Expected insulation life [h] of a dry-type transformer at a constant hot spot (IEC 60076-12)."""
    a, b, _ = _dry_class(insulation_class)
    return a * np.exp(b / (np.asarray(hot_spot_c, float) + 273.0))


def relative_ageing_dry(hot_spot_c, insulation_class: int = 155) -> np.ndarray:
    """Relative ageing rate of a dry-type transformer (IEC 60076-12): 1.0 at the class's rated hot spot."""
    a, b, rated = _dry_class(insulation_class)
    t = np.asarray(hot_spot_c, float)
    return np.exp(b / (rated + 273.0) - b / (t + 273.0))


def _dry_class(insulation_class: int) -> tuple[float, float, float]:
    try:
        return DRY_CLASSES[int(insulation_class)]
    except (KeyError, ValueError, TypeError):
        known = ", ".join(str(k) for k in DRY_CLASSES)
        raise ValueError(f"insulation class {insulation_class!r} is not one of {known}") from None


@dataclass(frozen=True)
class OilThermal:
    """IEC 60076-7 thermal parameters; defaults are the standard's ONAN distribution-transformer values."""

    top_oil_rise_k: float = 55.0        # Δθor at rated load
    hot_spot_gradient_k: float = 23.0   # H·gr at rated load
    loss_ratio: float = 5.0             # R: load loss / no-load loss at rated current
    oil_exponent: float = 0.8           # x
    winding_exponent: float = 1.6       # y
    k11: float = 1.0
    k21: float = 1.0
    k22: float = 2.0
    oil_tau_min: float = 180.0
    winding_tau_min: float = 4.0


def hot_spot_steady(load_factor, ambient_c, p: OilThermal = OilThermal()) -> np.ndarray:
    """Steady-state hot spot [degC] at a constant per-unit load and ambient (IEC 60076-7)."""
    k = np.asarray(load_factor, float)
    oil = p.top_oil_rise_k * ((1 + p.loss_ratio * k**2) / (1 + p.loss_ratio)) ** p.oil_exponent
    return np.asarray(ambient_c, float) + oil + p.hot_spot_gradient_k * k**p.winding_exponent


def hot_spot_dynamic(time_ns, load_factor, ambient_c, p: OilThermal = OilThermal(),
                     *, start_steady: bool = True) -> np.ndarray:
    """Hot spot [degC] over a load profile by the difference equations of IEC 60076-7.

    The step may vary; a step longer than half the winding time constant is cut into
    sub-steps so the explicit scheme stays stable.  A NaN load or ambient holds the last
    state (no data is not zero load) and yields NaN at that sample.

    Parameters
    ----------
    time_ns : array-like of int64, increasing
    load_factor : array-like
        ``K = S / S_rated`` per sample.
    ambient_c : array-like or float
        Ambient temperature [degC].
    start_steady : bool
        Start from the steady state of the first valid sample (else from ambient).
    """
    t = np.asarray(time_ns, np.int64)
    k = np.asarray(load_factor, float)
    amb = np.broadcast_to(np.asarray(ambient_c, float), k.shape)
    out = np.full(k.shape, np.nan)
    valid = np.isfinite(k) & np.isfinite(amb)
    if not valid.any():
        return out
    first = int(np.argmax(valid))
    state = _initial_state(k[first], amb[first], p, start_steady)
    max_step = p.winding_tau_min / 2.0
    for i in range(first, k.size):
        if not valid[i]:
            continue
        if i > first:
            minutes = (t[i] - t[i - 1]) / NS / 60.0
            n = max(1, int(np.ceil(minutes / max_step)))
            for _ in range(n):
                state = _step(state, k[i], amb[i], minutes / n, p)
        out[i] = state[0] + state[1] - state[2]
    return out


def _initial_state(k: float, amb: float, p: OilThermal, steady: bool) -> tuple[float, float, float]:
    if not steady:
        return (amb, 0.0, 0.0)
    oil = amb + p.top_oil_rise_k * ((1 + p.loss_ratio * k**2) / (1 + p.loss_ratio)) ** p.oil_exponent
    grad = p.hot_spot_gradient_k * k**p.winding_exponent
    return (oil, p.k21 * grad, (p.k21 - 1) * grad)


def _step(state, k: float, amb: float, dt_min: float, p: OilThermal) -> tuple[float, float, float]:
    oil, d1, d2 = state
    target_oil = p.top_oil_rise_k * ((1 + p.loss_ratio * k**2) / (1 + p.loss_ratio)) ** p.oil_exponent
    grad = p.hot_spot_gradient_k * k**p.winding_exponent
    oil += dt_min / (p.k11 * p.oil_tau_min) * (target_oil - (oil - amb))
    d1 += dt_min / (p.k22 * p.winding_tau_min) * (p.k21 * grad - d1)
    d2 += dt_min / (p.oil_tau_min / p.k22) * ((p.k21 - 1) * grad - d2)
    return (oil, d1, d2)


def dry_hot_spot_from_windings(winding_c, allowance_k: float = 15.0) -> np.ndarray:
    """Hot spot [degC] of a dry-type unit from its controller's winding temperatures.

    ``winding_c`` is (n,) or (n, phases): the hottest phase plus ``allowance_k``, the
    difference between hot spot and the measured (average-type) winding temperature; class F
    is built with 15 K (docs/standards.md §7.4).  Rows with no finite phase give NaN.
    """
    w = np.asarray(winding_c, float)
    if w.ndim == 2:
        finite = np.isfinite(w).any(axis=1)
        hottest = np.where(finite, np.nanmax(np.where(np.isfinite(w), w, -np.inf), axis=1), np.nan)
    else:
        hottest = w
    return hottest + allowance_k


@dataclass(frozen=True)
class LossOfLife:
    """Insulation life consumed over a period: ``days_consumed = ∫ V dt`` over the covered time."""

    covered_days: float        # time with a valid ageing rate
    days_consumed: float       # equivalent days of design life used
    mean_rate: float           # days_consumed / covered_days (NaN when nothing is covered)
    peak_rate: float

    def fraction_of_life(self, design_life_years: float) -> float:
        """Share of the design life consumed in this period."""
        return self.days_consumed / (design_life_years * 365.25)


def loss_of_life(time_ns, rate, *, max_gap_s: float = 900.0) -> LossOfLife:
    """Integrate a relative ageing rate over time (trapezoid), skipping gaps longer than ``max_gap_s``.

    A NaN rate or a gap is time not covered: it is never counted as ageing at rate 1 or 0.
    """
    t = np.asarray(time_ns, np.int64)
    v = np.asarray(rate, float)
    if t.size < 2:
        return LossOfLife(0.0, 0.0, float("nan"), float(np.nanmax(v)) if np.isfinite(v).any() else float("nan"))
    dt = np.diff(t) / NS
    both = np.isfinite(v[1:]) & np.isfinite(v[:-1]) & (dt > 0) & (dt <= max_gap_s)
    area_s = float(np.sum(np.where(both, (v[1:] + v[:-1]) / 2 * dt, 0.0)))
    covered_s = float(np.sum(np.where(both, dt, 0.0)))
    peak = float(np.nanmax(v)) if np.isfinite(v).any() else float("nan")
    mean = area_s / covered_s if covered_s > 0 else float("nan")
    return LossOfLife(covered_s / DAY_S, area_s / DAY_S, mean, peak)

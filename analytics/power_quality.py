"""Power-quality assessment from meter data (indicative).

Everything here is computed from 1-min (or faster) meter readings or from sampled
waveforms handed in by the caller.  The results are **indicative**: the meters are not
IEC 61000-4-30 Class A instruments, the 10-min values are built from 1-min RMS
readings, and the flagging thresholds are the limits of the Chinese national standards
(GB/T 12325, 15945, 15543, 14549) plus EN 50160 / IEEE 519 for comparison.

Conventions: voltages in [V], currents in [A], frequency in [Hz], percentages of
nominal or of the fundamental in [%].  Flags are ``True`` = problem.  NaN inputs are
"no data": they never raise a flag and are excluded from every rate and count.

References: docs/standards.md §§1-5 (clauses cited per function).
"""

from __future__ import annotations

import numpy as np

from analytics import _checks

A = np.exp(2j * np.pi / 3)
TEN_MIN_NS = 600 * 10**9
_EPS = 1e-9          # tolerance for inclusive limits on float percentages

# ---------------------------------------------------------------- voltage deviation


def voltage_deviation(voltage, nominal_v):
    r"""Voltage deviation from nominal, GB/T 12325-2008 §3.

    Parameters
    ----------
    voltage : array-like
        Measured RMS voltage [V] (any shape; NaN = no data).
    nominal_v : float
        Nominal voltage of the same kind (phase-to-neutral or line) [V].

    Returns
    -------
    ndarray
        :math:`\delta U = (U - U_N)/U_N \cdot 100` [%].
    """
    nominal_v = _checks.positive(nominal_v, "nominal_v")
    return (_checks.as_float(voltage, "voltage") - nominal_v) / nominal_v * 100.0


def voltage_deviation_limits(voltage_level_kv: float, single_phase: bool = False) -> tuple[float, float]:
    """Permitted (lower, upper) deviation [%] per GB/T 12325-2008 §4 for supplies ≤ 20 kV.

    Parameters
    ----------
    voltage_level_kv : float
        Nominal supply voltage level [kV]; must be ≤ 20 (for 35 kV and above use
        :func:`deviation_span_35kv`, whose limit is on the sum of deviations).
    single_phase : bool
        True for a 220 V single-phase supply (+7 % / -10 %); False for three-phase
        supplies of 20 kV and below (±7 %).  The phase voltages of a three-phase
        0.4 kV supply are judged against ±7 % here.

    Returns
    -------
    tuple of float
        (lower, upper) [%], inclusive.
    """
    kv = _checks.positive(voltage_level_kv, "voltage_level_kv")
    if single_phase:
        if kv > 1.0:
            raise ValueError(f"single_phase=True applies to 220 V supplies only; voltage_level_kv={kv}")
        return (-10.0, 7.0)
    if kv > 20.0:
        raise ValueError(
            f"voltage_level_kv={kv}: GB/T 12325 gives ±7 % for 20 kV and below only; "
            "for 35 kV and above use deviation_span_35kv()")
    return (-7.0, 7.0)


def voltage_outside(voltage, nominal_v, lower_pct: float, upper_pct: float):
    """Flag voltages outside the inclusive band [lower_pct, upper_pct] of nominal, GB/T 12325 §4.

    Parameters
    ----------
    voltage : array-like
        RMS voltage [V]; NaN never flags.
    nominal_v : float
        Nominal voltage [V].
    lower_pct, upper_pct : float
        Band limits [%], e.g. -7 and +7.

    Returns
    -------
    ndarray of bool
        True where the voltage is outside the band (a problem).
    """
    if not lower_pct < upper_pct:
        raise ValueError(f"lower_pct must be < upper_pct, got {lower_pct} and {upper_pct}")
    d = voltage_deviation(voltage, nominal_v)
    with np.errstate(invalid="ignore"):
        return (d > upper_pct + _EPS) | (d < lower_pct - _EPS)


def deviation_span_35kv(max_deviation_pct, min_deviation_pct, limit_pct: float = 10.0):
    """GB/T 12325-2008 §4 rule for 35 kV and above: sum of |positive| and |negative| deviations.

    If both deviations have the same sign the larger absolute value is used.

    Parameters
    ----------
    max_deviation_pct, min_deviation_pct : array-like
        Largest and smallest deviation over the assessment period [%].
    limit_pct : float
        Limit on the span [%] (10 % in GB/T 12325-2008).

    Returns
    -------
    span : ndarray
        Assessed span [%].
    flag : ndarray of bool
        True where the span exceeds the limit.
    """
    hi = _checks.as_float(max_deviation_pct, "max_deviation_pct")
    lo = _checks.as_float(min_deviation_pct, "min_deviation_pct")
    same = np.sign(hi) * np.sign(lo) > 0
    span = np.where(same, np.maximum(np.abs(hi), np.abs(lo)), np.abs(hi) + np.abs(lo))
    with np.errstate(invalid="ignore"):
        return span, span > limit_pct + _EPS


def qualification_rate(voltage, nominal_v, lower_pct: float, upper_pct: float, weights=None) -> dict:
    """Voltage qualification rate (电压合格率), GB/T 12325-2008 §5.

    ``rate = (1 - (t_above + t_below) / t_monitored) * 100``; each valid sample counts
    its weight (its duration), NaN samples are not monitored time.

    Parameters
    ----------
    voltage : array-like
        RMS voltage samples [V] (e.g. 1-min values).
    nominal_v : float
        Nominal voltage [V].
    lower_pct, upper_pct : float
        Permitted band [%], inclusive.
    weights : array-like, optional
        Duration of each sample [min]; default 1 per sample.

    Returns
    -------
    dict
        ``rate_pct`` [%] (NaN if nothing monitored), ``t_monitored``, ``t_above``,
        ``t_below`` [unit of weights].
    """
    u = _checks.as_float(voltage, "voltage")
    w = np.ones_like(u) if weights is None else np.broadcast_to(_checks.as_float(weights, "weights"), u.shape)
    d = voltage_deviation(u, nominal_v)
    ok = np.isfinite(d)
    t_mon = float(w[ok].sum())
    t_above = float(w[ok & (d > upper_pct + _EPS)].sum())
    t_below = float(w[ok & (d < lower_pct - _EPS)].sum())
    rate = np.nan if t_mon == 0 else (1.0 - (t_above + t_below) / t_mon) * 100.0
    return {"rate_pct": rate, "t_monitored": t_mon, "t_above": t_above, "t_below": t_below}


# ---------------------------------------------------------------- frequency


def frequency_deviation(frequency, nominal_hz: float = 50.0):
    """Frequency deviation ``f - f_N`` [Hz], GB/T 15945-2008 §3.

    Parameters
    ----------
    frequency : array-like
        Measured frequency [Hz]; NaN = no data.
    nominal_hz : float
        Nominal frequency [Hz].
    """
    return _checks.as_float(frequency, "frequency") - _checks.positive(nominal_hz, "nominal_hz")


def frequency_outside(frequency, limit_hz: float = 0.2, nominal_hz: float = 50.0):
    """Flag frequency deviations beyond ±``limit_hz``, GB/T 15945-2008 §4.

    Parameters
    ----------
    frequency : array-like
        Frequency [Hz].
    limit_hz : float
        0.2 Hz normally; 0.5 Hz for small systems [Hz].
    nominal_hz : float
        Nominal frequency [Hz].

    Returns
    -------
    ndarray of bool
        True where |f - f_N| > limit (inclusive limit).
    """
    limit_hz = _checks.positive(limit_hz, "limit_hz")
    with np.errstate(invalid="ignore"):
        return np.abs(frequency_deviation(frequency, nominal_hz)) > limit_hz + _EPS


# ---------------------------------------------------------------- unbalance


def sequence_components(va, vb, vc):
    r"""Zero-, positive- and negative-sequence phasors, GB/T 15543-2008 §3 (Fortescue).

    :math:`V_0=(V_a+V_b+V_c)/3`, :math:`V_1=(V_a+aV_b+a^2V_c)/3`,
    :math:`V_2=(V_a+a^2V_b+aV_c)/3`, :math:`a=e^{j2\pi/3}`.

    Parameters
    ----------
    va, vb, vc : array-like of complex
        Fundamental phasors of the three phases [V] or [A].

    Returns
    -------
    tuple of ndarray (complex)
        (V0, V1, V2) in the unit of the input.
    """
    va, vb, vc = (np.asarray(v, dtype=complex) for v in (va, vb, vc))
    return (va + vb + vc) / 3, (va + A * vb + A * A * vc) / 3, (va + A * A * vb + A * vc) / 3


def phasors_from_channels(voltage_l1, voltage_l2, voltage_l3, voltage_angle_l2, voltage_angle_l3):
    """Build phasors from the meter channels (magnitudes [V], angles of U2, U3 rel. to U1 [deg])."""
    m1, m2, m3 = (_checks.as_float(v, n) for v, n in (
        (voltage_l1, "voltage_l1"), (voltage_l2, "voltage_l2"), (voltage_l3, "voltage_l3")))
    a2 = np.deg2rad(_checks.as_float(voltage_angle_l2, "voltage_angle_l2"))
    a3 = np.deg2rad(_checks.as_float(voltage_angle_l3, "voltage_angle_l3"))
    return m1 + 0j, m2 * np.exp(1j * a2), m3 * np.exp(1j * a3)


def unbalance_from_phasors(va, vb, vc):
    """Negative- and zero-sequence unbalance from phasors, GB/T 15543-2008 §3.2-3.3.

    Parameters
    ----------
    va, vb, vc : array-like of complex
        Fundamental phasors [V].

    Returns
    -------
    eps2, eps0 : ndarray
        ``|V2|/|V1|*100`` and ``|V0|/|V1|*100`` [%]; NaN where ``V1`` is 0.
    """
    v0, v1, v2 = sequence_components(va, vb, vc)
    m1 = np.abs(v1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 = np.where(m1 > 0, m1, np.nan)
        return np.abs(v2) / m1 * 100.0, np.abs(v0) / m1 * 100.0


def unbalance_from_line_voltages(voltage_l12, voltage_l23, voltage_l31):
    r"""Negative-sequence unbalance from line-voltage magnitudes only, GB/T 15543-2008 Annex A.

    :math:`\beta=\sum U^4/(\sum U^2)^2`,
    :math:`\varepsilon_{U2}=\sqrt{(1-\sqrt{3-6\beta})/(1+\sqrt{3-6\beta})}\cdot 100`.
    Exact for fundamental line voltages (they contain no zero sequence); not valid
    for phase-to-neutral magnitudes.

    Parameters
    ----------
    voltage_l12, voltage_l23, voltage_l31 : array-like
        Line-to-line RMS voltages [V].

    Returns
    -------
    ndarray
        Negative-sequence unbalance [%]; NaN where any input is NaN or the three
        magnitudes cannot form a triangle.
    """
    u = [_checks.as_float(v, n) for v, n in (
        (voltage_l12, "voltage_l12"), (voltage_l23, "voltage_l23"), (voltage_l31, "voltage_l31"))]
    s2 = u[0] ** 2 + u[1] ** 2 + u[2] ** 2
    s4 = u[0] ** 4 + u[1] ** 4 + u[2] ** 4
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sqrt(3.0 - 6.0 * s4 / (s2 * s2))
        return np.sqrt((1.0 - r) / (1.0 + r)) * 100.0


def nema_unbalance(x1, x2, x3):
    """NEMA/IEEE LVUR: ``max|x_i - mean| / mean * 100`` [%] (for comparison with motor derating)."""
    x = np.stack([_checks.as_float(v, n) for v, n in ((x1, "x1"), (x2, "x2"), (x3, "x3"))])
    m = x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(x - m).max(axis=0) / m * 100.0


def prob95(values) -> float:
    """The "95 % probability value" of the Chinese PQ standards (GB/T 15543, 14549, 12325 practice).

    The values sorted from largest down, the largest 5 % (``floor(0.05 n)`` values) discarded,
    the largest remaining value: an observed value, never an interpolation between two.
    NaN values are left out; NaN when none is left.
    """
    x = _checks.as_float(values, "values").ravel()
    x = np.sort(x[np.isfinite(x)])
    if x.size == 0:
        return float("nan")
    return float(x[x.size - 1 - int(np.floor(0.05 * x.size + 1e-9))])


def unbalance_assessment(unbalance_10min, limit_95_pct: float = 2.0, limit_max_pct: float = 4.0) -> dict:
    """Weekly voltage-unbalance verdict, GB/T 15543-2008 §4 / §6.

    The 95 % probability value (:func:`prob95`) of the 10-min values must be ≤ 2 % and the maximum
    ≤ 4 % (normal-operation limits at the PCC).

    Parameters
    ----------
    unbalance_10min : array-like
        10-min negative-sequence unbalance values over (at least) one week [%];
        NaN (invalid intervals) are excluded.
    limit_95_pct, limit_max_pct : float
        Limits on the 95 % value and the maximum [%].

    Returns
    -------
    dict
        ``n_valid``, ``p95_pct``, ``max_pct``, ``fail_95``, ``fail_max``, ``fail``.
    """
    x = _checks.as_float(unbalance_10min, "unbalance_10min").ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n_valid": 0, "p95_pct": np.nan, "max_pct": np.nan,
                "fail_95": False, "fail_max": False, "fail": False}
    p95 = prob95(x)
    mx = float(x.max())
    f95, fmax = p95 > limit_95_pct + _EPS, mx > limit_max_pct + _EPS
    return {"n_valid": int(x.size), "p95_pct": p95, "max_pct": mx,
            "fail_95": f95, "fail_max": fmax, "fail": f95 or fmax}


def current_unbalance(current_l1, current_l2, current_l3):
    """Transformer load-current unbalance ``(Imax - Imin)/Imax * 100`` [%], SD 292-1988.

    Parameters
    ----------
    current_l1, current_l2, current_l3 : array-like
        Phase currents [A].

    Returns
    -------
    ndarray
        Unbalance [%]; NaN where Imax is 0 or any input is NaN.
    """
    i = np.stack([_checks.as_float(v, n) for v, n in (
        (current_l1, "current_l1"), (current_l2, "current_l2"), (current_l3, "current_l3"))])
    imax, imin = i.max(axis=0), i.min(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(imax > 0, (imax - imin) / imax * 100.0, np.nan)


def rated_current(rated_kva: float, line_voltage_v: float = 400.0) -> float:
    """Rated current ``S / (sqrt(3) U)`` [A] of a three-phase transformer winding [kVA], [V]."""
    s = _checks.positive(rated_kva, "rated_kva")
    return s * 1000.0 / (np.sqrt(3.0) * _checks.positive(line_voltage_v, "line_voltage_v"))


def neutral_current_from_phases(current_l1, current_l2, current_l3):
    """Neutral current [A] of three phase currents assumed 120° apart with equal PF (no phasors)."""
    ia, ib, ic = (_checks.as_float(v, n) for v, n in (
        (current_l1, "current_l1"), (current_l2, "current_l2"), (current_l3, "current_l3")))
    return np.abs(ia + ib * A * A + ic * A)


def current_unbalance_flags(current_l1, current_l2, current_l3, current_n, rated_current_a: float,
                            unbalance_limit_pct: float = 15.0, neutral_limit_pct: float = 25.0,
                            min_load_pct: float = 10.0) -> dict:
    """Transformer current unbalance and neutral current flags, distribution O&M rule.

    Defaults are SD 292-1988 (unbalance ≤ 15 %, neutral ≤ 25 % of rated); the Dyn11
    variant (25 % / 40 %, Q/GDW 1519) is unconfirmed and can be set here.  Unbalance
    is not judged below ``min_load_pct`` of rated current (a ratio of small currents
    is meaningless).

    Parameters
    ----------
    current_l1, current_l2, current_l3 : array-like
        Phase currents [A].
    current_n : array-like or None
        Measured neutral current [A]; None = estimate from the phase magnitudes.
    rated_current_a : float
        Rated LV current of the transformer [A].
    unbalance_limit_pct, neutral_limit_pct, min_load_pct : float
        Limits [%].

    Returns
    -------
    dict of ndarray
        ``unbalance_pct``, ``neutral_pct`` [% of rated], ``unbalance_flag``, ``neutral_flag``.
    """
    ir = _checks.positive(rated_current_a, "rated_current_a")
    unb = current_unbalance(current_l1, current_l2, current_l3)
    imax = np.fmax(np.fmax(_checks.as_float(current_l1, "current_l1"),
                           _checks.as_float(current_l2, "current_l2")),
                   _checks.as_float(current_l3, "current_l3"))
    i_n = (neutral_current_from_phases(current_l1, current_l2, current_l3) if current_n is None
           else _checks.as_float(current_n, "current_n"))
    neutral_pct = i_n / ir * 100.0
    with np.errstate(invalid="ignore"):
        loaded = imax >= min_load_pct / 100.0 * ir
        return {"unbalance_pct": unb, "neutral_pct": neutral_pct,
                "unbalance_flag": loaded & (unb > unbalance_limit_pct + _EPS),
                "neutral_flag": neutral_pct > neutral_limit_pct + _EPS}


# ---------------------------------------------------------------- aggregation


def aggregate_10min(time_ns, values, period_s: float = 60.0, method: str = "rms", min_fraction: float = 1.0):
    """Aggregate samples into 10-min values aligned to the UTC 10-min tick, IEC 61000-4-30 §5.

    Parameters
    ----------
    time_ns : array-like of int
        Sample times [ns since epoch], non-decreasing.
    values : array-like
        Samples, shape (n,) or (n, k) for k channels; NaN = missing.
    period_s : float
        Nominal sample period [s]; an interval is valid when it holds at least
        ``min_fraction * 600 / period_s`` finite samples.
    method : {'rms', 'mean', 'max'}
        Aggregation: root-mean-square (voltages, currents), arithmetic mean, or max.
    min_fraction : float
        Share of expected samples required for validity (1.0 = complete).

    Returns
    -------
    start_ns : ndarray of int64
        Start of each 10-min interval present in the data.
    agg : ndarray
        Aggregated values, shape (m,) or (m, k); NaN where no finite sample.
    valid : ndarray of bool
        Interval complete enough (per channel).
    """
    _checks.choice(method, "method", ("rms", "mean", "max"))
    period_s = _checks.positive(period_s, "period_s")
    t = _checks.time_ns(time_ns)
    x = _checks.as_float(values, "values")
    one_d = x.ndim == 1
    if one_d:
        x = x[:, None]
    if x.shape[0] != t.shape[0]:
        raise ValueError(f"values has {x.shape[0]} rows but time_ns has {t.shape[0]}")
    if t.size == 0:
        shape = (0,) if one_d else (0, x.shape[1])
        return np.zeros(0, np.int64), np.zeros(shape), np.zeros(shape, bool)
    b = t // TEN_MIN_NS
    first = b[0]
    b = b - first
    # bins present (t is sorted, so present bins are where b changes)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    finite = np.isfinite(x)
    xz = np.where(finite, x, 0.0 if method != "max" else -np.inf)
    if method == "max":
        agg = np.maximum.reduceat(xz, starts, axis=0)
    else:
        agg = np.add.reduceat(xz * xz if method == "rms" else xz, starts, axis=0)
    cnt = np.add.reduceat(finite.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "rms":
            agg = np.sqrt(agg / cnt)
        elif method == "mean":
            agg = agg / cnt
    agg = np.where(cnt > 0, agg, np.nan)
    need = max(1, int(np.ceil(min_fraction * 600.0 / period_s - 1e-9)))
    valid = cnt >= need
    start_ns = (b[starts] + first) * TEN_MIN_NS
    if one_d:
        return start_ns, agg[:, 0], valid[:, 0]
    return start_ns, agg, valid


def count_outside(values, valid, lower, upper) -> tuple[int, int]:
    """Count valid values and valid values outside the inclusive band [lower, upper].

    Returns
    -------
    (n_valid, n_outside) : tuple of int
    """
    x = _checks.as_float(values, "values")
    v = np.asarray(valid, bool) & np.isfinite(x)
    with np.errstate(invalid="ignore"):
        out = v & ((x > upper + _EPS) | (x < lower - _EPS))
    return int(v.sum()), int(out.sum())


def en50160_voltage(voltage_10min, valid, nominal_v: float, lv: bool = True) -> dict:
    """EN 50160:2010 §4.2.2 supply-voltage-variation counters over one week.

    LV: N1 = valid 10-min values outside ±10 % (≤ 5 % of N allowed), N2 = outside
    +10 %/−15 % (none allowed).  MV: ±10 % for 99 %, ±15 % for 100 %.

    Parameters
    ----------
    voltage_10min : array-like
        10-min RMS voltages [V] (any shape; all phases pooled).
    valid : array-like of bool
        Interval validity (same shape).
    nominal_v : float
        Nominal voltage [V].
    lv : bool
        Low-voltage (True) or medium-voltage (False) rule.

    Returns
    -------
    dict
        ``n_valid``, ``n1``, ``n2``, ``n1_allowed``, ``compliant``.
    """
    d = voltage_deviation(voltage_10min, nominal_v)
    n, n1 = count_outside(d, valid, -10.0, 10.0)
    _, n2 = count_outside(d, valid, -15.0, 10.0 if lv else 15.0)
    share = 0.05 if lv else 0.01
    allowed = int(np.floor(share * n + 1e-9))
    return {"n_valid": n, "n1": n1, "n2": n2, "n1_allowed": allowed,
            "compliant": bool(n > 0 and n1 <= allowed and n2 == 0)}


# ---------------------------------------------------------------- harmonics


def harmonic_spectrum(samples, fs_hz: float, f0_hz: float = 50.0, cycles: int = 10,
                      grouping: str = "subgroup"):
    r"""RMS per harmonic order from synchronised 10-cycle windows, IEC 61000-4-7 §3 / GB/T 17626.7.

    Line ``k`` of the rectangular-window rfft of N samples has RMS
    :math:`C_k=\sqrt2|X_k|/N`; harmonic h sits at line ``k = cycles*h``.
    Subgroup: :math:`G_{sg,h}=\sqrt{C^2_{k-1}+C^2_k+C^2_{k+1}}`.  Group (50 Hz, 10
    cycles): :math:`G_{g,h}=\sqrt{\tfrac12C^2_{k-5}+\sum_{i=-4}^{4}C^2_{k+i}+\tfrac12C^2_{k+5}}`.

    Parameters
    ----------
    samples : array-like
        Waveform windows, shape (..., N), each exactly ``cycles`` fundamental periods [V] or [A].
    fs_hz : float
        Sampling rate [Hz]; ``N * f0_hz / fs_hz`` must equal ``cycles`` (±0.03 %).
    f0_hz : float
        Fundamental frequency the window is synchronised to [Hz].
    cycles : int
        Fundamental periods per window (10 at 50 Hz, 12 at 60 Hz).
    grouping : {'subgroup', 'group', 'none'}
        Spectral grouping.

    Returns
    -------
    ndarray
        RMS per order h = 0..H (index = order; 0 = DC value), shape (..., H+1), unit of input.
    """
    _checks.choice(grouping, "grouping", ("subgroup", "group", "none"))
    x = _checks.as_float(samples, "samples")
    if x.ndim == 0 or x.shape[-1] < 4 * cycles:
        raise ValueError(f"samples must have a last axis of ≥ {4 * cycles} points, got shape {x.shape}")
    n = x.shape[-1]
    fs_hz, f0_hz = _checks.positive(fs_hz, "fs_hz"), _checks.positive(f0_hz, "f0_hz")
    if abs(n * f0_hz / fs_hz - cycles) > 3e-4 * cycles:
        raise ValueError(
            f"window of {n} samples at fs_hz={fs_hz} spans {n * f0_hz / fs_hz:.4f} cycles of f0_hz={f0_hz}, "
            f"not {cycles}: resample to an integer number of samples per cycle first")
    spec = np.fft.rfft(x, axis=-1)
    c2 = (spec.real ** 2 + spec.imag ** 2) * (2.0 / (n * n))     # RMS^2 per line
    nl = c2.shape[-1]
    half = cycles // 2
    hmax = (nl - 1 - half) // cycles
    k = np.arange(1, hmax + 1) * cycles
    if grouping == "none":
        g2 = c2[..., k]
    elif grouping == "subgroup":
        g2 = c2[..., k - 1] + c2[..., k] + c2[..., k + 1]
    else:
        cs = np.cumsum(c2, axis=-1)
        inner = cs[..., k + half - 1] - cs[..., k - half]
        g2 = inner + 0.5 * (c2[..., k - half] + c2[..., k + half])
    out = np.empty(x.shape[:-1] + (hmax + 1,))
    out[..., 0] = np.abs(spec[..., 0].real) / n
    out[..., 1:] = np.sqrt(g2)
    return out


def thd(harmonics, hmax: int = 40):
    r"""Total harmonic distortion relative to the fundamental, GB/T 14549-1993 §3.7-3.8.

    :math:`THD=\sqrt{\sum_{h=2}^{H}U_h^2}/U_1\cdot100`.

    Parameters
    ----------
    harmonics : array-like
        RMS per order (index = order, as from :func:`harmonic_spectrum`), shape (..., H+1).
    hmax : int
        Highest order included (40 for GB/T / IEC, 50 for IEEE 519).

    Returns
    -------
    ndarray
        THD [%]; NaN where the fundamental is 0.
    """
    h = _checks.as_float(harmonics, "harmonics")
    if h.shape[-1] < 3:
        raise ValueError(f"harmonics needs orders 0..≥2 on its last axis, got shape {h.shape}")
    if hmax < 2:
        raise ValueError(f"hmax must be ≥ 2, got {hmax}")
    u1 = h[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.nansum(h[..., 2:hmax + 1] ** 2, axis=-1)) / np.where(u1 > 0, u1, np.nan) * 100.0


def harmonic_ratio(harmonics):
    """Individual harmonic ratios ``HR_h = U_h / U_1 * 100`` [%], GB/T 14549-1993 §3.5 (index = order)."""
    h = _checks.as_float(harmonics, "harmonics")
    u1 = h[..., 1:2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return h / np.where(u1 > 0, u1, np.nan) * 100.0


def tdd(harmonics, load_current_a, hmax: int = 50):
    r"""Total demand distortion, IEEE 519-2022 §3: :math:`\sqrt{\sum_{h\ge2} I_h^2}/I_L\cdot100` [%].

    Parameters
    ----------
    harmonics : array-like
        Current RMS per order (index = order) [A].
    load_current_a : float or array-like
        Maximum-demand load current I_L [A].
    hmax : int
        Highest order included.
    """
    h = _checks.as_float(harmonics, "harmonics")
    il = _checks.as_float(load_current_a, "load_current_a")
    if np.any(il <= 0):
        raise ValueError("load_current_a must be > 0")
    return np.sqrt(np.nansum(h[..., 2:hmax + 1] ** 2, axis=-1)) / il * 100.0


# GB/T 14549-1993 Table 1: nominal kV -> (THD_u, odd HRU, even HRU) [%]
GBT14549_VOLTAGE = {0.38: (5.0, 4.0, 2.0), 6.0: (4.0, 3.2, 1.6), 10.0: (4.0, 3.2, 1.6),
                    35.0: (3.0, 2.4, 1.2), 66.0: (3.0, 2.4, 1.2), 110.0: (2.0, 1.6, 0.8)}
# GB/T 14549-1993 Table 2: nominal kV -> (base Sk [MVA], permitted current [A] for h = 2..25)
GBT14549_CURRENT = {
    0.38: (10.0, (78, 62, 39, 62, 26, 44, 19, 21, 16, 28, 13, 24, 11, 12, 9.7, 18, 8.6, 16, 7.8, 8.9,
                  7.1, 14, 6.5, 12)),
    6.0: (100.0, (43, 34, 21, 34, 14, 24, 11, 11, 8.5, 16, 7.1, 13, 6.1, 6.8, 5.3, 10, 4.7, 9, 4.3, 4.9,
                  3.9, 7.4, 3.6, 6.8)),
    10.0: (100.0, (26, 20, 13, 20, 8.5, 15, 6.4, 6.8, 5.1, 9.3, 4.3, 7.9, 3.7, 4.1, 3.2, 6.0, 2.8, 5.4,
                   2.6, 2.9, 2.3, 4.5, 2.1, 4.1)),
    35.0: (250.0, (15, 12, 7.7, 12, 5.1, 8.8, 3.8, 4.1, 3.1, 5.6, 2.6, 4.7, 2.2, 2.5, 1.9, 3.6, 1.7, 3.2,
                   1.5, 1.8, 1.4, 2.7, 1.3, 2.5)),
    66.0: (500.0, (16, 13, 8.1, 13, 5.4, 9.3, 4.1, 4.3, 3.3, 5.9, 2.7, 5.0, 2.3, 2.6, 2.0, 3.8, 1.8, 3.4,
                   1.6, 1.9, 1.5, 2.8, 1.4, 2.6)),
    110.0: (750.0, (12, 9.6, 6.0, 9.6, 4.0, 6.8, 3.0, 3.2, 2.4, 4.3, 2.0, 3.7, 1.7, 1.9, 1.5, 2.8, 1.3, 2.5,
                    1.2, 1.4, 1.1, 2.1, 1.0, 1.9)),
}
_LEVEL_ALIASES = {0.4: 0.38, 220.0: 110.0}
# GB/T 14549-1993 §5 note: a 220 kV PCC uses the 110 kV limits, the current table scaled from a
# 2000 MVA base short-circuit capacity (not the 110 kV row's 750 MVA)
GBT14549_220KV_BASE_MVA = 2000.0


def _gbt14549_level(nominal_kv: float) -> float:
    kv = _checks.positive(nominal_kv, "nominal_kv")
    kv = _LEVEL_ALIASES.get(kv, kv)
    if kv not in GBT14549_VOLTAGE:
        raise ValueError(f"nominal_kv must be one of 0.38 (0.4), 6, 10, 35, 66, 110 (220); got {nominal_kv}")
    return kv


def gbt14549_voltage_limits(nominal_kv: float) -> dict:
    """Harmonic voltage limits of GB/T 14549-1993 Table 1 for a nominal level [kV].

    Returns
    -------
    dict
        ``thd_pct``, ``odd_pct``, ``even_pct`` [% of fundamental].
    """
    t, o, e = GBT14549_VOLTAGE[_gbt14549_level(nominal_kv)]
    return {"thd_pct": t, "odd_pct": o, "even_pct": e}


def harmonic_voltage_flags(harmonic_ratio_pct, thd_pct, nominal_kv: float) -> dict:
    """Flag THD_u and each individual HRU_h against GB/T 14549-1993 Table 1.

    Parameters
    ----------
    harmonic_ratio_pct : array-like
        HRU per order (index = order) [%], shape (..., H+1).
    thd_pct : array-like
        THD_u [%], shape (...).
    nominal_kv : float
        Nominal voltage level [kV].

    Returns
    -------
    dict
        ``thd_flag`` (...), ``order_flags`` (..., H+1; orders 0 and 1 never flag), ``limits``.
    """
    lim = gbt14549_voltage_limits(nominal_kv)
    hr = _checks.as_float(harmonic_ratio_pct, "harmonic_ratio_pct")
    orders = np.arange(hr.shape[-1])
    per = np.where(orders % 2 == 1, lim["odd_pct"], lim["even_pct"])
    per[:2] = np.inf
    with np.errstate(invalid="ignore"):
        return {"thd_flag": _checks.as_float(thd_pct, "thd_pct") > lim["thd_pct"] + _EPS,
                "order_flags": hr > per + _EPS, "limits": lim}


def gbt14549_current_limit(order: int, nominal_kv: float, sk_min_mva: float | None = None,
                           customer_mva: float | None = None, supply_mva: float | None = None) -> float:
    r"""Permitted harmonic current injection [A], GB/T 14549-1993 Table 2 and Annex B/C.

    Scaled to the actual minimum short-circuit capacity :math:`I_h=(S_{k1}/S_{k2})I_{hp}`
    and shared by agreed capacity :math:`I_{hi}=I_h(S_i/S_t)^{1/\alpha}`.

    Parameters
    ----------
    order : int
        Harmonic order, 2..25.
    nominal_kv : float
        PCC nominal voltage [kV].
    sk_min_mva : float, optional
        Minimum short-circuit capacity at the PCC [MVA]; default = table base.
    customer_mva, supply_mva : float, optional
        Customer's agreed capacity S_i and supply-equipment capacity S_t [MVA].

    Returns
    -------
    float
        Limit [A].
    """
    if not isinstance(order, int | np.integer) or not 2 <= order <= 25:
        raise ValueError(f"order must be an integer 2..25, got {order!r}")
    base, row = GBT14549_CURRENT[_gbt14549_level(nominal_kv)]
    if float(nominal_kv) == 220.0:
        base = GBT14549_220KV_BASE_MVA      # 220 kV: the 110 kV currents, at a 2000 MVA base
    ih = float(row[order - 2])
    if sk_min_mva is not None:
        ih *= _checks.positive(sk_min_mva, "sk_min_mva") / base
    if (customer_mva is None) != (supply_mva is None):
        raise ValueError("customer_mva and supply_mva must be given together")
    if customer_mva is not None:
        alpha = {3: 1.1, 5: 1.2, 7: 1.4, 11: 1.8, 13: 1.9}.get(int(order), 2.0)
        ih *= (_checks.positive(customer_mva, "customer_mva")
               / _checks.positive(supply_mva, "supply_mva")) ** (1.0 / alpha)
    return ih


_IEEE519_BANDS = ((20.0, (4.0, 2.0, 1.5, 0.6, 0.3), 5.0), (50.0, (7.0, 3.5, 2.5, 1.0, 0.5), 8.0),
                  (100.0, (10.0, 4.5, 4.0, 1.5, 0.7), 12.0), (1000.0, (12.0, 5.5, 5.0, 2.0, 1.0), 15.0),
                  (np.inf, (15.0, 7.0, 6.0, 2.5, 1.4), 20.0))


def ieee519_current_limits(isc_over_il: float, hmax: int = 50, edition: int = 2022) -> tuple[np.ndarray, float]:
    """IEEE 519-2022 Table 2 current-distortion limits (120 V – 69 kV) [% of I_L].

    Even orders: 2022 edition = 50 % of the odd limit for h ≤ 6, 100 % above;
    2014 edition = 25 %.

    Returns
    -------
    per_order : ndarray
        Limit per order, index = order (0..hmax; orders 0, 1 are inf) [%].
    tdd_limit : float
        TDD limit [%].
    """
    r = _checks.positive(isc_over_il, "isc_over_il")
    _checks.choice(edition, "edition", (2014, 2022))
    cols, tdd_lim = next((c, t) for ub, c, t in _IEEE519_BANDS if r < ub)
    h = np.arange(hmax + 1)
    band = np.select([h < 11, h < 17, h < 23, h < 35], [cols[0], cols[1], cols[2], cols[3]], cols[4])
    even = h % 2 == 0
    factor = np.where(even, np.where(h <= 6, 0.5, 1.0) if edition == 2022 else 0.25, 1.0)
    lim = band * factor
    lim[:2] = np.inf
    return lim, tdd_lim


def ieee519_voltage_limits(bus_kv: float) -> tuple[float, float]:
    """IEEE 519-2022 Table 1: (individual harmonic, THD) voltage limits [%] for a bus voltage [kV]."""
    kv = _checks.positive(bus_kv, "bus_kv")
    if kv <= 1.0:
        return 5.0, 8.0
    if kv <= 69.0:
        return 3.0, 5.0
    if kv <= 161.0:
        return 1.5, 2.5
    return 1.0, 1.5


# ---------------------------------------------------------------- power factor


def monthly_power_factor(kwh, kvarh_import, kvarh_export=0.0):
    r"""Monthly average PF from energies, (83)水电财字第215号 §3, rounded half-up to 2 decimals.

    :math:`\cos\varphi = kWh/\sqrt{kWh^2+(|kvarh_{imp}|+|kvarh_{exp}|)^2}` — exported
    (capacitive) kvarh counts as if imported, as the rule requires.

    Parameters
    ----------
    kwh : array-like
        Active energy of the month [kWh] (≥ 0).
    kvarh_import, kvarh_export : array-like
        Reactive energy inductive / capacitive [kvarh].

    Returns
    -------
    ndarray
        PF rounded to 0.01; NaN where both energies are 0.
    """
    p = _checks.as_float(kwh, "kwh")
    if np.any(p < 0):
        raise ValueError("kwh must be ≥ 0 (monthly consumption)")
    q = np.abs(_checks.as_float(kvarh_import, "kvarh_import")) + np.abs(_checks.as_float(kvarh_export,
                                                                                           "kvarh_export"))
    s = np.hypot(p, q)
    with np.errstate(invalid="ignore", divide="ignore"):
        pf = np.where(s > 0, p / s, np.nan)
    return np.floor(pf * 100.0 + 0.5 + 1e-9) / 100.0


def pf_adjustment_pct(pf, standard: float = 0.90):
    """Power-factor adjustment [% of the adjustment base], (83)水电财字第215号 附表一-三.

    Positive = surcharge, negative = rebate.  PF is rounded half-up to 0.01 first.

    Parameters
    ----------
    pf : array-like
        Monthly power factor (0..1).
    standard : {0.90, 0.85, 0.80}
        Assessment standard of the customer.

    Returns
    -------
    ndarray
        Adjustment [%]; NaN where pf is NaN.
    """
    _checks.choice(round(float(standard), 2), "standard", (0.90, 0.85, 0.80))
    x = _checks.as_float(pf, "pf")
    if np.any((x < 0) | (x > 1)):
        raise ValueError("pf must be within 0..1")
    p = np.floor(x * 100.0 + 0.5 + 1e-9)          # integer hundredths
    s = round(float(standard) * 100)
    if s == 90:
        conds = [p >= 95, p >= 90, p >= 70, p >= 65]
        vals = [-0.75, -(p - 90) * 0.15, (90 - p) * 0.5, 10 + (70 - p)]
    elif s == 85:
        conds = [p >= 94, p >= 90, p >= 85, p >= 65, p >= 60]
        vals = [-1.10, -(0.5 + (p - 90) * 0.15), -(p - 85) * 0.1, (85 - p) * 0.5, 10 + (65 - p)]
    else:
        conds = [p >= 92, p >= 91, p >= 80, p >= 60, p >= 55]
        vals = [-1.30, -1.15, -(p - 80) * 0.1, (80 - p) * 0.5, 10 + (60 - p)]
    floor_pf = {90: 65, 85: 60, 80: 55}[s]
    out = np.select(conds, vals, 15 + (floor_pf - p) * 2.0)
    out = np.round(out, 4) + 0.0
    return np.where(np.isnan(x), np.nan, out)


def pf_adjustment_yuan(pf, base_yuan, standard: float = 0.90):
    """PF adjustment amount [yuan] = adjustment % × base (basic + energy charge, as configured)."""
    b = _checks.as_float(base_yuan, "base_yuan")
    if np.any(b < 0):
        raise ValueError("base_yuan must be ≥ 0")
    return pf_adjustment_pct(pf, standard) / 100.0 * b


# ---------------------------------------------------------------- site summary


def compliance_summary(time_ns, channels: dict, nominal_voltage_v: float, voltage_level_kv: float = 0.4,
                       period_s: float = 60.0, nominal_hz: float = 50.0, frequency_limit_hz: float = 0.2) -> dict:
    """EN 50160-style summary of one site's LV meter data over a week or a month (indicative).

    Counts valid 10-min values and those outside limits per parameter: voltage
    (GB/T 12325 ±7 % and EN 50160 ±10 % / +10−15 %), frequency (GB/T 15945 ±0.2 Hz
    on 10-min means), negative-sequence unbalance (GB/T 15543 95 % ≤ 2 %, max ≤ 4 %,
    from line voltages, else from phasors), THD_u (GB/T 14549 Table 1 at 0.38 kV).
    A parameter whose channels are absent is left out; ``compliant`` is None when there is no
    valid 10-min value (no verdict without data).  Not IEC 61000-4-30 Class A.

    Parameters
    ----------
    time_ns : array-like of int
        Sample times [ns].
    channels : dict of str -> ndarray
        Meter channels by glossary name (``voltage_l1``.., ``voltage_l12``.., ``frequency``,
        ``thd_voltage_l1``.., ``voltage_angle_l2/3``) [V], [Hz], [%], [deg].
    nominal_voltage_v : float
        LV phase-to-neutral nominal [V].
    voltage_level_kv : float
        Level for the THD limit (0.4 → GB/T 14549 0.38 kV row) [kV].
    period_s : float
        Sample period [s].
    nominal_hz, frequency_limit_hz : float
        Frequency nominal and limit [Hz].

    Returns
    -------
    dict
        One entry per parameter with ``n_valid``, ``n_outside``, ``limit``, ``standard``,
        ``compliant`` and parameter-specific statistics.
    """
    t = _checks.time_ns(time_ns)
    out: dict = {}
    phases = [f"voltage_l{p}" for p in (1, 2, 3)]
    if all(c in channels for c in phases):
        u = np.column_stack([channels[c] for c in phases])
        _, u10, ok = aggregate_10min(t, u, period_s)
        lo, hi = -7.0, 7.0
        n, nout = count_outside(voltage_deviation(u10, nominal_voltage_v), ok, lo, hi)
        en = en50160_voltage(u10, ok, nominal_voltage_v, lv=True)
        out["voltage"] = {"n_valid": n, "n_outside": nout, "limit": "±7 % of nominal", "limit_pct": 7.0,
                          "phases": 3, "per_value": True,
                          "standard": "GB/T 12325-2008 §4", "compliant": nout == 0 if n else None,
                          "qualification_rate_pct": (1 - nout / n) * 100 if n else np.nan,
                          "en50160": en}
    if "frequency" in channels:
        _, f10, ok = aggregate_10min(t, channels["frequency"], period_s, method="mean")
        n, nout = count_outside(f10 - nominal_hz, ok, -frequency_limit_hz, frequency_limit_hz)
        out["frequency"] = {"n_valid": n, "n_outside": nout, "limit": f"±{frequency_limit_hz} Hz",
                            "limit_hz": frequency_limit_hz, "phases": 1, "per_value": True,
                            "standard": "GB/T 15945-2008 §4", "compliant": nout == 0 if n else None}
    lines = ["voltage_l12", "voltage_l23", "voltage_l31"]
    eps = None
    if all(c in channels for c in lines):
        eps = unbalance_from_line_voltages(*(channels[c] for c in lines))
    elif all(c in channels for c in (*phases, "voltage_angle_l2", "voltage_angle_l3")):
        eps = unbalance_from_phasors(*phasors_from_channels(
            *(channels[c] for c in (*phases, "voltage_angle_l2", "voltage_angle_l3"))))[0]
    if eps is not None:
        _, e10, ok = aggregate_10min(t, eps, period_s)
        ass = unbalance_assessment(np.where(ok, e10, np.nan))
        n, nout = count_outside(e10, ok, -np.inf, 2.0)
        out["unbalance"] = {"n_valid": n, "n_outside": nout, "limit": "95 % ≤ 2 %, max ≤ 4 %", "phases": 1,
                            "per_value": False,
                            "standard": "GB/T 15543-2008 §4", "compliant": (not ass["fail"]) if n else None,
                            "p95_pct": ass["p95_pct"], "max_pct": ass["max_pct"]}
    thd_ch = [f"thd_voltage_l{p}" for p in (1, 2, 3)]
    if all(c in channels for c in thd_ch):
        lim = gbt14549_voltage_limits(voltage_level_kv)["thd_pct"]
        _, t10, ok = aggregate_10min(t, np.column_stack([channels[c] for c in thd_ch]), period_s, "rms")
        n, nout = count_outside(t10, ok, -np.inf, lim)
        worst = np.fmax.reduce(np.where(ok, t10, np.nan), axis=1) if t10.size else t10
        p95 = prob95(worst)
        out["thd_voltage"] = {"n_valid": n, "n_outside": nout, "limit": f"THD_u ≤ {lim} %", "limit_pct": lim,
                              "phases": 3, "per_value": False,
                              "standard": "GB/T 14549-1993 Table 1", "p95_pct": p95,
                              "compliant": (not p95 > lim + _EPS) if n else None}
    return out

"""Harmonic spectra, THD/TDD and the GB/T 14549 / IEEE 519 limits.

Indicative values from meter data; conventions in :mod:`analytics.power_quality`.
"""

from __future__ import annotations

import numpy as np

from analytics import _checks
from analytics.power_quality.constants import _EPS

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

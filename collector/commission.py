"""Commissioning check: judge a device's profile by physics, from a short live reading.

Pure (numpy, no I/O): :func:`judge` takes the decoded samples of one device, as the collector
decodes them (profile, word order, scale, CT/PT ratios applied), and checks

* voltages near the site's nominal (±15 %; line voltages √3 × nominal), frequency 50 ± 1 Hz,
  power factors within ±1;
* per phase P ≈ U·I·|PF| (±10 %) and S² ≈ P² + Q² (±10 %);
* energy increments ≈ ∫P dt over the reading (±15 % plus two counts of the register);
* counters never decreasing;
* currents plausible for the transformer rating and the CT ratio (1 %..150 % of rated current).

For a check that fails it then tries the alternatives on the suspect row — the two words swapped
(32-bit rows), another scale (×10^k, k = -3..3), another CT ratio — and says which one fits and
what to change in the profile or the fleet file.  Each result is a :class:`Finding`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.profiles import TYPES, Register

VOLTAGE_TOL, FREQ_TOL_HZ, POWER_TOL, ENERGY_TOL = 0.15, 1.0, 0.10, 0.15
CURRENT_RANGE = (0.01, 1.5)           # fraction of the rated current a feeder meter plausibly reads
CT_SECONDARY_A = 6.0                  # a 5 A CT secondary (1.2 x extended rating): currents never above it look secondary
STANDARD_CT_PRIMARIES = (50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 750, 800, 1000, 1200, 1500, 2000,
                         2500, 3000, 4000, 5000)
SCALES = tuple(k for k in range(-3, 4) if k)
PHASES = (1, 2, 3)


@dataclass(frozen=True)
class Sample:
    t: float                          # wall-clock seconds of the poll
    fields: Mapping[str, float]       # decoded channel values


@dataclass(frozen=True)
class Context:
    kind: str = "meter"
    nominal_voltage_v: float = 230.0
    frequency_hz: float = 50.0
    rated_current_a: float | None = None     # per phase, from the transformer nameplate (None: not judged)
    ct_ratio: float = 1.0                    # as configured in the fleet file
    registers: Mapping[str, Register] | None = None   # profile rows by channel (word-order alternatives)


@dataclass(frozen=True)
class Finding:
    check: str
    channel: str
    observed: str
    expected: str
    ok: bool | None                          # None: not judged (missing channels, too little energy)
    fix: str = ""


Fits = Callable[[np.ndarray], bool]


def _series(samples: Sequence[Sample], ch: str) -> np.ndarray | None:
    if not any(ch in s.fields for s in samples):
        return None
    return np.array([s.fields.get(ch, np.nan) for s in samples], dtype=float)


def swapped(reg: Register, values: np.ndarray) -> np.ndarray | None:
    """``values`` re-decoded with the two words of a 32-bit row swapped; None for other rows."""
    wt = TYPES[reg.type]
    if wt.words != 2 or reg.scale_factor is not None:
        return None
    out = np.full(values.shape, np.nan)
    for i, v in enumerate(values):
        if not math.isfinite(v):
            continue
        raw = (v - reg.offset) / reg.scale
        try:
            b = struct.pack(">" + wt.typed, raw if not wt.integer else int(round(raw)))
        except struct.error:
            continue
        out[i] = struct.unpack(">" + wt.typed, b[2:] + b[:2])[0] * reg.scale + reg.offset
    return out


def alternative(ctx: Context, ch: str, values: np.ndarray, fits: Fits) -> str:
    """The change to the profile row of ``ch`` under which ``fits`` holds, or ''."""
    reg = (ctx.registers or {}).get(ch)
    if reg is not None:
        other = swapped(reg, values)
        if other is not None and np.isfinite(other).any() and fits(other):
            order = "little" if reg.word_order == "big" else "big"
            return f"profile row {ch}: word_order = \"{order}\" (the two words are swapped)"
    for k in SCALES:
        if fits(values * 10.0**k):
            scale = f"{reg.scale * 10.0**k:g}" if reg is not None else f"×10^{k}"
            return f"profile row {ch}: scale = {scale} (values are 10^{k} off)"
    return ""


def _near(target: float, tol: float) -> Fits:
    return lambda v: bool(np.isfinite(v).any() and abs(np.nanmedian(v) / target - 1.0) <= tol)


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "n/a"


def check_levels(samples: Sequence[Sample], ctx: Context) -> list[Finding]:
    """Voltages against the nominal, frequency against 50 Hz, power factors within ±1."""
    out = []
    wants = [(f"voltage_l{p}", ctx.nominal_voltage_v, VOLTAGE_TOL) for p in PHASES]
    wants += [(f"voltage_l{a}{b}", ctx.nominal_voltage_v * math.sqrt(3), VOLTAGE_TOL) for a, b in ((1, 2), (2, 3), (3, 1))]
    wants.append(("frequency", ctx.frequency_hz, FREQ_TOL_HZ / ctx.frequency_hz))
    for ch, target, tol in wants:
        v = _series(samples, ch)
        if v is None:
            continue
        fits = _near(target, tol)
        ok = fits(v)
        out.append(Finding("level", ch, _fmt(np.nanmedian(v)), f"{target:.4g} ±{tol:.0%}", ok,
                           "" if ok else alternative(ctx, ch, v, fits)))
    for ch in ["power_factor", *(f"power_factor_l{p}" for p in PHASES)]:
        v = _series(samples, ch)
        if v is None:
            continue
        fits = lambda x: bool(np.nanmax(np.abs(x)) <= 1.0 + 1e-6)   # noqa: E731
        ok = fits(v)
        out.append(Finding("level", ch, _fmt(np.nanmax(np.abs(v))), "|PF| <= 1", ok,
                           "" if ok else alternative(ctx, ch, v, fits)))
    return out


def _ratio_fits(ref: np.ndarray) -> Fits:
    def fits(v: np.ndarray) -> bool:
        m = np.isfinite(v) & np.isfinite(ref) & (ref > 0)
        return bool(m.any() and abs(np.median(np.abs(v[m])) / np.median(ref[m]) - 1.0) <= POWER_TOL)
    return fits


def check_apparent(samples: Sequence[Sample], ctx: Context) -> list[Finding]:
    """S² ≈ P² + Q², per phase and for the totals."""
    out = []
    for suffix in ["", *(f"_l{p}" for p in PHASES)]:
        pw, q, sv = (_series(samples, f"{n}{suffix}") for n in ("active_power", "reactive_power", "apparent_power"))
        if pw is None or q is None or sv is None:
            continue
        pq = np.hypot(pw, q)
        ok = _ratio_fits(pq)(sv)
        fix = ""
        if not ok:
            tries = ((f"active_power{suffix}", pw, lambda x, q=q, sv=sv: _ratio_fits(np.hypot(x, q))(sv)),
                     (f"reactive_power{suffix}", q, lambda x, pw=pw, sv=sv: _ratio_fits(np.hypot(pw, x))(sv)),
                     (f"apparent_power{suffix}", sv, _ratio_fits(pq)))
            fix = next((f for f in (alternative(ctx, ch, v, fits) for ch, v, fits in tries) if f), "")
        ratio = np.nanmedian(sv) / np.nanmedian(pq) if np.nanmedian(pq) > 0 else math.nan
        out.append(Finding("S² = P² + Q²", f"apparent_power{suffix}", f"S/√(P²+Q²) = {_fmt(ratio)}",
                           f"1 ±{POWER_TOL:.0%}", ok, fix))
    return out


def check_power(samples: Sequence[Sample], ctx: Context, trusted: Mapping[str, bool | None]) -> list[Finding]:
    """Per phase P ≈ U·I·|PF|.  ``trusted[ch]``: whether another check (S² = P² + Q², the energy
    balance) already vouches for active power ``ch``; then the current row is the first suspect."""
    out = []
    for p in PHASES:
        u, i, pf, pw = (_series(samples, f"{n}_l{p}") for n in ("voltage", "current", "power_factor", "active_power"))
        if u is None or i is None or pf is None or pw is None:
            continue
        uipf = u * i * np.abs(pf)
        ok = _ratio_fits(uipf)(pw)
        fix = ""
        if not ok:
            tries = [(f"current_l{p}", i, lambda x, u=u, pf=pf, pw=pw: _ratio_fits(u * x * np.abs(pf))(pw)),
                     (f"active_power_l{p}", pw, _ratio_fits(uipf))]
            if not trusted.get(f"active_power_l{p}"):
                tries.reverse()
            fix = next((f for f in (alternative(ctx, ch, v, fits) for ch, v, fits in tries) if f), "")
        ratio = np.nanmedian(np.abs(pw)) / np.nanmedian(uipf) if np.nanmedian(uipf) > 0 else math.nan
        out.append(Finding("P = U·I·PF", f"active_power_l{p}", f"P/(U·I·|PF|) = {_fmt(ratio)}",
                           f"1 ±{POWER_TOL:.0%}", ok, fix))
    return out


def _energy_fits(t: np.ndarray, power: np.ndarray, step_wh: float) -> Fits:
    """ΔE within ±15 % of ∫P dt, plus two counts of the register, plus the energy of two poll
    intervals (a meter refreshes its counter and its power registers at its own moments)."""
    m = np.isfinite(power)
    integral = float(np.trapezoid(power[m], t[m]) / 3600.0) if m.sum() > 1 else 0.0
    spacing = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    slack = 2 * step_wh + 2 * spacing * float(np.nanmean(np.abs(power))) / 3600.0 if m.any() else 2 * step_wh

    def fits(e: np.ndarray) -> bool:
        ok = np.isfinite(e)
        if ok.sum() < 2:
            return False
        delta = float(e[ok][-1] - e[ok][0])
        return abs(delta - integral) <= ENERGY_TOL * abs(integral) + slack
    fits.integral = integral          # type: ignore[attr-defined]
    return fits


def check_energy(samples: Sequence[Sample], ctx: Context) -> list[Finding]:
    """Counters non-decreasing; the forward counter's increment ≈ ∫P dt over the reading."""
    out = []
    t = np.array([s.t for s in samples], dtype=float)
    for ch in ("energy_import", "energy_export", "reactive_energy_import", "reactive_energy_export"):
        e = _series(samples, ch)
        if e is None:
            continue
        ok_e = e[np.isfinite(e)]
        mono = bool(np.all(np.diff(ok_e) >= 0))
        monotone = lambda x: bool(np.all(np.diff(x[np.isfinite(x)]) >= 0))   # noqa: E731
        out.append(Finding("counter", ch, "non-decreasing" if mono else "decreases", "non-decreasing", mono,
                           "" if mono else alternative(ctx, ch, e, monotone)))
    forward = "energy_export" if ctx.kind == "pv_inverter" else "energy_import"
    pw, e = _series(samples, "active_power"), _series(samples, forward)
    if pw is None or e is None:
        return out
    reg = (ctx.registers or {}).get(forward)
    step = reg.scale if reg is not None else 10.0
    fits = _energy_fits(t, np.clip(pw, 0, None), step)
    integral = fits.integral          # type: ignore[attr-defined]
    delta = float(np.nanmax(e) - np.nanmin(e))
    if integral < 10 * step:
        out.append(Finding("ΔE = ∫P dt", forward, f"ΔE {delta:.4g} Wh", f"∫P dt {integral:.4g} Wh", None,
                           f"too little energy in {t[-1] - t[0]:.0f} s for this counter's {step:g} Wh step: "
                           "read longer (--seconds)"))
        return out
    ok = fits(e)
    fix = ""
    if not ok:
        fix = alternative(ctx, forward, e, fits)
    out.append(Finding("ΔE = ∫P dt", forward, f"ΔE {delta:.4g} Wh", f"∫P dt {integral:.4g} Wh ±{ENERGY_TOL:.0%}",
                       ok, fix))
    return out


def check_currents(samples: Sequence[Sample], ctx: Context) -> list[Finding]:
    """Currents against the transformer's rated current; a misfit suggests the CT ratio that fits."""
    cur = [c for c in (_series(samples, f"current_l{p}") for p in PHASES) if c is not None]
    if not cur or ctx.rated_current_a is None:
        return []
    peak = float(np.nanmax(np.vstack(cur)))
    rated = ctx.rated_current_a
    frac = peak / rated
    lo, hi = CURRENT_RANGE
    ok = lo <= frac <= hi
    fix = ""
    if not ok:
        secondary = peak / ctx.ct_ratio       # what the meter measured on its terminals
        fitting = [n / 5 for n in STANDARD_CT_PRIMARIES if lo <= secondary * n / 5 / rated <= hi]
        if not fitting:
            fitting = [1.0] if lo <= secondary / rated <= hi else []
        if fitting:
            best = min(fitting, key=lambda r: abs(math.log(secondary * r / rated / 0.5)))
            fix = (f"fleet key ct_ratio = {best:g} ({best * 5:g}/5 A) fits best (peak {secondary * best:.4g} A = "
                   f"{secondary * best / rated:.0%} of rated); ratios {fitting[0]:g}..{fitting[-1]:g} fit: "
                   "read the CT nameplate")
    note = " (≤ 6 A: secondary-side values of a x/5 A CT?)" if peak <= CT_SECONDARY_A and not ok else ""
    return [Finding("current vs rating", "current", f"peak {peak:.4g} A = {frac:.1%}{note}",
                    f"{lo:.0%}..{hi:.0%} of {rated:.4g} A (ct_ratio {ctx.ct_ratio:g})", ok, fix)]


def judge(samples: Sequence[Sample], ctx: Context) -> list[Finding]:
    """Every check that the channels present allow; see the module docstring."""
    if len(samples) < 2:
        raise ValueError("commissioning needs at least 2 samples")
    energy = check_energy(samples, ctx)
    apparent = check_apparent(samples, ctx)
    balance = next((f.ok for f in energy if f.check == "ΔE = ∫P dt"), None)
    trusted = {f"active_power_l{p}": balance for p in PHASES}
    trusted.update({f.channel.replace("apparent", "active"): f.ok for f in apparent})
    return [*check_levels(samples, ctx), *check_power(samples, ctx, trusted), *apparent, *energy,
            *check_currents(samples, ctx)]


def verdict_table(findings: Sequence[Finding]) -> str:
    """A readable table: check, channel, observed, expected, verdict, what to change."""
    head = ("check", "channel", "observed", "expected", "verdict", "fix")
    rows = [(f.check, f.channel, f.observed, f.expected, {True: "ok", False: "WRONG", None: "n/a"}[f.ok], f.fix)
            for f in findings]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    lines = []
    for r in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + ("  " + r[5] if r[5] else ""))
    return "\n".join(lines)

"""Cross-check a meter's own time-of-use registers against our tariff schedule, and its clock.

A revenue meter (DL/T 645: forward active energy T1..T4, programmed 尖/峰/平/谷) splits its energy by
its own tariff table and its own clock.  The bill is computed from those registers, our savings and
cost figures from interval data split by ``analytics.tariffs``.  If the two splits disagree over a
period, either the meter's table is not the tariff we apply (wrong schedule: a season or a period
boundary differs) or its clock has drifted (every boundary is shifted by the same amount).

:func:`tou_register_check` compares the increments of the meter's registers over a period with the
split of the same meter's interval energy by the tariff calendar, and — when they disagree beyond the
tolerance — finds the clock shift that best explains the registers (searched minute by minute within
± ``max_shift_s``).  A shift that brings the disagreement back within tolerance points at the meter
clock; none does → the schedule.  :func:`clock_drift_check` flags a meter whose clock (the
``meter_clock_offset`` channel the DL/T 645 collector stores) is off by more than a limit.

Pure functions: numbers in, a :class:`core.model.Finding` (or None) out; every figure in the
explanation is in ``evidence``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from analytics import _checks
from analytics import finding_types as ft
from analytics.tariffs import Tariff
from core.dlt645 import TOU_REGISTER
from core.model import Finding

log = logging.getLogger(__name__)


def schedule_split(time_ns, energy_counter_wh, tariff: Tariff, *, shift_s: float = 0.0,
                   register_of: Mapping[str, int] = TOU_REGISTER) -> dict[int, float]:
    """Energy [Wh] per tariff register from counter samples: each increment is labelled by the period at
    its interval's start (optionally as a clock ``shift_s`` seconds ahead would see it)."""
    t = _checks.time_ns(time_ns)
    e = _checks.as_float(energy_counter_wh, "energy_counter_wh")
    _checks.same_shape("energy_counter_wh", e, "time_ns", t)
    out = dict.fromkeys(sorted(set(register_of.values())), 0.0)
    if t.size < 2:
        return out
    inc = np.diff(e)
    ok = np.isfinite(inc) & (inc >= 0)                 # a meter reset or a gap contributes nothing
    idx = tariff.period_index(t[:-1] + np.int64(round(shift_s * 1e9)))
    sums = np.bincount(idx[ok], weights=inc[ok], minlength=len(tariff.periods))
    for i, name in enumerate(tariff.periods):
        if name not in register_of:
            raise ValueError(f"tariff {tariff.id!r}: period {name!r} has no meter register in register_of")
        out[register_of[name]] += float(sums[i])
    return out


def _mismatch(registers: Mapping[int, float], split: Mapping[int, float]) -> float:
    """Energy in the wrong register [Wh]: half the sum of absolute differences (what moved)."""
    return 0.5 * sum(abs(registers.get(k, 0.0) - split.get(k, 0.0)) for k in set(registers) | set(split))


def tou_register_check(time_ns, energy_counter_wh, registers_start: Mapping[int, float],
                       registers_end: Mapping[int, float], tariff: Tariff, *, site_id: str, device_id: str,
                       tolerance: float = 0.02, min_wh: float = 1000.0, max_shift_s: float = 7200.0,
                       register_of: Mapping[str, int] = TOU_REGISTER) -> Finding | None:
    """Meter TOU registers vs. the schedule split of the same period; a :class:`Finding` when they disagree.

    ``registers_start``/``registers_end``: the meter's registers {1: T1, …} [Wh] at the first and last
    sample of ``time_ns``; ``energy_counter_wh``: the meter's total forward active energy at ``time_ns``.
    Disagreement = energy in a different register than the schedule puts it, as a share of the period's
    energy; ``tolerance`` (default 2 %) covers interval resolution at the boundaries.  Below ``min_wh``
    nothing is judged.
    """
    t = _checks.time_ns(time_ns)
    meter = {k: float(registers_end[k]) - float(registers_start[k]) for k in registers_end}
    split = schedule_split(t, energy_counter_wh, tariff, register_of=register_of)
    total = sum(split.values())
    if total < min_wh or t.size < 2:
        return None
    moved = _mismatch(meter, split)
    if moved <= tolerance * total:
        return None
    best_shift, best_moved = 0.0, moved
    for shift in np.arange(-max_shift_s, max_shift_s + 1, 60.0):
        m = _mismatch(meter, schedule_split(t, energy_counter_wh, tariff, shift_s=float(shift),
                                            register_of=register_of))
        if m < best_moved - 1e-9 or (abs(m - best_moved) <= 1e-9 and abs(shift) < abs(best_shift)):
            best_shift, best_moved = float(shift), m
    clock = best_moved <= tolerance * total
    evidence = {"period_energy_kwh": round(total / 1000, 3),
                "meter_registers_kwh": {f"T{k}": round(v / 1000, 3) for k, v in sorted(meter.items())},
                "schedule_split_kwh": {f"T{k}": round(v / 1000, 3) for k, v in sorted(split.items())},
                "misallocated_kwh": round(moved / 1000, 3), "misallocated_share": round(moved / total, 4),
                "tolerance_share": tolerance, "tariff": tariff.id,
                "best_clock_shift_s": best_shift, "misallocated_at_best_shift_kwh": round(best_moved / 1000, 3),
                "cause": "meter_clock" if clock else "schedule"}
    texts = ft.texts("tou_register_mismatch", evidence)
    if clock:
        texts |= {"recommendation_zh": "核对并校准电表时钟（需供电公司现场操作）。",
                  "recommendation_en": "Have the utility check and set the meter clock."}
    else:
        texts |= {"recommendation_zh": "核对电表费率时段表与电价文件。",
                  "recommendation_en": "Compare the meter's tariff table with the tariff file we apply."}
    texts["severity"] = "major" if moved > 5 * tolerance * total else "minor"
    return Finding(type="tou_register_mismatch", site_id=site_id, device_id=device_id, start_ns=int(t[0]),
                   end_ns=int(t[-1]), evidence=evidence, **texts)


def clock_drift_check(time_ns, offset_s, *, site_id: str, device_id: str, limit_s: float = 60.0) -> Finding | None:
    """The meter clock is off by more than ``limit_s`` in its latest reading (``meter_clock_offset``).

    A minute of drift moves a minute around every TOU boundary into the wrong register and shifts the
    meter's demand windows; the collector never sets a meter clock (read-only), so this is a task for
    the utility or the meter owner.
    """
    t = _checks.time_ns(time_ns)
    off = _checks.as_float(offset_s, "offset_s")
    _checks.same_shape("offset_s", off, "time_ns", t)
    good = np.isfinite(off)
    if not good.any():
        return None
    last = float(off[good][-1])
    if abs(last) <= limit_s:
        return None
    ts = t[good]
    rate = None
    if ts.size >= 2 and ts[-1] > ts[0]:
        rate = float(np.polyfit((ts - ts[0]) / 86400e9, off[good], 1)[0])
    evidence = {"offset_s": round(last, 1), "limit_s": limit_s, "drift_s_per_day": None if rate is None else round(rate, 2),
                "readings": int(ts.size)}
    texts = ft.texts("meter_clock_drift", evidence)
    texts["severity"] = "major" if abs(last) > 15 * limit_s else "minor"
    return Finding(type="meter_clock_drift", site_id=site_id, device_id=device_id, start_ns=int(ts[0]),
                   end_ns=int(ts[-1]), evidence=evidence, **texts)


def meter_checks(site_id: str, device_id: str, data: Mapping[str, np.ndarray], tariff: Tariff | None, *,
                 clock_limit_s: float = 60.0) -> list[Finding]:
    """Both checks on one DL/T 645 meter's series over a period (``time_ns``, ``energy_import``,
    ``energy_import_t1..t4``, ``meter_clock_offset``; absent channels skip their check).

    The registers are compared between the first and the last sample where the total and all four
    registers were read; without a tariff only the clock is judged.  A tariff whose periods have no
    meter register is logged and skipped (the clock is still judged).
    """
    out: list[Finding] = []
    t = _checks.time_ns(data["time_ns"])
    names = ["energy_import", *(f"energy_import_t{k}" for k in (1, 2, 3, 4))]
    if tariff is not None and all(n in data for n in names):
        cols = np.vstack([_checks.as_float(data[n], n) for n in names])
        idx = np.flatnonzero(np.isfinite(cols).all(axis=0))
        if idx.size >= 2:
            regs = {k: cols[k] for k in (1, 2, 3, 4)}
            try:
                f = tou_register_check(t[idx], cols[0][idx], {k: float(r[idx[0]]) for k, r in regs.items()},
                                       {k: float(r[idx[-1]]) for k, r in regs.items()}, tariff,
                                       site_id=site_id, device_id=device_id)
            except ValueError as exc:
                log.warning("meter %s: TOU registers not checked: %s", device_id, exc)
            else:
                out += [f] if f is not None else []
    if "meter_clock_offset" in data:
        f = clock_drift_check(t, data["meter_clock_offset"], site_id=site_id, device_id=device_id,
                              limit_s=clock_limit_s)
        out += [f] if f is not None else []
    return out

"""Detection benchmark: inject faults of every type at random devices and times, detect them as the live
follower does, and report recall, false alarms per fault-free site-day and the time to detection.

1. Faults: ``--per-type`` faults (default 4) of each of the simulator's 12 fault types
   (``simulators.signals.FAULT_TYPES``), each at a device drawn at random among the fleet's devices of a
   kind the fault applies to (all three example sites), starting at a random minute of the working
   hours 09:00-16:00 local of a random working day of March-September 2026, lasting one hour (C&I
   sites: faults that depend on load, PF or PV output are observable when the site works).  Seeded
   (``--seed``, default 20261204; the tests use 1-41).
2. Live detection: the device's 5-s samples (the collectors' poll period) from 35 min before the
   onset; at every poll after the onset the follower's evaluation is replayed — the last 35 min
   of samples through ``assess.assess_device`` with ``jobs.LIVE_RULES``, then
   ``alarms.findings_to_events`` and ``alarms.reconcile`` — until an alarm of the expected type
   is raised on that device (its transformer for an overload) or ``--max-wait`` s have passed.
   A silent device leaves a gap and ``collector_status`` online 0 (``timeout`` /
   ``exception_NN``), as the collectors write it.
3. False alarms: every device of every site over ``--clean-days`` fault-free days (5-s samples,
   24 h), evaluated in 35-min windows every 30 min (every sample is in at least one window, so
   every condition the follower would see is seen), raised alarms counted per site-day.

Prints recall (per type and overall), false alarms per fault-free site-day and p50/p99 of the time
from fault onset to the raise, and the evaluation cost per follower step beside the bare
``values_array`` cost of producing the same samples, as a ratio.
Run: ``.venv/bin/python bench/bench_detection.py`` (no network; ~5-10 min on 2 shared cores).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np

from analytics import alarms, assess
from analytics.jobs import LIVE_RULES
from core import workdays
from core.config import load_fleet
from core.units import NS
from simulators.signals import FAULT_TYPES, FleetSignals

POLL_S = 5.0
LOOKBACK_S = 2100.0
EXPECT = {"inverter_trip": {"inverter_trip"}, "string_loss": {"string_mismatch"},
          "transformer_overtemp": {"transformer_overtemp", "transformer_trip"},
          "low_power_factor": {"low_power_factor"}, "harmonic_distortion": {"harmonic_voltage", "harmonic_current"},
          "phase_unbalance": {"current_unbalance"}, "voltage_sag": {"voltage_deviation"},
          "device_silent": {"comms_loss"}, "device_exceptions": {"comms_loss"}, "ev_fault": {"ev_fault"},
          "ev_stuck": {"ev_stuck"}, "meter_reset": {"counter_reset"}}
TZ_H = 8                               # example sites are in China (UTC+8)


def working_days(rng: np.random.Generator, n: int) -> list[date]:
    days = [date(2026, 3, 1) + timedelta(d) for d in range(214)]
    days = [d for d in days if workdays.is_workday(d)]
    return [days[i] for i in rng.integers(0, len(days), n)]


def plan(fleet, rng: np.random.Generator, per_type: int) -> list[tuple]:
    """(device, fault, onset [unix s], params) for ``per_type`` faults of every type."""
    out = []
    for fault, (kinds, _) in sorted(FAULT_TYPES.items()):
        devs = [d for d in fleet.devices.values() if d.kind in kinds]
        for day in working_days(rng, per_type):
            dev = devs[int(rng.integers(0, len(devs)))]
            local = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(minutes=int(rng.integers(0, 420)))
            onset = int(local.timestamp()) - TZ_H * 3600
            params = {"mppt": int(rng.integers(1, 5))} if fault == "string_loss" else {}
            if fault == "device_exceptions":
                params = {"code": int(rng.choice([2, 4, 11]))}
            out.append((dev.id, fault, onset, params))
    return out


def samples(sig: FleetSignals, dev: str, t: np.ndarray) -> tuple[dict, tuple]:
    """5-s data and collector status as the collectors store them (a silent device leaves a gap)."""
    v = sig.values_array(dev, t)
    silent = sig.fault_mask(dev, "device_silent", t)
    exc = sig.fault_mask(dev, "device_exceptions", t)
    gap = silent | exc
    code = next((w.params.get("code", 4) for w in sig.windows(dev) if w.fault == "device_exceptions"), 4)
    text = np.where(silent, "timeout", np.where(exc, f"exception_{code:02d}", "ok")).astype(object)
    data = {k: a[~gap] for k, a in v.items()} | {"time_ns": (t[~gap] * NS).astype(np.int64)}
    return data, ((t * NS).astype(np.int64), np.where(gap, 0.0, 1.0), text)


def _window(data: dict, status: tuple, lo: int, hi: int) -> tuple[dict, tuple]:
    a, b = np.searchsorted(data["time_ns"], [lo, hi])
    c, d = np.searchsorted(status[0], [lo, hi])
    return {k: x[a:b] for k, x in data.items()}, tuple(x[c:d] for x in status)


def detect_one(fleet, seed: int, dev: str, fault: str, onset: int, params: dict, max_wait_s: float) -> dict:
    """Replay the follower from the onset until the expected alarm is raised."""
    sig = FleetSignals(fleet, seed=seed)
    sig.schedule([(dev, fault, onset, onset + 3600, params)])
    device, site = fleet.devices[dev], fleet.sites[fleet.devices[dev].site_id]
    targets = {dev} | {tr.id for tr in site.transformers if tr.meter == dev}
    t = np.arange(onset - LOOKBACK_S, onset + max_wait_s + POLL_S, POLL_S)
    data, status = samples(sig, dev, t)
    open_, done, steps, cost = {}, {}, 0, 0.0
    for now_s in np.arange(onset + POLL_S, onset + max_wait_s + POLL_S, POLL_S):
        now = int(now_s * NS)
        lo = now - int(LOOKBACK_S * NS)
        d, st = _window(data, status, lo, now)
        t0 = time.perf_counter()
        f = assess.assess_device(site, device, d, lo, now, st, LIVE_RULES)
        ev = alarms.findings_to_events(f, now_ns=now, merge_gap_s=10.0)
        sent, open_, done = alarms.reconcile(open_, ev, now, done)
        cost += time.perf_counter() - t0
        steps += 1
        hit = [e for e in sent if e.cleared_ns is None and e.type in EXPECT[fault] and e.device_id in targets
               and (e.suppressed_by is None or e.type == "comms_loss")]
        if hit:
            return {"detected": True, "latency_s": now_s - onset, "steps": steps, "cost_s": cost}
    return {"detected": False, "latency_s": None, "steps": steps, "cost_s": cost}


def false_alarms(fleet, seed: int, days: int) -> tuple[int, int, list]:
    """Alarms raised on fault-free days: (alarms, site-days, their keys)."""
    rng = np.random.default_rng(seed + 1)
    sig = FleetSignals(fleet, seed=seed + 1)
    raised, keys = 0, []
    for day in working_days(rng, days):
        t0 = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) - TZ_H * 3600
        t = np.arange(t0 - LOOKBACK_S, t0 + 86400, POLL_S)
        for site in fleet.sites.values():
            found = []
            for dev in site.devices:
                data, status = samples(sig, dev.id, t)
                for end in np.arange(t0 + 1800, t0 + 86400 + 1, 1800.0):
                    hi, lo = int(end * NS), int((end - LOOKBACK_S) * NS)
                    d, st = _window(data, status, lo, hi)
                    found += assess.assess_device(site, dev, d, lo, hi, st, LIVE_RULES)
            ev = alarms.findings_to_events(found, now_ns=(t0 + 86400) * NS, merge_gap_s=10.0)
            raised += len(ev)
            keys += [(str(day), e.key, e.message_en) for e in ev]
    return raised, days * len(fleet.sites), keys


def bare_cost(fleet, seed: int, n: int = 200) -> float:
    """Seconds for the bare numpy kernels the checks are made of (per channel: isfinite, a comparison,
    diff, cumsum, a running max) over one 35-min window of 5-s samples of a PV inverter (the widest device)."""
    sig = FleetSignals(fleet, seed=seed)
    t = np.arange(1772409600.0, 1772409600.0 + LOOKBACK_S, POLL_S)
    v = [np.asarray(a, float) for a in sig.values_array("acme-plant1-pv1", t).values()]
    t0 = time.perf_counter()
    for _ in range(n):
        for a in v:
            ok = np.isfinite(a)
            np.cumsum(ok & (a > 0))
            np.maximum.accumulate(np.diff(a))
    return (time.perf_counter() - t0) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--per-type", type=int, default=4)
    ap.add_argument("--max-wait", type=float, default=2400.0, help="give up on a fault after this [s]")
    ap.add_argument("--clean-days", type=int, default=2)
    ap.add_argument("--fleet", default="sites.example.toml")
    a = ap.parse_args(argv)
    fleet = load_fleet(a.fleet)
    rng = np.random.default_rng(a.seed)
    rows = []
    wall = time.perf_counter()
    for dev, fault, onset, params in plan(fleet, rng, a.per_type):
        r = detect_one(fleet, a.seed, dev, fault, onset, params, a.max_wait)
        rows.append({"device": dev, "fault": fault, "onset": onset} | r)
        if not r["detected"]:
            at = datetime.fromtimestamp(onset + TZ_H * 3600, UTC).strftime("%Y-%m-%d %H:%M")
            print(f"  missed: {fault} on {dev} at {at} local {params or ''}")
    by_type: dict[str, list] = {}
    for r in rows:
        by_type.setdefault(r["fault"], []).append(r)
    print(f"{'fault type':24s} {'found':>7s} {'p50 s':>7s} {'max s':>7s}")
    for fault, rs in sorted(by_type.items()):
        lat = [r["latency_s"] for r in rs if r["detected"]]
        print(f"{fault:24s} {sum(r['detected'] for r in rs):>3d}/{len(rs):<3d} "
              f"{np.median(lat) if lat else float('nan'):>7.0f} {max(lat) if lat else float('nan'):>7.0f}")
    lat = np.array([r["latency_s"] for r in rows if r["detected"]])
    n_ok = sum(r["detected"] for r in rows)
    print(f"recall: {n_ok}/{len(rows)} = {n_ok / len(rows):.1%} (goal >= 97 %)")
    if lat.size:
        print(f"time from onset to alarm: p50 {np.percentile(lat, 50):.0f} s, p99 {np.percentile(lat, 99):.0f} s")
    steps = sum(r["steps"] for r in rows)
    per_step = sum(r["cost_s"] for r in rows) / max(steps, 1)
    bare = bare_cost(fleet, a.seed)
    print(f"follower step (35 min of 5-s data, one device, checks + alarms): {per_step * 1e3:.2f} ms; bare numpy "
          f"kernels over the widest device's window {bare * 1e3:.2f} ms; ratio {per_step / bare:.1f}")
    fa, site_days, keys = false_alarms(fleet, a.seed, a.clean_days)
    if site_days:
        print(f"false alarms: {fa} in {site_days} fault-free site-days = {fa / site_days:.2f} per site-day (goal 0)")
    for k in keys:
        print(f"  false alarm: {k}")
    print(f"wall time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

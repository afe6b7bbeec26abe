"""Benchmark of the analytics engine against the bare numpy work it is made of (one core).

1. Full analysis of one site-month at 1-min resolution already in memory (43,200 samples per
   channel; a meter + transformer controller + EV charger = 62 channels, and the whole
   acme-office site = 116 channels): every fault check, the EN 50160-style PQ summary, the
   priced savings and the alarm build, beside the bare numpy kernels those checks are made of
   (per channel: isfinite, diff, two comparisons, cumsum, a running max; the PQ 10-min
   reduceat; the percentiles and sorts of the savings) with no Python glue.
2. FFT harmonic analysis of 10,000 windows of 2,048 samples (10 cycles at 50 Hz, fs = 10,240 Hz)
   with IEC 61000-4-7 subgroups and THD, beside bare ``np.fft.rfft`` + ``abs``.

Targets (issue 3): within 3x of bare numpy; one site-month under 300 ms on one core.
Run: ``.venv/bin/python bench/bench_analytics.py`` (loopback/no network; ~20 s).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from analytics import alarms, assess, savings  # noqa: E402
from analytics import power_quality as pq  # noqa: E402
from analytics import tariffs as tf  # noqa: E402
from core.config import load_fleet  # noqa: E402
from simulators.signals import FleetSignals  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
T0 = 1772323200                      # 2026-03-01T00:00Z
N = 43_200                           # 30 days at 1 min


def best_of(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` runs [s] (after one warm-up)."""
    fn()
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def load_month(fleet, site_id: str, devices: list[str] | None = None):
    sig = FleetSignals(fleet, seed=1)
    t = T0 + np.arange(N) * 60.0
    data = {}
    for d in fleet.sites[site_id].devices:
        if devices is None or d.id in devices:
            v = sig.values_array(d.id, t)
            v["time_ns"] = (t * 1e9).astype(np.int64)
            data[d.id] = v
    return data


def full_analysis(site, data, tariff):
    t = next(iter(data.values()))["time_ns"]
    start, end = int(t[0]), int(t[-1]) + 60 * 10**9
    findings = []
    for d in site.devices:
        if d.id in data:
            findings += assess.assess_device(site, d, data[d.id], start, end)
    meters = [tr.meter for tr in site.transformers if tr.meter in data]
    for m in meters:
        findings += assess.pq_findings(site, m, data[m])
    if meters:
        p_kw = sum(data[m]["active_power"] for m in meters) / 1000.0
        q_kvar = sum(data[m]["reactive_power"] for m in meters) / 1000.0
        s_kva = sum(data[m]["apparent_power"] for m in meters) / 1000.0
        kva = sum(tr.rated_kva for tr in site.transformers)
        findings += [
            savings.pf_correction(site.id, t, p_kw, q_kvar, 100_000.0),
            savings.basic_charge_choice(site.id, t, p_kw, kva, tariff),
            savings.peak_shaving(site.id, t, p_kw, tariff),
            savings.base_load_waste(site.id, t, p_kw, tariff),
            savings.transformer_operation(site.id, t, s_kva, [tr.rated_kva for tr in site.transformers],
                                          [tr.p0_kw for tr in site.transformers],
                                          [tr.pk_kw for tr in site.transformers], 0.65),
        ]
    evs = [d for d in site.devices if d.kind == "ev_charger" and d.id in data]
    if evs:
        findings.append(savings.tou_shift(site.id, t, sum(data[d.id]["active_power"] for d in evs) / 1000.0,
                                          tariff, 0.5, "ev_valley_charging"))
    alarms.findings_to_events(findings)
    return findings


def bare_numpy(data):
    """The array kernels of the analysis with no glue: what numpy alone needs to touch every value."""
    acc = 0.0
    for dev in data.values():
        t = dev["time_ns"]
        np.diff(t)
        for k, x in dev.items():
            if k == "time_ns":
                continue
            ok = np.isfinite(x)
            d = np.diff(x)
            m = (x < 0.9) | (x > 1.1)
            c = np.cumsum(np.where(ok, x, 0.0))
            r = np.maximum.accumulate(np.where(m, -1, np.arange(x.size)))
            acc += c[-1] + d[0] + r[-1]
        if "voltage_l1" in dev and "thd_voltage_l1" in dev:
            u = np.column_stack([dev[f"voltage_l{p}"] for p in (1, 2, 3)])
            starts = np.arange(0, t.size, 10)
            np.add.reduceat(u * u, starts, axis=0)
            np.add.reduceat(np.column_stack([dev[f"thd_voltage_l{p}"] for p in (1, 2, 3)]) ** 2, starts, axis=0)
        if "active_power" in dev:
            p = dev["active_power"]
            np.percentile(p, [10, 50, 95, 98, 99])
            np.sort(p)
    return acc


def n_channels(data) -> int:
    return sum(len(v) - 1 for v in data.values())


def main() -> None:
    fleet = load_fleet(ROOT / "sites.example.toml")
    site = fleet.sites["acme-office"]
    tariff = tf.load_tariff(site.tariff)
    print(f"numpy {np.__version__}; one process, OMP/OpenBLAS threads = 1; best of 5 after warm-up\n")
    print("== 1. full analysis of one site-month at 1 min (in memory) ==")
    subsets = {"meter + transformer + EV charger": ["acme-office-meter", "acme-office-temp", "acme-office-ev1"],
               "whole acme-office site": None}
    for label, devs in subsets.items():
        data = load_month(fleet, site.id, devs)
        ours = best_of(lambda data=data: full_analysis(site, data, tariff))
        bare = best_of(lambda data=data: bare_numpy(data))
        nf = len(full_analysis(site, data, tariff))
        print(f"{label}: {n_channels(data)} channels x {N} samples ({n_channels(data) * N / 1e6:.2f} M values), "
              f"{nf} findings (savings + PQ table; fault-free month)")
        print(f"  energyhost full analysis : {ours * 1e3:8.1f} ms   ({n_channels(data) * N / ours / 1e6:6.1f} M values/s)")
        print(f"  bare numpy kernels       : {bare * 1e3:8.1f} ms")
        print(f"  ratio                    : {ours / bare:8.2f} x   (target ≤ 3 x; ≤ 300 ms)\n")
    print("== 2. FFT harmonic analysis: 10,000 windows x 2,048 samples ==")
    rng = np.random.default_rng(0)
    n, fs = 2048, 10240.0
    tt = np.arange(n) / fs
    base = np.sqrt(2) * (230 * np.sin(2 * np.pi * 50 * tt) + 6 * np.sin(2 * np.pi * 250 * tt + 0.3))
    x = base[None, :] + rng.normal(0, 0.5, (10_000, n))

    def ours_fft():
        h = pq.harmonic_spectrum(x, fs, grouping="subgroup")
        return pq.thd(h), pq.harmonic_ratio(h)

    def bare_fft():
        return np.abs(np.fft.rfft(x, axis=-1))

    o, b = best_of(ours_fft, 3), best_of(bare_fft, 3)
    print(f"  energyhost harmonic_spectrum + thd + ratios : {o * 1e3:8.1f} ms  ({10_000 / o:,.0f} windows/s)")
    print(f"  bare np.fft.rfft + abs                      : {b * 1e3:8.1f} ms  ({10_000 / b:,.0f} windows/s)")
    print(f"  ratio                                       : {o / b:8.2f} x   (target ≤ 3 x)")
    thd = ours_fft()[0]
    print(f"  check: THD of the test signal = {np.median(thd):.4f} % (expected ≈ {600 / 230:.4f} % + noise)")


if __name__ == "__main__":
    main()

"""Poll slots spread across the interval by a stable per-device phase (not one burst per slot)."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from collector.modbus import ModbusCollector, device_phase_ns
from core.config import parse_fleet
from core.profiles import load_profiles
from energyhost.devstack import free_port
from simulators.modbus_server import serve_fleet

PROFILES = load_profiles()


def test_phases_are_stable_and_spread_evenly():
    interval = 5_000_000_000
    ids = [f"site{i // 40}-meter{i % 40}" for i in range(10_000)]
    phases = np.array([device_phase_ns(d, interval) for d in ids])
    assert phases.min() >= 0 and phases.max() < interval
    assert [device_phase_ns(d, interval) for d in ids[:50]] == list(phases[:50])       # stable
    counts, _ = np.histogram(phases, bins=50, range=(0, interval))     # 100-ms buckets: 200 expected each
    assert counts.max() < 1.3 * 200 and counts.min() > 0.7 * 200
    # a long interval spreads over 10 s only: a reading is never taken long after its slot's timestamp
    assert max(device_phase_ns(d, 3600 * 10**9) for d in ids) < 10 * 10**9


def test_each_device_is_read_at_its_phase_and_stamped_with_its_slot():
    ids = ["m-a", "m-b", "m-c"]
    devs = [{"id": d, "kind": "meter", "transport": "modbus", "profile": "meter_acrel_dtsd1352",
             "host": "127.0.0.1", "port": free_port(), "poll_interval_s": 1.0} for d in ids]
    fleet = parse_fleet({"customer": [{"id": "c", "site": [{"id": "s", "device": devs}]}]})
    seen: list[tuple[str, int, float]] = []

    def sink(points):
        seen.append((points[-1].tags["device"], points[-1].time_ns, time.time()))

    async def main():
        sim = await serve_fleet(fleet, PROFILES, lambda dev, t: {"voltage_l1": 230.0})
        try:
            col = ModbusCollector(fleet, PROFILES, sink)
            stop = asyncio.Event()
            task = asyncio.create_task(col.run(stop))
            await asyncio.sleep(3.2)
            stop.set()
            await asyncio.wait_for(task, 10)
            return col.stats()
        finally:
            await sim.stop()

    stats = asyncio.run(main())
    # the schedule lag (poll end minus slot start plus phase) is reported, over the same polls
    assert 0 <= stats["lag_ms_p50"] <= stats["lag_ms_p99"] <= stats["lag_ms_max"] < 250
    phases = {d: device_phase_ns(d, 10**9) / 1e9 for d in ids}
    assert len({round(p, 2) for p in phases.values()}) == 3          # three different phases
    for did, slot_ns, at in seen:
        assert slot_ns % 10**9 == 0                                       # timestamps stay aligned
        lag = at - slot_ns / 1e9 - phases[did]                            # read at the phase, not at the slot start
        assert 0 <= lag < 0.25, (did, lag, phases[did])
    assert {d for d, _, _ in seen} == set(ids)

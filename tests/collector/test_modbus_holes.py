"""A device that refuses a block read across unmapped registers (exception 02): smaller reads, remembered."""

from __future__ import annotations

import asyncio
import math

from collector.modbus import ModbusCollector
from core.config import parse_fleet
from core.profiles import load_profiles
from energyhost.devstack import free_port
from simulators.modbus_server import serve_fleet

PROFILES = load_profiles()


def _fleet(profile: str, port: int):
    dev = {"id": "m", "kind": PROFILES[profile].kind, "transport": "modbus", "profile": profile,
           "host": "127.0.0.1", "port": port, "poll_interval_s": 0.3, "timeout_s": 0.5}
    return parse_fleet({"customer": [{"id": "c", "site": [{"id": "s", "device": [dev]}]}]})


def _values(profile) -> dict[str, float]:
    return {r.key: float(100 + 3 * i) * r.scale for i, r in enumerate(profile.registers) if r.is_channel}


async def _collect(fleet, strict: bool, seconds: float):
    points: list = []
    sim = await serve_fleet(fleet, PROFILES, lambda dev, t: values, strict_maps=frozenset({"m"} if strict else ()))
    try:
        col = ModbusCollector(fleet, PROFILES, points.extend)
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(task, 10)
        return points, dict(sim.stats), col
    finally:
        await sim.stop()


values: dict[str, float] = {}


def test_block_refused_across_a_hole_is_read_in_smaller_parts_and_the_plan_is_kept():
    profile = PROFILES["meter_acrel_dtsd1352"]
    assert any(b.registers[i + 1].address != b.registers[i].end          # the profile has a hole to fall in
               for b in profile.blocks for i in range(len(b.registers) - 1))
    values.clear()
    values.update(_values(profile))
    fleet = _fleet(profile.id, free_port())
    points, sim_stats, col = asyncio.run(_collect(fleet, True, 2.0))
    meters = [p for p in points if p.measurement == "meter"]
    status = [p.fields["status"] for p in points if p.measurement == "collector_status"]
    assert len(meters) >= 4 and set(status) == {"ok"}
    for key, v in values.items():                       # every channel, the ones beside the holes too
        assert all(math.isclose(p.fields[key], v, rel_tol=1e-3, abs_tol=0.02) for p in meters), key
    # the refusal costs requests at the first poll only: the split plan is remembered for the device
    assert sim_stats["exception_02"] >= 1
    first_refusals = sim_stats["exception_02"]
    poller = col.pollers[0]
    assert len(poller.blocks) > len(profile.blocks)
    assert sim_stats["fc03"] == len(status) * len(poller.blocks) + first_refusals


def test_map_without_holes_keeps_the_profile_plan():
    """No refusal, no split: the profile's few large reads stay the plan."""
    profile = PROFILES["meter_acrel_dtsd1352"]
    values.clear()
    values.update(_values(profile))
    fleet = _fleet(profile.id, free_port())
    points, sim_stats, col = asyncio.run(_collect(fleet, False, 1.0))
    status = [p.fields["status"] for p in points if p.measurement == "collector_status"]
    assert set(status) == {"ok"} and sim_stats.get("exception_02", 0) == 0
    assert col.pollers[0].blocks == profile.blocks

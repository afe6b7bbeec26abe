"""``energyhost commission DEVICE``: read one device live for a while and judge its profile.

The device is read through the collector's own code (:class:`collector.modbus.ModbusCollector`
for Modbus and SunSpec, :class:`collector.dlt645.Dlt645Collector` for DL/T 645: the same links,
profiles, word orders, scales and CT/PT ratios as in production), then judged by
:mod:`collector.commission`.  Nothing is written to InfluxDB.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping

from collector.commission import Context, Finding, Sample, judge
from core.config import Device, Fleet


def context_for(fleet: Fleet, device: Device, registers: Mapping | None) -> Context:
    """Nominal voltage from the site; rated current from the transformer this meter measures (or the
    device's own rating), per phase at the nominal phase voltage."""
    site = fleet.sites[device.site_id]
    kva = next((t.rated_kva for t in site.transformers if t.meter == device.id), None)
    if kva is None and device.rated_power_kw is not None:
        kva = device.rated_power_kw
    rated = kva * 1000.0 / (3.0 * site.nominal_voltage_v) if kva else None
    return Context(kind=device.kind, nominal_voltage_v=site.nominal_voltage_v, rated_current_a=rated,
                   ct_ratio=device.ct_ratio, registers=registers)


def _collector(fleet: Fleet, profiles: Mapping, device: Device):
    if device.transport == "modbus":
        from collector.modbus import ModbusCollector

        return ModbusCollector(fleet, profiles, lambda points: None, devices=[device.id])
    if device.transport == "dlt645":
        from collector.dlt645 import Dlt645Collector

        return Dlt645Collector(fleet, profiles, lambda points: None, devices=[device.id])
    raise ValueError(f"device {device.id!r}: a {device.transport} device is not read by polling; commissioning "
                     "covers Modbus, SunSpec and DL/T 645 devices")


async def read_live(fleet: Fleet, profiles: Mapping, device_id: str, seconds: float,
                    interval_s: float = 1.0) -> tuple[list[Sample], list[str], object]:
    """Poll ``device_id`` every ``interval_s`` for ``seconds`` (bounded); returns the samples with fields,
    every poll's status, and the poller (its profile's registers, its plan)."""
    device = fleet.devices[device_id]
    col = _collector(fleet, profiles, device)
    poller = col.pollers[0]
    samples: list[Sample] = []
    statuses: list[str] = []
    end = time.monotonic() + seconds
    try:
        for _ in range(int(seconds / interval_s) + 1):
            started = time.time()
            points = await poller.poll(int(started * 1e9))
            statuses.append(points[-1].fields["status"])
            if len(points) > 1:
                samples.append(Sample(started, dict(points[0].fields)))
            if time.monotonic() >= end:
                break
            await asyncio.sleep(max(0.0, interval_s - (time.time() - started)))
    finally:
        for link in col.links.values():
            link.close()
    return samples, statuses, poller


def registers_of(poller) -> dict:
    """Profile rows by channel (Modbus and SunSpec: the plan's blocks; DL/T 645: none)."""
    return {r.key: r for b in (getattr(poller, "blocks", None) or ()) for r in b.registers if r.is_channel}


def commission(fleet: Fleet, profiles: Mapping, device_id: str, seconds: float,
               interval_s: float = 1.0) -> tuple[list[Finding], list[str]]:
    """Read and judge one device; returns the findings and the poll statuses."""
    if device_id not in fleet.devices:
        raise ValueError(f"no device {device_id!r} in the fleet file")
    if not 2 <= seconds <= 600 or not math.isfinite(seconds):
        raise ValueError(f"--seconds must be 2..600, got {seconds}")
    samples, statuses, poller = asyncio.run(read_live(fleet, profiles, device_id, seconds, interval_s))
    if len(samples) < 2:
        raise ValueError(f"device {device_id!r}: fewer than 2 answered polls in {seconds:g} s "
                         f"(statuses {sorted(set(statuses))})")
    ctx = context_for(fleet, fleet.devices[device_id], registers_of(poller))
    return judge(samples, ctx), statuses

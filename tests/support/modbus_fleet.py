"""The Modbus test fleet: profiles, fleet and device builders, expected register values, free ports
below the ephemeral range and a bounded collector run (shared by the Modbus collector tests).
"""

from __future__ import annotations

import asyncio
import math
import random
import socket

import pymodbus.pdu.bit_message
import pymodbus.pdu.diag_message
import pymodbus.pdu.file_message
import pymodbus.pdu.mei_message
import pymodbus.pdu.other_message
import pymodbus.pdu.register_message  # noqa: F401 - imported so every request class is listed

from collector.modbus import (
    ModbusCollector,
)
from core.config import parse_fleet
from core.profiles import TYPES, load_profiles, precision, sunspec_layout
from energyhost.devstack import free_port as _free_port

PROFILES = load_profiles()


_GIVEN: set[int] = set()


_RNG = random.Random()


def free_port() -> int:
    """A free loopback port, never handed out before in this process, below the kernel's ephemeral
    range (32768-60999) so that no outgoing connection of a concurrent test can take it before the
    simulator binds it (energyhost.devstack.free_port picks from that range)."""
    for _ in range(500):
        p = _RNG.randrange(20000, 32000)
        if p in _GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        _GIVEN.add(p)
        return p
    return _free_port()


KIND = {pid: p.kind for pid, p in PROFILES.items()}


def _fleet(devices: list[dict], gateways: list[dict] = ()) -> object:
    return parse_fleet({"customer": [{"id": "cust", "site": [
        {"id": "site1", "gateway": list(gateways), "device": devices}]}]})


def _dev(did: str, profile: str, *, port: int | None = None, gateway: str | None = None, unit: int = 1,
         interval: float = 0.5, timeout: float = 0.25, retries: int = 1) -> dict:
    d = {"id": did, "kind": KIND[profile], "transport": "modbus", "profile": profile, "unit_id": unit,
         "poll_interval_s": interval, "timeout_s": timeout, "retries": retries}
    if gateway:
        d["gateway"] = gateway
    else:
        d.update(host="127.0.0.1", port=port)
    return d


def _registers(profile, chain=None):
    if profile.protocol == "sunspec":
        chain = chain or sunspec_layout(profile)[0]
    return profile.resolve(chain)


def expected_values(profile, salt: int = 0, chain=None) -> dict[str, float]:
    """Per channel a value that the row can carry exactly (a whole number of steps)."""
    regs = _registers(profile, chain)
    sfs = {r.key: int(r.default or 0) for r in regs if r.type == "sunssf"}
    out = {}
    for i, r in enumerate(regs):
        if not r.is_channel:
            continue
        raw = 100 + 7 * i + salt
        step = r.scale * (10.0 ** sfs[r.scale_factor] if r.scale_factor else 1.0)
        out[r.key] = raw * step + r.offset if TYPES[r.type].integer else 1.5 * raw * r.scale
    return out


def _check_fields(profile, fields, values, chain=None):
    regs = _registers(profile, chain)
    sfs = {r.key: int(r.default or 0) for r in regs if r.type == "sunssf"}
    for r in regs:
        if r.is_channel:
            assert r.key in fields, f"{profile.id}: {r.key} missing"
            tol = precision(r, sfs.get(r.scale_factor, 0)) + 1e-6 * abs(values[r.key])
            assert math.isclose(fields[r.key], values[r.key], abs_tol=tol), (profile.id, r.key)


async def _run(collector: ModbusCollector, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)


def _by_device(points, measurement=None):
    out: dict[str, list] = {}
    for p in points:
        if measurement is None or p.measurement == measurement:
            out.setdefault(p.tags["device"], []).append(p)
    return out

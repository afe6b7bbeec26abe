"""Modbus servers that serve a fleet's devices from the same profile files the collector reads.

One pymodbus TCP server per (host, port) of directly connected devices (Modbus TCP, MBAP
framing), and one RTU-framed-over-TCP server per serial gateway holding all its unit ids —
what a serial-to-Ethernet gateway in a distribution room looks like from the network.

Values come from ``values_fn(device, t) -> {channel: value}`` (e.g.
``simulators.signals.FleetSignals``) and are encoded into the registers with
:func:`core.profiles.encode` every ``update_interval_s``.  Misbehaviour comes from
``behaviour_fn(device_id)``, asked on every request:

* ``"normal"`` — answer;
* ``"silent"`` — accept the TCP connection, never answer (a blackhole);
* ``"late"`` — answer after 1.5 × the device's timeout (a late answer);
* ``"slow"`` — answer after 0.75 × the timeout (slow, but in time);
* an ``int`` — answer with that Modbus exception code (e.g. 2, 4, 6, 0x0B).

Reads outside the registers a profile maps answer exception 02 (illegal data address), as
real devices do; every write request is refused with exception 01 and counted.  By default the
gaps inside one planned block read as zeros; ``strict_maps`` names devices that map only the
profile's rows, so a read spanning a gap between them is refused with 02 (a "hole", as many
meters answer a block read across unmapped addresses).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.channels import primary_factors
from core.config import Device, Fleet
from core.profiles import Profile, Register, SunSpecModel, encode, plan_blocks, sunspec_layout
from simulators import sunspec

log = logging.getLogger(__name__)

ValuesFn = Callable[[Device, float], Mapping[str, float]]
BehaviourFn = Callable[[str], "str | int"]
_FC_TABLE = {3: "holding", 4: "input"}


def normal(_device_id: str) -> str:
    """Behaviour of a healthy fleet."""
    return "normal"


class DeviceImage:
    """The register image of one simulated device."""

    def __init__(self, device: Device, profile: Profile, registers: tuple[Register, ...],
                 fixed: Mapping[tuple[str, int], int], spans: list[tuple[str, int, int]],
                 chain: tuple[SunSpecModel, ...] = ()):
        self.device, self.profile, self.registers, self.chain = device, profile, registers, chain
        self.words: dict[str, dict[int, int]] = {"holding": {}, "input": {}}
        for table, start, count in spans:
            for a in range(start, start + count):
                self.words[table][a] = 0
        for (table, a), w in fixed.items():
            self.words[table][a] = w
        self.updated = 0.0
        self.clamped: Counter = Counter()
        self.late_s = 1.5 * device.timeout_s      # "late" answers come after the poller's timeout
        # a meter behind CTs/PTs serves secondary values: the model's primary value / factor
        self.secondary = primary_factors(profile.channels, device.ct_ratio, device.pt_ratio)

    def update(self, values: Mapping[str, float]) -> None:
        """Encode ``values``; a value out of its register's range saturates (counted in ``clamped``)."""
        self.apply(*self.encode(values))

    def encode(self, values: Mapping[str, float]) -> tuple[dict[tuple[str, int], int], list[str]]:
        """Words for ``values`` (pure: may run in a worker thread) and the keys that saturated."""
        clamped: list[str] = []
        if self.secondary:
            values = {k: v / self.secondary[k] if k in self.secondary else v for k, v in values.items()}
        words = encode(self.registers, values, clamp=True, clamped=clamped)
        if self.chain:
            words.update(sunspec.derived_words(self.chain, words))
        return words, clamped

    def apply(self, words: Mapping[tuple[str, int], int], clamped: list[str]) -> None:
        for (table, a), w in words.items():
            self.words[table][a] = w
        self.clamped.update(clamped)

    def read(self, table: str, address: int, count: int) -> list[int] | None:
        words = self.words[table]
        try:
            return [words[a] for a in range(address, address + count)]
        except KeyError:
            return None


def build_image(device: Device, profile: Profile, *, sunspec_base: int = 40000,
                sunspec_modules: Mapping[int, int] | None = None, strict: bool = False) -> DeviceImage:
    """Registers of ``device``: every planned block zero-filled (``strict``: only the profile's rows, so the
    gaps between them are holes); a SunSpec map gets its chain headers and every point the profile does
    not map (identity, counts, "not implemented": simulators.sunspec)."""
    if profile.protocol == "sunspec":
        chain, header = sunspec_layout(profile, sunspec_base, sunspec_modules)
        regs = profile.resolve(chain)
        end = max(header) + 1
        spans = [("holding", sunspec_base, end - sunspec_base)]
        fixed = {("holding", a): w for a, w in (sunspec.base_words(chain, device) | header).items()}
        return DeviceImage(device, profile, regs, fixed, spans, tuple(chain))
    regs = profile.registers
    spans = [(b.table, b.start, b.count) for b in plan_blocks(regs, max_gap=-1 if strict else profile.max_gap)]
    return DeviceImage(device, profile, regs, {}, spans)


class _Context:
    """Duck-typed pymodbus server context: unit id → image, with injected misbehaviour."""

    def __init__(self, units: dict[int, DeviceImage], behaviour_fn: BehaviourFn, stats: Counter):
        self.units, self.behaviour_fn, self.stats = units, behaviour_fn, stats

    def device_ids(self) -> list[int]:
        return list(self.units)

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):  # noqa: N802
        unit = self.units.get(device_id)
        if unit is None:
            raise NoSuchIdException(f"unit {device_id}")          # RTU bus: nobody answers
        self.stats[f"fc{func_code:02d}"] += 1
        behaviour = self.behaviour_fn(unit.device.id)
        if behaviour == "silent":
            self.stats["silent"] += 1
            raise NoSuchIdException(f"unit {device_id} silent")
        if isinstance(behaviour, int) and not isinstance(behaviour, bool):
            self.stats[f"exception_{behaviour:02d}"] += 1
            return ExcCodes(behaviour)
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_ADDRESS if func_code in (1, 2) else ExcCodes.ILLEGAL_FUNCTION
        words = unit.read(table, address, count)
        if words is None:
            self.stats["exception_02"] += 1
            return ExcCodes.ILLEGAL_ADDRESS
        if behaviour == "late":
            self.stats["late"] += 1
            await asyncio.sleep(unit.late_s)
        elif behaviour == "slow":
            self.stats["slow"] += 1
            await asyncio.sleep(unit.late_s / 2)
        return words

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):  # noqa: N802
        self.stats["writes_refused"] += 1
        return ExcCodes.ILLEGAL_FUNCTION


@dataclass
class FleetServer:
    """Handle of the running simulators: ``await stop()``; ``images`` by device id; ``stats``."""

    servers: list[ModbusTcpServer]
    images: dict[str, DeviceImage]
    stats: Counter
    endpoints: list[tuple[str, int, str]] = field(default_factory=list)   # host, port, framer
    _updater: asyncio.Task | None = None

    async def stop(self) -> None:
        if self._updater is not None:
            self._updater.cancel()
            try:
                await self._updater
            except asyncio.CancelledError:
                pass
        for s in self.servers:
            await s.shutdown()

    def refresh(self, values_fn: ValuesFn, t: float) -> None:
        """Compute and apply every device's registers for time ``t`` (blocking)."""
        self.apply(self.compute(values_fn, t), t)

    def compute(self, values_fn: ValuesFn, t: float) -> dict[str, tuple]:
        """Encoded words of every device at ``t``; pure, so the updater runs it in a worker thread
        and the event loop that answers requests is never blocked by the value model."""
        out = {}
        for did, img in self.images.items():
            try:
                out[did] = img.encode(values_fn(img.device, t))
            except Exception as exc:  # noqa: BLE001 - one bad device must not stop the others
                out[did] = exc
        return out

    def apply(self, computed: Mapping[str, tuple | Exception], t: float) -> None:
        for did, result in computed.items():
            img = self.images[did]
            if isinstance(result, Exception):
                self.stats["update_errors"] += 1
                log.warning("simulator: device %s: values not encoded: %s", did, result)
                continue
            img.apply(*result)
            img.updated = t


def _placeholder() -> SimDevice:
    return SimDevice(0, simdata=[SimData(0, values=0, datatype=DataType.REGISTERS)])


async def serve_fleet(fleet: Fleet, profiles: Mapping[str, Profile], values_fn: ValuesFn,
                      behaviour_fn: BehaviourFn = normal, *, update_interval_s: float = 1.0,
                      clock: Callable[[], float] = time.time,
                      devices: list[str] | None = None,
                      sunspec: Mapping[str, tuple[int, Mapping[int, int]]] | None = None,
                      strict_maps: frozenset[str] = frozenset()) -> FleetServer:
    """Start servers for every Modbus device of ``fleet`` (or only ``devices``); return a handle.

    ``sunspec`` optionally places a SunSpec device's map: ``{device_id: (base, {model: modules})}``
    (default: base 40000, the profile's module counts); ``strict_maps``: device ids whose register map has
    holes between the profile's rows (see :func:`build_image`).  ``stats`` counts every request
    received by function code (``rx_fcNN``), exceptions served, silent and late answers.
    Raises ``ValueError`` naming the device when its profile is unknown.
    """
    plog = logging.getLogger("pymodbus")
    if plog.level == logging.NOTSET:
        plog.setLevel(logging.CRITICAL)      # answers to closed connections (late, silent) are by design
    groups, images = _device_images(fleet, profiles, devices, sunspec, strict_maps)
    stats: Counter = Counter()
    handle = FleetServer([], images, stats)

    def trace(sending: bool, pdu):
        if not sending:
            stats[f"rx_fc{pdu.function_code:02d}"] += 1
        return pdu

    handle.refresh(values_fn, clock())
    try:
        for (host, port, framer), units in groups.items():
            server = ModbusTcpServer(_placeholder(), framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET,
                                     address=(host, port), ignore_missing_devices=True,
                                     trace_pdu=trace)
            server.context = _Context(units, behaviour_fn, stats)
            await server.serve_forever(background=True)
            handle.servers.append(server)
            handle.endpoints.append((host, port, framer))
    except BaseException:
        await handle.stop()
        raise

    async def updater() -> None:
        while True:
            await asyncio.sleep(update_interval_s)
            t = clock()
            handle.apply(await asyncio.to_thread(handle.compute, values_fn, t), t)

    handle._updater = asyncio.create_task(updater(), name="modbus-sim-update")
    return handle


def _device_images(fleet: Fleet, profiles: Mapping[str, Profile], devices: list[str] | None,
                   sunspec: Mapping[str, tuple[int, Mapping[int, int]]] | None,
                   strict_maps: frozenset[str] = frozenset(),
                   ) -> tuple[dict[tuple[str, int, str], dict[int, DeviceImage]], dict[str, DeviceImage]]:
    """Register images of the Modbus devices to serve, grouped by endpoint (host, port, framer) and unit;
    ``strict_maps``: devices whose images hold only their mapped registers."""
    groups: dict[tuple[str, int, str], dict[int, DeviceImage]] = {}
    images: dict[str, DeviceImage] = {}
    for dev in fleet.devices.values():
        if dev.transport != "modbus" or (devices is not None and dev.id not in devices):
            continue
        if dev.profile not in profiles:
            raise ValueError(f"device {dev.id!r}: unknown profile {dev.profile!r}")
        base, modules = (sunspec or {}).get(dev.id, (40000, None))
        img = build_image(dev, profiles[dev.profile], sunspec_base=base, sunspec_modules=modules,
                          strict=dev.id in strict_maps)
        images[dev.id] = img
        if dev.gateway is not None:
            gw = fleet.gateways[dev.gateway]
            key = (gw.host, gw.port, gw.framer)
            img.late_s = 1.5 * max(gw.timeout_s, dev.timeout_s)
        else:
            key = (dev.host, dev.port, "socket")
        groups.setdefault(key, {})[dev.unit_id] = img
    return groups, images

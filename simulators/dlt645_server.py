"""DL/T 645-2007 meter simulators on TCP: what a transparent serial server with meters behind it looks like.

One asyncio TCP server per line: a directly connected meter (``host``/``port``) or a fleet gateway
holding several meter addresses.  Values come from ``values_fn(device, t)`` (the same
:class:`~simulators.signals.FleetSignals` the Modbus simulator serves, so a meter reads the same over
both protocols), refreshed every ``update_interval_s``; a request is answered from the profile:

* read data (C = 11H) to the meter's address → 91H with the DI and its value, or D1H with error
  byte 02H (no such data) for a DI the profile does not list;
* read address (C = 13H) to AAAAAAAAAAAA → 93H with the address (first meter of the line);
* a frame for another address is ignored (silence, as on RS-485); garbage between frames is skipped;
  any other control code (writes, time sync 08H) is refused with an error answer and counted.

The meter's own time-of-use registers T1..T4 accumulate each increment of ``energy_import`` in the
register of the tariff period the meter's clock is in (:data:`TOU_REGISTER`, the site tariff's
calendar; everything in T3 without a tariff), split exactly at period boundaries; a meter clock
offset (``clock_offset_s``) shifts its clock and thereby its tariff switching, as a drifted meter does.
Misbehaviour comes from ``behaviour_fn(device_id)``: ``"silent"`` never answers, ``"late"`` answers
after 1.5 × the device's timeout, an ``int`` answers an error frame with that byte.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from core.channels import primary_factors
from core.config import Device, Fleet
from core.dlt645 import (
    BROADCAST,
    C_READ_ADDR,
    TOU_REGISTER,
    Dlt645Profile,
    build_frame,
    encode_address,
    encode_item,
    take_frame,
)

log = logging.getLogger(__name__)
ValuesFn = Callable[[Device, float], Mapping[str, float]]
BehaviourFn = Callable[[str], "str | int"]
START_SHARES = (0.08, 0.32, 0.34, 0.26)      # how the counter reading at simulator start is split T1..T4


def _normal(_device_id: str) -> str:
    return "normal"


class TouRegisters:
    """A meter's T1..T4 forward-active registers, following its (possibly offset) clock."""

    def __init__(self, tariff, offset_s: float = 0.0):
        self.tariff, self.offset_s = tariff, offset_s
        self.regs: list[float] | None = None
        self.t = self.e = 0.0

    def register_at(self, t: float) -> int:
        """Tariff register (1..4) the meter is in at true time ``t``."""
        if self.tariff is None:
            return 3
        idx = int(self.tariff.period_index([int((t + self.offset_s) * 1e9)])[0])
        return TOU_REGISTER.get(self.tariff.periods[idx], 3)

    def update(self, t: float, energy: float, energy_at: Callable[[float], float]) -> None:
        """Advance to ``t`` with total ``energy`` [Wh]; ``energy_at(s)`` gives the total at a boundary."""
        if self.regs is None:
            self.regs = [energy * s for s in START_SHARES]
            self.t, self.e = t, energy
            return
        if t <= self.t:
            return
        # minute boundaries of the meter clock inside (self.t, t]: the tariff calendar is per minute
        m = (int((self.t + self.offset_s) // 60) + 1) * 60 - self.offset_s
        while m < t:
            if self.register_at(m) != self.register_at(self.t):
                e_m = energy_at(m)
                self.regs[self.register_at(self.t) - 1] += e_m - self.e
                self.t, self.e = m, e_m
            m += 60
        self.regs[self.register_at(self.t) - 1] += energy - self.e
        self.t, self.e = t, energy

    def values(self) -> dict[str, float]:
        return {f"energy_import_t{k + 1}": v for k, v in enumerate(self.regs or ())}


class MeterImage:
    """One simulated DL/T 645 meter: its profile, latest values, clock offset and TOU registers."""

    def __init__(self, device: Device, profile: Dlt645Profile, tz: dt.tzinfo, tariff, offset_s: float = 0.0):
        self.device, self.profile, self.tz, self.offset_s = device, profile, tz, offset_s
        self.items = {i.di: i for i in profile.items}
        self.values: dict[str, float] = {}
        self.tou = TouRegisters(tariff, offset_s)
        self.max_demand = (0.0, 0.0)              # (W, time)
        # a meter behind CTs/PTs serves secondary values: the model's primary value / factor
        self.secondary = primary_factors(profile.channels, device.ct_ratio, device.pt_ratio)

    def update(self, values: Mapping[str, float], t: float, values_fn: ValuesFn) -> None:
        v = dict(values)
        if "energy_import" in v:
            self.tou.update(t, v["energy_import"], lambda s: values_fn(self.device, s)["energy_import"])
            v.update(self.tou.values())
        md = v.get("demand_active_power_max")
        if md is not None:
            if md != self.max_demand[0]:         # a new maximum (or a new month): stamped now, meter clock
                self.max_demand = (md, (t + self.offset_s) // 60 * 60)
            v["demand_active_power_max_time"] = self.max_demand[1]
        for k, f in self.secondary.items():
            if k in v:
                v[k] /= f
        self.values = v

    def answer(self, di: int, now: float) -> bytes | None:
        item = self.items.get(di)
        if item is None:
            return None
        return encode_item(item, self.values, dt.datetime.fromtimestamp(now + self.offset_s, self.tz))


@dataclass
class Dlt645Server:
    """Handle of the running DL/T 645 simulators: ``await stop()``; ``meters`` by device id; ``stats``."""

    servers: list[asyncio.AbstractServer]
    meters: dict[str, MeterImage]
    stats: Counter
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    _updater: asyncio.Task | None = None
    _conns: set = field(default_factory=set)
    _tasks: set = field(default_factory=set)

    async def stop(self) -> None:
        if self._updater is not None:
            self._updater.cancel()
            await asyncio.gather(self._updater, return_exceptions=True)
        for s in self.servers:
            s.close()
        for w in list(self._conns):
            w.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self.servers:
            await s.wait_closed()

    def refresh(self, values_fn: ValuesFn, t: float) -> None:
        for did, m in self.meters.items():
            try:
                m.update(values_fn(m.device, t), t, values_fn)
            except Exception as exc:  # noqa: BLE001 - one bad meter must not stop the others
                self.stats["update_errors"] += 1
                log.warning("dlt645 simulator: meter %s: values not computed: %s", did, exc)


class _Line:
    """The meters on one TCP endpoint, answering frames as they arrive."""

    def __init__(self, meters: dict[str, MeterImage], behaviour_fn: BehaviourFn, stats: Counter,
                 clock: Callable[[], float], handle: Dlt645Server):
        self.meters, self.behaviour_fn, self.stats, self.clock, self.handle = (
            meters, behaviour_fn, stats, clock, handle)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handle._conns.add(writer)
        self.handle._tasks.add(asyncio.current_task())
        buf = bytearray()
        try:
            while chunk := await reader.read(512):
                buf += chunk
                while True:
                    frame, used = take_frame(buf)
                    if used and frame is None:
                        self.stats["noise_bytes"] += used
                    del buf[:used]
                    if frame is None:
                        break
                    out = await self._answer(frame)
                    if out:
                        writer.write(out)
                        await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass                                      # a client gone, or the simulator stopping
        finally:
            self.handle._tasks.discard(asyncio.current_task())
            self.handle._conns.discard(writer)
            writer.close()

    async def _answer(self, frame) -> bytes | None:
        if frame.control == C_READ_ADDR and frame.address == BROADCAST:
            self.stats["read_address"] += 1
            first = next(iter(self.meters))
            return build_frame(first, C_READ_ADDR | 0x80, encode_address(first))
        meter = self.meters.get(frame.address)
        if meter is None:
            self.stats["foreign"] += 1
            return None                               # not on this line: nobody answers
        behaviour = self.behaviour_fn(meter.device.id)
        if behaviour == "silent":
            self.stats["silent"] += 1
            return None
        std = meter.profile.std
        if frame.control != std.read:
            self.stats["refused"] += 1
            return build_frame(frame.address, frame.control | 0xC0, b"\x01")
        if isinstance(behaviour, int) and not isinstance(behaviour, bool):
            self.stats["error_frames"] += 1
            return build_frame(frame.address, std.error, bytes((behaviour & 0xFF,)))
        n = std.di_len
        di = int.from_bytes(frame.data[:n], "little") if len(frame.data) >= n else -1
        data = meter.answer(di, self.clock())
        if data is None:
            self.stats["error_02"] += 1
            return build_frame(frame.address, std.error, b"\x02")
        if behaviour == "late":
            self.stats["late"] += 1
            await asyncio.sleep(1.5 * meter.device.timeout_s)
        self.stats["answers"] += 1
        return build_frame(frame.address, std.ok, frame.data[:n] + data)


async def serve_dlt645(fleet: Fleet, profiles: Mapping[str, object], values_fn: ValuesFn,
                       behaviour_fn: BehaviourFn = _normal, *, update_interval_s: float = 1.0,
                       clock: Callable[[], float] = time.time, devices: list[str] | None = None,
                       clock_offset_s: Mapping[str, float] | None = None,
                       tariffs: Mapping[str, object] | None = None) -> Dlt645Server:
    """Serve every DL/T 645 meter of ``fleet`` (or only ``devices``); return a handle.

    ``tariffs`` maps a site's tariff id to its loaded :class:`analytics.tariffs.Tariff` (given by the
    caller: simulators do not import analytics); a meter whose site tariff is not given keeps all its
    energy in T3.  ``clock_offset_s`` sets a meter's clock drift.
    """
    lines: dict[tuple[str, int], dict[str, MeterImage]] = {}
    meters: dict[str, MeterImage] = {}
    tariffs = dict(tariffs or {})
    for dev in fleet.devices.values():
        if dev.transport != "dlt645" or (devices is not None and dev.id not in devices):
            continue
        prof = profiles.get(dev.profile)
        if not isinstance(prof, Dlt645Profile):
            raise ValueError(f"device {dev.id!r}: {dev.profile!r} is not a DL/T 645 profile")
        site = fleet.sites[dev.site_id]
        if tariffs.get(site.tariff) is None:
            log.warning("dlt645 simulator: %s: no tariff calendar for %r, all energy in T3", dev.id, site.tariff)
        m = MeterImage(dev, prof, ZoneInfo(site.timezone), tariffs.get(site.tariff),
                       (clock_offset_s or {}).get(dev.id, 0.0))
        meters[dev.id] = m
        gw = fleet.gateways.get(dev.gateway) if dev.gateway else None
        key = (gw.host, gw.port) if gw else (dev.host, dev.port)
        lines.setdefault(key, {})[dev.address] = m
    handle = Dlt645Server([], meters, Counter())
    handle.refresh(values_fn, clock())
    try:
        for (host, port), line in lines.items():
            srv = await asyncio.start_server(_Line(line, behaviour_fn, handle.stats, clock, handle).serve,
                                             host, port)
            handle.servers.append(srv)
            handle.endpoints.append((host, srv.sockets[0].getsockname()[1]))
    except BaseException:
        await handle.stop()
        raise

    async def updater() -> None:
        while True:
            await asyncio.sleep(update_interval_s)
            t = clock()
            await asyncio.to_thread(handle.refresh, values_fn, t)

    handle._updater = asyncio.create_task(updater(), name="dlt645-sim-update")
    return handle

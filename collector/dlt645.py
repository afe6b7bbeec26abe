"""DL/T 645-2007 collector: reads revenue meters over TCP (transparent serial servers or RS-485 gateways).

Same shape and reliability rules as :mod:`collector.modbus` (it reuses its schedule, status and
offline logic by subclassing :class:`~collector.modbus.ModbusCollector`):

* one TCP connection per line: a transparent serial server (``host``/``port`` on the device) or a
  fleet gateway shared by several meter addresses; one request at a time per line, with the
  gateway's pause between two requests;
* one read-data request (C = 11H) per data identifier of the profile; the answer must come from
  the meter asked, with the DI asked, else ``decode_error``;
* an error answer (C = D1H) is ``error_NN`` (NN = the error byte in hex, 02 = no such data): like a
  Modbus exception 02, the item is not asked again until the 10th poll and the others are read;
* a silent meter is a ``timeout``; after a timeout, a garbled frame or a foreign answer the
  connection is closed and reopened, so a late answer is never taken for the next one;
* line noise before or between frames is skipped by the deframer (:func:`core.dlt645.take_frame`);
* read-only: the only control codes sent are 11H (read data) and 13H (read address); the
  meter clock is never set: its date and time are read and ``meter_clock_offset`` (meter − our
  clock, seconds) is stored so analytics can alarm on drift.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from collector.modbus import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    BAD_BLOCK_RETRY_POLLS,
    JITTER,
    OFFLINE_AFTER,
    DeviceState,
    ModbusCollector,
    PollFailure,
    Sink,
)
from core.channels import primary_factors
from core.config import Device, Fleet
from core.dlt645 import (
    BROADCAST,
    C_READ,
    C_READ_ADDR,
    C_READ_ADDR_OK,
    STANDARDS,
    Dlt645Profile,
    FrameError,
    Item,
    build_frame,
    decode_item,
    di_bytes,
    take_frame,
)
from core.model import Point

log = logging.getLogger(__name__)
SENT_CONTROLS = frozenset({C_READ, C_READ_ADDR, STANDARDS["1997"].read})
MAX_BUFFER = 4096


class Dlt645Link:
    """One TCP connection to a serial line: serialized requests, pause, timeout, reconnect backoff."""

    def __init__(self, name: str, host: str, port: int, *, pause_s: float = 0.0, timeout: float = 1.0,
                 rng: random.Random | None = None):
        self.name, self.host, self.port, self.pause_s, self.timeout = name, host, port, pause_s, timeout
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buf = bytearray()
        self.backoff = 0.0
        self.next_attempt = 0.0
        self.last_end = 0.0
        self.rng = rng or random.Random()
        self.stats: Counter = Counter()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        self.buf.clear()

    async def _connect(self) -> None:
        self.close()
        now = time.monotonic()
        if now < self.next_attempt:
            raise PollFailure("connect_failed", f"{self.name}: backing off {self.next_attempt - now:.1f} s")
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=max(3 * self.timeout, 1.0))
        except (TimeoutError, OSError) as exc:
            self.backoff = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, 2 * self.backoff))
            self.next_attempt = time.monotonic() + self.backoff * self.rng.uniform(1 - JITTER, 1 + JITTER)
            self.stats["connect_failed"] += 1
            raise PollFailure("connect_failed", f"{self.name}: cannot connect to {self.host}:{self.port}: "
                                                f"{exc}") from None
        self.backoff = 0.0
        self.stats["connects"] += 1

    async def request(self, address: str, control: int, data: bytes = b"") -> tuple[str, int, bytes]:
        """Send one frame, return the answer's (address, control, data); :class:`PollFailure` on failure."""
        if control not in SENT_CONTROLS:
            raise PermissionError(f"control code {control:#04x} refused: the collector only reads")
        async with self.lock:
            try:
                if self.writer is None:
                    await self._connect()
                if self.pause_s:
                    wait = self.last_end + self.pause_s - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                self.buf.clear()
                self.writer.write(build_frame(address, control, data))
                await self.writer.drain()
                frame = await asyncio.wait_for(self._answer(), self.timeout)
                return frame.address, frame.control, frame.data
            except TimeoutError:
                self.close()
                raise PollFailure("timeout", f"{self.name}: no answer from {address}") from None
            except (ConnectionError, OSError, EOFError) as exc:
                self.close()
                raise PollFailure("connect_failed", f"{self.name}: {exc}") from None
            finally:
                self.last_end = time.monotonic()

    async def _answer(self):
        while True:
            frame, used = take_frame(self.buf)
            if used:
                if frame is None:
                    self.stats["noise_bytes"] += used
                del self.buf[:used]
            if frame is not None:
                return frame
            if len(self.buf) > MAX_BUFFER:
                self.buf.clear()
            chunk = await self.reader.read(512)
            if not chunk:
                raise EOFError("connection closed by the line")
            self.buf += chunk


class Dlt645Poller:
    """Polls one meter: every item of its profile, in order; status and online/offline as Modbus."""

    def __init__(self, device: Device, profile: Dlt645Profile, link: Dlt645Link,
                 tz: dt.tzinfo, clock=time.time):
        self.device, self.profile, self.link, self.tz, self.clock = device, profile, link, tz, clock
        self.state = DeviceState()
        self.status_tags = {**device.tags, "source": "dlt645"}
        self._ctx = {"site": device.site_id, "device": device.id}
        # a meter read through CTs/PTs reports secondary values: channel -> factor to the primary side
        self.primary = primary_factors(profile.channels, device.ct_ratio, device.pt_ratio)
        self.bad_items: dict[int, tuple[str, int]] = {}      # di -> (status, poll to retry at)
        self.std = STANDARDS[profile.standard]

    async def read_item(self, item: Item) -> bytes:
        tries = 1 + (self.device.retries if self.state.online is not False else 0)
        for attempt in range(tries):
            try:
                return await self._read_once(item)
            except PollFailure as exc:
                if exc.status != "timeout" or attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    async def _read_once(self, item: Item) -> bytes:
        std, di = self.std, di_bytes(item.di, self.std.di_len)
        addr, control, data = await self.link.request(self.device.address, std.read, di)
        if addr != self.device.address:
            self.link.close()
            raise PollFailure("decode_error", f"answer from {addr} to a request for {self.device.address}")
        if control == std.error:
            code = data[0] if data else 0
            raise PollFailure(f"error_{code:02x}")
        if control not in (std.ok, std.more) or data[:std.di_len] != di:
            self.link.close()
            raise PollFailure("decode_error", f"answer C={control:02X}H DI={data[:std.di_len][::-1].hex()} to a "
                                              f"read of {di[::-1].hex()}")
        return data[std.di_len:]

    async def _read_items(self, fields: dict[str, float]) -> tuple[str, bool]:
        status, answered, clock = "ok", False, {}
        for item in self.profile.items:
            bad = self.bad_items.get(item.di)
            if bad is not None and self.state.polls < bad[1]:
                status = status if status != "ok" else bad[0]
                continue
            asked = self.clock()
            try:
                data = await self.read_item(item)
            except PollFailure as exc:
                if not exc.status.startswith("error_"):
                    raise
                answered = True
                status = status if status != "ok" else exc.status
                self.bad_items[item.di] = (exc.status, self.state.polls + BAD_BLOCK_RETRY_POLLS)
                continue
            self.bad_items.pop(item.di, None)
            answered = True
            try:
                values = decode_item(item, data, self.tz)
            except FrameError as exc:
                status = "decode_error"
                log.warning("%s: %s", self.device.id, exc, extra=self._ctx)
                continue
            if "_time" in values:
                clock["time"], clock["at"] = values.pop("_time"), (asked + self.clock()) / 2
            clock.update(values)
            fields.update(v for v in values.items() if not v[0].startswith("_"))
        if "_date" in clock and "time" in clock:
            fields["meter_clock_offset"] = clock_offset(clock["_date"], clock["time"], clock["at"], self.tz)
        return status, answered

    async def poll(self, time_ns: int) -> list[Point]:
        started = time.perf_counter()
        fields: dict[str, float] = {}
        try:
            status, answered = await self._read_items(fields)
            for ch, factor in self.primary.items():
                if ch in fields:
                    fields[ch] *= factor
        except PollFailure as exc:
            status, answered = exc.status, False
        except Exception as exc:  # noqa: BLE001 - one meter never kills the collector
            status, answered = "decode_error", False
            log.exception("%s: poll failed: %s", self.device.id, exc, extra=self._ctx)
        st = self.state
        st.polls += 1
        st.last_status = status
        if answered and (fields or status == "ok"):
            st.failures = 0
            st.online = True
        else:
            st.failures += 1
            if st.failures >= OFFLINE_AFTER:
                if st.online is not False:
                    log.warning("%s: offline after %d failed polls (%s)", self.device.id, st.failures, status,
                                extra=self._ctx)
                st.online = False
        points = []
        if fields:
            points.append(Point(self.device.kind, dict(self.device.tags), fields, time_ns))
        points.append(Point("collector_status", dict(self.status_tags),
                            {"status": status, "online": 0 if st.online is False else 1,
                             "latency_ms": round((time.perf_counter() - started) * 1000.0, 3)}, time_ns))
        return points


def clock_offset(date: tuple[int, int, int], hms: tuple[int, int, int], at: float, tz: dt.tzinfo) -> float:
    """Meter clock − our clock [s] from the meter's date (YY, MM, DD) and time (hh, mm, ss) read at ``at``.

    The meter's seconds are truncated: +0.5 s is the expected value of the missing fraction.  Date and
    time are two requests: if midnight passed between them the date is a day behind the time, which
    shows as a time in the first minute after midnight and an offset near −1 day: that day is added back.
    """
    yy, mo, dd = date
    offset = dt.datetime(2000 + yy, mo, dd, *hms, tzinfo=tz).timestamp() + 0.5 - at
    if hms[0] == 0 and hms[1] == 0 and -86400 - 120 < offset < -86400 + 120:
        offset += 86400
    return round(offset, 1)


async def read_address(host: str, port: int, timeout: float = 1.0) -> str:
    """The address of the one meter on a line (broadcast read-address, C = 13H)."""
    link = Dlt645Link(f"tcp:{host}:{port}", host, port, timeout=timeout)
    try:
        addr, control, data = await link.request(BROADCAST, C_READ_ADDR)
    finally:
        link.close()
    if control != C_READ_ADDR_OK or len(data) != 6:
        raise PollFailure("decode_error", f"read-address answer C={control:02X}H")
    return "".join(f"{b:02X}" for b in reversed(data))


class Dlt645Collector(ModbusCollector):
    """Poll every DL/T 645 meter of ``fleet``; same schedule, sink, counters and stats as Modbus."""

    def __init__(self, fleet: Fleet, profiles: Mapping[str, object], sink: Sink, *,
                 clock=time.time, devices: list[str] | None = None, seed: int | None = None):
        self.fleet, self.sink, self.clock = fleet, sink, clock
        rng = random.Random(seed)
        self.links: dict[str, Dlt645Link] = {}
        self.pollers: list[Dlt645Poller] = []
        self.counters: Counter = Counter()
        for dev in fleet.devices.values():
            if dev.transport != "dlt645" or (devices is not None and dev.id not in devices):
                continue
            prof = profiles.get(dev.profile)
            if not isinstance(prof, Dlt645Profile):
                raise ValueError(f"device {dev.id!r}: {dev.profile!r} is not a DL/T 645 profile")
            if dev.gateway is not None:
                gw = fleet.gateways[dev.gateway]
                key = f"gateway:{gw.id}"
                if key not in self.links:
                    self.links[key] = Dlt645Link(key, gw.host, gw.port, pause_s=gw.pause_s,
                                                 timeout=max(gw.timeout_s, dev.timeout_s), rng=rng)
            else:
                key = f"tcp:{dev.host}:{dev.port}"
                if key not in self.links:
                    self.links[key] = Dlt645Link(key, dev.host, dev.port, timeout=dev.timeout_s, rng=rng)
            tz = ZoneInfo(fleet.sites[dev.site_id].timezone)
            self.pollers.append(Dlt645Poller(dev, prof, self.links[key], tz, clock))

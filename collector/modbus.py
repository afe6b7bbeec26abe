"""Modbus collector: polls every Modbus device of a fleet on its own aligned schedule.

Shape (telegraf ``inputs/modbus`` style): validate and plan at start-up, then one asyncio task
per device that only calls prepared decoders.  Devices reach the network through a
:class:`Link` — one TCP connection per direct endpoint (Modbus TCP, MBAP framing) or per
serial-to-Ethernet gateway (RTU framing over TCP).  A link serializes its requests (pymodbus
forbids parallel calls on one client, pymodbus #475/#2434) and keeps the gateway's pause
between two requests on the bus.

Reliability rules (docs reliability.md §3, §0 row 10):

* request timeout per device (default 1 s) and bounded retries (default 1, only for
  timeouts and exceptions 05/06 busy); exceptions 01/02/03 are configuration errors: the
  block is not retried and is read again only every 10th poll (the poll status keeps saying
  ``exception_02``); an exception on one block does not stop the other blocks;
* after a timeout the connection is closed and reopened, so a late answer can never be
  taken for the answer to the next request (pymodbus #538, #2636; RTU carries no TID).
  Measured with pymodbus 3.16: if the socket is kept, a late frame that lands while the next
  request is outstanding is returned as its answer with BOTH framers, MBAP included
  (``test_late_answer_is_never_taken_for_the_next_request``, checked by mutation);
* an answer whose function code or unit id differs from the request is refused
  (``decode_error``), as is one with the wrong register count;
* reconnect with exponential backoff 1 s → 60 s, ±20 % jitter, reset after a good connect;
  we own the reconnect loop (pymodbus auto-reconnect disabled with ``reconnect_delay=0``);
* a device is offline after 3 consecutive failed polls and online on the first good poll;
* each device is read at a fixed phase into its slot (:func:`device_phase_ns`: CRC-32 of its id,
  spread over min(interval, 10 s)), so N devices are N requests spread over the interval, not one
  burst at its start; the slot's start (a multiple of the interval) is the Point timestamp; a slot
  missed because a poll ran long is skipped and counted (``skipped_slots``), and a wall clock
  stepped back re-aligns the schedule at once (``clock_steps_back``) instead of pausing polls;
* a meter wired through instrument transformers (``ct_ratio``/``pt_ratio`` in the fleet) has its
  secondary-side voltages, currents, powers and energies turned into primary values
  (:func:`core.channels.primary_factor`) before they are stored;
* read function codes 01–04 only: :class:`ReadOnlyClient` has no write method and refuses
  any other outgoing PDU in pymodbus's send path (IEC 62443 FR3 least privilege).

Every poll yields a ``collector_status`` Point (``status``, ``online``, ``latency_ms``) besides
the device Point (measurement = device kind, tags = ``device.tags``, fields = channels).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from collector.schedule import LAG_KEEP, LAG_WINDOW_S, device_phase_ns, lag_stats, poll_time_ns  # noqa: F401
from core.channels import primary_factors
from core.config import Device, Fleet
from core.model import Point
from core.profiles import (
    SUNSPEC_BASES,
    Block,
    ChainIncomplete,
    Profile,
    ProfileError,
    parse_model_chain,
    plan_blocks,
)

log = logging.getLogger(__name__)

READ_FUNCTION_CODES = frozenset({0x01, 0x02, 0x03, 0x04})
OFFLINE_AFTER = 3
BACKOFF_MIN_S, BACKOFF_MAX_S, JITTER = 1.0, 60.0, 0.2
RETRYABLE_EXCEPTIONS = frozenset({0x05, 0x06})
CONFIG_EXCEPTIONS = frozenset({0x01, 0x02, 0x03})   # the block itself is wrong: read it again only
BAD_BLOCK_RETRY_POLLS = 10                          # every 10th poll (reliability.md §3)
Sink = Callable[[list[Point]], object]


class WriteRefused(PermissionError):
    """An attempt to send a Modbus function code other than 01–04."""


class PollFailure(Exception):
    """One request failed; ``status`` is the collector_status value (timeout, exception_02, ...)."""

    def __init__(self, status: str, detail: str = ""):
        super().__init__(f"{status}: {detail}" if detail else status)
        self.status = status


class _OneUnpack:
    """Register answer (FC 03/04) decoded by one ``struct`` call for the whole block.

    Registered on each client through pymodbus's custom-response API (``client.register``).
    Stock pymodbus 3.16 unpacks an answer one register at a time (a slice, an ``unpack`` and an
    ``append`` each) and formats the whole PDU, every register included, for a debug message
    even when debug logging is off; for a 57-register meter poll that was about a tenth of the
    collector's CPU (cachegrind, ``bench/modbus_instructions.py``).  Same checks as pymodbus: a byte
    count beyond the frame is refused (``ModbusIOException``), and so is an odd one (pymodbus
    fails on its last half register); both reach the caller as no answer, i.e. a timeout.
    """

    def decode(self, data: bytes) -> None:
        n = data[0]
        if n >= len(data) or n & 1:
            raise ModbusIOException(f"byte_count {n} > length of packet {len(data)} or odd",
                                    function_code=self.function_code)
        self.registers = list(struct.unpack_from(f">{n >> 1}H", data, 1))

    def __str__(self) -> str:
        return (f"{type(self).__name__}(dev_id={self.dev_id}, transaction_id={self.transaction_id}, "
                f"{len(self.registers)} registers)")


class HoldingRegistersAnswer(_OneUnpack, ReadHoldingRegistersResponse):
    """FC 03 answer, decoded in one ``struct`` call (see :class:`_OneUnpack`)."""


class InputRegistersAnswer(_OneUnpack, ReadInputRegistersResponse):
    """FC 04 answer, decoded in one ``struct`` call (see :class:`_OneUnpack`)."""


class ReadOnlyClient:
    """A pymodbus asyncio client that can only read (FC 01–04).

    It exposes no write method, and a guard on pymodbus's outgoing-PDU hook refuses any
    PDU whose function code is not a read before it is framed, so no code path can emit
    FC 05/06/15/16/22/23.
    """

    def __init__(self, host: str, port: int, *, framer: str = "socket", timeout: float = 1.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._client = AsyncModbusTcpClient(
            host, port=port, framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET,
            timeout=timeout, retries=0, reconnect_delay=0, trace_pdu=self._guard)
        self._client.register(HoldingRegistersAnswer)
        self._client.register(InputRegistersAnswer)

    @staticmethod
    def _guard(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending and pdu.function_code not in READ_FUNCTION_CODES:
            raise WriteRefused(f"function code {pdu.function_code:#04x} refused: the collector only reads "
                               "(FC 01-04)")
        return pdu

    @property
    def connected(self) -> bool:
        return self._client.connected

    async def connect(self) -> bool:
        return await self._client.connect()

    def close(self) -> None:
        self._client.close()

    async def execute(self, pdu: ModbusPDU) -> ModbusPDU:
        """Send one request PDU (anything but a read is refused by the guard)."""
        return await self._client.execute(False, pdu)

    async def read(self, table: str, address: int, count: int, unit: int) -> list[int]:
        """Read ``count`` registers; raises :class:`PollFailure` (timeout / exception_NN / connect_failed)."""
        fn = self._client.read_holding_registers if table == "holding" else self._client.read_input_registers
        try:
            rr = await fn(address, count=count, device_id=unit)
        except ModbusIOException as exc:
            raise PollFailure("timeout", str(exc)) from None
        except (ConnectionException, OSError) as exc:
            raise PollFailure("connect_failed", str(exc)) from None
        if rr.isError():
            raise PollFailure(f"exception_{getattr(rr, 'exception_code', 0):02d}")
        if rr.function_code != (0x03 if table == "holding" else 0x04) or rr.dev_id != unit:
            raise PollFailure("decode_error", f"answer fc {rr.function_code} unit {rr.dev_id} to a request "
                                              f"for {table} registers of unit {unit}")
        if len(rr.registers) != count:
            raise PollFailure("decode_error", f"{len(rr.registers)} registers for {count} asked")
        return rr.registers


class Link:
    """One TCP connection (direct device or gateway), serialized, with pause and backoff.

    ``exclusive=True`` says that one task alone reads through this link (one poller, one request
    at a time), so the link's own lock is not taken; pymodbus still serializes requests on the
    client, and the gateway pause is kept (it only needs the previous request's end).  A link
    shared by several unit ids takes the lock.
    """

    def __init__(self, name: str, host: str, port: int, *, framer: str = "socket", pause_s: float = 0.0,
                 timeout: float = 1.0, rng: random.Random | None = None, exclusive: bool = False):
        self.name, self.host, self.port, self.framer = name, host, port, framer
        self.pause_s, self.timeout, self.exclusive = pause_s, timeout, exclusive
        self.lock = asyncio.Lock()
        self.client: ReadOnlyClient | None = None
        self.generation = 0              # bumped at every new connection
        self.outages = 0                 # bumped when a connect succeeds after failed ones (SunSpec re-scan)
        self._down = True
        self.backoff = 0.0
        self.next_attempt = 0.0
        self.last_end = 0.0
        self.rng = rng or random.Random()
        self.stats: Counter = Counter()

    def _close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def _connect(self) -> ReadOnlyClient:
        """A new connection, replacing the broken one (subject to the backoff)."""
        self._close()
        now = time.monotonic()
        if now < self.next_attempt:
            raise PollFailure("connect_failed", f"{self.name}: backing off {self.next_attempt - now:.1f} s")
        client = ReadOnlyClient(self.host, self.port, framer=self.framer, timeout=self.timeout)
        ok = False
        try:
            ok = await asyncio.wait_for(client.connect(), timeout=max(3 * self.timeout, 1.0))
        except (TimeoutError, OSError):
            ok = False
        if not ok:
            client.close()
            self.backoff = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, 2 * self.backoff))
            self.next_attempt = time.monotonic() + self.backoff * self.rng.uniform(1 - JITTER, 1 + JITTER)
            self.stats["connect_failed"] += 1
            self._down = True
            raise PollFailure("connect_failed", f"{self.name}: cannot connect to {self.host}:{self.port}")
        self.backoff = 0.0
        self.generation += 1
        if self._down:
            self.outages += 1
            self._down = False
        self.stats["connects"] += 1
        self.client = client
        return client

    async def read(self, table: str, address: int, count: int, unit: int) -> list[int]:
        if not self.exclusive:
            await self.lock.acquire()
        try:
            client = self.client
            if client is None or not client.connected:
                client = await self._connect()
            if self.pause_s:
                wait = self.last_end + self.pause_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            return await client.read(table, address, count, unit)
        except PollFailure as exc:
            if exc.status in ("timeout", "connect_failed", "decode_error"):
                self._close()            # never reuse a socket a late answer may still arrive on
            raise
        finally:
            if self.pause_s:
                self.last_end = time.monotonic()
            if not self.exclusive:
                self.lock.release()

    def close(self) -> None:
        self._close()


@dataclass
class DeviceState:
    online: bool | None = None
    failures: int = 0
    polls: int = 0
    last_status: str = ""


class DevicePoller:
    """Polls one device: its blocks in order, retries, status and online/offline state."""

    def __init__(self, device: Device, profile: Profile, link: Link):
        self.device, self.profile, self.link = device, profile, link
        self.blocks: tuple[Block, ...] | None = None if profile.protocol == "sunspec" else profile.blocks
        self.chain_generation = -1
        self.state = DeviceState()
        self.status_tags = {**device.tags, "source": "modbus"}
        self._ctx = {"site": device.site_id, "device": device.id}     # log extras (core.logjson)
        self.bad_blocks: dict[tuple[str, int], tuple[str, int]] = {}   # block -> (status, poll to retry at)
        self.unsplit: set[tuple[str, int, int]] = set()   # blocks already probed in parts (exception 02)
        # a meter read through CTs/PTs reports secondary values: channel -> factor to the primary side
        self.primary = primary_factors(profile.channels, device.ct_ratio, device.pt_ratio)

    async def _read(self, table: str, address: int, count: int) -> list[int]:
        tries = 1 + (self.device.retries if self.state.online is not False else 0)
        for attempt in range(tries):
            try:
                return await self.link.read(table, address, count, self.device.unit_id)
            except PollFailure as exc:
                code = int(exc.status[10:], 10) if exc.status.startswith("exception_") else None
                retry = exc.status == "timeout" or code in RETRYABLE_EXCEPTIONS
                if not retry or attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    async def discover(self) -> tuple[Block, ...]:
        """Find the SunSpec marker and walk the model chain, hop by hop (header reads of 2 registers).

        Run at the first poll, after the link came back from an outage, and after a failed
        poll of this device (a replaced or re-flashed inverter may have moved its models).
        """
        for base in SUNSPEC_BASES:
            seen: dict[int, int] = {}
            try:
                while True:
                    try:
                        chain = parse_model_chain(base, seen)
                        break
                    except ChainIncomplete as need:
                        words = await self._read("holding", need.address, 2)
                        seen[need.address], seen[need.address + 1] = words
            except ProfileError:
                continue                       # no marker at this base
            except PollFailure as exc:
                if exc.status in ("exception_02", "exception_03"):
                    continue                   # base not mapped on this device
                raise
            try:
                blocks = self.profile.plan(chain)
            except ProfileError as exc:
                raise PollFailure("decode_error", str(exc)) from None
            self.chain_generation = self.link.outages
            log.info("%s: SunSpec at %d, models %s", self.device.id, base, [m.id for m in chain], extra=self._ctx)
            return blocks
        raise PollFailure("decode_error", "no SunSpec marker at 40000, 0 or 50000")

    async def _read_blocks(self, fields: dict[str, float], status: str, answered: bool) -> tuple[str, bool]:
        """Read and decode every block of the plan into ``fields``; returns the poll status and whether the
        device answered.  A multi-row block refused with exception 02 is split (:meth:`_split`)."""
        bad_blocks = self.bad_blocks
        plan = list(self.blocks or ())
        i = 0
        while i < len(plan):
            block = plan[i]
            i += 1
            if bad_blocks:
                bad = bad_blocks.get((block.table, block.start))
                if bad is not None and self.state.polls < bad[1]:
                    status = status if status != "ok" else bad[0]
                    continue               # known configuration error: not re-read every poll
            try:
                words = await self._read(block.table, block.start, block.count)
            except PollFailure as exc:
                if not exc.status.startswith("exception_"):
                    raise
                answered = True
                parts = await self._split(block) if exc.status == "exception_02" else None
                if parts:
                    plan[i - 1:i] = [part for part, _ in parts]    # the parts from now on
                    self.blocks = tuple(plan)
                    i += len(parts) - 1
                    for part, words in parts:                      # already read by the probe
                        if words is None:
                            status = status if status != "ok" else exc.status
                            bad_blocks[(part.table, part.start)] = (exc.status,
                                                                    self.state.polls + BAD_BLOCK_RETRY_POLLS)
                        else:
                            status = self._decode(part, words, fields, status)
                    continue
                status = status if status != "ok" else exc.status
                if int(exc.status[10:]) in CONFIG_EXCEPTIONS:
                    bad_blocks[(block.table, block.start)] = (exc.status, self.state.polls + BAD_BLOCK_RETRY_POLLS)
                continue                   # the other blocks are still read
            if bad_blocks:
                bad_blocks.pop((block.table, block.start), None)
            answered = True
            status = self._decode(block, words, fields, status)
        return status, answered

    def _decode(self, block: Block, words: list[int], fields: dict[str, float], status: str) -> str:
        try:
            block.decode(words, into=fields)
        except ValueError as exc:
            log.warning("%s: %s", self.device.id, exc, extra=self._ctx)
            return "decode_error"
        return status

    async def _split(self, block: Block) -> list[tuple[Block, list[int] | None]] | None:
        """Smaller reads for a block the device refused with exception 02 (it spans unmapped registers):
        one per run of adjacent rows, and for a run refused too one per row (a row stays with its scale
        factor).  Returns the parts with the words read (None: refused alone).  None when no part answers (the whole block is unmapped: the block stays as it is and is
        asked again every 10th poll) or the block cannot be split.  Probed once per block and device."""
        key = (block.table, block.start, block.count)
        if len(block.registers) < 2 or key in self.unsplit:
            return None
        self.unsplit.add(key)
        out: list[tuple[Block, list[int] | None]] = []
        answered = False
        for part in plan_blocks(block.registers, max_gap=0):
            rows = plan_blocks(part.registers, max_gap=-1) if len(part.registers) > 1 else [part]
            whole = part.start == block.start and part.count == block.count     # already refused
            for sub in [part] if len(rows) == 1 else rows if whole else [part, *rows]:
                try:
                    words = await self._read(sub.table, sub.start, sub.count)
                except PollFailure as exc:
                    if exc.status != "exception_02":
                        raise
                    if sub is part and len(rows) > 1:
                        continue           # the run spans a hole too: try its rows
                    out.append((sub, None))    # refused alone: kept, asked again every 10th poll
                    continue
                answered = True
                out.append((sub, words))
                if sub is part:
                    break                  # the whole run answers: no need for its rows
        if not answered or len(out) < 2:
            return None
        log.info("%s: %s block %d+%d refused (exception 02): read as %d parts from now on", self.device.id,
                 block.table, block.start, block.count, len(out), extra=self._ctx)
        return out

    async def poll(self, time_ns: int) -> list[Point]:
        started = time.perf_counter()
        fields: dict[str, float] = {}
        status = "ok"
        answered = False
        try:
            if self.profile.protocol == "sunspec" and (
                    self.blocks is None or self.chain_generation != self.link.outages or self.state.failures):
                self.blocks = None
                self.blocks = await self.discover()
                answered = True
            status, answered = await self._read_blocks(fields, status, answered)
            if self.primary:
                for ch, factor in self.primary.items():
                    if ch in fields:
                        fields[ch] *= factor
        except PollFailure as exc:
            status = exc.status
        except WriteRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - one device never kills the collector
            status = "decode_error"
            log.exception("%s: poll failed: %s", self.device.id, exc, extra=self._ctx)
        st = self.state
        st.polls += 1
        st.last_status = status
        if answered and (fields or status == "ok"):
            st.failures = 0
            if st.online is False:
                log.info("%s: online again", self.device.id, extra=self._ctx)
            st.online = True
        else:
            st.failures += 1
            if st.failures >= OFFLINE_AFTER:
                if st.online is not False:
                    log.warning("%s: offline after %d failed polls (%s)", self.device.id, st.failures, status,
                                extra=self._ctx)
                st.online = False          # until then the status says online=1 (reliability.md §0 row 10)
        latency_ms = (time.perf_counter() - started) * 1000.0
        points = []
        if fields:
            points.append(Point(self.device.kind, dict(self.device.tags), fields, time_ns))
        points.append(Point("collector_status", dict(self.status_tags),
                            {"status": status, "online": 0 if st.online is False else 1,
                             "latency_ms": round(latency_ms, 3)}, time_ns))
        return points


class ModbusCollector:
    """Poll every Modbus device of ``fleet`` and hand its Points to ``sink``.

    ``sink(points)`` is a plain callable (e.g. ``core.influx.Writer.submit`` or ``list.extend``);
    ``clock`` gives wall-clock seconds (the schedule and timestamps); ``devices`` limits the
    collector to some device ids.  Raises ``ValueError`` naming the device whose profile is unknown.
    """

    def __init__(self, fleet: Fleet, profiles: Mapping[str, Profile], sink: Sink, *,
                 clock: Callable[[], float] = time.time, devices: list[str] | None = None,
                 seed: int | None = None):
        self.fleet, self.sink, self.clock = fleet, sink, clock
        rng = random.Random(seed)
        plog = logging.getLogger("pymodbus")
        if plog.level == logging.NOTSET:
            plog.setLevel(logging.CRITICAL)     # we report every failure ourselves, per device
        self.links: dict[str, Link] = {}
        self.pollers: list[DevicePoller] = []
        self.counters: Counter = Counter()
        self.lags: deque[float] = deque(maxlen=LAG_KEEP)
        self.lag_times: deque[float] = deque(maxlen=LAG_KEEP)
        for dev in fleet.devices.values():
            if dev.transport != "modbus" or (devices is not None and dev.id not in devices):
                continue
            if dev.profile not in profiles:
                raise ValueError(f"device {dev.id!r}: unknown profile {dev.profile!r}")
            if dev.gateway is not None:
                gw = fleet.gateways[dev.gateway]
                key = f"gateway:{gw.id}"
                if key not in self.links:
                    self.links[key] = Link(key, gw.host, gw.port, framer=gw.framer, pause_s=gw.pause_s,
                                           timeout=gw.timeout_s, rng=rng)
            else:
                key = f"tcp:{dev.host}:{dev.port}"
                if key not in self.links:
                    self.links[key] = Link(key, dev.host, dev.port, timeout=dev.timeout_s, rng=rng)
            self.pollers.append(DevicePoller(dev, profiles[dev.profile], self.links[key]))
        users = Counter(p.link.name for p in self.pollers)
        for name, link in self.links.items():
            link.exclusive = users[name] == 1

    async def _device_loop(self, poller: DevicePoller, stop: asyncio.Event) -> None:
        interval_ns = round(poller.device.poll_interval_s * 1e9)
        interval_s = interval_ns / 1e9
        phase_ns = device_phase_ns(poller.device.id, interval_ns)
        slot = (int(self.clock() * 1e9) - phase_ns) // interval_ns + 1      # integer slot: exact ns timestamps
        while not stop.is_set():
            now = self.clock()
            delay = (slot * interval_ns + phase_ns) / 1e9 - now
            if delay > interval_s:
                # the wall clock stepped back (NTP correction): re-align instead of sleeping the step
                self.counters["clock_steps_back"] += 1
                slot = (int(now * 1e9) - phase_ns) // interval_ns + 1
                continue
            if delay > 0.001:
                await asyncio.sleep(delay)          # <= one interval; run() cancels this task at stop
                continue                            # re-check: the clock may have stepped meanwhile
            points = await poller.poll(slot * interval_ns)
            end = self.clock()
            self.lags.append(end - (slot * interval_ns + phase_ns) / 1e9)   # poll end vs its schedule
            self.lag_times.append(end)
            self.counters["polls"] += 1
            self.counters["status_" + points[-1].fields["status"]] += 1
            try:
                self.sink(points)
            except Exception as exc:  # noqa: BLE001
                self.counters["sink_errors"] += 1
                log.error("sink failed for %s: %s", poller.device.id, exc, extra=poller._ctx)
            nxt = slot + 1
            now_slot = (int(self.clock() * 1e9) - phase_ns) // interval_ns + 1
            if now_slot > nxt:
                self.counters["skipped_slots"] += now_slot - nxt
                nxt = now_slot
            slot = nxt

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; then close every connection."""
        self.lags, self.lag_times = deque(maxlen=LAG_KEEP), deque(maxlen=LAG_KEEP)   # (subclasses' __init__ too)
        tasks = [asyncio.create_task(self._device_loop(p, stop), name=f"poll-{p.device.id}")
                 for p in self.pollers]
        for t in tasks:
            t.add_done_callback(self._task_done)
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for link in self.links.values():
                link.close()

    def _task_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.counters["task_errors"] += 1
            log.error("%s stopped: %r", task.get_name(), task.exception())

    def stats(self) -> dict:
        """Counters: polls, ok, failures by status, offline device ids, skipped slots, connects."""
        failures = {k[7:]: v for k, v in self.counters.items() if k.startswith("status_") and k != "status_ok"}
        links: Counter = Counter()
        for link in self.links.values():
            links.update(link.stats)
        return {
            "devices": len(self.pollers),
            "polls": self.counters["polls"],
            "ok": self.counters["status_ok"],
            "failures": failures,
            "offline": sorted(p.device.id for p in self.pollers if p.state.online is False),
            "skipped_slots": self.counters["skipped_slots"],
            "clock_steps_back": self.counters["clock_steps_back"],
            "sink_errors": self.counters["sink_errors"],
            "connects": links["connects"],
            "connect_failed": links["connect_failed"],
            **lag_stats(getattr(self, "lags", ()), getattr(self, "lag_times", ()), self.clock() - LAG_WINDOW_S),
        }

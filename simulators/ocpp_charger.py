"""OCPP 1.6J charge-point simulator built on the ``ocpp`` package, as a real AC charger behaves.

* connects to ``ws(s)://…/<charge_point_id>`` (subprotocol ``ocpp1.6``, HTTP Basic auth), sends
  BootNotification and a StatusNotification per connector, then Heartbeats at the interval the
  central system gave; a lost connection is re-opened with backoff (0.5 s doubling to 10 s);
* several connectors, each with its own transaction;
* transaction messages (StartTransaction, MeterValues of a transaction, StopTransaction) go through
  a queue kept while offline and sent in order, with their original timestamps, once connected; a
  transaction started offline gets a local id until its StartTransaction is answered, and its later
  messages are sent with the central system's id (OCPP 1.6 §3.x "offline behaviour");
* :func:`follow_signals` drives connector 1 from :class:`simulators.signals.FleetSignals` (status,
  session start/stop, energy register, power, currents, voltages), for ``energyhost simulate``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

from ocpp.exceptions import OCPPError
from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core.channels import OCPP_STATUS

log = logging.getLogger(__name__)
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 10.0
MAX_TRIES = 3                   # error answers before a queued transaction message is dropped


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ChargerSim:
    """One simulated charge point.  ``await run(stop)`` keeps it connected; the coroutines below
    queue its messages.  ``answers`` counts the answers received per action."""

    def __init__(self, cp_id: str, url: str, password: str | None, *, connectors: int = 2, ssl=None,
                 response_timeout: float = 10.0):
        self.cp_id, self.url, self.password, self.ssl = cp_id, url.rstrip("/"), password, ssl
        self.connectors, self.response_timeout = connectors, response_timeout
        self.queue: deque[tuple[str, dict]] = deque()
        self.tx_ids: dict[int, int] = {}                  # local id -> central system id
        self.open_tx: dict[int, int] = {}                 # connector -> local id
        self._local = itertools.count(1)
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self.answers: dict[str, int] = {}
        self.status: dict[int, tuple[str, str]] = dict.fromkeys(range(1, connectors + 1), ("Available", "NoError"))
        self.cp: ChargePoint | None = None
        self.heartbeat_s = 60.0
        self.connects = 0
        self.refused = 0
        self.dropped = 0

    # ------------------------------------------------------------ what a charger does
    def start_transaction(self, connector: int, id_tag: str, meter_start_wh: float, t: float) -> int:
        local = -next(self._local)
        self.open_tx[connector] = local
        self._push("StartTransaction", {"local": local, "connector_id": connector, "id_tag": id_tag,
                                        "meter_start": int(meter_start_wh), "timestamp": iso(t)})
        return local

    def meter_values(self, connector: int, t: float, samples: dict[str, float]) -> None:
        """``samples``: channel -> value (energy_import Wh, active_power W, current_l1.., voltage_l1..)."""
        sv = []
        for ch, v in samples.items():
            m = {"energy_import": ("Energy.Active.Import.Register", None, "Wh"),
                 "active_power": ("Power.Active.Import", None, "W"),
                 "state_of_charge": ("SoC", None, "Percent")}.get(ch)
            if m is None and ch[:-1] in ("current_l", "voltage_l"):
                k = ch[-1]
                m = ("Current.Import", f"L{k}", "A") if ch.startswith("current") else ("Voltage", f"L{k}-N", "V")
            if m is None:
                continue
            row = {"value": f"{v:.3f}".rstrip("0").rstrip("."), "measurand": m[0], "unit": m[2],
                   "context": "Sample.Periodic"}
            if m[1]:
                row["phase"] = m[1]
            sv.append(row)
        self._push("MeterValues", {"local": self.open_tx.get(connector), "connector_id": connector,
                                   "meter_value": [{"timestamp": iso(t), "sampled_value": sv}]})

    def stop_transaction(self, connector: int, meter_stop_wh: float, t: float, reason: str = "EVDisconnected") -> None:
        local = self.open_tx.pop(connector)
        self._push("StopTransaction", {"local": local, "meter_stop": int(meter_stop_wh), "timestamp": iso(t),
                                       "reason": reason})

    async def set_status(self, connector: int, status: str, error_code: str = "NoError") -> None:
        """Status changes are sent when connected (and all again after every boot), never queued."""
        self.status[connector] = (status, error_code)
        if self.connected.is_set():
            await self._send_status(connector)

    def pending(self) -> int:
        return len(self.queue)

    # ------------------------------------------------------------ connection
    def _push(self, action: str, payload: dict) -> None:
        self.queue.append((action, payload))
        self._wake.set()

    def _headers(self) -> dict[str, str]:
        if self.password is None:
            return {}
        token = base64.b64encode(f"{self.cp_id}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def run(self, stop: asyncio.Event) -> None:
        olog = logging.getLogger("ocpp")
        if olog.level == logging.NOTSET:
            olog.setLevel(logging.WARNING)     # it logs every message at INFO
        backoff = 0.0
        while not stop.is_set():
            try:
                async with connect(f"{self.url}/{self.cp_id}", subprotocols=["ocpp1.6"], ssl=self.ssl,
                                   additional_headers=self._headers(), open_timeout=5, ping_interval=None) as ws:
                    backoff = 0.0
                    await self._session(ws, stop)
            except InvalidStatus as exc:
                self.refused += 1
                log.warning("%s: refused by the central system: %s", self.cp_id, exc)
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                log.info("%s: connection lost (%s)", self.cp_id, type(exc).__name__)
            except OCPPError as exc:
                log.warning("%s: central system answered an error: %s", self.cp_id, exc)
            self.connected.clear()
            backoff = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, 2 * backoff))
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                pass

    async def _session(self, ws, stop: asyncio.Event) -> None:
        self.cp = ChargePoint(self.cp_id, ws, response_timeout=self.response_timeout)
        reader = asyncio.create_task(self.cp.start())
        try:
            boot = await self._call(call.BootNotification(charge_point_model="EH-AC22", charge_point_vendor="energyhost"))
            self.heartbeat_s = float(boot.interval or 60)
            self.connects += 1
            for c in self.status:
                await self._send_status(c)
            self.connected.set()            # after the boot statuses: a status set meanwhile is sent by them
            last_beat = time.monotonic()
            while not stop.is_set() and not reader.done():
                await self._drain_queue()
                if time.monotonic() - last_beat >= self.heartbeat_s:
                    await self._call(call.Heartbeat())
                    last_beat = time.monotonic()
                self._wake.clear()
                waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait()), reader]
                done, _ = await asyncio.wait(waits, timeout=min(1.0, self.heartbeat_s),
                                             return_when=asyncio.FIRST_COMPLETED)
                for w in waits[:2]:
                    w.cancel()
            if reader.done() and reader.exception():
                raise reader.exception()
        finally:
            self.connected.clear()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _call(self, payload):
        result = await self.cp.call(payload, suppress=False)        # a CallError raises OCPPError
        name = type(payload).__name__
        self.answers[name] = self.answers.get(name, 0) + 1
        return result

    async def _send_status(self, connector: int) -> None:
        status, error = self.status[connector]
        await self._call(call.StatusNotification(connector_id=connector, error_code=error, status=status,
                                                 timestamp=iso(time.time())))

    async def _drain_queue(self) -> None:
        """Send the queued transaction messages in order; one stays queued until it is answered."""
        while self.queue:
            action, p = self.queue[0]
            try:
                await self._send_queued(action, p)
            except OCPPError as exc:
                # an error answer: tried again at the next connection, dropped after MAX_TRIES
                p["tries"] = p.get("tries", 0) + 1
                if p["tries"] < MAX_TRIES:
                    raise
                self.dropped += 1
                log.error("%s: %s dropped after %d error answers: %s", self.cp_id, action, MAX_TRIES, exc)
            self.queue.popleft()

    async def _send_queued(self, action: str, p: dict) -> None:
        args = {k: v for k, v in p.items() if k not in ("local", "tries")}
        local = p.get("local")
        if action == "StartTransaction":
            res = await self._call(call.StartTransaction(**args))
            self.tx_ids[local] = res.transaction_id
        elif action == "MeterValues":
            await self._call(call.MeterValues(**args, transaction_id=self.tx_ids.get(local)))
        else:
            await self._call(call.StopTransaction(**args, transaction_id=self.tx_ids[local]))

async def follow_signals(sim: ChargerSim, values: Callable[[float], dict], stop: asyncio.Event, *,
                         interval_s: float = 10.0, clock: Callable[[], float] = time.time,
                         id_tag: str = "SIMTAG01") -> None:
    """Drive connector 1 of ``sim`` from ``values(t)`` (a charger's channels from the signal model):
    status changes, a transaction per plug-in (start at the register minus ``session_energy``, stop
    when the car leaves), MeterValues every ``interval_s`` while a transaction is open."""
    last = None
    while not stop.is_set():
        t = clock()
        v = values(t)
        status = OCPP_STATUS[int(v.get("ocpp_status", 0))]
        if status != last:
            await sim.set_status(1, status, "NoError" if not v.get("fault_code") else "OtherError")
        plugged = status not in ("Available", "Unavailable", "Faulted", "Reserved")
        if plugged and 1 not in sim.open_tx:
            sim.start_transaction(1, id_tag, v["energy_import"] - v.get("session_energy", 0.0), t)
        elif not plugged and 1 in sim.open_tx:
            sim.stop_transaction(1, v["energy_import"], t)
        if 1 in sim.open_tx:
            sim.meter_values(1, t, {k: v[k] for k in ("energy_import", "active_power", "current_l1", "current_l2",
                                                      "current_l3", "voltage_l1") if k in v})
        last = status
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass

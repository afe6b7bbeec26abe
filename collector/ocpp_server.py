"""OCPP 1.6J central system: EV chargers connect over WebSocket and their messages become Points.

Built on the ``ocpp`` package (``ocpp.v16.ChargePoint`` with ``@on`` handlers) over ``websockets``.

* A charger opens ``ws(s)://host:port/<charge_point_id>`` with subprotocol ``ocpp1.6`` and HTTP Basic
  auth (user = its charge point id, password from the fleet's ``password_file``/``password_env``):
  security profile 1 over ``ws://``, profile 2 over ``wss://`` when a TLS context is given.  An
  unknown id, a wrong password or a user that is not the path's id is refused with 401 before the
  WebSocket opens; the password comparison is constant-time.
* Answered: BootNotification (Accepted, ``interval`` = heartbeat seconds), Heartbeat, Authorize,
  StatusNotification, MeterValues, StartTransaction, StopTransaction, DataTransfer.
* MeterValues: measurands mapped to channels (:data:`MEASURANDS`; kWh/kW converted to Wh/W) at the
  charger's own timestamps; measurement ``ev_connector`` with tags ``device.tags`` + ``connector``.
* StatusNotification: ``ocpp_status`` (index of :data:`core.channels.OCPP_STATUS`) and ``fault_code``
  (0 = NoError, else 1 + index in :data:`ERROR_CODES`), floats as the Modbus and MQTT chargers write
  them, per connector in ``ev_connector`` — at once and again every ``state_interval_s`` while connected.
* The charger as one device in ``ev_charger`` (tags ``device.tags`` only, like a Modbus or MQTT
  charger, so the analytics read one series per device): ``ocpp_status`` of the most telling
  connector (:data:`STATUS_RANK`: a fault first) and the largest ``fault_code``, written with every
  status and state round, so the persistence rules of ``analytics.faults.ev_faulted`` see a faulted
  connector.  Meter readings stay in ``ev_connector`` (one register per connector).
* Sessions: measurement ``ev_session`` (tags ``device.tags`` + ``connector``), one point at the start
  time: ``transaction_id``, ``id_tag``, ``meter_start`` at start, completed at stop with
  ``meter_stop``, ``session_energy`` [Wh], ``session_duration`` and ``session_idle_time`` [s] (time
  plugged in after the energy stopped rising) and ``stop_reason``.
* A MeterValues, StartTransaction or StopTransaction is answered only once its points are written to
  InfluxDB or spooled on disk (``Writer.submit(..., on_durable=...)``): a charger that gets no answer
  keeps the message queued and sends it again, so nothing is lost when InfluxDB is down.
* Open sessions survive a restart of the central system (``sessions.json`` next to the spool).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hmac
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, DataTransferStatus, RegistrationStatus
from websockets.asyncio.server import serve

from core.channels import OCPP_STATUS
from core.config import Device, Fleet
from core.model import Point

log = logging.getLogger(__name__)
ERROR_CODES = ("ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature",
               "InternalError", "LocalListConflict", "OtherError", "OverCurrentFailure", "OverVoltage",
               "PowerMeterFailure", "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage",
               "WeakSignal")
#: (measurand, phase) -> channel; phase None = no phase given
MEASURANDS = {
    ("Energy.Active.Import.Register", None): "energy_import",
    ("Power.Active.Import", None): "active_power",
    ("Current.Offered", None): "max_current_offered",
    ("Frequency", None): "frequency",
    ("SoC", None): "state_of_charge",
    **{("Current.Import", f"L{k}"): f"current_l{k}" for k in (1, 2, 3)},
    **{("Voltage", f"L{k}-N"): f"voltage_l{k}" for k in (1, 2, 3)},
    **{("Voltage", f"L{k}"): f"voltage_l{k}" for k in (1, 2, 3)},
}
CONNECTOR_MEASUREMENT = "ev_connector"
#: which connector status speaks for the charger (ev_charger summary): a fault first, then activity
STATUS_RANK = tuple(OCPP_STATUS.index(s) for s in ("Faulted", "Unavailable", "Charging", "SuspendedEV",
                                                   "SuspendedEVSE", "Finishing", "Preparing", "Reserved",
                                                   "Available"))
SILENT_HEARTBEATS = 3          # a connected charger silent this many heartbeat intervals is closed
UNIT_FACTOR = {"kWh": 1000.0, "kW": 1000.0, "kvarh": 1000.0, "kvar": 1000.0}
Submit = Callable[..., None]            # core.influx.Writer.submit(points, on_durable=None)


def parse_time(text: str) -> float:
    """OCPP timestamp (RFC 3339, ``Z`` or offset) → unix seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def fault_code(error_code: str) -> int:
    return 0 if error_code == "NoError" else 1 + (ERROR_CODES.index(error_code) if error_code in ERROR_CODES
                                                  else ERROR_CODES.index("OtherError"))


def sampled_fields(meter_value: Mapping) -> tuple[float, dict[str, float], int]:
    """One ``meterValue`` element → (unix time, channel fields, samples not mapped)."""
    fields: dict[str, float] = {}
    unmapped = 0
    for sv in meter_value.get("sampled_value", ()):
        key = (sv.get("measurand", "Energy.Active.Import.Register"), sv.get("phase"))
        ch = MEASURANDS.get(key)
        try:
            value = float(sv["value"]) * UNIT_FACTOR.get(sv.get("unit", ""), 1.0)
        except (KeyError, ValueError):
            ch = None
        if ch is None:
            unmapped += 1
            continue
        fields[ch] = value
    return parse_time(meter_value["timestamp"]), fields, unmapped


@dataclass
class Session:
    transaction_id: int
    device: str
    connector: int
    id_tag: str
    meter_start: float
    start: float
    last_energy: float = -1.0
    last_rise: float = 0.0          # when the energy register last rose (charging end once idle)
    charge_end: float = 0.0         # Charging -> SuspendedEV/Finishing seen in a StatusNotification


@dataclass
class ChargerState:
    device: Device
    connected: bool = False
    ws: object | None = None             # the current connection: a newer one replaces it
    connectors: dict[int, tuple[int, int]] = field(default_factory=dict)    # connector -> (status, fault)
    last_seen: float = 0.0


class _Handler(ChargePoint):
    """One connected charger; every handler is a thin call into :class:`CentralSystem`."""

    def __init__(self, cp_id: str, connection, system: CentralSystem):
        super().__init__(cp_id, connection)
        self.system = system
        self.state = system.chargers[cp_id]

    async def route_message(self, raw_msg):
        self.state.last_seen = time.time()          # any message shows the charger alive
        return await super().route_message(raw_msg)

    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_):
        log.info("%s: boot (%s %s)", self.id, charge_point_vendor, charge_point_model)
        return call_result.BootNotification(current_time=now_iso(), interval=self.system.heartbeat_s,
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    async def on_heartbeat(self):
        self.state.last_seen = time.time()
        return call_result.Heartbeat(current_time=now_iso())

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str):
        return call_result.Authorize(id_tag_info={"status": self.system.authorize(id_tag)})

    @on(Action.status_notification)
    async def on_status(self, connector_id: int, error_code: str, status: str, timestamp: str | None = None, **_):
        await self.system.status(self.state, connector_id, error_code, status,
                                 parse_time(timestamp) if timestamp else time.time())
        return call_result.StatusNotification()

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None):
        await self.system.meter_values(self.state, connector_id, meter_value, transaction_id)
        return call_result.MeterValues()

    @on(Action.start_transaction)
    async def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_):
        tx = await self.system.start_transaction(self.state, connector_id, id_tag, meter_start, parse_time(timestamp))
        return call_result.StartTransaction(transaction_id=tx, id_tag_info={"status": self.system.authorize(id_tag)})

    @on(Action.stop_transaction)
    async def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, reason: str = "Local",
                      transaction_data: list | None = None, **_):
        await self.system.stop_transaction(self.state, transaction_id, meter_stop, parse_time(timestamp), reason,
                                           transaction_data or [])
        return call_result.StopTransaction()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None):
        self.system.counters["data_transfer"] += 1
        log.info("%s: DataTransfer from %s (%s)", self.id, vendor_id, message_id)
        return call_result.DataTransfer(status=DataTransferStatus.accepted)


class CentralSystem:
    """The OCPP 1.6J server for every ``transport = "ocpp"`` charger of ``fleet``.

    ``submit(points, on_durable=cb)`` is :meth:`core.influx.Writer.submit`; ``passwords`` maps a charge
    point id to its Basic-auth password (:func:`charger_passwords`); ``state_dir`` holds
    ``sessions.json``; ``ssl`` (an ``ssl.SSLContext``) serves ``wss://``.
    """

    def __init__(self, fleet: Fleet, submit: Submit, passwords: Mapping[str, str], *, state_dir: str | Path,
                 host: str = "127.0.0.1", port: int = 0, ssl=None, heartbeat_s: int = 60,
                 state_interval_s: float = 60.0, id_tags: set[str] | None = None):
        self.submit, self.passwords, self.host, self.port, self.ssl = submit, dict(passwords), host, port, ssl
        self.heartbeat_s, self.state_interval_s, self.id_tags = heartbeat_s, state_interval_s, id_tags
        self.chargers = {d.charge_point_id: ChargerState(d) for d in fleet.devices.values() if d.transport == "ocpp"}
        self.counters: Counter = Counter()
        self.state_file = Path(state_dir) / "sessions.json"
        self.sessions: dict[int, Session] = self._load_sessions()
        self._tx = itertools.count(max([int(time.time()) % 1_000_000_000, *self.sessions]) + 1)
        self._server = None
        self._tasks: list[asyncio.Task] = []
        self._handlers: set[asyncio.Task] = set()

    # ------------------------------------------------------------ server
    async def start(self) -> CentralSystem:
        olog = logging.getLogger("ocpp")
        if olog.level == logging.NOTSET:
            olog.setLevel(logging.WARNING)     # it logs every message (id tags included) at INFO
        self._server = await serve(self._connection, self.host, self.port, subprotocols=["ocpp1.6"],
                                   process_request=self._auth, ssl=self.ssl, ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._state_loop(), name="ocpp-state"))
        log.info("OCPP central system on %s://%s:%d/<charge point id>, %d chargers",
                 "wss" if self.ssl else "ws", self.host, self.port, len(self.chargers))
        return self

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for t in list(self._handlers):
            t.cancel()                 # a handler may be waiting for durability that never comes
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _auth(self, connection, request):
        cp_id = request.path.strip("/").rsplit("/", 1)[-1]
        password = self.passwords.get(cp_id)
        user, _, given = _basic(request.headers.get("Authorization", ""))
        ok = password is not None and cp_id in self.chargers and user == cp_id
        # compare even when the id is unknown, so the answer time does not tell which ids exist
        ok = hmac.compare_digest((given or "").encode(), (password or "\0").encode()) and ok
        if not ok:
            self.counters["auth_refused"] += 1
            log.warning("OCPP: refused %r from %s", cp_id, connection.remote_address)
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "charge point id or password wrong\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp"'
            return response
        return None

    async def _connection(self, ws) -> None:
        cp_id = ws.request.path.strip("/").rsplit("/", 1)[-1]
        if ws.subprotocol != "ocpp1.6":
            await ws.close(1002, "subprotocol ocpp1.6 required")
            return
        state = self.chargers[cp_id]
        if state.ws is not None:
            # a charger that reconnects before its old socket timed out: the new connection wins
            self.counters["replaced_connections"] += 1
            await state.ws.close(1000, "replaced by a newer connection")
        state.ws = ws
        state.connected, state.last_seen = True, time.time()
        self.counters["connects"] += 1
        self.submit([self._status_point(state, state.last_seen)])
        handler = _Handler(cp_id, ws, self)
        me = asyncio.current_task()
        self._handlers.add(me)
        try:
            await handler.start()
        except Exception as exc:  # noqa: BLE001 - a closed socket or a broken charger ends this one only
            log.info("%s: disconnected (%s)", cp_id, type(exc).__name__)
        except asyncio.CancelledError:
            pass                       # the central system is stopping
        finally:
            self._handlers.discard(me)
            if state.ws is ws:
                state.ws, state.connected = None, False
                self.submit([self._status_point(state, time.time())])

    # ------------------------------------------------------------ messages
    def authorize(self, id_tag: str) -> str:
        if self.id_tags is None or id_tag in self.id_tags:
            return AuthorizationStatus.accepted
        return AuthorizationStatus.invalid

    async def durable(self, points: list[Point]) -> None:
        """Hand ``points`` to the writer; return once they are written or spooled."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ready() -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        self.submit(points, on_durable=ready)
        await done

    def _tags(self, state: ChargerState, connector: int) -> dict[str, str]:
        return {**state.device.tags, "connector": str(connector)}

    @staticmethod
    def _summary(state: ChargerState, t: float) -> Point:
        """The charger as one device (measurement ``ev_charger``, no connector tag), as a Modbus charger
        reports itself: the most telling connector status and the largest fault code.  Readings stay per
        connector: a MeterValues may be an old one sent late, and summing it with the other connectors'
        present values would invent a moment that never was."""
        statuses = [s for s, _ in state.connectors.values()] or [OCPP_STATUS.index("Available")]
        fields = {"ocpp_status": float(min(statuses, key=STATUS_RANK.index)),
                  "fault_code": float(max((f for _, f in state.connectors.values()), default=0))}
        return Point("ev_charger", dict(state.device.tags), fields, _ns(t))

    async def status(self, state: ChargerState, connector: int, error_code: str, status: str, t: float) -> None:
        code = OCPP_STATUS.index(status) if status in OCPP_STATUS else OCPP_STATUS.index("Unavailable")
        state.connectors[connector] = (code, fault_code(error_code))
        if error_code != "NoError":
            self.counters["connector_errors"] += 1
            log.warning("%s: connector %d %s %s", state.device.id, connector, status, error_code)
        if status in ("SuspendedEV", "SuspendedEVSE", "Finishing"):
            for s in self.sessions.values():
                if s.device == state.device.id and s.connector == connector and not s.charge_end:
                    s.charge_end = t
        elif status == "Charging":
            for s in self.sessions.values():
                if s.device == state.device.id and s.connector == connector:
                    s.charge_end = 0.0
        await self.durable([Point(CONNECTOR_MEASUREMENT, self._tags(state, connector),
                                  {"ocpp_status": float(code), "fault_code": float(state.connectors[connector][1])},
                                  _ns(t)), self._summary(state, t)])

    async def meter_values(self, state: ChargerState, connector: int, meter_value: list,
                           transaction_id: int | None) -> None:
        points = []
        session = self.sessions.get(transaction_id) if transaction_id is not None else None
        for mv in meter_value:
            try:
                t, fields, unmapped = sampled_fields(mv)
            except (KeyError, ValueError) as exc:
                self.counters["meter_values_bad"] += 1
                log.warning("%s: meter value skipped: %s", state.device.id, exc)
                continue
            self.counters["samples_unmapped"] += unmapped
            if session is not None and "energy_import" in fields:
                if fields["energy_import"] > session.last_energy >= 0:
                    session.last_rise = t
                session.last_energy = fields["energy_import"]
                fields["session_energy"] = fields["energy_import"] - session.meter_start
            if fields:
                points.append(Point(CONNECTOR_MEASUREMENT, self._tags(state, connector), fields, _ns(t)))
        if points:
            await self.durable(points)
            self._save_sessions()

    async def start_transaction(self, state: ChargerState, connector: int, id_tag: str, meter_start: int,
                                t: float) -> int:
        tx = next(self._tx)
        s = Session(tx, state.device.id, connector, id_tag, float(meter_start), t, float(meter_start), t)
        self.sessions[tx] = s
        await self.durable([Point("ev_session", self._tags(state, connector),
                                  {"transaction_id": tx, "id_tag": id_tag, "meter_start": float(meter_start)},
                                  _ns(t))])
        self._save_sessions()
        return tx

    async def stop_transaction(self, state: ChargerState, tx: int, meter_stop: int, t: float, reason: str,
                               transaction_data: list) -> None:
        if transaction_data:
            await self.meter_values(state, self.sessions[tx].connector if tx in self.sessions else 0,
                                    transaction_data, tx)
        s = self.sessions.get(tx)
        if s is None:
            # started before this central system kept state (or by another one): store what the stop says
            self.counters["stop_unknown_transaction"] += 1
            s = Session(tx, state.device.id, 0, "", float("nan"), t)
        if float(meter_stop) > s.last_energy >= 0:
            s.last_rise = t
        charge_end = s.charge_end or s.last_rise or t
        fields = {"transaction_id": tx, "meter_stop": float(meter_stop), "session_energy": meter_stop - s.meter_start,
                  "session_duration": t - s.start, "session_idle_time": max(0.0, t - charge_end),
                  "stop_reason": reason, "stop_time": t}
        fields = {k: v for k, v in fields.items() if v == v}          # NaN (unknown start) left out
        await self.durable([Point("ev_session", self._tags(state, s.connector), fields, _ns(s.start))])
        self.sessions.pop(tx, None)
        self._save_sessions()
        self.counters["sessions"] += 1

    # ------------------------------------------------------------ state
    def _status_point(self, state: ChargerState, t: float) -> Point:
        return Point("collector_status", {**state.device.tags, "source": "ocpp"},
                     {"status": "ok" if state.connected else "disconnected", "online": int(state.connected)}, _ns(t))

    async def _state_loop(self) -> None:
        while True:
            await asyncio.sleep(self.state_interval_s)
            t = time.time()
            points = []
            for state in self.chargers.values():
                if state.connected and t - state.last_seen > SILENT_HEARTBEATS * self.heartbeat_s and state.ws:
                    # a charger gone without closing (power cut, NAT timeout): the socket looks open
                    self.counters["silent_closed"] += 1
                    log.warning("%s: nothing for %.0f s, connection closed", state.device.id, t - state.last_seen)
                    await state.ws.close(1001, "no heartbeat")
                points.append(self._status_point(state, t))
                if state.connected and state.connectors:
                    points += [Point(CONNECTOR_MEASUREMENT, self._tags(state, c),
                                     {"ocpp_status": float(s), "fault_code": float(f)}, _ns(t))
                               for c, (s, f) in state.connectors.items()]
                    points.append(self._summary(state, t))
            self.submit(points)

    def _load_sessions(self) -> dict[int, Session]:
        try:
            return {int(k): Session(**v) for k, v in json.loads(self.state_file.read_text()).items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as exc:
            log.error("%s: unreadable, open sessions forgotten: %s", self.state_file, exc)
            return {}

    def _save_sessions(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(k): asdict(v) for k, v in self.sessions.items()}))
        tmp.replace(self.state_file)

    def stats(self) -> dict:
        return {**self.counters, "connected": sum(c.connected for c in self.chargers.values()),
                "open_sessions": len(self.sessions)}


def _ns(t: float) -> int:
    return int(round(t * 1e9))


def _basic(header: str) -> tuple[str, str, str]:
    """``Basic base64(user:password)`` → (user, ":", password); empty strings when malformed."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return "", "", ""
    try:
        return base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", "", ""

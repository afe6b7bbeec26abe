"""MQTT collector: field-gateway JSON payloads → validated points → :class:`core.influx.Writer`.

Topic scheme and payload schema: ``docs/mqtt.md``.  paho-mqtt 2.x, MQTT v5, QoS 1, a stable
client id, ``clean_start=False`` with a session expiry of at least 3,600 s, and **manual
acknowledgement**: a PUBACK is sent only after the Writer reports the message's points durable
(written to InfluxDB or fsync'ed to the spool), so a crash between delivery and storage makes
the broker redeliver (MQTT-4.4.0-1; reliability.md §7).  Timestamps come from the payload, so a
redelivered message rewrites the same InfluxDB keys (idempotent).

The parser :func:`parse_payload` is a pure function.  Rejected input (bad JSON, wrong types,
NaN/Inf, missing fields, unknown device or channel, timestamp out of the window, over-size) is
counted per reason, appended to a JSONL dead-letter file, and acknowledged; the valid readings
of the same batch are still stored.

Error policy::

    MqttCollectorError   cannot connect / subscribe at start (message names host, port, reason)
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.channels import CHANNELS
from core.config import Fleet
from core.deadletter import DEFAULT_MAX_BYTES as DEFAULT_DEADLETTER_MAX_BYTES
from core.deadletter import DeadLetterFile
from core.ids import ID_RE
from core.model import FloatFields, Point
from core.topics import SUBSCRIPTIONS, TOPIC_PREFIX

log = logging.getLogger("energyhost.mqtt")

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_FUTURE_NS = 5 * 60 * 10**9          # 5 min
#: a message whose own timestamp is this far from its arrival gets a ``device_clock_offset`` point
#: [s] stamped at the arrival (the device clock check in analytics); nearer, nothing is added: a
#: gateway that batches a minute of readings sends them up to ~60 s late with a right clock
CLOCK_OFFSET_RECORD_S = 90.0
#: at most one such point per device this often [s] when the caller keeps ``clock_seen`` (a backlog drain)
CLOCK_OFFSET_EVERY_S = 10.0
_CLOCK_OFFSET_RECORD_NS = int(CLOCK_OFFSET_RECORD_S * 1e9)
_CLOCK_OFFSET_EVERY_NS = int(CLOCK_OFFSET_EVERY_S * 1e9)
MAX_PAST_NS = 30 * 86400 * 10**9        # 30 days
SESSION_EXPIRY_S = 24 * 3600

REASONS = ("oversize", "bad_json", "bad_schema", "bad_topic", "unknown_device", "not_mqtt_device",
           "wrong_site", "missing_field", "bad_timestamp", "timestamp_future", "timestamp_past",
           "unknown_channel", "wrong_type", "non_finite", "empty_values")


# PUBACK of MQTT 5.0 §3.4 with remaining length 2: packet identifier only, reason 0x00 (success) implied
_PUBACK = struct.Struct("!BBH")


def _send_pubacks(client: mqtt.Client, mids: list[int]) -> None:
    """Acknowledge QoS 1 messages ``mids`` with one queued write instead of one per message.

    ``Client.ack`` queues each PUBACK on its own (a packet dict, a wake-up byte to the network
    thread, then one ``send`` per PUBACK); the PUBACKs of a written batch go out as one buffer
    through the same queue (``_packet_queue``, what ``ack`` itself calls; paho-mqtt 2.x).
    """
    queue = getattr(client, "_packet_queue", None)
    if queue is None:                     # another paho: the public call, one by one
        for mid in mids:
            client.ack(mid, 1)
        return
    queue(mqtt.PUBACK, b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids]), 0, 0)


class MqttCollectorError(RuntimeError):
    """The collector could not connect or subscribe."""


class Reject(NamedTuple):
    reason: str          # one of REASONS
    detail: str          # what exactly, naming device / channel / value


class _NonFinite(float):
    """Marks NaN / Infinity tokens read by json (Python's json accepts them by default)."""


def _parse_constant(token: str) -> float:
    return _NonFinite({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}[token])


_DECODER = json.JSONDecoder(parse_constant=_parse_constant)


def _load_json(payload: bytes) -> tuple[Any, bool]:
    """Decode a payload: orjson (~6x faster than ``json``) for the valid JSON that makes up the
    stream; anything orjson refuses (invalid JSON or UTF-8, NaN/Infinity tokens, integers beyond
    64 bits, numbers beyond float range) is decoded again by the stdlib decoder, which gives the
    precise reason — or marks NaN/Infinity, so the reject names the channel.  Returns (document,
    every float in it is finite)."""
    try:
        return orjson.loads(payload), True
    except orjson.JSONDecodeError:
        return _DECODER.decode(payload.decode("utf-8")), False


def _ts_ns(reading: dict, now_ns: int, device_id: str | None) -> tuple[int | None, Reject | None]:
    """The reading's time [ns] or its reject; ``device_id`` names it in the reject (None: a status)."""
    ts = reading.get("ts")
    if type(ts) is int:     # the common case: integer epoch ms well inside the window
        t = ts * 1_000_000
        if now_ns - MAX_PAST_NS <= t <= now_ns + MAX_FUTURE_NS:
            return t, None
    who = "status" if device_id is None else f"device {device_id!r}"   # formatted only for a reject
    if "ts" not in reading:
        return None, Reject("missing_field", f"{who}: no 'ts'")
    ts = reading["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int | float) or isinstance(ts, _NonFinite) or \
            (isinstance(ts, float) and not math.isfinite(ts)):     # an int is finite (and may exceed float range)
        return None, Reject("bad_timestamp", f"{who}: 'ts' must be epoch milliseconds (a number), got {ts!r}")
    # window checked on the number as sent (exact int/float comparison), before any conversion:
    # a finite float like 1e308 would overflow ts * 1000 (found by tests/support/fuzz_atheris.py)
    if ts > (now_ns + MAX_FUTURE_NS) / 1e6:
        return None, Reject("timestamp_future", f"{who}: ts {ts} is more than 5 min in the future")
    if ts < (now_ns - MAX_PAST_NS) / 1e6:
        return None, Reject("timestamp_past", f"{who}: ts {ts} is more than 30 days in the past")
    t = int(ts) * 1_000_000 if isinstance(ts, int) else int(round(ts * 1000)) * 1000   # float: to the µs
    if t > now_ns + MAX_FUTURE_NS:      # rounding at the very edge of the window
        return None, Reject("timestamp_future", f"{who}: ts {ts} is more than 5 min in the future")
    if t < now_ns - MAX_PAST_NS:
        return None, Reject("timestamp_past", f"{who}: ts {ts} is more than 30 days in the past")
    return t, None


_CHANNEL_NAMES = frozenset(CHANNELS)


def _clock_point(p: Point | None, arrived_ns: int | None, seen: dict | None = None) -> Point | None:
    """The ``device_clock_offset`` point of reading ``p`` that arrived at ``arrived_ns``, if it is ≥ 90 s off
    (and, with ``seen`` = device → arrival of its last such point, none in the last 10 s)."""
    if p is None or arrived_ns is None:
        return None
    off = p.time_ns - arrived_ns
    if -_CLOCK_OFFSET_RECORD_NS < off < _CLOCK_OFFSET_RECORD_NS:
        return None
    if seen is not None:
        dev = p.tags.get("device")
        if arrived_ns - seen.get(dev, arrived_ns - _CLOCK_OFFSET_EVERY_NS) < _CLOCK_OFFSET_EVERY_NS:
            return None
        seen[dev] = arrived_ns
    return Point(p.measurement, p.tags, FloatFields(device_clock_offset=off / 1e9), arrived_ns)


def _reading(fleet: Fleet, site: str, device_id: Any, reading: Any, now_ns: int,
             rejects: list[Reject], finite: bool = False) -> Point | None:
    """One reading → a Point, or None with its rejects appended.

    ``finite``: the document came from orjson, which refuses NaN/Infinity and numbers beyond
    float range, so every float in it is finite; then a ``values`` object of known channels and
    floats only (the usual gateway message) is taken whole, without a Python step per channel.
    """
    if not isinstance(reading, dict):
        rejects.append(Reject("bad_schema", f"a reading must be an object, got {type(reading).__name__}"))
        return None
    if not isinstance(device_id, str):
        rejects.append(Reject("missing_field", f"reading without a string 'device': {device_id!r}"))
        return None
    dev = fleet.devices.get(device_id)
    if dev is not None and dev.site_id == site and dev.transport == "mqtt":
        t, rej = _ts_ns(reading, now_ns, device_id)
        if rej is not None:
            rejects.append(rej)
            return None
        values = reading.get("values")
        if finite and type(values) is dict and values and values.keys() <= _CHANNEL_NAMES and \
                tuple(map(type, values.values())).count(float) == len(values):      # no per-value Python step
            return Point(dev.kind, dev.tags, FloatFields(values), t)
        return _checked_values(dev, device_id, values, t, rejects)
    who = f"device {device_id!r}"
    if dev is None:
        rejects.append(Reject("unknown_device", f"{who} is not in the fleet"))
        return None
    if dev.site_id != site:
        rejects.append(Reject("wrong_site", f"{who} belongs to site {dev.site_id!r}, topic says {site!r}"))
        return None
    rejects.append(Reject("not_mqtt_device", f"{who} is configured for {dev.transport}"))
    return None


def _checked_values(dev, device_id: str, values: Any, t: int, rejects: list[Reject]) -> Point | None:
    """The per-channel path: each value checked, each bad one rejected with its reason."""
    who = f"device {device_id!r}"
    if not isinstance(values, dict):
        rejects.append(Reject("missing_field" if values is None else "bad_schema",
                              f"{who}: 'values' must be an object of channel: number"))
        return None
    fields = FloatFields()          # every value below is a finite float, every key a channel
    for ch, v in values.items():
        tv = type(v)
        if tv is float and v - v == 0.0 and ch in CHANNELS:     # fast path: a finite float (not bool,
            fields[ch] = v                                      # not the NaN/Infinity marker subclass)
            continue
        if ch not in CHANNELS:
            rejects.append(Reject("unknown_channel", f"{who}: unknown channel {ch!r} (see core/channels.py)"))
        elif isinstance(v, bool) or not isinstance(v, int | float):
            rejects.append(Reject("wrong_type", f"{who}: channel {ch!r} must be a number, got {v!r}"))
        else:
            try:
                f = float(v)
            except OverflowError:       # an integer beyond float range
                f = math.inf
            if isinstance(v, _NonFinite) or not math.isfinite(f):
                rejects.append(Reject("non_finite", f"{who}: channel {ch!r} is {str(v)[:40]}"))
            else:
                fields[ch] = f
    if not fields:
        if not values:
            rejects.append(Reject("empty_values", f"{who}: 'values' is empty"))
        return None
    return Point(dev.kind, dev.tags, fields, t)


def _status_points(fleet: Fleet, site: str, device_ids: list[str], doc: Any, now_ns: int,
                   rejects: list[Reject], retained: bool = False) -> list[Point]:
    """A status → one point per MQTT device of ``site``.  A retained status (the broker's copy, handed
    to every new subscription) is stored at its own ``ts`` only: without one its time is unknown."""
    if isinstance(doc, dict) and isinstance(doc.get("online"), bool):
        online = doc["online"]
    elif doc in ("online", "offline"):
        online = doc == "online"
    else:
        rejects.append(Reject("bad_schema", 'status must be "online", "offline" or {"online": true|false}'))
        return []
    t = now_ns
    if isinstance(doc, dict) and "ts" in doc:
        t, rej = _ts_ns(doc, now_ns, None)
        if rej is not None:
            rejects.append(rej)
            return []
    elif retained:
        return []
    out = []
    for did in device_ids:
        dev = fleet.devices.get(did) if isinstance(did, str) else None
        if dev is None or dev.site_id != site:
            rejects.append(Reject("unknown_device", f"status for {did!r}: not a device of site {site!r}"))
            continue
        if dev.transport != "mqtt":     # its poller reports its status
            rejects.append(Reject("not_mqtt_device", f"status for {did!r}: configured for {dev.transport}"))
            continue
        out.append(Point("collector_status", {**dev.tags, "source": "mqtt"},
                         {"status": "ok" if online else "offline", "online": int(online)}, t))
    return out


@functools.lru_cache(maxsize=65536)      # a fleet publishes on a fixed set of topics
def _topic(topic: str) -> tuple[str, tuple[str, ...]] | tuple[None, Reject]:
    """(kind, the levels after the prefix) of a documented topic, or (None, its reject)."""
    parts = topic.split("/")
    prefix = TOPIC_PREFIX.split("/")
    if parts[:len(prefix)] != prefix:
        return None, Reject("bad_topic", f"topic {topic!r} does not start with {TOPIC_PREFIX}/")
    rest = tuple(parts[len(prefix):])
    kind = None
    if len(rest) == 3 and rest[2] in ("telemetry", "status"):
        kind = rest[2]
    elif len(rest) == 4 and rest[1] == "gateway" and rest[3] in ("batch", "status"):
        kind = "gw_" + rest[3]
    if kind is None or not all(ID_RE.match(x) for x in rest[:2]) or \
            (kind.startswith("gw_") and not ID_RE.match(rest[2])):
        return None, Reject("bad_topic", f"topic {topic!r} matches no documented pattern")
    return kind, rest


def parse_payload(topic: str, payload: bytes, fleet: Fleet, now_ns: int, *, retained: bool = False,
                  clock_seen: dict[str, int] | None = None) -> tuple[list[Point], list[Reject]]:
    """Validate one MQTT message; return (points to store, rejects with reasons).

    Pure: the result depends only on the arguments.  ``now_ns`` (the arrival time) bounds the timestamps
    (now − 30 days … now + 5 min); ``retained``: the broker's retained copy, not a live message.  A live
    reading ≥ 90 s off its arrival adds a ``device_clock_offset`` point stamped at the arrival (with
    ``clock_seen``, updated in place, at most one per device every 10 s).
    An empty payload (how MQTT deletes a retained message) gives nothing and no reject.
    See docs/mqtt.md for topics and payloads.
    """
    rejects: list[Reject] = []
    kind, rest = _topic(topic)
    if kind is None:
        return [], [rest]
    if not payload:
        return [], []
    site = rest[0]
    if site not in fleet.sites:
        return [], [Reject("unknown_device", f"site {site!r} is not in the fleet")]
    if len(payload) > MAX_PAYLOAD_BYTES:
        return [], [Reject("oversize", f"payload of {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")]
    try:
        doc, finite = _load_json(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return [], [Reject("bad_json", f"not JSON: {exc}")]
    except RecursionError:
        return [], [Reject("bad_json", "JSON nested too deeply")]
    arrived = None if retained else now_ns          # a retained copy's arrival says nothing of the clock
    if kind == "telemetry":
        p = _reading(fleet, site, rest[1], doc, now_ns, rejects, finite)
        c = _clock_point(p, arrived, clock_seen)
        return ([p] if c is None else [p, c]) if p is not None else [], rejects
    if kind == "status":
        return _status_points(fleet, site, [rest[1]], doc, now_ns, rejects, retained), rejects
    if kind == "gw_status":
        devices = doc.get("devices") if isinstance(doc, dict) else None
        if devices is None:
            devices = [d.id for d in fleet.sites[site].devices if d.transport == "mqtt"]
        elif not isinstance(devices, list):
            return [], [Reject("bad_schema", "'devices' of a gateway status must be a list of device ids")]
        return _status_points(fleet, site, devices, doc, now_ns, rejects, retained), rejects
    # gateway batch
    readings = doc.get("readings") if isinstance(doc, dict) else None
    if not isinstance(readings, list):
        return [], [Reject("missing_field" if isinstance(doc, dict) else "bad_schema",
                           "a batch must be an object with a 'readings' list")]
    points = []
    for r in readings:
        p = _reading(fleet, site, r.get("device") if isinstance(r, dict) else None, r, now_ns, rejects, finite)
        if p is not None:
            points.append(p)
            c = _clock_point(p, arrived, clock_seen)
            if c is not None:
                points.append(c)
    return points, rejects


# ====================================================================== collector
class MqttCollector:
    """Subscribe to the fleet's topics and feed valid readings to ``writer``.

    Parameters
    ----------
    fleet : the loaded fleet (devices with ``transport = "mqtt"`` are accepted).
    settings : :class:`core.config.Settings` (``mqtt_host``, ``mqtt_port``, user/password).
    writer : a :class:`core.influx.Writer` (or anything with ``submit(points, on_durable)``).
    group : shared-subscription group; N collectors with the same group split one stream
        (``$share/<group>/...``); each then needs its own ``client_id``.
    client_id : stable MQTT client id (the persistent session is keyed by it).
    deadletter_path : JSONL file for rejected input (default ``<settings.spool_dir>/mqtt-deadletter.jsonl``),
        rotated at ``settings.deadletter_max_bytes`` (:mod:`core.deadletter`).
    """

    def __init__(self, fleet: Fleet, settings, writer, *, group: str | None = None,
                 client_id: str | None = None, deadletter_path: str | os.PathLike | None = None,
                 session_expiry_s: int = SESSION_EXPIRY_S, keepalive_s: int = 30) -> None:
        if session_expiry_s < 3600:
            raise ValueError(f"session_expiry_s must be >= 3600 (persistent session), got {session_expiry_s}")
        if group is not None and not ID_RE.match(group):
            raise ValueError(f"shared-subscription group {group!r} must match {ID_RE.pattern}")
        self.fleet = fleet
        self.settings = settings
        self.writer = writer
        self._clock_seen: dict[str, int] = {}      # device → arrival of its last device_clock_offset point
        self.group = group
        self.client_id = client_id or ("eh-collector-" + socket.gethostname() + (f"-{group}" if group else ""))
        self.session_expiry_s = int(session_expiry_s)
        self.keepalive_s = keepalive_s
        self.deadletter_path = Path(deadletter_path or Path(settings.spool_dir) / "mqtt-deadletter.jsonl")
        self.deadletter = DeadLetterFile(self.deadletter_path, max_bytes=getattr(
            settings, "deadletter_max_bytes", DEFAULT_DEADLETTER_MAX_BYTES))
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter(rejects=0, messages_with_rejects=0)
        # per-message counters: written by one thread each, without the lock (the hot path)
        self._n_messages = 0          # paho's network thread
        self._n_points = 0            # paho's network thread
        self._n_acked = 0             # under self._lock (acks come from the writer's thread and paho's)
        self._puback_mids: list[int] = []       # under self._lock: acks queued until the batch is done
        add_hook = getattr(writer, "add_after_durable", None)
        self._batch_acks = add_hook is not None
        if add_hook is not None:
            add_hook(self._flush_acks)
        self._reasons: Counter[str] = Counter()
        self._gen = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._session_present = False
        self._client = self._make_client()

    @property
    def topics(self) -> list[str]:
        base = list(SUBSCRIPTIONS)
        return [f"$share/{self.group}/{t}" for t in base] if self.group else base

    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True)
        c.manual_ack_set(True)
        if self.settings.mqtt_user:
            c.username_pw_set(self.settings.mqtt_user, self.settings.mqtt_password)
        ca = getattr(self.settings, "mqtt_tls_ca", None)
        if ca:      # TLS with the broker's certificate verified against this CA (and its hostname)
            c.tls_set(ca_certs=ca)
        c.reconnect_delay_set(0.2, 5)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    def start(self, timeout: float = 10.0) -> MqttCollector:
        """Connect (persistent session), subscribe, and run the network loop in a thread."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = 65535
        self._client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, self.keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()
        # A resumed session (session present) keeps its subscriptions, and the broker sends the
        # queued backlog before our new SUBACK: waiting for CONNACK is enough then.
        deadline = time.monotonic() + timeout
        ready = self._connected.wait(timeout) and (
            self._session_present or self._subscribed.wait(max(0.0, deadline - time.monotonic())))
        if not ready:
            self._client.loop_stop()
            why = self._connect_error or "no answer"
            raise MqttCollectorError(f"MQTT broker {self.settings.mqtt_host}:{self.settings.mqtt_port}: "
                                     f"not connected and subscribed within {timeout} s ({why})")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Let pending acks go out, then disconnect (the session stays for the next start)."""
        flush = getattr(self.writer, "flush", None)
        if flush is not None:
            flush(timeout)
        time.sleep(0.05)
        self._client.disconnect()
        self._client.loop_stop()

    def stats(self) -> dict:
        with self._lock:
            out = dict(self._counts)
            out["rejects_by_reason"] = dict(self._reasons)
            out["acked"] = self._n_acked
        out["messages"], out["points"] = self._n_messages, self._n_points
        out["connected"] = self._connected.is_set()
        return out

    # ------------------------------------------------------------------ callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_error = f"CONNACK {reason_code}"
            log.error("MQTT connect refused: %s", reason_code)
            return
        with self._lock:
            self._gen += 1
            self._counts["connects"] += 1
            self._puback_mids.clear()       # packet ids of the old connection: the broker redelivers
        self._session_present = bool(getattr(flags, "session_present", False))
        self._connected.set()
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])

    def _on_connect_fail(self, client, userdata) -> None:
        self._connect_error = "TCP connection failed (refused or unreachable); retrying"
        with self._lock:
            self._counts["connect_failures"] += 1

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self._connect_error = f"SUBACK {bad}"
            log.error("MQTT subscribe refused: %s", bad)
            return
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        with self._lock:
            self._counts["disconnects"] += 1

    def _on_message(self, client, userdata, msg) -> None:
        try:
            points, rejects = parse_payload(msg.topic, msg.payload, self.fleet, time.time_ns(), retained=msg.retain,
                                            clock_seen=self._clock_seen)
        except Exception as exc:  # noqa: BLE001 - the parser is total; this is a last guard
            parts = msg.topic.split("/")
            log.exception("parser error on %s", msg.topic,
                          extra={"topic": msg.topic, "site": parts[2] if len(parts) > 3 else None})
            points, rejects = [], [Reject("bad_schema", f"parser error: {exc!r}")]
        self._n_messages += 1
        self._n_points += len(points)
        gen = self._gen                     # an int read: atomic; a reconnect bumps it in this same thread
        mid, qos = msg.mid, msg.qos
        if rejects:
            with self._lock:
                counts = self._counts
                counts["rejects"] += len(rejects)
                counts["messages_with_rejects"] += 1
                for r in rejects:
                    self._reasons[r.reason] += 1
            try:
                self._dead_letter(msg.topic, msg.payload, rejects)
            except OSError as exc:      # not durable: no ack, the broker redelivers after a reconnect
                log.error("dead-letter file %s: %s; message left unacknowledged", self.deadletter_path, exc)
                with self._lock:
                    self._counts["unacked_errors"] += 1
                return

        def ack() -> None:
            with self._lock:
                if gen != self._gen:        # an ack of a previous connection's packet id would hit another message
                    self._counts["ack_skipped_reconnected"] += 1
                    return
                self._n_acked += 1
                if qos == 1:
                    self._puback_mids.append(mid)
            if not self._batch_acks:
                self._flush_acks()

        if not points:
            ack()
            self._flush_acks()
            return
        try:
            self.writer.submit(points, on_durable=ack)
        except Exception:  # noqa: BLE001 - e.g. writer closed during shutdown: never kill paho's thread
            log.exception("writer refused %d points from %s; message left unacknowledged", len(points), msg.topic,
                          extra={"topic": msg.topic, "site": points[0].tags.get("site")})
            with self._lock:
                self._counts["unacked_errors"] += 1

    def _flush_acks(self) -> None:
        """Send the PUBACKs queued by the ``on_durable`` callbacks of one written batch."""
        with self._lock:      # held while paho queues: a reconnect cannot slip in between
            mids, self._puback_mids = self._puback_mids, []
            if mids:
                _send_pubacks(self._client, mids)

    def _dead_letter(self, topic: str, payload: bytes, rejects: list[Reject]) -> None:
        text = payload[:4096].decode("utf-8", errors="replace")
        self.deadletter.append([{"time_ns": time.time_ns(), "topic": topic, "bytes": len(payload),
                                 "rejects": [r._asdict() for r in rejects], "payload": text}])

"""MQTT field-gateway simulator: publishes the payloads documented in ``docs/mqtt.md``.

One :class:`MqttGateway` stands for one gateway on one site: it carries that site's MQTT
devices, publishes either one message per device reading (``mode="single"``, topic
``eh/v1/<site>/<device>/telemetry``) or one batch per round (``mode="batch"``, topic
``eh/v1/<site>/gateway/<gw>/batch``), with QoS 1, and sets a last will on
``eh/v1/<site>/gateway/<gw>/status`` (``{"online": false, "devices": [...]}``) so that the
collector marks its devices offline if the gateway drops off.

Values come from ``values_fn(device, t)`` → ``{channel: value}`` (``t`` in unix seconds),
e.g. :class:`simulators.signals.FleetSignals`; non-finite values are left out and only
glossary channels are sent.  Timestamps are the round's time in epoch milliseconds.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from core.channels import CHANNELS
from core.config import Device, Fleet
from core.topics import batch_topic, gateway_status_topic

ValuesFn = Callable[[Device, float], dict[str, float]]


class MqttGateway:
    """A simulated gateway publishing readings of ``site_id``'s MQTT devices.

    Parameters
    ----------
    fleet, site_id : which devices (``transport = "mqtt"`` on that site; or give ``devices``).
    host, port : broker address (loopback in tests).
    values_fn : ``values_fn(device, t) -> {channel: value}``.
    mode : ``"single"`` (one message per reading) or ``"batch"`` (one message per round).
    gateway_id : id used in the batch and status topics.
    max_inflight : QoS 1 messages in flight before paho queues (paho's default is 20).
    username, password : MQTT credentials (the ACL of :mod:`energyhost.devstack.mqtt_acl` names the gateway
        user ``<site>-mqttgw``).
    tls_ca : CA file: connect over TLS and verify the broker's certificate.
    """

    def __init__(self, fleet: Fleet, site_id: str, host: str, port: int, values_fn: ValuesFn, *,
                 mode: str = "single", gateway_id: str | None = None, devices: list[Device] | None = None,
                 username: str | None = None, password: str | None = None, client_id: str | None = None,
                 max_inflight: int = 1000, keepalive_s: int = 5, tls_ca: str | None = None) -> None:
        if mode not in ("single", "batch"):
            raise ValueError(f"mode must be 'single' or 'batch', got {mode!r}")
        if site_id not in fleet.sites:
            raise ValueError(f"site {site_id!r} is not in the fleet")
        self.site_id = site_id
        self.devices = devices if devices is not None else \
            [d for d in fleet.sites[site_id].devices if d.transport == "mqtt"]
        if not self.devices:
            raise ValueError(f"site {site_id!r} has no MQTT device")
        self.host, self.port = host, port
        self.values_fn = values_fn
        self.mode = mode
        self.gateway_id = gateway_id or f"{site_id}-mqttgw"
        self.batch_topic = batch_topic(site_id, self.gateway_id)
        self.status_topic = gateway_status_topic(site_id, self.gateway_id)
        self.published = 0          # messages handed to paho
        self.readings = 0           # device readings inside them
        self.acked = 0              # PUBACKs received
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"sim-{self.gateway_id}",
                              protocol=mqtt.MQTTv5)
        if username:
            self._c.username_pw_set(username, password)
        if tls_ca:      # TLS, broker certificate verified against this CA file
            self._c.tls_set(ca_certs=tls_ca)
        self._c.max_inflight_messages_set(max_inflight)
        self._c.max_queued_messages_set(0)
        self._c.will_set(self.status_topic, self._status(False), qos=1)
        self._c.on_connect = lambda c, u, f, rc, p: self._connected.set() if not rc.is_failure else None
        self._c.on_publish = self._on_publish
        self.keepalive_s = keepalive_s

    def _status(self, online: bool) -> str:
        return json.dumps({"online": online, "devices": [d.id for d in self.devices]})

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1

    # ------------------------------------------------------------------ life cycle
    def start(self, timeout: float = 10.0) -> MqttGateway:
        self._c.connect(self.host, self.port, self.keepalive_s)
        self._c.loop_start()
        if not self._connected.wait(timeout):
            self._c.loop_stop()
            raise ConnectionError(f"gateway simulator: broker {self.host}:{self.port} did not accept us")
        self._publish(self.status_topic, self._status(True), 0)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop publishing, wait for outstanding PUBACKs, say offline, disconnect cleanly."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.wait_acked(timeout)
        self._publish(self.status_topic, self._status(False), 0)
        self.wait_acked(timeout)
        self._c.disconnect()
        self._c.loop_stop()

    def wait_acked(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.acked >= self.published:
                    return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------------ publishing
    def reading(self, device: Device, t: float) -> dict:
        vals = {}
        for ch, v in self.values_fn(device, t).items():
            if ch in CHANNELS and isinstance(v, int | float) and math.isfinite(v):
                vals[ch] = float(v)
        return {"ts": int(round(t * 1000)), "values": vals}

    def payloads(self, t: float) -> list[tuple[str, bytes]]:
        """The (topic, payload) messages of one round at unix time ``t`` [s]."""
        if self.mode == "single":
            return [(d.topic, json.dumps(self.reading(d, t)).encode()) for d in self.devices]
        batch = [{"device": d.id, **self.reading(d, t)} for d in self.devices]
        return [(self.batch_topic, json.dumps({"readings": batch}).encode())]

    def _publish(self, topic: str, payload: bytes | str, readings: int) -> None:
        info = self._c.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise RuntimeError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        with self._lock:
            self.published += 1
            self.readings += readings

    def publish_round(self, t: float) -> int:
        """Publish one round at unix time ``t`` [s]; return the number of messages."""
        msgs = self.payloads(t)
        per = len(self.devices) if self.mode == "batch" else 1
        for topic, payload in msgs:
            self._publish(topic, payload, per)
        return len(msgs)

    def run(self, interval_s: float, *, rounds: int | None = None, duration_s: float | None = None,
            t0: float | None = None) -> threading.Thread:
        """Publish a round every ``interval_s`` [s] in a thread, bounded by ``rounds`` and/or ``duration_s``."""
        if rounds is None and duration_s is None:
            raise ValueError("give rounds or duration_s (every run is bounded)")

        def loop() -> None:
            start = time.monotonic()
            k = 0
            while not self._stop.is_set():
                if rounds is not None and k >= rounds:
                    break
                if duration_s is not None and time.monotonic() - start >= duration_s:
                    break
                t = (t0 if t0 is not None else time.time()) + (k * interval_s if t0 is not None else 0.0)
                self.publish_round(t)
                k += 1
                self._stop.wait(max(0.0, start + k * interval_s - time.monotonic()))

        self._thread = threading.Thread(target=loop, name=f"mqttgw-{self.gateway_id}", daemon=True)
        self._thread.start()
        return self._thread


def gateways_for_fleet(fleet: Fleet, host: str, port: int, values_fn: ValuesFn, **kwargs) -> list[MqttGateway]:
    """One :class:`MqttGateway` per site that has MQTT devices."""
    sites = [s for s in fleet.sites.values() if any(d.transport == "mqtt" for d in s.devices)]
    return [MqttGateway(fleet, s.id, host, port, values_fn, **kwargs) for s in sites]

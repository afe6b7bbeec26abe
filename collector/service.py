"""One collector process: Modbus pollers and the MQTT subscriber sharing one spooling Writer.

``run_collectors`` is what ``energyhost collect`` runs.  Modbus devices can be sharded across
several collector processes (``shard="K/N"``: a device belongs to shard ``crc32(id) % N``, so
the split is stable and needs no coordination); MQTT load is split with a shared subscription
(``group``).  Each process is one ``instance``: its MQTT client id (persistent session) and its
spool directory are named after it, so several collectors on one machine never share either.  Prometheus metrics (readings received / written / pending / rejected, spool bytes,
polls by status, devices offline, poll latency) are served on ``metrics_port`` when given.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

from core.config import Fleet, Settings
from core.influx import InfluxClient, Writer
from core.logjson import configure_logging
from core.profiles import Profile

log = logging.getLogger("energyhost.collector")


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"K/N"`` → ``(K, N)`` with ``0 <= K < N``; ``ValueError`` naming the bad value."""
    if shard is None:
        return None
    try:
        k, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 0/2), got {shard!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard {shard!r}: need N >= 1 and 0 <= K < N")
    return k, n


def shard_devices(fleet: Fleet, shard: tuple[int, int] | None) -> list[str]:
    """Ids of the polled (Modbus and DL/T 645) devices this shard polls (all of them when ``shard`` is None).

    Devices behind one gateway stay together (they share one connection), so the hash is
    taken over the gateway id for those.
    """
    out = []
    for d in fleet.devices.values():
        if d.transport not in ("modbus", "dlt645"):
            continue
        key = d.gateway or d.id
        if shard is None or zlib.crc32(key.encode()) % shard[1] == shard[0]:
            out.append(d.id)
    return out


class Metrics:
    """Prometheus exposition of the collector's counters (prometheus_client custom collector)."""

    def __init__(self, sources: Mapping[str, Callable[[], dict]]):
        self.sources = sources

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        w = self.sources["writer"]()
        rc = CounterMetricFamily("energyhost_readings", "Readings (points) by outcome", labels=["outcome"])
        for outcome in ("received", "written", "rejected", "dropped"):
            rc.add_metric([outcome], w.get(outcome, 0))
        yield rc
        yield GaugeMetricFamily("energyhost_readings_pending", "Points buffered, in flight or spooled",
                                value=w.get("pending", 0))
        yield GaugeMetricFamily("energyhost_spool_bytes", "Bytes waiting in the on-disk spool",
                                value=w.get("spooled_bytes", 0))
        yield GaugeMetricFamily("energyhost_spool_max_bytes", "Spool byte cap; beyond it the oldest are dropped",
                                value=w.get("spool_max_bytes", 0))
        yield GaugeMetricFamily("energyhost_readings_dropped_unrecorded",
                                "Readings dropped by the spool cap and not yet recorded in InfluxDB (ingest_health)",
                                value=w.get("drops_unrecorded", 0))
        if "modbus" in self.sources:
            m = self.sources["modbus"]()
            polls = CounterMetricFamily("energyhost_modbus_polls", "Modbus polls by status", labels=["status"])
            polls.add_metric(["ok"], m.get("ok", 0))
            for status, n in m.get("failures", {}).items():
                polls.add_metric([status], n)
            yield polls
            yield GaugeMetricFamily("energyhost_devices_offline", "Modbus devices marked offline",
                                    value=len(m.get("offline", [])))
            yield GaugeMetricFamily("energyhost_modbus_devices", "Modbus devices polled by this process",
                                    value=m.get("devices", 0))
            if "lag_ms_p99" in m:
                yield GaugeMetricFamily("energyhost_poll_lag_ms_p99", "99th percentile of poll end minus its "
                                        "scheduled start, polls of the last 30 s [ms]", value=m["lag_ms_p99"])
            if "latency_ms_p50" in m:
                yield GaugeMetricFamily("energyhost_poll_latency_ms_p50", "Median poll latency [ms]",
                                        value=m["latency_ms_p50"])
        yield from self._protocols()
        if "mqtt" in self.sources:
            q = self.sources["mqtt"]()
            mc = CounterMetricFamily("energyhost_mqtt_messages", "MQTT messages by outcome", labels=["outcome"])
            for k, v in q.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    mc.add_metric([k], v)
            yield mc
            rej = CounterMetricFamily("energyhost_mqtt_rejects", "Rejected MQTT readings by reason",
                                      labels=["reason"])
            for reason, n in q.get("rejects_by_reason", {}).items():
                rej.add_metric([reason], n)
            yield rej

    def _protocols(self):
        """DL/T 645 polls and the OCPP central system (docs/protocols.md)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if "dlt645" in self.sources:
            d = self.sources["dlt645"]()
            polls = CounterMetricFamily("energyhost_dlt645_polls", "DL/T 645 polls by status", labels=["status"])
            polls.add_metric(["ok"], d.get("ok", 0))
            for status, n in d.get("failures", {}).items():
                polls.add_metric([status], n)
            yield polls
            yield GaugeMetricFamily("energyhost_dlt645_meters_offline", "DL/T 645 meters marked offline",
                                    value=len(d.get("offline", [])))
        if "ocpp" in self.sources:
            o = self.sources["ocpp"]()
            yield GaugeMetricFamily("energyhost_ocpp_connected", "OCPP charge points connected",
                                    value=o.get("connected", 0))
            yield GaugeMetricFamily("energyhost_ocpp_open_sessions", "OCPP transactions started, not stopped",
                                    value=o.get("open_sessions", 0))
            oc = CounterMetricFamily("energyhost_ocpp_events", "OCPP central-system events", labels=["event"])
            for k in ("connects", "auth_refused", "sessions", "connector_errors", "meter_values_bad"):
                oc.add_metric([k], o.get(k, 0))
            yield oc


async def run_collectors(fleet: Fleet, profiles: Mapping[str, Profile], settings: Settings, *,
                         group: str | None = None, shard: str | None = None, metrics_port: int = 0,
                         modbus: bool = True, mqtt: bool = True, stats_interval_s: float = 30.0, instance: str = "main",
                         stop: asyncio.Event | None = None, log_format: str = "text") -> int:
    """Run until SIGINT/SIGTERM (or ``stop``); flush the writer; return an exit code."""
    from collector.modbus import ModbusCollector

    configure_logging(log_format)     # "json": one object per line, site/device ids
    shard_t = parse_shard(shard)
    ocpp = _ocpp_setup(fleet, instance)       # before anything starts: a bad password is a one-line error
    client = InfluxClient.from_settings(settings)
    # one spool per process (core.spool locks it): the default instance uses EH_SPOOL_DIR itself,
    # every other instance a subdirectory named after it, so several collectors never share one
    spool_dir = Path(settings.spool_dir) if instance == "main" else Path(settings.spool_dir) / instance
    writer = Writer(client, spool_dir, flush_interval_s=0.5, spool_max_bytes=settings.spool_max_bytes,
                    deadletter_max_bytes=settings.deadletter_max_bytes)
    sources: dict[str, Callable[[], dict]] = {"writer": writer.stats}
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    mb = None
    if modbus:
        ids = shard_devices(fleet, shard_t)
        mb = ModbusCollector(fleet, profiles, writer.submit, devices=ids)
        sources["modbus"] = mb.stats
    dl, cs = await _start_protocols(fleet, profiles, writer, sources, ocpp, spool_dir,
                                    shard_devices(fleet, shard_t) if modbus else None)
    mq = None
    if mqtt and any(d.transport == "mqtt" for d in fleet.devices.values()):
        mq = await _start_mqtt(fleet, settings, writer, group, instance, spool_dir)
        sources["mqtt"] = mq.stats
    if metrics_port:
        _serve_metrics(sources, metrics_port)
    log.info("collector started: %d modbus devices, %d dlt645 meters%s, mqtt %s, metrics %s",
             len(mb.pollers) if mb else 0, len(dl.pollers) if dl else 0, f" (shard {shard})" if shard else "",
             "on" if mq else "off", f"127.0.0.1:{metrics_port}" if metrics_port else "off")

    tasks = [asyncio.create_task(_report_stats(sources, stop, stats_interval_s))]
    if mb:
        tasks.append(asyncio.create_task(mb.run(stop)))
    if dl:
        tasks.append(asyncio.create_task(dl.run(stop)))
    try:
        await stop.wait()
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
        if cs:
            await cs.stop()
        # the last stats line once polling has ended: a poll finishing in the same loop turn as
        # the stop would otherwise be stored but missing from the counts (seen in the CI soak)
        _log_stats(sources)
        if mq:
            await asyncio.to_thread(mq.stop)
        t0 = time.monotonic()
        await asyncio.to_thread(writer.close)
        log.info("collector stopped (writer closed in %.1f s): %s", time.monotonic() - t0,
                 json.dumps(writer.stats()))
    return 0


async def _start_mqtt(fleet: Fleet, settings: Settings, writer: Writer, group: str | None, instance: str,
                      spool_dir: Path):
    """Start the MQTT collector of this instance (its dead letters beside the spool)."""
    from collector.mqtt import MqttCollector

    # a stable client id per instance: the persistent session (and its queued messages) is keyed by it
    mq = MqttCollector(fleet, settings, writer, group=group, client_id=f"eh-collector-{instance}",
                       deadletter_path=spool_dir / "mqtt-deadletter.jsonl")
    await asyncio.to_thread(mq.start)
    return mq


def _serve_metrics(sources: dict[str, Callable[[], dict]], metrics_port: int) -> None:
    """Prometheus metrics of every stats source on 127.0.0.1:``metrics_port``."""
    from prometheus_client import start_http_server
    from prometheus_client.core import REGISTRY

    REGISTRY.register(Metrics(sources))
    start_http_server(metrics_port, addr="127.0.0.1")


def _log_stats(sources: dict[str, Callable[[], dict]]) -> None:
    log.info("stats %s", json.dumps({k: f() for k, f in sources.items()}, default=str))


async def _report_stats(sources: dict[str, Callable[[], dict]], stop: asyncio.Event, every_s: float) -> None:
    """A stats line every ``every_s`` until ``stop``."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            _log_stats(sources)


def _ocpp_setup(fleet: Fleet, instance: str):
    """(endpoint, passwords, TLS context) of the OCPP central system, or None: only the main instance
    serves OCPP chargers.  Raises ConfigError naming the device and key of a missing password."""
    if instance != "main" or not any(d.transport == "ocpp" for d in fleet.devices.values()):
        return None
    from core.ocpp_auth import OcppEndpoint, charger_passwords

    ep = OcppEndpoint.from_env(os.environ)
    return ep, charger_passwords(fleet, os.environ), ep.server_ssl()


async def _start_protocols(fleet: Fleet, profiles, writer, sources: dict, ocpp, spool_dir: Path,
                           polled: list[str] | None):
    """The DL/T 645 collector (for the ``polled`` device ids; None = not polling) and the OCPP central
    system (when ``ocpp`` is set up); each adds its stats to ``sources``."""
    dl = cs = None
    if polled is not None and any(d.transport == "dlt645" for d in fleet.devices.values()):
        from collector.dlt645 import Dlt645Collector

        dl = Dlt645Collector(fleet, profiles, writer.submit, devices=polled)
        sources["dlt645"] = dl.stats
    if ocpp is not None:
        from collector.ocpp_server import CentralSystem

        ep, passwords, ssl_ctx = ocpp
        cs = await CentralSystem(fleet, writer.submit, passwords, state_dir=spool_dir, host=ep.host, port=ep.port,
                                 ssl=ssl_ctx).start()
        sources["ocpp"] = cs.stats
    return dl, cs

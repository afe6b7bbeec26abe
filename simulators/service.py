"""One simulator process: every Modbus device of the fleet, the MQTT gateways and the fault-control server.

``run_simulators`` is what ``energyhost simulate`` runs.  Values come from one
:class:`~simulators.signals.FleetSignals`, so Modbus and MQTT devices of a site agree
physically, and a fault injected through the control server (``energyhost fault inject``)
changes what both transports report.  MQTT rounds are aligned to the interval, so a
reading's timestamp is a schedule time, as on a real gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping

from core.config import Fleet, Settings
from core.profiles import Profile

log = logging.getLogger("energyhost.simulate")


async def run_simulators(fleet: Fleet, profiles: Mapping[str, Profile], settings: Settings, *,
                         control_port: int = 0, seed: int = 0, mqtt: bool = True,
                         mqtt_interval_s: float = 5.0, history: tuple[float, float] | None = None,
                         tariffs: Mapping | None = None, stop: asyncio.Event | None = None,
                         mqtt_secrets_dir: str | None = None) -> int:
    from simulators.backfill import example_fault_schedule
    from simulators.control import ControlServer
    from simulators.modbus_server import serve_fleet
    from simulators.signals import FleetSignals

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    signals = FleetSignals(fleet, seed=seed)
    if history is not None:
        # the incidents `energyhost backfill` wrote into the history (meter resets, stuck sessions, ...)
        # change energy counters for good: the live devices must carry the same past to continue them
        days, end = history
        signals.schedule(example_fault_schedule(fleet, days=days, end=end))
    warm_s = await asyncio.to_thread(signals.warm)   # integrate counters up to now before serving
    log.info("signal model warmed up in %.1f s", warm_s)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    control = ControlServer(signals, "127.0.0.1", control_port).start()
    servers = await serve_fleet(fleet, profiles, lambda d, t: signals.values(d, t), signals.behaviour)
    meters, chargers = await _dlt645_lines(fleet, profiles, signals, tariffs), _ocpp_chargers(fleet, signals, stop)
    gateways = await _start_gateways(fleet, settings, signals, mqtt_secrets_dir) if mqtt else []
    log.info("simulating %d Modbus endpoints, %d DL/T 645 lines, %d MQTT gateways; fault control at %s",
             len(servers.endpoints), len(meters.endpoints) if meters else 0, len(gateways), control.url)

    task = asyncio.create_task(_publish_mqtt(gateways, signals, stop, mqtt_interval_s)) if gateways else None
    try:
        await stop.wait()
    finally:
        if task:
            await task
        for gw in gateways:
            await asyncio.to_thread(gw.stop, 5.0)
        await servers.stop()
        await _stop_protocols(meters, chargers)
        control.stop()
        log.info("simulators stopped")
    return 0


async def _start_gateways(fleet: Fleet, settings: Settings, signals, mqtt_secrets_dir: str | None) -> list:
    """Start one MQTT gateway per site with MQTT devices, alternating the two payload shapes."""
    from core.topics import gateway_user, read_secrets
    from simulators.mqtt_gateway import MqttGateway

    # MQTT auth: each site gateway logs in as "<site>-mqttgw" with the password in
    # <mqtt_secrets_dir>/mqtt_<user> (written by energyhost.devstack.write_secrets); none → anonymous
    passwords = read_secrets(mqtt_secrets_dir) if mqtt_secrets_dir else {}
    gateways = [MqttGateway(fleet, s.id, settings.mqtt_host, settings.mqtt_port,
                            lambda d, t: signals.values(d, t),
                            username=gateway_user(s.id) if gateway_user(s.id) in passwords else None,
                            password=passwords.get(gateway_user(s.id)), tls_ca=settings.mqtt_tls_ca)
                for s in fleet.sites.values() if any(d.transport == "mqtt" for d in s.devices)]
    for i, gw in enumerate(gateways):
        gw.mode = "batch" if i % 2 else "single"      # both payload shapes of docs/mqtt.md
        await asyncio.to_thread(gw.start)
    return gateways


async def _publish_mqtt(gateways: list, signals, stop: asyncio.Event, mqtt_interval_s: float) -> None:
    """Publish a round on every ``mqtt_interval_s`` tick, leaving out devices not behaving normally."""
    every = {gw.gateway_id: list(gw.devices) for gw in gateways}
    while not stop.is_set():
        t = (time.time() // mqtt_interval_s + 1) * mqtt_interval_s
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, t - time.time()))
            return
        except TimeoutError:
            pass
        for gw in gateways:
            gw.devices = [d for d in every[gw.gateway_id] if signals.behaviour(d.id, t) == "normal"]
            if gw.devices:
                gw.publish_round(t)


async def _dlt645_lines(fleet: Fleet, profiles: Mapping[str, Profile], signals, tariffs: Mapping | None):
    """The DL/T 645 meters of the fleet, served from the signal model (None without any)."""
    if not any(d.transport == "dlt645" for d in fleet.devices.values()):
        return None
    from simulators.dlt645_server import serve_dlt645

    return await serve_dlt645(fleet, profiles, lambda d, t: signals.values(d, t), signals.behaviour, tariffs=tariffs)


async def _stop_protocols(meters, chargers: list[asyncio.Task]) -> None:
    await asyncio.gather(*chargers, return_exceptions=True)       # they end with the stop event
    if meters:
        await meters.stop()


def _ocpp_chargers(fleet: Fleet, signals, stop: asyncio.Event) -> list[asyncio.Task]:
    """One simulated OCPP charge point per ``transport = "ocpp"`` charger, driven by the signal model,
    connecting to the central system at ``EH_OCPP_*`` with the fleet's password for it.  A charger whose
    password is not to be had is not simulated (a warning names it): the other devices still run."""
    devices = [d for d in fleet.devices.values() if d.transport == "ocpp"]
    if not devices:
        return []
    from core.config import ConfigError
    from core.ocpp_auth import OcppEndpoint, charger_password
    from simulators.ocpp_charger import ChargerSim, follow_signals

    ep = OcppEndpoint.from_env(os.environ)
    tasks = []
    for d in devices:
        try:
            password = charger_password(fleet, d, os.environ)
        except ConfigError as exc:
            log.warning("OCPP charger not simulated: %s", exc)
            continue
        sim = ChargerSim(d.charge_point_id, ep.url, password, ssl=ep.client_ssl())
        tasks.append(asyncio.create_task(sim.run(stop), name=f"ocpp-{d.id}"))
        tasks.append(asyncio.create_task(follow_signals(sim, lambda t, d=d: signals.values(d, t), stop,
                                                        interval_s=d.poll_interval_s), name=f"ocpp-drive-{d.id}"))
    log.info("simulating %d OCPP charge points against %s", len(devices), ep.url)
    return tasks

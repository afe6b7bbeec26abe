"""``energyhost collect-mqtt``: one bare MQTT collector process, one JSON stats line per interval.

The stand-alone form the fault tests and benchmarks drive (``energyhost collect`` runs the
same :class:`~collector.mqtt.MqttCollector` beside the Modbus pollers).  Prints
``{"started": true, "client_id": ...}``, then ``{"collector": ..., "writer": ...}`` every
``--stats-interval`` seconds, and a last line with ``"stopped": true``; SIGTERM/SIGINT stop cleanly.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading

from energyhost.settings import AppSettings


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--client-id", default=None, help="stable MQTT client id")
    sp.add_argument("--group", default=None, help="shared-subscription group")
    sp.add_argument("--batch-size", type=int, default=5000)
    sp.add_argument("--flush-interval", type=float, default=0.2, help="[s]")
    sp.add_argument("--stats-interval", type=float, default=1.0, help="[s]")


def run_collect_mqtt(args: argparse.Namespace, settings: AppSettings) -> int:
    from collector.mqtt import MqttCollector, MqttCollectorError
    from core.config import load_fleet
    from core.influx import InfluxClient, Writer

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fleet = load_fleet(args.fleet)
    core = settings.core
    client = InfluxClient.from_settings(core)
    writer = Writer(client, core.spool_dir, batch_size=args.batch_size, flush_interval_s=args.flush_interval,
                    spool_max_bytes=core.spool_max_bytes, deadletter_max_bytes=core.deadletter_max_bytes)
    col = MqttCollector(fleet, core, writer, group=args.group, client_id=args.client_id)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        col.start()
    except MqttCollectorError as exc:
        print(f"error: {exc}", flush=True)
        writer.close()
        return 1
    print(json.dumps({"started": True, "client_id": col.client_id}), flush=True)
    while not stop.wait(args.stats_interval):
        print(json.dumps({"collector": col.stats(), "writer": writer.stats()}), flush=True)
    col.stop()
    writer.close()
    print(json.dumps({"collector": col.stats(), "writer": writer.stats(), "stopped": True}), flush=True)
    return 0

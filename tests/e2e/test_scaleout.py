"""Scale-out on real engines : several ``energyhost collect`` processes.

* MQTT: two collectors in one shared-subscription group (``--group``, own ``--instance``) on a
  broker with auth and the fleet ACL on: every message is stored exactly once (InfluxDB count
  == readings published, and the two processes' ``received`` counters add up to exactly what
  was published: no message was delivered to both), and both processes got a share.
* Modbus: ``--shard 0/2`` and ``--shard 1/2`` over the example fleet's simulated devices, each
  writing to its own database: the two device sets are disjoint and together cover every
  Modbus device of the fleet (none polled twice, none missed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.waiting import wait_for

from core.channels import DEVICE_KINDS
from core.config import load_fleet
from core.influx import InfluxClient
from energyhost.demo import remap_ports
from energyhost.devstack import (
    COLLECTOR_USER,
    Mosquitto,
    fleet_acl,
    free_port,
    gateway_user,
    stop_process,
    write_secrets,
)
from simulators.mqtt_gateway import MqttGateway

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]




class Proc:
    """An ``energyhost`` subprocess of ours, its log, stopped by its own PID."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as f:
            self.p = subprocess.Popen([sys.executable, "-m", "energyhost", *argv], env=env, stdout=f,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                      start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_line(self, needle: str, timeout: float) -> None:
        ok = wait_for(lambda: needle in self.text() or self.p.poll() is not None, timeout, 0.2)
        assert ok and self.p.poll() is None and needle in self.text(), self.text()[-3000:]

    def stop(self) -> int:
        return stop_process(self.p, 30)


def _env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EH_")}
    return {**env, "PYTHONUNBUFFERED": "1", **kw}


def _metric(port: int, name: str, label: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(rf'^{name}\{{[^}}]*{label}[^}}]*\}} ([0-9.e+]+)$', body, re.M)
    return float(m.group(1)) if m else 0.0


def test_two_collect_processes_share_one_mqtt_stream_exactly_once(influxd, influx_db, tmp_path):
    lines = ["[[customer]]", 'id = "c-so"', "  [[customer.site]]", '  id = "s-so"']
    for d in range(10):
        lines += ["    [[customer.site.device]]", f'    id = "d-so-{d}"', '    kind = "meter"',
                  '    transport = "mqtt"']
    fleet_path = tmp_path / "fleet.toml"
    fleet_path.write_text("\n".join(lines) + "\n")
    fleet = load_fleet(fleet_path)
    acc = fleet_acl(fleet)
    files = write_secrets(acc, tmp_path / "secrets")
    mosq = Mosquitto(tmp_path / "mq", users=acc.passwords, acl=acc.acl_text()).start()
    procs: list[Proc] = []
    ports = [free_port(), free_port()]
    gw = None
    try:
        for i, inst in enumerate(("a", "b")):
            env = _env(EH_INFLUX_URL=influxd.url, EH_INFLUX_DB=influx_db, EH_MQTT_HOST="127.0.0.1",
                       EH_MQTT_PORT=str(mosq.port), EH_MQTT_USER=COLLECTOR_USER,
                       EH_MQTT_PASSWORD_FILE=str(files[COLLECTOR_USER]), EH_SPOOL_DIR=str(tmp_path / "spool"))
            procs.append(Proc(["collect", "--fleet", str(fleet_path), "--no-modbus", "--group", "so",
                               "--instance", inst, "--metrics-port", str(ports[i])], env, tmp_path / f"{inst}.log"))
        for p in procs:
            p.wait_line("collector started", 60)
        gw = MqttGateway(fleet, "s-so", "127.0.0.1", mosq.port, lambda d, t: {"active_power": t % 100.0},
                         username=gateway_user("s-so"), password=acc.passwords[gateway_user("s-so")]).start()
        rounds = 60
        gw.run(0.005, rounds=rounds, t0=time.time() - 60)       # 600 messages, distinct timestamps
        gw._thread.join(30)
        assert gw.wait_acked(15)
        published = rounds * 10
        client = InfluxClient(influxd.url, influx_db)

        def stored() -> int:
            s = client.query('SELECT count("active_power") FROM "meter"')
            return int(s[0]["values"][0][1]) if s else 0

        assert wait_for(lambda: stored() >= published, 20), stored()
        # readings received per process (+ 10 "online" status points from the gateway's start)
        got = wait_for(lambda: (lambda g: g if sum(g) >= published + 10 else None)(
            [_metric(p, "energyhost_readings_total", 'outcome="received"') for p in ports]), 10)
        time.sleep(0.5)
        got = [_metric(p, "energyhost_readings_total", 'outcome="received"') for p in ports]
        print(f"shared subscription: published {published}, stored {stored()}, received per process {got}")
        assert stored() == published
        assert sum(got) == published + 10, got          # no message went to both processes
        assert min(got) > 0, got                        # and both took a share
    finally:
        if gw is not None:
            gw.stop()
        codes = [p.stop() for p in procs]
        mosq.stop()
    assert codes == [0, 0], [p.text()[-2000:] for p in procs]


def test_modbus_shards_split_the_devices_none_twice_none_missed(influxd, tmp_path):
    fleet_path = remap_ports(ROOT / "sites.example.toml", tmp_path / "sites.toml")
    fleet = load_fleet(fleet_path)
    modbus = {d.id for d in fleet.devices.values() if d.transport in ("modbus", "dlt645")}   # the polled ones
    dbs = [f"shard{os.getpid()}_{k}" for k in range(2)]
    for db in dbs:
        influxd.create_database(db)
    sim = Proc(["simulate", "--fleet", str(fleet_path), "--no-mqtt", "--control-port", str(free_port())],
               _env(), tmp_path / "sim.log")
    procs: list[Proc] = []
    try:
        sim.wait_line("simulating", 90)
        for k, db in enumerate(dbs):
            env = _env(EH_INFLUX_URL=influxd.url, EH_INFLUX_DB=db, EH_SPOOL_DIR=str(tmp_path / f"spool{k}"))
            procs.append(Proc(["collect", "--fleet", str(fleet_path), "--no-mqtt", "--shard", f"{k}/2",
                               "--instance", f"shard{k}"], env, tmp_path / f"c{k}.log"))
        clients = [InfluxClient(influxd.url, db) for db in dbs]

        def polled(c: InfluxClient) -> set[str]:
            s = c.query('SHOW TAG VALUES FROM "collector_status" WITH KEY = "device"')
            return {v[1] for v in s[0]["values"]} if s else set()

        def seen(c: InfluxClient) -> set[str]:
            out = set()
            for meas in DEVICE_KINDS:                  # one measurement per device kind
                s = c.query(f'SHOW TAG VALUES FROM "{meas}" WITH KEY = "device"')
                out |= {v[1] for v in s[0]["values"]} if s else set()
            return out

        assert wait_for(lambda: (seen(clients[0]) | seen(clients[1])) >= modbus, 60), \
            (modbus - seen(clients[0]) - seen(clients[1]), [p.text()[-1500:] for p in procs])
        a, b = seen(clients[0]), seen(clients[1])
        print(f"modbus shards: {len(a)} + {len(b)} devices of {len(modbus)}")
        assert a and b, (a, b)                       # both shards hold devices
        assert not a & b, a & b                      # none polled by both
        assert a | b == modbus                       # none missed
        pa, pb = polled(clients[0]), polled(clients[1])      # poll status points: the same split
        assert pa == a and pb == b, (pa ^ a, pb ^ b)
    finally:
        codes = [p.stop() for p in procs]
        sim.stop()
    assert codes == [0, 0], [p.text()[-2000:] for p in procs]

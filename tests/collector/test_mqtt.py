"""MQTT → InfluxDB end to end with real mosquitto and influxd processes.

mosquitto_pub per docs/mqtt.md; bad payloads through the broker; last will; InfluxDB outage
mid-stream; collector SIGKILL'ed and restarted; shared subscription.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from support.waiting import wait_for

from collector.mqtt import MqttCollector, _send_pubacks
from core.config import Settings, load_fleet
from core.influx import InfluxClient, Writer
from energyhost.devstack import stop_process
from simulators.mqtt_gateway import MqttGateway

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHANNELS15 = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
              "active_power", "reactive_power", "apparent_power", "power_factor", "frequency",
              "energy_import", "energy_export", "thd_voltage_l1", "thd_current_l1"]


def values_fn(device, t: float) -> dict[str, float]:
    """Deterministic 15-channel reading: the test can recompute what was sent."""
    base = (hash(device.id) % 1000) / 10.0
    return {ch: base + i + (t % 1000) / 1000.0 for i, ch in enumerate(CHANNELS15)}


def make_fleet(tmp_path: Path, tag: str, n_sites: int = 1, n_devices: int = 4):
    lines = ['[[customer]]', f'id = "cust-{tag}"']
    for s in range(n_sites):
        lines += ["  [[customer.site]]", f'  id = "site-{tag}-{s}"']
        for d in range(n_devices):
            lines += ["    [[customer.site.device]]", f'    id = "dev-{tag}-{s}-{d}"',
                      '    kind = "meter"', '    transport = "mqtt"']
    path = tmp_path / f"fleet-{tag}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, load_fleet(path)


def settings_for(mosq, influx_url: str, db: str, spool: Path) -> Settings:
    return Settings(influx_url=influx_url, influx_db=db, mqtt_host=mosq.host, mqtt_port=mosq.port,
                    spool_dir=str(spool))




def count(client: InfluxClient, measurement: str = "meter", field: str = "active_power") -> int:
    s = client.query(f'SELECT count("{field}") FROM "{measurement}"')
    return s[0]["values"][0][1] if s else 0


def test_mosquitto_pub_lands_in_influx(dedicated_mosquitto, influxd, influx_db, tmp_path):
    _, fleet = make_fleet(tmp_path, "pub")
    st = settings_for(dedicated_mosquitto, influxd.url, influx_db, tmp_path / "spool")
    client = InfluxClient.from_settings(st)
    writer = Writer(client, st.spool_dir, flush_interval_s=0.05)
    col = MqttCollector(fleet, st, writer, client_id="pub-test").start()
    try:
        ts = int(time.time() * 1000)
        payload = json.dumps({"ts": ts, "values": {"active_power": 18000.0, "energy_import": 5.2e7}})
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(dedicated_mosquitto.port), "-q", "1",
                            "-t", "eh/v1/site-pub-0/dev-pub-0-1/telemetry", "-m", payload],
                           capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: count(client) == 1, 10)
        rows = client.query("SELECT * FROM meter WHERE device = $d", {"d": "dev-pub-0-1"})
        assert rows[0]["columns"] == ["time", "active_power", "customer", "device", "energy_import", "site"]
        assert rows[0]["values"] == [[ts * 1_000_000, 18000.0, "cust-pub", "dev-pub-0-1", 5.2e7, "site-pub-0"]]
        assert wait_for(lambda: col.stats().get("acked") == 1, 5)
    finally:
        col.stop()
        writer.close()


def test_bad_payloads_through_the_broker(dedicated_mosquitto, influxd, influx_db, tmp_path):
    _, fleet = make_fleet(tmp_path, "bad")
    st = settings_for(dedicated_mosquitto, influxd.url, influx_db, tmp_path / "spool")
    client = InfluxClient.from_settings(st)
    writer = Writer(client, st.spool_dir, flush_interval_s=0.05)
    col = MqttCollector(fleet, st, writer, client_id="bad-test").start()
    now = int(time.time() * 1000)
    topic = "eh/v1/site-bad-0/dev-bad-0-0/telemetry"
    msgs = [
        (topic, b"{oops"),
        (topic, b'{"ts": %d, "values": {"active_power": NaN}}' % now),
        (topic, b'{"ts": %d, "values": {"active_power": 1}}' % (now * 1000)),
        (topic, b'{"values": {"active_power": 1}}'),
        (topic, b'{"ts": %d, "values": {"active_power": "12.5"}}' % now),
        ("eh/v1/site-bad-0/ghost/telemetry", b'{"ts": %d, "values": {"active_power": 1}}' % now),
        (topic, b" " * (64 * 1024 + 1)),
        ("eh/v1/site-bad-0/gateway/g1/batch", json.dumps({"readings": [
            {"device": "dev-bad-0-1", "ts": now, "values": {"active_power": 7.0}},
            {"device": "dev-bad-0-2", "ts": now, "values": {"bogus_channel": 1.0}},
            {"device": "dev-bad-0-3", "ts": now, "values": {"active_power": 9.0}}]}).encode()),
    ]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bad-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", dedicated_mosquitto.port)
    pub.loop_start()
    try:
        for t, p in msgs:
            pub.publish(t, p, qos=1).wait_for_publish(5)
        assert wait_for(lambda: col.stats().get("acked") == len(msgs), 10), col.stats()
        s = col.stats()
        assert s["rejects_by_reason"] == {"bad_json": 1, "non_finite": 1, "timestamp_future": 1,
                                          "missing_field": 1, "wrong_type": 1, "unknown_device": 1,
                                          "oversize": 1, "unknown_channel": 1}
        assert s["messages"] == len(msgs) and s["points"] == 2
        dl = [json.loads(x) for x in (tmp_path / "spool" / "mqtt-deadletter.jsonl").read_text().splitlines()]
        assert len(dl) == 8 and dl[6]["bytes"] == 64 * 1024 + 1 and len(dl[6]["payload"]) == 4096
        assert wait_for(lambda: count(client) == 2, 5)      # the good readings of the batch were stored
        assert writer.stats()["rejected"] == 0
    finally:
        pub.disconnect()
        pub.loop_stop()
        col.stop()
        writer.close()


def test_last_will_marks_device_offline(dedicated_mosquitto, influxd, influx_db, tmp_path):
    _, fleet = make_fleet(tmp_path, "lwt")
    st = settings_for(dedicated_mosquitto, influxd.url, influx_db, tmp_path / "spool")
    client = InfluxClient.from_settings(st)
    writer = Writer(client, st.spool_dir, flush_interval_s=0.05)
    col = MqttCollector(fleet, st, writer, client_id="lwt-test").start()
    try:
        status = "eh/v1/site-lwt-0/dev-lwt-0-2/status"
        dev = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(dedicated_mosquitto.port),
                                "-t", "x/none", "-i", "device-lwt", "--will-topic", status,
                                "--will-payload", '{"online": false}', "--will-qos", "1"])
        time.sleep(0.3)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(dedicated_mosquitto.port), "-q", "1",
                        "-t", status, "-m", '"online"'], check=True, timeout=10)
        dev.send_signal(signal.SIGKILL)       # the device drops off without DISCONNECT
        dev.wait(5)

        def statuses():
            rows = client.query('SELECT "status","online" FROM collector_status WHERE device = $d',
                                {"d": "dev-lwt-0-2"})
            return [r[1:] for r in rows[0]["values"]] if rows else []
        assert wait_for(lambda: len(statuses()) == 2, 10)
        assert statuses() == [["ok", 1], ["offline", 0]]
    finally:
        col.stop()
        writer.close()


def test_influxdb_outage_mid_stream_loses_nothing(dedicated_mosquitto, dedicated_influxd, tmp_path):
    """InfluxDB down for 20 s while a gateway publishes: all readings stored exactly once."""
    _, fleet = make_fleet(tmp_path, "out", n_devices=10)
    st = settings_for(dedicated_mosquitto, dedicated_influxd.url, "outage", tmp_path / "spool")
    client = InfluxClient.from_settings(st)
    client.create_database()
    writer = Writer(client, st.spool_dir, flush_interval_s=0.1, retry_max_s=1.0)
    col = MqttCollector(fleet, st, writer, client_id="outage-test").start()
    gw = MqttGateway(fleet, "site-out-0", "127.0.0.1", dedicated_mosquitto.port, values_fn).start()
    t0 = time.time() - 60
    try:
        gw.run(0.05, rounds=600, t0=t0)           # 10 devices x 20 rounds/s for 30 s = 6,000 readings
        time.sleep(3)
        dedicated_influxd.stop()
        time.sleep(20)
        mid = writer.stats()
        assert mid["spooled"] > 0 and mid["write_errors"] > 0
        assert mid["received"] == mid["written"] + mid["pending"] + mid["rejected"] + mid["dropped"]
        dedicated_influxd.start()
        gw._thread.join(30)
        assert gw.wait_acked(10)
        assert wait_for(lambda: col.stats().get("acked", 0) >= gw.published - 1, 20)   # -1: status message
        assert writer.drain(60)
        ws = writer.stats()
        assert gw.readings == 6000
        assert ws["received"] == ws["written"] == 6000 + 10      # + 10 collector_status points ("online")
        assert ws["rejected"] == ws["dropped"] == 0
        assert count(client) == 6000                               # none lost, none duplicated
        per_field = client.query('SELECT count(*) FROM meter')[0]
        assert per_field["values"][0][1:] == [6000] * 15
        # spot-check values against what was sent
        d = fleet.devices["dev-out-0-3"]
        rows = client.query('SELECT "frequency" FROM meter WHERE device = $d AND time = $t',
                            {"d": d.id, "t": int(round((t0 + 0.05 * 123) * 1000)) * 1_000_000})
        assert rows[0]["values"][0][1] == pytest.approx(values_fn(d, t0 + 0.05 * 123)["frequency"], abs=1e-3)
    finally:
        gw.stop()
        col.stop()
        writer.close()


def _collector_proc(fleet_path: Path, mosq, influxd, db: str, spool: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "EH_INFLUX_URL": influxd.url, "EH_INFLUX_DB": db, "EH_MQTT_HOST": "127.0.0.1",
           "EH_MQTT_PORT": str(mosq.port), "EH_SPOOL_DIR": str(spool), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "energyhost", "collect-mqtt", "--fleet", str(fleet_path),
                             "--client-id", "kill-test", "--flush-interval", "0.2", "--stats-interval", "0.5"],
                            cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _wait_started(log: Path, n: int, timeout: float = 15) -> bool:
    return bool(wait_for(lambda: log.read_text().count('"started": true') >= n, timeout, 0.05))


def test_collector_sigkill_and_restart_loses_no_qos1_message(dedicated_mosquitto, influxd, influx_db, tmp_path):
    fleet_path, fleet = make_fleet(tmp_path, "kill", n_devices=10)
    spool, log = tmp_path / "spool", tmp_path / "collector.log"
    proc = _collector_proc(fleet_path, dedicated_mosquitto, influxd, influx_db, spool, log)
    client = InfluxClient(influxd.url, influx_db)
    gw = MqttGateway(fleet, "site-kill-0", "127.0.0.1", dedicated_mosquitto.port, values_fn)
    try:
        assert _wait_started(log, 1), log.read_text()
        gw.start()
        gw.run(0.01, rounds=600, t0=time.time() - 30)     # 10 devices x 100 rounds/s = 1,000 msg/s for 6 s
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)                   # mid-stream, with unacked messages in flight
        proc.wait(10)
        stored_at_kill = count(client)
        time.sleep(1.0)                                    # the broker queues for the persistent session
        proc = _collector_proc(fleet_path, dedicated_mosquitto, influxd, influx_db, spool, log)
        assert _wait_started(log, 2), log.read_text()
        gw._thread.join(30)
        assert gw.wait_acked(10)
        assert wait_for(lambda: count(client) == gw.readings, 30), (count(client), gw.readings)
        assert 0 < stored_at_kill < gw.readings == 6000
    finally:
        gw.stop()
        stop_process(proc, 20)
    last = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")][-1]
    assert last.get("stopped") is True
    w = last["writer"]
    assert w["received"] == w["written"] + w["pending"] + w["rejected"] + w["dropped"]


def test_shared_subscription_splits_the_stream(dedicated_mosquitto, influxd, influx_db, tmp_path):
    _, fleet = make_fleet(tmp_path, "share", n_devices=5)
    st = settings_for(dedicated_mosquitto, influxd.url, influx_db, tmp_path / "spool")
    client = InfluxClient.from_settings(st)
    writers = [Writer(client, tmp_path / f"spool{i}", flush_interval_s=0.05) for i in range(2)]
    cols = [MqttCollector(fleet, st, writers[i], group="grp", client_id=f"share-{i}").start() for i in range(2)]
    gw = MqttGateway(fleet, "site-share-0", "127.0.0.1", dedicated_mosquitto.port, values_fn).start()
    try:
        gw.run(0.01, rounds=100, t0=time.time() - 10)
        gw._thread.join(20)
        assert gw.wait_acked(10)
        assert wait_for(lambda: count(client) == 500, 15)
        got = [c.stats().get("points", 0) for c in cols]
        assert sum(got) == 500 + 5 and min(got) > 0, got    # + the gateway's "online" status, 1 per device
    finally:
        gw.stop()
        for c, w in zip(cols, writers, strict=True):
            c.stop()
            w.close()


def test_writer_failure_leaves_message_unacked_and_collector_alive(dedicated_mosquitto, influxd, influx_db,
                                                                   tmp_path):
    _, fleet = make_fleet(tmp_path, "wf")
    st = settings_for(dedicated_mosquitto, influxd.url, influx_db, tmp_path / "spool")
    client = InfluxClient.from_settings(st)
    writer = Writer(client, st.spool_dir, flush_interval_s=0.05)
    col = MqttCollector(fleet, st, writer, client_id="wf-test").start()
    writer.close()                                   # e.g. shutdown in progress: submit() raises
    try:
        payload = json.dumps({"ts": int(time.time() * 1000), "values": {"active_power": 1.0}})
        for _ in range(2):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(dedicated_mosquitto.port), "-q", "1",
                            "-t", "eh/v1/site-wf-0/dev-wf-0-0/telemetry", "-m", payload], check=True, timeout=10)
        assert wait_for(lambda: col.stats().get("unacked_errors") == 2, 10), col.stats()
        s = col.stats()
        assert s["connected"] and s.get("acked", 0) == 0   # the paho thread survived; nothing acked
    finally:
        col._client.disconnect()
        col._client.loop_stop()


def _session(port: int, client_id: str, got: list) -> mqtt.Client:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True)
    c.on_message = lambda cl, u, m: got.append((m.mid, m.payload))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
    c.loop_start()
    return c


def test_batched_pubacks_acknowledge_every_message(dedicated_mosquitto):
    """PUBACKs sent as one buffer are each taken by the broker: a resumed session gets nothing
    again; the messages not acknowledged are redelivered."""
    port = dedicated_mosquitto.port
    got: list = []
    c = _session(port, "batch-ack", got)
    c.subscribe("eh/v1/s/+/telemetry", qos=1)
    time.sleep(0.3)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="batch-ack-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port, 30)
    pub.loop_start()
    for i in range(40):
        pub.publish("eh/v1/s/d/telemetry", f"m{i}".encode(), qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    assert wait_for(lambda: len(got) == 40, 10), len(got)
    acked = got[:30]
    _send_pubacks(c, [mid for mid, _ in acked])          # one write for 30 PUBACKs; 10 left unacked
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    again: list = []
    c2 = _session(port, "batch-ack", again)
    try:
        assert wait_for(lambda: len(again) >= 10, 10), again
        time.sleep(0.5)
        assert sorted(p for _, p in again) == sorted(p for _, p in got[30:])     # only the unacked ones
    finally:
        c2.disconnect()
        c2.loop_stop()

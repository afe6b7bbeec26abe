"""Access locked down, on real mosquitto and influxd processes.

* MQTT: password file + per-device ACL generated from the fleet (energyhost.devstack.mqtt_acl): a device cannot
  publish as another (PUBACK 0x87 "Not authorized", nothing stored), a gateway only for its own
  site, the collector only reads; user names "+" / "#" are refused at CONNECT.
* MQTT over TLS (certificates made at test time with openssl): collector and gateway with a CA file.
* InfluxDB with auth: the collector's write-only user cannot read, the read-only user cannot
  write, DROP or sneak a DROP in after a SELECT (the whole request is refused).
"""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from support.waiting import wait_for

from collector.mqtt import MqttCollector
from core.config import Settings, load_fleet
from core.influx import InfluxClient, InfluxQueryError, InfluxWriteError, StatementRefused, Writer
from energyhost.devstack import (
    COLLECTOR_USER,
    Mosquitto,
    fleet_acl,
    gateway_user,
    make_loopback_tls,
    read_secrets,
    write_secrets,
)
from simulators.mqtt_gateway import MqttGateway

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = 135            # MQTT 5.0 reason code 0x87
CHANNELS = ["active_power", "voltage_l1"]


def values_fn(device, t: float) -> dict[str, float]:
    return {"active_power": 10.0 + t % 7, "voltage_l1": 230.0}


def make_fleet(tmp_path: Path):
    lines = ['[[customer]]', 'id = "cust-sec"']
    for s in range(2):
        lines += ["  [[customer.site]]", f'  id = "site-sec-{s}"']
        for d in range(2):
            lines += ["    [[customer.site.device]]", f'    id = "dev-sec-{s}-{d}"', '    kind = "meter"',
                      '    transport = "mqtt"']
    p = tmp_path / "fleet-sec.toml"
    p.write_text("\n".join(lines) + "\n")
    return load_fleet(p)




class V5Client:
    """A paho MQTT v5 client that records CONNACK and PUBACK reason codes."""

    def __init__(self, port: int, user: str, password: str, client_id: str, tls_ca: str | None = None):
        self.connack = None
        self.pubacks: dict[int, int] = {}
        self._ev = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, password)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca)
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc.value)
        self.c.connect("127.0.0.1", port, 10)
        self.c.loop_start()
        self._ev.wait(10)

    def _on_connect(self, c, u, flags, rc, props):
        self.connack = rc.value
        self._ev.set()

    def publish(self, topic: str, payload: str) -> int:
        """Publish QoS 1 and return the PUBACK reason code."""
        info = self.c.publish(topic, payload, qos=1)
        assert wait_for(lambda: info.mid in self.pubacks, 10), f"no PUBACK for {topic}"
        return self.pubacks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


# ---------------------------------------------------------------------------- pure: the ACL itself
def test_acl_grants_each_user_only_its_own_topics(tmp_path):
    fleet = make_fleet(tmp_path)
    acc = fleet_acl(fleet)
    assert set(acc.grants) == {COLLECTOR_USER, "site-sec-0-mqttgw", "site-sec-1-mqttgw",
                               "dev-sec-0-0", "dev-sec-0-1", "dev-sec-1-0", "dev-sec-1-1"}
    assert acc.grants[COLLECTOR_USER] == [("read", "eh/v1/#")]
    assert acc.grants["dev-sec-0-1"] == [("write", "eh/v1/site-sec-0/dev-sec-0-1/#")]
    assert acc.grants[gateway_user("site-sec-1")] == [
        ("write", "eh/v1/site-sec-1/gateway/site-sec-1-mqttgw/#"),
        ("write", "eh/v1/site-sec-1/dev-sec-1-0/#"), ("write", "eh/v1/site-sec-1/dev-sec-1-1/#")]
    assert "user dev-sec-1-1\ntopic write eh/v1/site-sec-1/dev-sec-1-1/#" in acc.acl_text()
    assert len(set(acc.passwords.values())) == len(acc.passwords)          # one secret each
    with pytest.raises(ValueError, match="must match"):
        fleet_acl(fleet, collector_user="#")
    with pytest.raises(ValueError, match="must match"):
        fleet_acl(fleet, collector_user="a/+")
    files = write_secrets(acc, tmp_path / "secrets")
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files.values())
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert read_secrets(tmp_path / "secrets") == acc.passwords
    assert fleet_acl(fleet, passwords=acc.passwords).passwords == acc.passwords   # stable across restarts


# ---------------------------------------------------------------------------- MQTT: ACL on a real broker
@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A broker with the fleet's password file and ACL, plus a TLS listener (certs made now)."""
    tmp = tmp_path_factory.mktemp("locked")
    fleet = make_fleet(tmp)
    acc = fleet_acl(fleet)
    tls = make_loopback_tls(tmp / "tls")
    m = Mosquitto(tmp / "mq", users=acc.passwords, acl=acc.acl_text(),
                  tls=(tls.ca_cert, tls.server_cert, tls.server_key))
    m.start()
    yield fleet, acc, m, tls
    m.stop()


def _collector(fleet, acc, m, influxd, db, spool: Path, *, port=None, ca=None, client_id="sec-col"):
    st = Settings(influx_url=influxd.url, influx_db=db, mqtt_host="127.0.0.1", mqtt_port=port or m.port,
                  mqtt_user=COLLECTOR_USER, mqtt_password=acc.passwords[COLLECTOR_USER],
                  mqtt_tls_ca=str(ca) if ca else None, spool_dir=str(spool))
    client = InfluxClient.from_settings(st)
    writer = Writer(client, spool, flush_interval_s=0.05)
    col = MqttCollector(fleet, st, writer, client_id=client_id).start()
    return client, writer, col


def _count(client: InfluxClient, device: str) -> int:
    s = client.query('SELECT count("active_power") FROM "meter" WHERE "device" = $d', params={"d": device})
    return s[0]["values"][0][1] if s else 0


def test_device_cannot_publish_as_another(locked, influxd, influx_db, tmp_path):
    fleet, acc, m, _ = locked
    client, writer, col = _collector(fleet, acc, m, influxd, influx_db, tmp_path / "spool")
    ts = int(time.time() * 1000)
    body = f'{{"ts": {ts}, "values": {{"active_power": 1.5}}}}'
    a = V5Client(m.port, "dev-sec-0-0", acc.passwords["dev-sec-0-0"], "dev-sec-0-0")
    gw0 = V5Client(m.port, "site-sec-0-mqttgw", acc.passwords["site-sec-0-mqttgw"], "gw0")
    coll_pub = V5Client(m.port, COLLECTOR_USER, acc.passwords[COLLECTOR_USER], "col-pub")
    try:
        assert a.connack == 0
        assert a.publish("eh/v1/site-sec-0/dev-sec-0-0/telemetry", body) == 0          # its own topic
        # as another device of the same site, of another site, as the gateway, by wildcard-ish topics
        assert a.publish("eh/v1/site-sec-0/dev-sec-0-1/telemetry", body) == NOT_AUTHORIZED
        assert a.publish("eh/v1/site-sec-1/dev-sec-1-0/telemetry", body) == NOT_AUTHORIZED
        batch = f'{{"readings": [{{"device": "dev-sec-0-1", "ts": {ts}, "values": {{"active_power": 2}}}}]}}'
        assert a.publish("eh/v1/site-sec-0/gateway/site-sec-0-mqttgw/batch", batch) == NOT_AUTHORIZED
        # the site gateway: its own site's devices and batch topic yes, the other site no
        assert gw0.publish("eh/v1/site-sec-0/dev-sec-0-1/telemetry", body) == 0
        assert gw0.publish("eh/v1/site-sec-0/gateway/site-sec-0-mqttgw/batch", batch) == 0
        assert gw0.publish("eh/v1/site-sec-1/dev-sec-1-1/telemetry", body) == NOT_AUTHORIZED
        assert gw0.publish("eh/v1/site-sec-1/gateway/site-sec-1-mqttgw/batch", batch) == NOT_AUTHORIZED
        # the collector reads only
        assert coll_pub.publish("eh/v1/site-sec-1/dev-sec-1-1/telemetry", body) == NOT_AUTHORIZED
        assert wait_for(lambda: _count(client, "dev-sec-0-0") == 1 and _count(client, "dev-sec-0-1") == 1, 10)
        time.sleep(0.5)        # let anything that slipped through arrive before counting it
        assert _count(client, "dev-sec-0-0") == 1
        assert _count(client, "dev-sec-0-1") == 1               # gw0's telemetry and batch at the same ts
        assert _count(client, "dev-sec-1-0") == 0 and _count(client, "dev-sec-1-1") == 0
        assert col.stats()["messages"] == 3                     # the three authorised messages only
    finally:
        for c in (a, gw0, coll_pub):
            c.close()
        col.stop()
        writer.close()


@pytest.mark.parametrize("user", ["+", "#", "dev-sec-0-0/#", "nobody"])
def test_wildcard_and_unknown_user_names_are_refused(locked, user):
    fleet, acc, m, _ = locked
    c = V5Client(m.port, user, acc.passwords["dev-sec-0-0"], f"x-{len(user)}")
    try:
        assert c.connack in (134, NOT_AUTHORIZED), c.connack   # 0x86 bad user name or password / 0x87
    finally:
        c.close()


@pytest.mark.parametrize("client_id", ["+", "#"])
def test_wildcard_client_id_gets_no_more_than_its_user(locked, client_id):
    """Mosquitto 2.0 accepts '+'/'#' in a client id, but our ACL grants by user name only (no %c
    patterns), so such an id opens nothing: the device still publishes only under its own topic."""
    fleet, acc, m, _ = locked
    c = V5Client(m.port, "dev-sec-1-0", acc.passwords["dev-sec-1-0"], client_id)
    try:
        if c.connack != 0:
            assert c.connack >= 128                # refused outright is fine too
            return
        body = '{"ts": 1, "values": {"active_power": 1}}'
        assert c.publish("eh/v1/site-sec-1/dev-sec-1-1/telemetry", body) == NOT_AUTHORIZED
        assert c.publish("eh/v1/site-sec-0/dev-sec-0-0/telemetry", body) == NOT_AUTHORIZED
    finally:
        c.close()


def test_collector_and_gateway_over_tls(locked, influxd, influx_db, tmp_path):
    fleet, acc, m, tls = locked
    client, writer, col = _collector(fleet, acc, m, influxd, influx_db, tmp_path / "spool", port=m.tls_port,
                                     ca=tls.ca_cert, client_id="sec-col-tls")
    gw = MqttGateway(fleet, "site-sec-1", "127.0.0.1", m.tls_port, values_fn, mode="batch",
                     username=gateway_user("site-sec-1"), password=acc.passwords[gateway_user("site-sec-1")],
                     tls_ca=str(tls.ca_cert)).start()
    try:
        gw.run(0.01, rounds=20, t0=time.time() - 5)
        gw._thread.join(10)
        assert gw.wait_acked(10)
        assert wait_for(lambda: _count(client, "dev-sec-1-0") == 20 and _count(client, "dev-sec-1-1") == 20, 10)
    finally:
        gw.stop()
        col.stop()
        writer.close()
    # without the CA the broker's certificate is not trusted: the TLS handshake fails
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="no-ca", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=None)        # system CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        c.connect("127.0.0.1", m.tls_port, 5)


# ---------------------------------------------------------------------------- InfluxDB: least privilege
def test_influx_write_only_and_read_only_users(make_influxd):
    d = make_influxd(auth=True)
    d.create_database("eh")
    d.add_user("collector", "w-secret", database="eh", privilege="WRITE")
    d.add_user("reader", "r-secret", database="eh", privilege="READ")
    writer = InfluxClient(d.url, "eh", username="collector", password="w-secret")
    reader = InfluxClient(d.url, "eh", username="reader", password="r-secret")
    anon = InfluxClient(d.url, "eh")
    try:
        writer.write_lines("meter,device=m1 active_power=1.5 1700000000000000000\n")
        assert reader.query('SELECT "active_power" FROM "meter"')[0]["values"] == [[1700000000000000000, 1.5]]
        with pytest.raises(InfluxQueryError, match="not authorized"):
            writer.query('SELECT "active_power" FROM "meter"')            # write-only: cannot read
        with pytest.raises(InfluxWriteError) as e:
            reader.write_lines("meter,device=m1 active_power=9 1700000001000000000\n")
        assert e.value.status == 403                                       # read-only: cannot write
        for q in ('DROP MEASUREMENT "meter"', 'DELETE FROM "meter"', 'DROP DATABASE "eh"',
                  'CREATE USER "x" WITH PASSWORD \'y\' WITH ALL PRIVILEGES',
                  # the injection shape: a harmless SELECT followed by a DROP in one request
                  'SELECT "active_power" FROM "meter"; DROP MEASUREMENT "meter"'):
            with pytest.raises(StatementRefused):                          # never sent by the client
                reader.query(q)
            r = httpx.post(f"{d.url}/query", data={"q": q, "db": "eh"}, auth=("reader", "r-secret"))
            assert r.status_code == 403 or "not authorized" in r.text, (q, r.text)   # and the server refuses
        for user in (("collector", "w-secret"), None):
            r = httpx.post(f"{d.url}/query", data={"q": 'DROP MEASUREMENT "meter"', "db": "eh"}, auth=user)
            assert r.status_code in (401, 403), r.text
        with pytest.raises(InfluxWriteError) as e:
            anon.write_lines("meter,device=m1 active_power=9 1700000002000000000\n")
        assert e.value.status == 401
        # nothing was changed by the refused requests
        assert reader.query('SELECT "active_power" FROM "meter"')[0]["values"] == [[1700000000000000000, 1.5]]
    finally:
        for c in (writer, reader, anon):
            c.close()


def test_example_fleet_acl_covers_what_the_simulator_publishes():
    """The demo's ACL (from sites.example.toml) grants each simulated site gateway exactly the
    topics it publishes (its batch/status topics and its site's devices' telemetry), and no
    other site's."""
    from core.topics import TOPIC_PREFIX

    root = Path(__file__).resolve().parents[2]
    fleet = load_fleet(root / "sites.example.toml")
    acc = fleet_acl(fleet)
    sites = [s for s in fleet.sites.values() if any(d.transport == "mqtt" for d in s.devices)]
    assert sites

    def allowed(user: str, topic: str) -> bool:
        return any(access == "write" and mqtt.topic_matches_sub(flt, topic) for access, flt in acc.grants[user])

    for s in sites:
        gw = MqttGateway(fleet, s.id, "127.0.0.1", 1, values_fn)
        assert gw.gateway_id == gateway_user(s.id)
        own = [gw.batch_topic, gw.status_topic] + [t for t, _ in gw.payloads(time.time())]
        assert all(allowed(gw.gateway_id, t) for t in own), own
        for other in sites:
            if other.id != s.id:
                assert not allowed(gw.gateway_id, f"{TOPIC_PREFIX}/{other.id}/gateway/{gateway_user(other.id)}/batch")
                assert not any(allowed(gw.gateway_id, d.topic) for d in other.devices if d.transport == "mqtt")
        for d in (d for d in s.devices if d.transport == "mqtt"):
            assert allowed(d.id, d.topic) and not allowed(d.id, gw.batch_topic)
    assert not any(allowed(COLLECTOR_USER, d.topic) for d in fleet.devices.values() if d.transport == "mqtt")

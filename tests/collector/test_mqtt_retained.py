"""Retained MQTT messages through a real broker: a retained status is not re-stamped "now" at every
(re)subscription, and deleting a retained message (empty payload) is no reject."""

from __future__ import annotations

import subprocess
import time

import pytest
from support.waiting import wait_for

from collector.mqtt import MqttCollector
from core.config import Settings, load_fleet
from core.influx import InfluxClient, Writer

pytestmark = pytest.mark.integration

FLEET = """[[customer]]
id = "cust-ret"
  [[customer.site]]
  id = "site-ret"
    [[customer.site.device]]
    id = "dev-ret-nots"
    kind = "meter"
    transport = "mqtt"
    [[customer.site.device]]
    id = "dev-ret-ts"
    kind = "meter"
    transport = "mqtt"
"""


def _pub(port: int, topic: str, *payload_args: str) -> None:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-r", "-t", topic,
                    *payload_args], check=True, timeout=10)


def _session(fleet, st, client, client_id: str, clear: str | None = None) -> None:
    """One collector subscription: it receives the two retained statuses (and, with ``clear``, the
    deletion of that retained message); nothing is rejected, everything acknowledged."""
    writer = Writer(client, st.spool_dir, flush_interval_s=0.05)
    col = MqttCollector(fleet, st, writer, client_id=client_id).start()
    try:
        assert wait_for(lambda: col.stats().get("messages", 0) >= 2, 10), col.stats()
        if clear:
            _pub(st.mqtt_port, clear, "-n")
            assert wait_for(lambda: col.stats().get("messages", 0) >= 3, 10), col.stats()
        assert wait_for(lambda: col.stats().get("acked", 0) == col.stats()["messages"], 10), col.stats()
        assert col.stats()["rejects"] == 0, col.stats()
    finally:
        col.stop()
        writer.close()


def test_retained_status_is_stored_once_at_its_own_time(dedicated_mosquitto, influxd, influx_db, tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET)
    fleet = load_fleet(path)
    st = Settings(influx_url=influxd.url, influx_db=influx_db, mqtt_host=dedicated_mosquitto.host,
                  mqtt_port=dedicated_mosquitto.port, spool_dir=str(tmp_path / "spool"))
    client = InfluxClient.from_settings(st)
    old_ms = int(time.time() * 1000) - 3_600_000
    port = dedicated_mosquitto.port
    _pub(port, "eh/v1/site-ret/dev-ret-nots/status", "-m", '{"online": false}')
    _pub(port, "eh/v1/site-ret/dev-ret-ts/status", "-m", f'{{"online": false, "ts": {old_ms}}}')

    def stored(device: str) -> list:
        rows = client.query('SELECT "online" FROM collector_status WHERE device = $d', {"d": device})
        return rows[0]["values"] if rows else []

    _session(fleet, st, client, "ret-test-0")
    _session(fleet, st, client, "ret-test-1", clear="eh/v1/site-ret/dev-ret-nots/status")  # gets them again
    assert stored("dev-ret-ts") == [[old_ms * 1_000_000, 0]]
    assert stored("dev-ret-nots") == []
    assert not (tmp_path / "spool" / "mqtt-deadletter.jsonl").exists()

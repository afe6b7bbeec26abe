"""Spool faults: the byte cap reached during an outage (drop-oldest, counted, exposed as a
metric and alarmed), and a spool file truncated / with a byte flipped before the collector starts."""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from support.fault_harness import (
    ROOT,
    CollectorProc,
    account,
    count,
    invariant,
    mqtt_fleet,
    values_fn,
    wait_for,
)

from api.main import create_app
from api.settings import ApiSettings
from collector.mqtt import MqttCollector
from collector.service import Metrics
from core.config import Settings
from core.influx import InfluxClient, Writer
from core.model import Point
from core.spool import HEADER_SIZE
from energyhost.devstack import stop_process
from energyhost.status import collect_status
from simulators.mqtt_gateway import MqttGateway
from workflow import Store

pytestmark = pytest.mark.integration

CAP = 96 * 1024      # [bytes]


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


def test_spool_cap_reached_drops_oldest_counted_alarmed_and_exposed(dedicated_mosquitto, make_influxd, tmp_path,
                                                                     caplog):
    """The cap drops the oldest readings during an outage: counted, exposed as metrics, logged as an
    ERROR naming site/device at once, shown by ``energyhost status``, kept in ``dropped.json`` across
    a collector restart, recorded as ``ingest_health`` by the restarted ``energyhost collect`` process,
    and raised by ``energyhost analyze --follow`` as a critical alarm in the API's alarm list."""
    influxd = make_influxd()
    influxd.create_database("cap")
    influxd.kill()
    fleet_path, fleet = mqtt_fleet(tmp_path, "cap", n_devices=10)
    spool = tmp_path / "spool"
    st = Settings(influx_url=influxd.url, influx_db="cap", mqtt_host="127.0.0.1",
                  mqtt_port=dedicated_mosquitto.port, spool_dir=str(spool))
    client = InfluxClient.from_settings(st, timeout=2.0)
    caplog.set_level(logging.ERROR, logger="energyhost.influx")
    writer = Writer(client, st.spool_dir, flush_interval_s=0.1, retry_max_s=0.5, spool_max_bytes=CAP)
    col = MqttCollector(fleet, st, writer, client_id="fault-cap").start()
    registry = CollectorRegistry()
    registry.register(Metrics({"writer": writer.stats, "mqtt": col.stats}))
    gw = MqttGateway(fleet, "s-cap", "127.0.0.1", dedicated_mosquitto.port, values_fn)
    t0 = time.time() - 120
    try:
        gw.start()
        gw.run(0.02, rounds=200, t0=t0)                 # 2,000 readings >> what 96 KiB holds
        gw._thread.join(30)
        assert gw.wait_acked(20)
        assert wait_for(lambda: col.stats().get("acked", 0) >= gw.published, 30), col.stats()
        writer.flush(10)
        mid = writer.stats()
        exposed = generate_latest(registry).decode()
        assert mid["dropped"] > 0 and mid["spooled_bytes"] <= CAP, mid
        assert _metric(exposed, 'energyhost_readings_total{outcome="dropped"}') == mid["dropped"]
        assert _metric(exposed, "energyhost_readings_dropped_unrecorded") == mid["dropped"] == mid["drops_unrecorded"]
        assert _metric(exposed, "energyhost_spool_max_bytes") == CAP
    finally:
        gw.stop()                                    # its "offline" status goes to the spool too
        col.stop()
        writer.close()                               # the collector stops while InfluxDB is still down
    ws = writer.stats()
    assert invariant(ws) and ws["written"] == 0 and ws["pending"] == ws["spooled"] > 0
    # alarmed at once: an ERROR per device whose readings went, with the ids as log context
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "spool cap" in r.getMessage()]
    assert errors and {r.site for r in errors} == {"s-cap"}
    assert {r.device for r in errors} <= {f"d-cap-{i}" for i in range(10)} and "d-cap-0" in {r.device for r in errors}
    # kept next to the spool until recorded, and shown by `energyhost status`
    ledger = json.loads((spool / "dropped.json").read_text())
    assert ledger["dropped_total"] == ws["dropped"]
    assert sum(r["points"] for r in ledger["unrecorded"].values()) == ws["dropped"]
    assert {r["site"] for r in ledger["unrecorded"].values()} == {"s-cap"}
    (tmp_path / "state.json").write_text(json.dumps({"pids": {}, "var": str(tmp_path)}))
    status = collect_status(tmp_path)["spool"]
    assert status["ok"] is False and f"READINGS DROPPED by the spool cap: {ws['dropped']}" in status["detail"]
    assert status["drops"]["unrecorded"] == ws["dropped"]

    # restart: InfluxDB is back, `energyhost collect` (a process) replays the spool and records the drops
    influxd.start()
    proc = CollectorProc.service(fleet_path, influxd.url, "cap", dedicated_mosquitto.port, spool,
                                 tmp_path / "collect.log", "--no-mqtt").start()
    try:
        assert wait_for(lambda: not json.loads((spool / "dropped.json").read_text())["unrecorded"], 30), \
            proc.log_tail()
        assert wait_for(lambda: count(client) + count(client, "collector_status", "online") == ws["spooled"], 30)
    finally:
        proc.stop()
    log_text = (tmp_path / "collect.log").read_text()
    assert "dropped by the spool cap before this start are not recorded" in log_text
    assert f"recorded {ws['dropped']} readings dropped by the spool cap in InfluxDB" in log_text
    w2 = proc.service_stats()[-1]
    assert invariant(w2) and w2["pending"] == 0 and w2["dropped"] == 0
    assert w2["recovered"] == w2["written"] == ws["spooled"]
    health = client.query('SELECT sum("dropped_points") FROM "ingest_health" WHERE "site" = $s GROUP BY "device"',
                          {"s": "s-cap"})
    by_device = {h["tags"]["device"]: int(h["values"][0][1]) for h in health}
    assert sum(by_device.values()) == ws["dropped"] and "d-cap-0" in by_device
    assert collect_status(tmp_path)["spool"]["ok"] is True

    readings = count(client)
    assert ws["received"] - ws["dropped"] == w2["written"] == readings + count(client, "collector_status", "online")
    # the oldest went: what is stored is the newest, contiguous, tail of the stream
    first = client.query('SELECT first("active_power") FROM meter WHERE device = $d', {"d": "d-cap-0"},
                         epoch="ms")[0]["values"][0][0]
    last = client.query('SELECT last("active_power") FROM meter WHERE device = $d', {"d": "d-cap-0"},
                        epoch="ms")[0]["values"][0][0]
    assert last == round((t0 + 0.02 * 199) * 1000)
    assert (last - first) / 20 + 1 == count(client, where="WHERE device = 'd-cap-0'")
    assert first > round(t0 * 1000)

    # the analytics follower (a process) raises the critical alarm in the workflow store; the API lists it
    db_url = f"sqlite:///{tmp_path / 'wf.db'}"
    store = Store(db_url)                                         # migrated before the follower opens it
    analyze = subprocess.Popen(
        [sys.executable, "-m", "energyhost", "analyze", "--follow", "--fleet", str(fleet_path), "--db", db_url],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "EH_INFLUX_URL": influxd.url, "EH_INFLUX_DB": "cap"},
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "analyze.log", "wb"), start_new_session=True)  # noqa: SIM115
    try:
        assert wait_for(lambda: any(a["type"] == "readings_dropped" for a in store.alarms(limit=1000)), 60), \
            (tmp_path / "analyze.log").read_text()[-2000:]
    finally:
        stop_process(analyze, 30)
    store.create_user("ops", "engineer", password="cap-alarm-pass-1")
    with TestClient(create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=store, background=False)) as c:
        tok = c.post("/api/v1/auth/token", json={"username": "ops", "password": "cap-alarm-pass-1"}).json()
        alarms = c.get("/api/v1/alarms", params={"site_id": "s-cap", "limit": 100},
                       headers={"Authorization": f"Bearer {tok['access_token']}"}).json()
    [alarm] = [a for a in alarms if a["type"] == "readings_dropped"]
    assert alarm["severity"] == "critical" and alarm["key"] == "s-cap/-/readings_dropped"
    assert alarm["evidence"]["dropped_points"] == ws["dropped"] and alarm["evidence"]["devices"] == by_device
    assert f"discarded the {ws['dropped']} oldest readings" in alarm["message_en"]
    store.close()
    account("spool byte cap 96 KiB during an outage", received=ws["received"], written=w2["written"],
            pending=w2["pending"], rejected=ws["rejected"] + w2["rejected"], lost=0, dropped_by_policy=ws["dropped"],
            dropped_metric=int(_metric(exposed, 'energyhost_readings_total{outcome="dropped"}')),
            alarm=alarm["key"])


def _records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, size, n_points) of every record of a spool segment (core/spool.py layout)."""
    out, pos = [], 0
    while pos + HEADER_SIZE <= len(data):
        n, length = struct.unpack_from("<II", data, pos + 8)
        out.append((pos, HEADER_SIZE + length, n))
        pos += HEADER_SIZE + length
    return out


def test_corrupt_spool_collector_starts_and_replays_the_intact_records(dedicated_mosquitto, make_influxd,
                                                                        tmp_path):
    """A spool left by a crash, then one byte flipped mid-file and the tail truncated mid-record:
    ``energyhost collect`` starts, quarantines both, replays every intact record in order."""
    influxd = make_influxd()
    influxd.create_database("corrupt")
    influxd.kill()
    spool = tmp_path / "spool"
    client = InfluxClient(influxd.url, "corrupt", timeout=1.0)
    w0 = Writer(client, spool, flush_interval_s=0.05, retry_max_s=5.0)
    t0 = 1_700_000_000 * 10**9
    total = 0
    for k in range(12):                        # 12 records of 50 points (one batch each)
        w0.submit([Point("meter", {"customer": "c", "site": "s", "device": f"m{i}"},
                         {"active_power": float(k * 50 + i)}, t0 + k * 10**9) for i in range(50)])
        total += 50
        assert w0.flush(10)
    w0.close()
    segs = sorted(spool.glob("*.seg"))
    assert len(segs) == 1
    data = bytearray(segs[0].read_bytes())
    recs = _records(bytes(data))
    assert len(recs) == 12 and sum(r[2] for r in recs) == total
    mid = recs[5]
    data[mid[0] + HEADER_SIZE + mid[1] // 3] ^= 0xFF         # a flipped byte in record 6's payload
    last = recs[-1]
    del data[last[0] + HEADER_SIZE + 40:]                      # torn write: record 12 cut mid-payload
    segs[0].write_bytes(bytes(data))
    influxd.start()
    fleet_path, _ = mqtt_fleet(tmp_path, "none", n_devices=1)     # no Modbus device: the spool is all there is
    col = CollectorProc.service(fleet_path, influxd.url, "corrupt", dedicated_mosquitto.port, spool,
                                tmp_path / "collect.log", "--no-mqtt").start()
    try:
        assert wait_for(lambda: count(InfluxClient(influxd.url, "corrupt")) == total - 100, 30), \
            count(InfluxClient(influxd.url, "corrupt"))
    finally:
        col.stop()
    w = col.service_stats()[-1]
    assert invariant(w) and w["pending"] == 0
    assert w["recovered"] == w["written"] == total - 100
    assert w["spool_corrupt_records"] == 2 and w["spool_corrupt_points_at_open"] == 100
    whys = sorted(p.read_text() for p in (spool / "quarantine").glob("*.why"))
    assert len(whys) == 2 and any("CRC" in x for x in whys) and any("truncated" in x for x in whys)
    # every intact record, exactly its points, nothing from the two bad ones
    got = {int(v[0]) for v in InfluxClient(influxd.url, "corrupt").query(
        f"SELECT count(active_power) FROM meter WHERE time >= {t0} AND time < {t0 + 12 * 10**9} "
        "GROUP BY time(1s) fill(none)")[0]["values"]}
    assert got == {t0 + k * 10**9 for k in range(12) if k not in (5, 11)}
    account("spool byte flipped + tail truncated", received=total, written=w["written"], pending=w["pending"],
            rejected=w["rejected"], lost=total - w["written"], quarantined_records=w["spool_corrupt_records"],
            counted_corrupt_points=w["spool_corrupt_points_at_open"])

"""Spool faults: the byte cap reached during an outage (drop-oldest, counted and exposed as a
metric), and a spool file truncated / with a byte flipped before the collector starts."""

from __future__ import annotations

import struct
import time

import pytest
from _harness import CollectorProc, account, count, invariant, mqtt_fleet, values_fn, wait_for
from prometheus_client import CollectorRegistry, generate_latest

from collector.mqtt import MqttCollector
from collector.service import Metrics
from core.config import Settings
from core.influx import InfluxClient, Writer
from core.model import Point
from core.spool import HEADER_SIZE
from simulators.mqtt_gateway import MqttGateway

pytestmark = pytest.mark.integration

CAP = 96 * 1024      # [bytes]


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


def test_spool_cap_reached_drops_oldest_counted_and_exposed(dedicated_mosquitto, make_influxd, tmp_path):
    influxd = make_influxd()
    influxd.create_database("cap")
    influxd.kill()
    fleet_path, fleet = mqtt_fleet(tmp_path, "cap", n_devices=10)
    st = Settings(influx_url=influxd.url, influx_db="cap", mqtt_host="127.0.0.1",
                  mqtt_port=dedicated_mosquitto.port, spool_dir=str(tmp_path / "spool"))
    client = InfluxClient.from_settings(st, timeout=2.0)
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
        influxd.start()
        assert writer.drain(60)
    finally:
        gw.stop()                                    # its "offline" status goes through too
        col.stop()
        writer.close()
    ws = writer.stats()
    readings = count(client)
    assert invariant(ws) and ws["pending"] == 0
    assert ws["written"] == readings + count(client, "collector_status", "online")   # + gateway status points
    assert ws["received"] - ws["dropped"] == ws["written"]
    # the oldest went: what is stored is the newest, contiguous, tail of the stream
    first = client.query('SELECT first("active_power") FROM meter WHERE device = $d', {"d": "d-cap-0"},
                         epoch="ms")[0]["values"][0][0]
    last = client.query('SELECT last("active_power") FROM meter WHERE device = $d', {"d": "d-cap-0"},
                        epoch="ms")[0]["values"][0][0]
    assert last == round((t0 + 0.02 * 199) * 1000)
    assert (last - first) / 20 + 1 == count(client, where="WHERE device = 'd-cap-0'")
    assert first > round(t0 * 1000)
    account("spool byte cap 96 KiB during an outage", received=ws["received"], written=ws["written"],
            pending=ws["pending"], rejected=ws["rejected"], lost=0, dropped_by_policy=ws["dropped"],
            dropped_metric=int(_metric(exposed, 'energyhost_readings_total{outcome="dropped"}')))


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

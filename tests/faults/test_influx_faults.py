"""InfluxDB faults under a running collector: SIGKILL mid-stream, 500/503 answers, 413 and 400.

Real processes: ``influxd`` 1.6.7 and ``mosquitto`` 2.0.11 (own dirs, free loopback ports), the
collector as ``energyhost collect-mqtt``, and a QoS-1 gateway simulator.  The 500/503 answers
come from a loopback proxy in front of the real influxd (the database itself stays real).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from support.fault_harness import (
    CollectorProc,
    FaultProxy,
    account,
    count,
    invariant,
    mqtt_fleet,
    values_fn,
    wait_for,
)

from core.influx import InfluxClient, Writer
from core.model import Point
from simulators.mqtt_gateway import MqttGateway

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("EH_FAULT_OUTAGE_S", "20"))     # 600 for the 10-minute version


@pytest.mark.timeout(OUTAGE_S + 240)
def test_influxd_sigkill_mid_stream_then_restart(dedicated_mosquitto, make_influxd, tmp_path):
    """influxd SIGKILLed (no clean shutdown) for OUTAGE_S while 200 readings/s flow: all stored once."""
    influxd = make_influxd()
    influxd.create_database("kill")
    fleet_path, fleet = mqtt_fleet(tmp_path, "ik", n_devices=10)
    col = CollectorProc.mqtt(fleet_path, influxd.url, "kill", dedicated_mosquitto.port, tmp_path / "spool",
                             tmp_path / "collector.log", "fault-influx-kill").start()
    gw = MqttGateway(fleet, "s-ik", "127.0.0.1", dedicated_mosquitto.port, values_fn).start()
    rounds = int((4 + OUTAGE_S + 4) / 0.05)
    try:
        gw.run(0.05, rounds=rounds, t0=time.time() - 120)
        time.sleep(3)
        influxd.kill()
        killed_at = time.monotonic()
        time.sleep(OUTAGE_S)
        mid = col.last_stats()["writer"]
        assert mid["spooled"] > 0 and mid["write_errors"] > 0, mid
        influxd.start()
        outage = time.monotonic() - killed_at
        t_back = time.monotonic()
        assert wait_for(lambda: col.last_stats()["writer"]["spooled"] == 0, 60), col.last_stats()
        drained_s = time.monotonic() - t_back          # spool replayed while the stream goes on
        gw._thread.join(OUTAGE_S + 30)
        assert gw.wait_acked(20)
        client = InfluxClient(influxd.url, "kill")
        assert wait_for(lambda: count(client) == gw.readings, 60), (count(client), gw.readings)
        assert wait_for(lambda: col.last_stats().get("writer", {}).get("pending", 1) == 0, 20)
    finally:
        gw.stop()
        col.stop()
    w = col.last_stats()["writer"]
    assert invariant(w), w
    stored = count(client)
    assert stored == gw.readings == rounds * 10
    assert w["rejected"] == w["dropped"] == 0
    account("influxd SIGKILL mid-stream", received=gw.readings, written=stored, pending=w["pending"],
            rejected=w["rejected"], lost=gw.readings - stored, outage_s=round(outage, 1),
            peak_spooled=mid["spooled"], drain_after_restart_s=round(drained_s, 1))


def test_influx_500_and_503_answers_are_retried_until_stored(influxd, influx_db, tmp_path):
    """A proxy answers /write with 500 (4 s), then 503 (3 s): the Writer spools, backs off, replays."""
    with FaultProxy(influxd.url) as proxy:
        client = InfluxClient(proxy.url, influx_db, timeout=5.0)
        writer = Writer(client, tmp_path / "spool", flush_interval_s=0.1, retry_max_s=1.0)
        sent = 0
        t0 = 1_700_000_000 * 10**9
        try:
            def burst(seconds: float) -> None:
                nonlocal sent
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    pts = [Point("meter", {"customer": "c", "site": "s", "device": f"m{i}"},
                                 {"active_power": float(sent + i)}, t0 + sent * 10**6) for i in range(20)]
                    writer.submit(pts)
                    sent += len(pts)
                    time.sleep(0.02)

            burst(1.0)
            proxy.mode = 500
            burst(4.0)
            mid = writer.stats()
            proxy.mode = 503
            burst(3.0)
            proxy.mode = "pass"
            burst(1.0)
            assert writer.drain(60)
            ws = writer.stats()
        finally:
            writer.close()
    stored = count(InfluxClient(influxd.url, influx_db))
    injected = proxy.counts.get("injected_500", 0) + proxy.counts.get("injected_503", 0)
    assert mid["spooled"] > 0 and ws["write_errors"] == injected > 0
    # backoff is bounded (retry_max_s = 1 s) yet not a hot loop: over 7 s, between 4 and 60 attempts
    assert 4 <= injected <= 60, proxy.counts
    assert invariant(ws) and ws["pending"] == 0
    assert stored == sent == ws["written"]
    account("influx answers 500/503 for 7 s", received=sent, written=stored, pending=ws["pending"],
            rejected=ws["rejected"], lost=sent - stored, injected_answers=injected)


def test_413_and_400_field_type_conflict_through_the_collector(dedicated_mosquitto, make_influxd, tmp_path):
    """influxd with max-body-size 20 kB (413s) and a field that already holds integers (400s).

    ``active_power`` of measurement ``meter`` is seeded as an integer, so every meter reading
    conflicts (InfluxDB 1.x: a field keeps its type per shard) while pv_inverter readings are
    fine.  Expected: batches halved on 413, conflicting lines dead-lettered one by one (not
    retried forever), everything else stored, every message acknowledged.
    """
    influxd = make_influxd(max_body_size=20_000)
    influxd.create_database("typed")
    client = InfluxClient(influxd.url, "typed")
    client.write_lines(f"meter,customer=old,site=old,device=seed active_power=1i {time.time_ns()}")
    fleet_path, fleet = mqtt_fleet(tmp_path, "ty", n_devices=6, extra_kind="pv_inverter", n_extra=4)
    spool = tmp_path / "spool"
    col = CollectorProc.mqtt(fleet_path, influxd.url, "typed", dedicated_mosquitto.port, spool,
                             tmp_path / "collector.log", "fault-typed").start()
    gw = MqttGateway(fleet, "s-ty", "127.0.0.1", dedicated_mosquitto.port, values_fn).start()
    try:
        gw.run(0.01, rounds=300, t0=time.time() - 60)     # 10 devices x 100 rounds/s for 3 s
        gw._thread.join(30)
        assert gw.wait_acked(20)
        assert wait_for(lambda: col.last_stats().get("collector", {}).get("acked", 0) >= gw.published, 60), \
            col.last_stats()
        assert wait_for(lambda: col.last_stats().get("writer", {}).get("pending", 1) == 0, 30)
    finally:
        gw.stop()
        col.stop()
    w = col.last_stats()["writer"]
    meters, pvs = 6 * 300, 4 * 300
    stored_pv = count(client, "pv_inverter")
    stored_meter = count(client, "meter") - 1       # - the seed point
    dead = [json.loads(x) for x in (spool / "deadletter.jsonl").read_text().splitlines()]
    conflicts = [d for d in dead if "field type conflict" in d["reason"]]
    assert w["split_413"] > 0, w
    assert stored_pv == pvs and stored_meter == 0
    assert len(conflicts) == meters == w["quarantined_400"]
    assert invariant(w) and w["pending"] == 0 and w["dropped"] == 0
    assert w["rejected"] == meters            # + 0: status points of the gateway are not meter points
    account("413 (20 kB body cap) + 400 field type conflict", received=gw.readings, written=stored_pv,
            pending=w["pending"], rejected=len(conflicts), lost=gw.readings - stored_pv - len(conflicts),
            split_413=w["split_413"], dead_letters=len(conflicts))

"""Clock steps: the wall clock stepped forward a day and back an hour.

libfaketime (Debian ``faketime`` 0.9.10) was tried on the collector process: with
``FAKETIME_DONT_FAKE_MONOTONIC=1`` (an NTP step does not move CLOCK_MONOTONIC) every
``time.sleep`` of Python 3.11 fails with ``OSError: [Errno 22]``, and without it the monotonic
clock steps too, which no real clock step does.  So the clock is injected where the code takes
one: :class:`collector.modbus.ModbusCollector` has ``clock=``; for MQTT the gateway's clock is
stepped (its timestamps), the collector's window check uses the real clock.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from support.fault_harness import account, count, invariant, mqtt_fleet, values_fn, wait_for

from collector.modbus import ModbusCollector
from collector.mqtt import MqttCollector
from core.config import Settings, parse_fleet
from core.influx import InfluxClient, Writer
from core.profiles import load_profiles
from energyhost.devstack import free_port
from simulators.modbus_server import serve_fleet
from simulators.mqtt_gateway import MqttGateway
from simulators.signals import FleetSignals

pytestmark = pytest.mark.integration

PROFILES = load_profiles()
INTERVAL = 0.25     # [s]
DAY, HOUR = 86400.0, 3600.0


def _run_with_step(step_s: float, before_s: float = 1.3, after_s: float = 1.8):
    """Poll two direct devices; step the collector's wall clock by ``step_s`` after ``before_s``."""
    fleet = parse_fleet({"customer": [{"id": "c", "site": [{"id": "s", "device": [
        {"id": f"m{i}", "kind": "meter", "profile": "meter_acrel_dtsd1352", "transport": "modbus",
         "host": "127.0.0.1", "port": free_port(), "unit_id": 1, "poll_interval_s": INTERVAL, "timeout_s": 0.2}
        for i in range(2)]}]}]})
    offset = [0.0]
    points: list[tuple[float, object]] = []

    def clock() -> float:
        return time.time() + offset[0]

    async def main():
        sim = await serve_fleet(fleet, PROFILES, FleetSignals(fleet))
        try:
            col = ModbusCollector(fleet, PROFILES, lambda pts: points.extend((time.monotonic(), p) for p in pts),
                                  clock=clock)
            stop = asyncio.Event()
            task = asyncio.create_task(col.run(stop))
            await asyncio.sleep(before_s)
            offset[0] = step_s
            stepped_at = time.monotonic()
            await asyncio.sleep(after_s)
            stop.set()
            await task
            return col.stats(), stepped_at
        finally:
            await sim.stop()

    stats, stepped_at = asyncio.run(main())
    status = [(m, p) for m, p in points if p.measurement == "collector_status" and p.tags["device"] == "m0"]
    return stats, stepped_at, status


def test_clock_stepped_forward_a_day_polling_goes_on_and_the_jump_is_counted():
    stats, stepped_at, status = _run_with_step(DAY)
    after = [p for m, p in status if m > stepped_at + INTERVAL]
    before = [p for m, p in status if m < stepped_at]
    assert len(before) >= 3 and len(after) >= 4, (len(before), len(after))
    # timestamps follow the new clock, stay on the grid, strictly increase
    assert after[0].time_ns - before[-1].time_ns >= DAY * 1e9 - 2 * INTERVAL * 1e9
    times = [p.time_ns for _, p in status]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert all(t % int(INTERVAL * 1e9) == 0 for t in times)
    assert {p.fields["status"] for _, p in status} == {"ok"}
    # the skipped day is counted (2 devices x DAY / INTERVAL slots), not polled in a burst
    assert abs(stats["skipped_slots"] - 2 * DAY / INTERVAL) <= 8, stats
    account("wall clock stepped forward a day (Modbus)", received=len(status), written=len(status), pending=0,
            rejected=0, lost=0, skipped_slots=stats["skipped_slots"])


def test_clock_stepped_back_an_hour_polling_goes_on():
    """Was a bug (the device loop slept the step: an hour without polls); fixed in 565f5a7 by
    re-aligning the schedule, counted as ``clock_steps_back``."""
    stats, stepped_at, status = _run_with_step(-HOUR)
    after = [p for m, p in status if m > stepped_at + INTERVAL]
    before = [p for m, p in status if m < stepped_at]
    assert len(before) >= 3 and len(after) >= 4, f"{len(after)} polls of m0 in the 1.8 s after the step back"
    assert stats["clock_steps_back"] == 2, stats                 # once per device
    # timestamps follow the corrected clock, on the grid, and are not repeated
    assert before[-1].time_ns - after[0].time_ns >= HOUR * 1e9 - 2 * INTERVAL * 1e9
    assert all(b - a == int(INTERVAL * 1e9) for a, b in zip(
        [p.time_ns for p in after], [p.time_ns for p in after][1:], strict=False))
    assert {p.fields["status"] for _, p in status} == {"ok"}
    account("wall clock stepped back an hour (Modbus)", received=len(status), written=len(status), pending=0,
            rejected=0, lost=0, clock_steps_back=stats["clock_steps_back"])


def test_gateway_clock_stepped_back_an_hour_and_forward_a_day(dedicated_mosquitto, influxd, influx_db, tmp_path):
    """A gateway whose clock steps back 1 h: readings stored at its (earlier) timestamps.  Forward
    a day: beyond the +5 min window, so rejected as ``timestamp_future``, dead-lettered with the
    payload, acknowledged (not redelivered forever), counted per reason."""
    _, fleet = mqtt_fleet(tmp_path, "clk", n_devices=5)
    st = Settings(influx_url=influxd.url, influx_db=influx_db, mqtt_host="127.0.0.1",
                  mqtt_port=dedicated_mosquitto.port, spool_dir=str(tmp_path / "spool"))
    client = InfluxClient.from_settings(st)
    writer = Writer(client, st.spool_dir, flush_interval_s=0.1)
    col = MqttCollector(fleet, st, writer, client_id="fault-clock").start()
    gw = MqttGateway(fleet, "s-clk", "127.0.0.1", dedicated_mosquitto.port, values_fn).start()
    now = time.time()
    rounds = 100
    try:
        for k in range(rounds):                    # normal clock, then back 1 h, then forward a day
            gw.publish_round(now - 10 + 0.01 * k)
            gw.publish_round(now - HOUR + 0.01 * k)
            gw.publish_round(now + DAY + 0.01 * k)
        assert gw.wait_acked(20)
        assert wait_for(lambda: col.stats().get("acked", 0) >= gw.published, 30), col.stats()
        assert writer.drain(30)
    finally:
        gw.stop()
        col.stop()
        writer.close()
    ws, cs = writer.stats(), col.stats()
    per = 5 * rounds
    stored_now = count(client, where=f"WHERE time >= {int((now - 60) * 1e9)}")
    stored_back = count(client, where=f"WHERE time < {int((now - 60) * 1e9)}")
    future = cs["rejects_by_reason"].get("timestamp_future", 0)
    dead = [json.loads(x) for x in (tmp_path / "spool" / "mqtt-deadletter.jsonl").read_text().splitlines()]
    assert stored_now == per and stored_back == per
    assert future == per == len([d for d in dead if d["rejects"][0]["reason"] == "timestamp_future"])
    assert invariant(ws)
    account("gateway clock back 1 h / forward 1 day (MQTT)", received=3 * per, written=stored_now + stored_back,
            pending=ws["pending"], rejected=future, lost=3 * per - stored_now - stored_back - future)

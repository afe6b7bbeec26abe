"""Modbus storms on a whole gateway: every unit blackholes, then answers late, then answers
exception 0B (gateway target failed), then 06 (busy), then recovers — while the directly
connected devices keep their schedule, and every poll is accounted for in InfluxDB."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter, defaultdict

import pytest
from support.fault_harness import account, invariant

from collector.modbus import ModbusCollector
from collector.schedule import device_phase_ns
from core.config import parse_fleet
from core.influx import InfluxClient, Writer
from core.profiles import load_profiles
from energyhost.devstack import free_port
from simulators.modbus_server import serve_fleet
from simulators.signals import FleetSignals

pytestmark = pytest.mark.integration

PROFILES = load_profiles()
PHASES = [("normal", 1.5), ("silent", 2.5), ("late", 2.5), (0x0B, 2.0), (0x06, 2.0), ("normal", 2.5)]
INTERVAL = 0.5      # [s]


def _fleet():
    gw_port = free_port()
    gw_units = [{"id": f"gw-m{u}", "kind": "meter", "profile": "meter_acrel_dtsd1352", "transport": "modbus",
                 "gateway": "gw1", "unit_id": u, "poll_interval_s": INTERVAL} for u in range(1, 5)]
    direct = [{"id": f"tcp-{i}", "kind": kind, "profile": prof, "transport": "modbus", "host": "127.0.0.1",
               "port": free_port(), "unit_id": 1, "poll_interval_s": INTERVAL, "timeout_s": 0.25}
              for i, (kind, prof) in enumerate([("meter", "meter_acrel_dtsd1352"),
                                                ("meter", "meter_eastron_sdm630"),
                                                ("ev_charger", "ev_charger_generic_ac")])]
    return parse_fleet({"customer": [{"id": "cust", "site": [{
        "id": "site1", "gateway": [{"id": "gw1", "host": "127.0.0.1", "port": gw_port, "framer": "rtu",
                                    "pause_s": 0.01, "timeout_s": 0.25}],
        "device": gw_units + direct}]}]})


def test_gateway_storms_other_devices_keep_schedule_and_accounting_is_exact(influxd, influx_db, tmp_path):
    fleet = _fleet()
    signals = FleetSignals(fleet)
    phase = {"now": "normal"}
    client = InfluxClient(influxd.url, influx_db)
    writer = Writer(client, tmp_path / "spool", flush_interval_s=0.2)
    arrivals: list[tuple[float, list]] = []

    def sink(points) -> None:
        arrivals.append((time.time(), points))
        writer.submit(points)

    def behaviour(did: str):
        return phase["now"] if did.startswith("gw-") else "normal"

    async def main():
        sim = await serve_fleet(fleet, PROFILES, signals, behaviour)
        try:
            col = ModbusCollector(fleet, PROFILES, sink)
            stop = asyncio.Event()
            task = asyncio.create_task(col.run(stop))
            for name, seconds in PHASES:
                phase["now"] = name
                await asyncio.sleep(seconds)
            stop.set()
            await task
            return col.stats(), Counter(sim.stats)
        finally:
            await sim.stop()

    stats, served = asyncio.run(main())
    assert writer.drain(30)
    writer.close()
    ws = writer.stats()

    by_dev: dict[str, list] = defaultdict(list)
    for arrived, pts in arrivals:
        st = pts[-1]
        by_dev[st.tags["device"]].append((arrived, st, len(pts)))
    # direct devices: every slot once, all ok, never delayed by the gateway's storms
    lags = []
    for did in ("tcp-0", "tcp-1", "tcp-2"):
        rows = by_dev[did]
        times = [s.time_ns for _, s, _ in rows]
        assert all(b - a == int(INTERVAL * 1e9) for a, b in zip(times, times[1:], strict=False)), did
        assert {s.fields["status"] for _, s, _ in rows} == {"ok"}
        # each device is read at its fixed phase into the slot (collector.schedule): the lag counts from there
        phase = device_phase_ns(did, int(INTERVAL * 1e9)) / 1e9
        lags += [arrived - s.time_ns / 1e9 - phase for arrived, s, _ in rows]
    assert statistics.median(lags) < 0.05 and max(lags) < 0.25, sorted(lags)[-5:]
    # gateway units: went through every storm, went offline, came back
    seen = Counter(s.fields["status"] for did in by_dev if did.startswith("gw-") for _, s, _ in by_dev[did])
    assert {"ok", "timeout", "exception_11", "exception_06"} <= set(seen), seen
    for u in range(1, 5):
        rows = by_dev[f"gw-m{u}"]
        assert any(s.fields["online"] == 0 for _, s, _ in rows)
        assert rows[-1][1].fields["status"] == "ok" and rows[-1][1].fields["online"] == 1
    assert served["silent"] > 0 and served["late"] > 0 and served["exception_11"] > 0
    # accounting: every poll's points are in InfluxDB, exactly
    submitted = sum(n for rows in by_dev.values() for _, _, n in rows)
    assert invariant(ws) and ws["received"] == submitted == ws["written"]
    status_rows = client.query("SELECT count(online) FROM collector_status GROUP BY device")
    stored_status = {s["tags"]["device"]: s["values"][0][1] for s in status_rows}
    assert stored_status == {did: len(rows) for did, rows in by_dev.items()}
    stored = sum(stored_status.values())
    for kind in ("meter", "ev_charger"):           # one row per stored point (fields may be partial)
        for row in client.query(f'SELECT * FROM "{kind}" GROUP BY device'):
            stored += len(row["values"])
    assert stored == submitted
    account("Modbus gateway storms (silent/late/0B/06)", received=submitted, written=stored, pending=ws["pending"],
            rejected=ws["rejected"], lost=submitted - stored, polls=stats["polls"],
            skipped_slots=stats["skipped_slots"], direct_lag_ms_median=round(1000 * statistics.median(lags), 1),
            direct_lag_ms_max=round(1000 * max(lags), 1))

"""Simulator → Modbus collector → core.influx Writer → a real influxd, for every profile."""

from __future__ import annotations

import asyncio
import math

import pytest
from support.modbus_fleet import PROFILES, _dev, _fleet, _registers, _run, expected_values, free_port

from collector.modbus import ModbusCollector
from core.influx import InfluxClient, Writer
from core.profiles import TYPES, precision
from simulators.modbus_server import serve_fleet

pytestmark = pytest.mark.integration


def test_every_profile_lands_in_influxdb_within_register_precision(influxd, influx_db, tmp_path):
    devices = []
    for pid in sorted(PROFILES):
        devices.append(_dev(f"{pid}-tcp", pid, port=free_port()))
        devices.append(_dev(f"{pid}-rtu", pid, gateway="gw1", unit=len(devices) + 1))
    fleet = _fleet(devices, [{"id": "gw1", "host": "127.0.0.1", "port": free_port(), "framer": "rtu",
                              "pause_s": 0.005, "timeout_s": 0.3}])
    values = {d.id: expected_values(PROFILES[d.profile], salt=3 * i) for i, d in enumerate(fleet.devices.values())}
    client = InfluxClient(influxd.url, influx_db)
    writer = Writer(client, tmp_path / "spool", flush_interval_s=0.1)
    submitted: list = []

    def sink(points):
        submitted.extend(points)
        writer.submit(points)

    async def main():
        sim = await serve_fleet(fleet, PROFILES, lambda dev, t: values[dev.id], update_interval_s=10)
        try:
            col = ModbusCollector(fleet, PROFILES, sink)
            await _run(col, 1.3)
            return col.stats()
        finally:
            await sim.stop()

    stats = asyncio.run(main())
    assert writer.flush(10)
    ws = writer.stats()
    writer.close()
    assert ws["written"] == len(submitted) and ws["rejected"] == 0 and ws["pending"] == 0
    assert stats["failures"] == {}
    for d in fleet.devices.values():
        prof = PROFILES[d.profile]
        series = client.query(f'SELECT * FROM "{d.kind}" WHERE "device" = $dev', params={"dev": d.id})
        assert series, f"{d.id}: nothing stored"
        cols = series[0]["columns"]
        rows = series[0]["values"]
        sent = [p for p in submitted if p.measurement == d.kind and p.tags["device"] == d.id]
        assert len(rows) == len(sent)                             # one row per poll, none lost or doubled
        assert [r[0] for r in rows] == sorted(p.time_ns for p in sent)
        row = dict(zip(cols, rows[-1], strict=True))
        assert (row["customer"], row["site"]) == ("cust", "site1")
        regs = _registers(prof)
        sfs = {r.key: int(r.default or 0) for r in regs if r.type == "sunssf"}
        for r in regs:
            if r.is_channel:
                want = values[d.id][r.key]
                tol = precision(r, sfs.get(r.scale_factor, 0)) + (1e-6 * abs(want) if not TYPES[r.type].integer
                                                                   else 1e-9 * abs(want))
                assert math.isclose(row[r.key], want, abs_tol=tol), (d.id, r.key, row[r.key], want)
        status = client.query('SELECT "status", "online", "latency_ms" FROM "collector_status" '
                              'WHERE "device" = $dev AND "source" = $src', params={"dev": d.id, "src": "modbus"})
        st_rows = status[0]["values"]
        assert len(st_rows) == len(sent) and {r[1] for r in st_rows} == {"ok"} and {r[2] for r in st_rows} == {1}
    client.close()

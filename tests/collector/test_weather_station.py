"""A weather station: the simulator serves the site's weather, the Modbus collector stores it in influxd."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from support.modbus_fleet import PROFILES, _dev, _fleet, _run, free_port

from collector.modbus import ModbusCollector
from core.influx import InfluxClient, Writer
from simulators.modbus_server import serve_fleet
from simulators.signals import FleetSignals

pytestmark = pytest.mark.integration


def test_met_station_serves_the_site_weather_and_lands_in_influxdb(influxd, influx_db, tmp_path):
    fleet = _fleet([_dev("met1", "weather_station_generic", port=free_port(), interval=0.5)])
    signals = FleetSignals(fleet, seed=3)
    client = InfluxClient(influxd.url, influx_db)
    writer = Writer(client, tmp_path / "spool", flush_interval_s=0.1)

    async def main():
        sim = await serve_fleet(fleet, PROFILES, signals, update_interval_s=0.2)
        try:
            col = ModbusCollector(fleet, PROFILES, writer.submit)
            await _run(col, 1.6)
            return col.stats()
        finally:
            await sim.stop()

    t0 = time.time()
    stats = asyncio.run(main())
    assert writer.flush(10)
    writer.close()
    assert stats["failures"] == {}
    series = client.query('SELECT "ambient_temperature", "relative_humidity", "wind_speed", "irradiance_ghi" '
                          'FROM "weather_station" WHERE "device" = $dev', params={"dev": "met1"})
    client.close()
    rows = series[0]["values"]
    assert len(rows) >= 2
    t_s = np.array([r[0] for r in rows], dtype=np.float64) / 1e9
    assert np.all((t_s > t0 - 5) & (t_s < t0 + 10))
    want = signals.weather("site1", t_s)["outdoor_temperature"]
    got = np.array([r[1] for r in rows], dtype=np.float64)
    # the 0.1 degC register step, plus the simulator's 0.2 s refresh of a temperature that moves slowly
    assert np.allclose(got, want, atol=0.11), (got, want)
    assert all(0 < r[2] <= 100 and r[3] > 0 and r[4] >= 0 for r in rows)


def test_station_channels_and_kind_have_zh_and_en_labels():
    from api.glossary import KINDS, channel_label
    from core.channels import CHANNELS

    for name in PROFILES["weather_station_generic"].channels:
        assert name in CHANNELS and channel_label(name)[0] != name, name
    assert KINDS["weather_station"] == ("气象站", "weather station")
    assert channel_label("ambient_temperature") == ("环境温度", "ambient temperature")

"""DL/T 645 collector (collector/dlt645.py): simulator → collector on loopback, fleet keys, gateways,
garbage on the line, the meter's TOU registers, and the example fleet into a real influxd.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time

import pytest
from support.dlt645 import PROFILE, PROFILES, SH, hx

from collector.dlt645 import Dlt645Collector, Dlt645Link, read_address
from collector.modbus import PollFailure
from core.config import ConfigError, parse_fleet
from core.dlt645 import (
    build_frame,
)
from simulators.dlt645_server import TouRegisters, serve_dlt645

# ---------------------------------------------------------------- fleet keys

def _fleet(devices: list[dict], gateways: list[dict] = ()):
    return parse_fleet({"customer": [{"id": "cust", "site": [
        {"id": "site1", "tariff": "jiangsu_large_industry", "gateway": list(gateways), "device": devices}]}]})


def _meter(did: str, address: str, *, port: int | None = None, gateway: str | None = None, **kw) -> dict:
    d = {"id": did, "kind": "meter", "transport": "dlt645", "profile": "meter_dlt645_2007", "address": address,
         "poll_interval_s": 0.5, "timeout_s": 0.3, **kw}
    if gateway:
        d["gateway"] = gateway
    else:
        d.update(host="127.0.0.1", port=port)
    return d


@pytest.mark.parametrize(("change", "message"), [
    ({"address": "12345"}, "device 'm1': key 'address': must be the meter's 12-digit address"),
    ({"address": None}, "device 'm1': key 'address': is required"),
    ({"kind": "pv_inverter"}, "device 'm1': key 'kind': a dlt645 device is a meter"),
    ({"profile": "meter_acrel_dtsd1352"}, "device 'm1': key 'profile': profile 'meter_acrel_dtsd1352' does not fit"),
    ({"port": None}, "device 'm1': key 'port': is required for a dlt645 device without gateway"),
])
def test_bad_dlt645_keys_name_device_and_key(change, message):
    d = _meter("m1", "000000000001", port=1)
    d.update(change)
    d = {k: v for k, v in d.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        _fleet([d])


def test_same_address_twice_on_a_line_and_mixed_protocols_are_refused():
    gw = [{"id": "gw1", "host": "127.0.0.1", "port": 1}]
    with pytest.raises(ConfigError, match="device 'm2': key 'address': address 000000000001 already used"):
        _fleet([_meter("m1", "000000000001", gateway="gw1"), _meter("m2", "000000000001", gateway="gw1")], gw)
    modbus = {"id": "x1", "kind": "meter", "transport": "modbus", "profile": "meter_acrel_dtsd1352",
              "gateway": "gw1", "unit_id": 3}
    with pytest.raises(ConfigError, match="device 'm1': key 'transport': line 'gw1' already carries modbus"):
        _fleet([modbus, _meter("m1", "000000000001", gateway="gw1")], gw)


# ---------------------------------------------------------------- simulator -> collector

def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


T0 = dt.datetime(2026, 7, 15, 10, 0, tzinfo=SH).timestamp()


VALUES = {"energy_import": 850_123_456.0, "energy_export": 1_234_560.0, "reactive_energy_import": 301_000.0,
          "reactive_energy_export": 2_000.0, "demand_active_power_max": 432_100.0, "voltage_l1": 229.8,
          "voltage_l2": 231.2, "voltage_l3": 230.4, "current_l1": 512.345, "current_l2": 498.7,
          "current_l3": 505.0, "active_power": 345_678.9, "active_power_l1": 115_000.0,
          "active_power_l2": 114_000.0, "active_power_l3": 116_678.9, "reactive_power": 98_765.4,
          "apparent_power": 359_500.0, "power_factor": 0.962, "frequency": 49.98}


RESOLUTION = {"voltage": 0.1, "current": 0.001, "power": 0.1, "energy": 10.0, "demand": 0.1,
              "factor": 0.001, "frequency": 0.01}


def _close(channel: str, got: float, want: float) -> bool:
    """Equal to the wire format's resolution (compared on the meter's secondary side)."""
    res = next((r for k, r in RESOLUTION.items() if k in channel), 1.0)
    return abs(got - want) <= res / 2 + 1e-9 * abs(want)


def test_values_read_over_dlt645_equal_the_simulators_direct_and_behind_a_gateway():
    p1, pg = _port(), _port()
    # XX.XXXX kW tops out at 79.9999 kW: a large feeder's meter sits behind CTs and reports secondary
    # values (m1: 1500/5 A, ct_ratio 300), which the collector turns into primary ones
    fleet = _fleet([_meter("m1", "000012345678", port=p1, ct_ratio=300),
                    _meter("g1", "000000000011", gateway="gw1"), _meter("g2", "000000000012", gateway="gw1")],
                   [{"id": "gw1", "host": "127.0.0.1", "port": pg, "pause_s": 0.0}])
    scale = {"m1": 1.0, "g1": 0.1, "g2": 0.05}

    def values(dev, t):
        return {k: v * scale[dev.id] if "energy" in k or "power" in k else v for k, v in VALUES.items()}

    async def main():
        sim = await serve_dlt645(fleet, PROFILES, values, clock=lambda: T0, update_interval_s=60,
                                 clock_offset_s={"g2": -95.0})
        try:
            assert await read_address("127.0.0.1", p1, timeout=0.5) == "000012345678"
            col = Dlt645Collector(fleet, PROFILES, [].extend, clock=lambda: T0)
            return sim, {p.device.id: await p.poll(0) for p in col.pollers}, col
        finally:
            await sim.stop()

    sim, points, col = asyncio.run(main())
    for did, pts in points.items():
        fields, status = pts[0].fields, pts[-1].fields
        assert status["status"] == "ok" and pts[-1].tags["source"] == "dlt645"
        want = {**values(fleet.devices[did], T0), **sim.meters[did].tou.values()}
        factor = fleet.devices[did].ct_ratio
        for ch, v in want.items():
            f = factor if any(u in ch for u in ("energy", "power", "current")) and "factor" not in ch else 1.0
            assert _close(ch, fields[ch] / f, v / f), (did, ch, fields[ch], v)
        assert sum(fields[f"energy_import_t{k}"] for k in range(1, 5)) == pytest.approx(fields["energy_import"],
                                                                                      abs=40)
        # the meter clock is read, never set: its drift is a channel
        assert fields["meter_clock_offset"] == pytest.approx(-95.0 if did == "g2" else 0.0, abs=1.0)
        # the meter stamps its maximum demand by its own clock, to the minute (g2 runs 95 s slow)
        assert fields["demand_active_power_max_time"] == (T0 - 120 if did == "g2" else T0)
    assert sim.stats["refused"] == 0 and sim.stats["answers"] == 3 * len(PROFILE.items) + 0
    assert col.links["gateway:gw1"].stats["connects"] == 1          # one line, one connection, both meters


def test_unknown_item_error_frame_and_silent_meter_are_statuses_not_crashes():
    p1, p2 = _port(), _port()
    fleet = _fleet([_meter("m1", "000000000001", port=p1), _meter("m2", "000000000002", port=p2, retries=0)])
    served = {**PROFILES}
    # the simulated m1 lacks the frequency item: it answers D1H / 02H for it
    from dataclasses import replace
    served["meter_dlt645_2007"] = replace(PROFILE, items=tuple(i for i in PROFILE.items if i.channel != "frequency"))
    mode = {"m1": "normal", "m2": "silent"}

    async def main():
        sim = await serve_dlt645(fleet, served, lambda d, t: VALUES, mode.__getitem__, clock=time.time)
        try:
            col = Dlt645Collector(fleet, PROFILES, [].extend)
            m1, m2 = col.pollers
            first = await m1.poll(0)
            second = await m1.poll(1)
            silent = [await m2.poll(i) for i in range(3)]
            return first, second, silent, m1, m2
        finally:
            await sim.stop()

    first, second, silent, m1, m2 = asyncio.run(main())
    assert first[-1].fields["status"] == "error_02" and first[-1].fields["online"] == 1
    assert "frequency" not in first[0].fields and first[0].fields["voltage_l1"] == pytest.approx(229.8)
    assert 0x02800002 in m1.bad_items                   # not asked again before the 10th poll
    assert second[-1].fields["status"] == "error_02"
    assert [p[-1].fields["status"] for p in silent] == ["timeout"] * 3
    assert [p[-1].fields["online"] for p in silent] == [1, 1, 0] and m2.state.online is False


class _NoisyLine:
    """A line that answers garbage, a broken frame, a foreign meter's answer, then the right answer."""

    def __init__(self, good: bytes):
        self.good, self.requests = good, 0

    async def serve(self, reader, writer):
        try:
            while await reader.read(256):
                self.requests += 1
                foreign = build_frame("999999999999", 0x91, hx("00 01 01 02 98 22"))
                broken = bytearray(self.good)
                broken[-2] ^= 0x55
                out = [b"\x00\xffnoise\x68\x68", bytes(broken), foreign, self.good][(self.requests - 1) % 4]
                writer.write(out)
                await writer.drain()
        finally:
            writer.close()


def test_garbage_on_the_line_never_stops_the_collector():
    port = _port()
    good = build_frame("000000000001", 0x91, hx("00 01 01 02 98 22"))        # DI 02010100, 229.8 V

    async def main():
        line = _NoisyLine(good)
        srv = await asyncio.start_server(line.serve, "127.0.0.1", port)
        link = Dlt645Link("t", "127.0.0.1", port, timeout=0.3)
        fleet = _fleet([_meter("m1", "000000000001", port=port, retries=0)])
        from dataclasses import replace
        prof = replace(PROFILE, items=(next(i for i in PROFILE.items if i.channel == "voltage_l1"),))
        col = Dlt645Collector(fleet, {"meter_dlt645_2007": prof}, [].extend)
        poller = col.pollers[0]
        poller.link = link
        out = []
        try:
            for i in range(8):
                link.next_attempt = 0.0
                out.append(await poller.poll(i))
        finally:
            link.close()
            srv.close()
            await srv.wait_closed()
        return out, link

    out, link = asyncio.run(main())
    statuses = [p[-1].fields["status"] for p in out]
    # noise alone -> timeout; a broken frame is skipped -> timeout; a foreign meter -> decode_error; then ok
    assert statuses == ["timeout", "timeout", "decode_error", "ok"] * 2
    assert out[3][0].fields == {"voltage_l1": pytest.approx(229.8)}
    assert link.stats["noise_bytes"] > 0


def test_collector_loop_writes_points_on_schedule():
    p1 = _port()
    fleet = _fleet([_meter("m1", "000000000001", port=p1, poll_interval_s=0.2)])
    got: list = []

    async def main():
        sim = await serve_dlt645(fleet, PROFILES, lambda d, t: VALUES)
        col = Dlt645Collector(fleet, PROFILES, got.extend)
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if sum(p.measurement == "meter" for p in got) >= 2:
                break
        stop.set()
        await task
        await sim.stop()
        return col.stats()

    stats = asyncio.run(main())
    meters = [p for p in got if p.measurement == "meter"]
    assert len(meters) >= 2 and all(p.time_ns % 200_000_000 == 0 for p in meters)
    assert stats["ok"] >= 2 and stats["devices"] == 1


def test_link_refuses_any_control_code_but_reads():
    link = Dlt645Link("t", "127.0.0.1", 1)
    for control in (0x08, 0x14, 0x1C):                  # time sync, write data, relay control
        with pytest.raises(PermissionError):
            asyncio.run(link.request("000000000001", control, b""))


def test_connect_failure_is_a_status():
    fleet = _fleet([_meter("m1", "000000000001", port=_port(), retries=0)])
    col = Dlt645Collector(fleet, PROFILES, [].extend)
    pts = asyncio.run(col.pollers[0].poll(0))
    assert pts[-1].fields["status"] == "connect_failed"
    with pytest.raises(PollFailure):
        asyncio.run(col.pollers[0].read_item(PROFILE.items[0]))


# ---------------------------------------------------------------- the meter's TOU registers

class _Tariff:
    """Two periods: valley before 08:00 local, peak after (minute calendar, as analytics.tariffs)."""

    periods = ("valley", "peak")

    def period_index(self, time_ns):
        return [0 if dt.datetime.fromtimestamp(t / 1e9, SH).hour < 8 else 1 for t in time_ns]


def test_tou_registers_split_exactly_at_the_meter_clock_boundary():
    start = dt.datetime(2026, 7, 15, 7, 0, tzinfo=SH).timestamp()

    def energy(t):                                        # 1 Wh per second
        return t - start

    for offset, valley_wh in ((0.0, 3600.0), (600.0, 3000.0)):   # a meter 10 min fast switches early
        tou = TouRegisters(_Tariff(), offset)
        tou.update(start, 0.0, energy)
        for s in range(0, 7201, 7):
            tou.update(start + s, energy(start + s), energy)
        tou.update(start + 7200, 7200.0, energy)
        v = tou.values()
        assert v["energy_import_t4"] == pytest.approx(valley_wh)
        assert v["energy_import_t2"] == pytest.approx(7200.0 - valley_wh)


# ---------------------------------------------------------------- end to end: example fleet -> influxd

@pytest.mark.integration
def test_example_fleet_meter_lands_in_influxdb_equal_to_the_signal_model(influxd, influx_db, tmp_path):
    """`energyhost collect`'s run_collectors reads the example fleet's DL/T 645 meter from the simulator
    serving the signal model; InfluxDB holds the model's values (primary side, via the 200/5 A CTs)."""
    import tomllib
    from pathlib import Path

    from collector.service import run_collectors
    from core.config import Settings
    from core.influx import InfluxClient
    from simulators.signals import FleetSignals

    raw = tomllib.loads((Path(__file__).resolve().parents[2] / "sites.example.toml").read_text(encoding="utf-8"))
    port = _port()
    for c in raw["customer"]:
        for s in c["site"]:
            # only the DL/T 645 meters (and no transformer naming another device): nothing else is served
            s["device"] = [d for d in s.get("device", []) if d["transport"] == "dlt645"]
            s.pop("transformer", None)
            s.pop("gateway", None)
            for d in s["device"]:
                d.update(port=port, poll_interval_s=0.5)
    fleet = parse_fleet(raw)
    dev = next(d for d in fleet.devices.values() if d.transport == "dlt645")
    signals = FleetSignals(fleet, seed=0)
    t_model = dt.datetime(2026, 6, 10, 10, 30, tzinfo=SH).timestamp()      # a working-day morning
    want = signals.values(dev, t_model)
    settings = Settings(influx_url=influxd.url, influx_db=influx_db, spool_dir=str(tmp_path / "spool"))

    async def main():
        sim = await serve_dlt645(fleet, PROFILES, signals.values, clock=lambda: t_model, update_interval_s=60)
        stop = asyncio.Event()
        task = asyncio.create_task(run_collectors(fleet, PROFILES, settings, mqtt=False, stop=stop,
                                                  stats_interval_s=60))
        await asyncio.sleep(1.6)
        stop.set()
        await task
        await sim.stop()
        return sim

    sim = asyncio.run(main())
    client = InfluxClient(influxd.url, influx_db)
    rows = client.query('SELECT * FROM "meter" WHERE "device" = $dev', params={"dev": dev.id})
    assert rows, "nothing stored"
    row = dict(zip(rows[0]["columns"], rows[0]["values"][-1], strict=True))
    want.update(sim.meters[dev.id].tou.values())
    assert want["active_power"] > 10_000                 # the office is working: a real load, not zeros
    for ch in PROFILE.channels:
        if ch in want:
            f = 40.0 if any(u in ch for u in ("energy", "power", "current")) and "factor" not in ch else 1.0
            assert _close(ch, row[ch] / f, want[ch] / f), (ch, row[ch], want[ch])
    # the simulated meter lives at t_model: its clock is read as that far behind ours
    assert row["meter_clock_offset"] == pytest.approx(t_model - time.time(), abs=5.0)
    status = client.query('SELECT "status" FROM "collector_status" WHERE "device" = $dev AND "source" = \'dlt645\'',
                          params={"dev": dev.id})
    assert {r[1] for r in status[0]["values"]} == {"ok"}
    client.close()


def test_meters_sharing_a_gateway_are_asked_one_at_a_time():
    """Three meters behind one gateway, polled by the collector loop every 0.3 s: one TCP connection,
    never two requests in flight (an answer would then meet the wrong request: decode_error)."""
    pg = _port()
    fleet = _fleet([_meter(f"g{k}", f"00000000001{k}", gateway="gw1", poll_interval_s=0.3) for k in range(3)],
                   [{"id": "gw1", "host": "127.0.0.1", "port": pg, "pause_s": 0.002, "timeout_s": 0.5}])
    got: list = []

    async def main():
        sim = await serve_dlt645(fleet, PROFILES, lambda d, t: VALUES)
        col = Dlt645Collector(fleet, PROFILES, got.extend)
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        await asyncio.sleep(2.0)
        stop.set()
        await task
        await sim.stop()
        return col.stats(), sim.stats

    stats, sim_stats = asyncio.run(main())
    assert stats["failures"] == {} and stats["ok"] >= 9 and stats["connects"] == 1
    statuses = {p.fields["status"] for p in got if p.measurement == "collector_status"}
    assert statuses == {"ok"}
    assert sim_stats["answers"] >= 9 * len(PROFILE.items)


def test_1997_and_2007_meters_on_one_gateway_read_equal_to_the_simulator():
    pg = _port()
    fleet = _fleet([_meter("new", "000000000021", gateway="gw1"),
                    {**_meter("old", "000000000022", gateway="gw1"), "profile": "meter_dlt645_1997"}],
                   [{"id": "gw1", "host": "127.0.0.1", "port": pg, "pause_s": 0.0}])
    old_profile = PROFILES["meter_dlt645_1997"]
    # within both editions' ranges (1997: XX.XX A, XX.XX kvar; both: XX.XXXX kW)
    values = {k: v / 10 if ("power" in k or "current" in k) and "factor" not in k else v for k, v in VALUES.items()}
    values.update(reactive_power=65_432.1, voltage_l1=230.0)

    async def main():
        sim = await serve_dlt645(fleet, PROFILES, lambda d, t: values, clock=lambda: T0, update_interval_s=60)
        try:
            col = Dlt645Collector(fleet, PROFILES, [].extend, clock=lambda: T0)
            return sim, {p.device.id: await p.poll(0) for p in col.pollers}
        finally:
            await sim.stop()

    sim, points = asyncio.run(main())
    old = points["old"]
    assert old[-1].fields["status"] == "ok" and points["new"][-1].fields["status"] == "ok"
    want = {**values, **sim.meters["old"].tou.values()}
    checked = 0
    for item in old_profile.items:
        if item.channel in want:
            decimals = len(item.format.partition(".")[2])
            res = item.scale * 10 ** -decimals                  # the wire format's resolution, in SI
            assert abs(old[0].fields[item.channel] - want[item.channel]) <= res / 2 + 1e-6, item.channel
            checked += 1
    assert checked == len(old_profile.items) - 2                # all but the clock's date and time
    assert old[0].fields["meter_clock_offset"] == pytest.approx(0.0, abs=1.0)
    assert sim.stats["refused"] == 0 and sim.stats["error_02"] == 0


def test_a_serial_server_that_goes_away_and_comes_back_is_read_again():
    """The line's TCP server stops (power cut of the serial server) and returns on the same port: the
    collector reports connect_failed meanwhile, backs off, reconnects and reads ok again."""
    port = _port()
    fleet = _fleet([_meter("m1", "000000000001", port=port, poll_interval_s=0.2, retries=0)])
    got: list = []

    async def main():
        sim = await serve_dlt645(fleet, PROFILES, lambda d, t: VALUES)
        col = Dlt645Collector(fleet, PROFILES, got.extend)
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        await asyncio.sleep(1.0)
        await sim.stop()
        await asyncio.sleep(1.5)
        sim = await serve_dlt645(fleet, PROFILES, lambda d, t: VALUES)
        await asyncio.sleep(4.5)             # backoff 1 s, then 2 s (+-20 %): the next try is within ~2.5 s
        stop.set()
        await task
        await sim.stop()
        return col.stats()

    stats = asyncio.run(main())
    statuses = [p.fields["status"] for p in got if p.measurement == "collector_status"]
    first_bad = next(i for i, s in enumerate(statuses) if s != "ok")
    assert statuses[0] == "ok" and set(statuses[first_bad:first_bad + 3]) <= {"connect_failed", "timeout"}
    assert statuses[-1] == "ok" and stats["connects"] >= 2 and stats["connect_failed"] >= 1

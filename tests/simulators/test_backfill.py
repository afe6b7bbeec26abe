"""Backfill: line formatting on arrays, argument errors, and 2 days of the example fleet into a real influxd."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import load_fleet, parse_fleet
from core.influx import InfluxClient
from core.profiles import load_profiles
from simulators.backfill import backfill, device_lines, example_fault_schedule, served_channels, status_lines
from simulators.signals import FleetSignals

ROOT = Path(__file__).resolve().parents[2]
END = pd.Timestamp("2026-03-11 00:00", tz="Asia/Shanghai").timestamp()      # a Wednesday midnight
H = 3600.0

SMALL = {"customer": [{"id": "c1", "site": [{"id": "s1", "pv_capacity_kwp": 50, "device": [
    {"id": "s1-m", "kind": "meter", "transport": "mqtt"},
    {"id": "s1-pv", "kind": "pv_inverter", "transport": "modbus", "profile": "x", "host": "127.0.0.1",
     "port": 1502, "rated_power_kw": 40},
]}]}]}


def _parse(line: str) -> tuple[str, dict, dict, int]:
    head, fields, ts = line.rsplit(" ", 2)
    meas, *tags = head.split(",")
    f = {}
    for kv in fields.split(","):
        k, v = kv.split("=", 1)
        f[k] = v
    return meas, dict(t.split("=", 1) for t in tags), f, int(ts)


def test_device_lines_round_trip_values():
    fleet = parse_fleet(SMALL)
    sig = FleetSignals(fleet, seed=3)
    secs = np.arange(END - 3 * H, END, 600, dtype=np.int64)
    vals = sig.values_array("s1-pv", secs.astype(float))
    keep = np.ones(len(secs), dtype=bool)
    keep[2] = False
    lines = device_lines(fleet.devices["s1-pv"], vals, secs, keep)
    assert len(lines) == len(secs) - 1
    meas, tags, fields, ts = _parse(lines[2])
    assert meas == "pv_inverter" and tags == {"customer": "c1", "device": "s1-pv", "site": "s1"}
    assert ts == int(secs[3]) * 10**9
    assert set(fields) == set(vals)
    for k, v in fields.items():
        assert not v.endswith("i")                       # every device field is a float field
        assert float(v) == pytest.approx(vals[k][3], abs=0.05)      # 0.1 W / 0.1 Wh resolution at worst
    assert fields["inverter_state"] in {"2", "4", "5", "8"}


def test_status_lines():
    fleet = parse_fleet(SMALL)
    dev = fleet.devices["s1-pv"]
    secs = np.array([100, 160], dtype=np.int64)
    lines = status_lines(dev, secs, np.array(["ok", "timeout"], dtype=object), np.array([12.25, 2000.0]))
    assert lines[0] == ('collector_status,customer=c1,device=s1-pv,site=s1,source=modbus '
                        'status="ok",online=1i,latency_ms=12.2 100000000000')
    assert lines[1].endswith('status="timeout",online=0i,latency_ms=2000.0 160000000000')


def test_device_lines_refuse_non_finite():
    fleet = parse_fleet(SMALL)
    with pytest.raises(ValueError, match="channel 'active_power' has a non-finite value"):
        device_lines(fleet.devices["s1-m"], {"frequency": np.array([50.0]), "active_power": np.array([np.nan])},
                     np.array([1], dtype=np.int64))


@pytest.mark.parametrize("kwargs, match", [
    ({"days": 0}, "days must be"),
    ({"days": 1, "step_s": 0.5}, "step_s must be"),
    ({"days": 1, "devices": ["ghost"]}, "unknown device 'ghost'"),
    ({"days": 1, "chunk_bytes": 10}, "chunk_bytes"),
    ({"days": 1, "faults": [("s1-m", "inverter_trip", END - H, END)]}, "does not apply to meter"),
])
def test_backfill_bad_arguments(kwargs, match):
    fleet = parse_fleet(SMALL)
    client = InfluxClient("http://127.0.0.1:9", "unused")
    with pytest.raises(ValueError, match=match):
        backfill(fleet, FleetSignals(fleet), client, end=END, **kwargs)


@pytest.mark.integration
def test_backfill_two_days_of_the_example_fleet(influxd, influx_db):
    fleet = load_fleet(ROOT / "sites.example.toml")
    sig = FleetSignals(fleet, seed=0)
    faults = [
        ("acme-plant1-t1-meter", "device_silent", END - 30 * H, END - 29 * H),           # 60 min gap
        ("acme-office-pv1", "device_exceptions", END - 20 * H, END - 19.5 * H, {"code": 2}),
        ("acme-plant1-pv1", "inverter_trip", END - 14 * H, END - 12 * H),                  # 10:00-12:00 local
    ]
    with InfluxClient(influxd.url, influx_db, timeout=60) as client:
        res = backfill(fleet, sig, client, days=2, end=END, faults=faults)
        n = 2 * 1440
        ndev = len(fleet.devices)
        assert res["devices"] == ndev and res["status_points"] == ndev * n
        assert res["gap_points"] == 60 + 30
        assert res["points"] == ndev * n - 90
        assert res["total_points"] == res["points"] + res["status_points"] + res["weather_points"]
        assert res["requests"] >= 2 and res["bytes"] > 5_000_000
        json.dumps(res)
        # site weather: one point per site and instant, the model's outdoor temperature
        assert res["weather_points"] == len(fleet.sites) * n
        tw = END - 13 * H
        w = client.query_arrays('SELECT "outdoor_temperature" FROM "weather" WHERE "site" = $s AND time = $t',
                                {"s": "acme-office", "t": int(tw) * 10**9})
        want = sig.weather("acme-office", np.array([tw]))["outdoor_temperature"][0]
        assert w["outdoor_temperature"][0] == pytest.approx(want, abs=0.005)
        counts = {}
        for kind, fld in (("meter", "frequency"), ("transformer", "winding_temperature_l1"),
                          ("pv_inverter", "frequency"), ("ev_charger", "frequency"),
                          ("weather_station", "ambient_temperature")):
            rows = client.query(f'SELECT count("{fld}") FROM "{kind}"', epoch=None)
            counts[kind] = rows[0]["values"][0][1]
        assert sum(counts.values()) == res["points"]
        assert counts["transformer"] == sum(d.kind == "transformer" for d in fleet.devices.values()) * n
        by_status = {}
        for status in ("ok", "timeout", "exception_02"):
            st = client.query('SELECT count("online"), sum("online") FROM "collector_status" WHERE "status" = $s',
                              {"s": status}, epoch=None)
            by_status[status] = tuple(st[0]["values"][0][1:])
        assert by_status == {"ok": (ndev * n - 90, ndev * n - 90), "timeout": (60, 0), "exception_02": (30, 0)}
        # stored values equal the live model at the same instant (0.1 W, 0.1 Wh resolution)
        t = END - 13 * H
        got = client.query_arrays('SELECT "energy_import", "active_power" FROM "meter" WHERE "device" = $d '
                                  'AND time = $t', {"d": "acme-plant1-t2-meter", "t": int(t) * 10**9})
        live = sig.values("acme-plant1-t2-meter", t)
        assert got["energy_import"][0] == pytest.approx(live["energy_import"], abs=0.05)
        assert got["active_power"][0] == pytest.approx(live["active_power"], abs=0.05)
        trip = client.query_arrays('SELECT "active_power", "inverter_state" FROM "pv_inverter" WHERE '
                                   '"device" = $d AND time >= $a AND time < $b',
                                   {"d": "acme-plant1-pv1", "a": int(END - 14 * H) * 10**9,
                                    "b": int(END - 12 * H) * 10**9})
        assert len(trip["time"]) == 120
        assert np.all(trip["active_power"] == 0) and np.all(trip["inverter_state"] == 7)


def test_example_fault_schedule_is_valid_and_inside_the_period():
    fleet = load_fleet(ROOT / "sites.example.toml")
    sched = example_fault_schedule(fleet, days=31, end=END)
    assert len(sched) >= 30
    assert {f[1] for f in sched} >= {"inverter_trip", "string_loss", "transformer_overtemp", "low_power_factor",
                                     "harmonic_distortion", "phase_unbalance", "voltage_sag", "device_silent",
                                     "device_exceptions", "ev_fault", "ev_stuck", "meter_reset"}
    assert all(END - 31 * 86400 <= a < b <= END for _d, _f, a, b, _p in sched)
    sig = FleetSignals(fleet)
    assert len(sig.schedule(sched)) == len(sched)          # every entry passes the fault validation
    assert example_fault_schedule(fleet, days=31, end=END) == sched
    short = example_fault_schedule(fleet, days=2, end=END)
    assert short and all(END - 2 * 86400 <= a < b <= END for _d, _f, a, b, _p in short)


def test_served_channels_follow_the_profile_for_modbus_devices():
    fleet = load_fleet(ROOT / "sites.example.toml")
    profiles = load_profiles(ROOT / "profiles")
    sig = FleetSignals(fleet)
    pv = fleet.devices["acme-plant1-pv1"]
    only = served_channels(pv, profiles, 4)
    assert "mppt4_dc_current" in only and "mppt1_dc_voltage" in only and "irradiance_poa" not in only
    assert only <= set(sig.values(pv, END))
    assert served_channels(fleet.devices["acme-plant1-pv3"], profiles, 4) is None        # MQTT: everything
    assert served_channels(pv, None, 4) is None
    with pytest.raises(ValueError, match="profile 'pv_inverter_sunspec' not among"):
        served_channels(pv, {}, 4)

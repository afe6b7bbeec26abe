"""Finding texts show the measurement they rest on; every type is one row of analytics.finding_types.

Data: the simulator's signal model (simulators.signals.FleetSignals) with one injected fault each.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from analytics import assess
from analytics import finding_types as ft
from core.config import load_fleet
from core.units import NS
from simulators.signals import FleetSignals

H = 3600
DAY1 = 1772323200 + 86400            # Monday 2026-03-02 08:00 local
TF = DAY1 + 3 * H                    # 11:00 local
SITE = "acme-plant1"


@pytest.fixture(scope="module")
def fleet():
    return load_fleet("sites.example.toml")


def run(fleet, dev, fault, params=None, minutes=60, step=60.0, lead_s=1800, silent_status=None):
    """Assess ``dev`` over ``minutes`` after a fault that began ``lead_s`` before the window's end."""
    sig = FleetSignals(fleet, seed=31)
    end = TF + lead_s
    sig.schedule([(dev, fault, TF, TF + 4 * H, params or {})])
    t = np.arange(end - minutes * 60, end, step)
    v = sig.values_array(dev, t)
    silent = sig.fault_mask(dev, "device_silent", t) | sig.fault_mask(dev, "device_exceptions", t)
    data = {k: a[~silent] for k, a in v.items()} | {"time_ns": (t[~silent] * NS).astype(np.int64)}
    status = None
    if silent_status is not None:
        status = ((t * NS).astype(np.int64), np.where(silent, 0.0, 1.0),
                  np.where(silent, silent_status, "ok").astype(object))
    return assess.assess_device(fleet.sites[SITE], fleet.devices[dev], data, int(t[0] * NS), int(end * NS), status)


def one(findings, type_):
    hits = [f for f in findings if f.type == type_]
    assert hits, [(f.type, f.explanation_en) for f in findings]
    return hits[0]


def test_voltage_text_shows_the_voltage_and_its_deviation(fleet):
    f = one(run(fleet, "acme-plant1-hvac", "voltage_sag"), "voltage_deviation")
    v, dev = f.evidence["worst_v"], f.evidence["deviation_pct"]
    assert 150 < v < 170 and -32 < dev < -28
    assert f.explanation_en == f"Voltage {v:.0f} V (−{abs(round(dev))} %), outside the GB/T 12325 ±7 % limit " \
                               "(230 V nominal)."
    assert f.explanation_zh.startswith(f"电压 {v:.0f} V（−{abs(round(dev))} %），超出 GB/T 12325 允许偏差 ±7 %")


def test_overtemp_text_gives_temperature_rate_and_time_to_trip(fleet):
    f = one(run(fleet, "acme-plant1-t1-temp", "transformer_overtemp", minutes=120, lead_s=1800),
            "transformer_overtemp")
    ev = f.evidence
    assert ev["rate_c_per_h"] > 2 and ev["eta_to_trip_s"] > 0
    m = re.fullmatch(r"Winding temperature (\d+) °C, rising ([\d.]+) K/h, 150 °C in about ([\d.]+) h\.",
                     f.explanation_en)
    assert m, f.explanation_en
    assert float(m[1]) == round(ev["temperature_c"]) and float(m[2]) == round(ev["rate_c_per_h"], 1)
    assert float(m[3]) == round(ev["eta_to_trip_s"] / 3600, 1)


@pytest.mark.parametrize("event, en, zh", [("GROUND_FAULT", "ground fault", "接地故障"),
                                           ("OVER_TEMP", "over-temperature", "过温")])
def test_inverter_trip_names_the_sunspec_event(fleet, event, en, zh):
    f = one(run(fleet, "acme-plant1-pv1", "inverter_trip", {"event": event}), "inverter_trip")
    assert f.evidence["event_names"] == [event]
    assert f.explanation_en == f"Inverter tripped (SunSpec state FAULT): {en}." and zh in f.explanation_zh


def test_decode_evt1_bits():
    names, zh, en = ft.decode_evt1((1 << 0) | (1 << 12))
    assert names == ["GROUND_FAULT", "BLOWN_STRING_FUSE"] and en == ["ground fault", "blown string fuse"]
    assert ft.decode_evt1(None) == ([], [], []) and ft.decode_evt1(float("nan")) == ([], [], [])


def test_modbus_exception_is_named_not_called_silence(fleet):
    f = one(run(fleet, "acme-plant1-ev2", "device_exceptions", {"code": 2}, silent_status="exception_02"),
            "comms_loss")
    assert f.evidence["modbus_exception"] == 2
    assert f.explanation_en.startswith("Device answers with Modbus exception 02 (illegal address)")
    assert "Modbus 异常 02（非法数据地址）" in f.explanation_zh
    g = one(run(fleet, "acme-plant1-ev2", "device_silent", silent_status="timeout"), "comms_loss")
    assert g.explanation_en.startswith("Device not communicating (no answer): no data for 30 min")


def test_ev_stuck_carries_its_evidence(fleet):
    f = one(run(fleet, "acme-plant1-ev3", "ev_stuck", minutes=60, lead_s=1800), "ev_stuck")
    ev = f.evidence
    assert ev["minutes"] >= 10 and ev["energy_wh"] is not None and ev["energy_wh"] < 500 * ev["minutes"] / 60
    assert f"'Charging' for {ev['minutes']:.0f} min but only {ev['energy_wh']:.0f} Wh" in f.explanation_en


def test_stale_and_implausible_rate_carry_evidence(fleet):
    sig = FleetSignals(fleet, seed=31)
    t = np.arange(TF - 7200, TF, 60.0)
    v = sig.values_array("acme-plant1-t1-meter", t) | {"time_ns": (t * NS).astype(np.int64)}
    v["voltage_l1"] = np.where(t >= TF - 3600, 231.4, v["voltage_l1"])          # frozen for the last hour
    f = one(assess.assess_device(fleet.sites[SITE], fleet.devices["acme-plant1-t1-meter"], v, int(t[0] * NS),
                                 int(TF * NS)), "stale_value")
    assert f.evidence["channel"] == "voltage_l1" and f.evidence["value"] == 231.4 and f.evidence["change"] == 0
    assert "231.4" in f.explanation_en and "voltage_l1" in f.explanation_en
    w = sig.values_array("acme-plant1-t1-temp", t) | {"time_ns": (t * NS).astype(np.int64)}
    w["winding_temperature_l2"] = w["winding_temperature_l2"].copy()
    w["winding_temperature_l2"][60:] += 40.0                                     # +40 K in one minute
    g = one(assess.assess_device(fleet.sites[SITE], fleet.devices["acme-plant1-t1-temp"], w, int(t[0] * NS),
                                 int(TF * NS)), "implausible_rate")
    assert g.evidence["rate_per_min"] >= 39 and g.evidence["dt_s"] == 60
    assert "K/min" not in g.explanation_en and f"{g.evidence['rate_per_min']:.1f}/min" in g.explanation_en


def test_every_row_formats_with_missing_evidence():
    for type_, row in ft.TYPES.items():
        assert row.severity in ("critical", "major", "minor", "warning"), type_
        out = ft.texts(type_, {})
        assert out["explanation_zh"] and out["explanation_en"] and out["recommendation_en"], type_

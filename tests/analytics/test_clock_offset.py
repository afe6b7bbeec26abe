"""A device clock that is off raises ``clock_offset`` for meters, chargers and inverters, from the MQTT
arrival offset (``device_clock_offset``) or a DL/T 645 meter's own clock (``meter_clock_offset``)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import assess
from core.config import parse_fleet
from core.units import NS

T0 = 1_772_409_600 * NS
FLEET = parse_fleet({"customer": [{"id": "c1", "site": [{"id": "s1", "device": [
    {"id": "m1", "kind": "meter", "transport": "mqtt"},
    {"id": "ev1", "kind": "ev_charger", "transport": "mqtt"},
    {"id": "pv1", "kind": "pv_inverter", "transport": "mqtt", "rated_power_kw": 50},
]}]}]})
SITE = FLEET.sites["s1"]


def _data(offset_s, n=240, step_s=5, channel="device_clock_offset") -> dict:
    t = T0 + np.arange(n, dtype=np.int64) * step_s * NS
    off = np.broadcast_to(np.asarray(offset_s, float), (n,)).copy()       # stamped with the arrival time
    return {"time_ns": t, channel: off, "voltage_l1": np.full(n, 230.0)}


def _run(device_id, data, rules=None):
    dev = FLEET.devices[device_id]
    return [f for f in assess.assess_device(SITE, dev, data, int(data["time_ns"][0]),
                                            int(data["time_ns"][-1]) + 5 * NS, None, rules)
            if f.type == "clock_offset"]


@pytest.mark.parametrize("device_id", ["m1", "ev1", "pv1"])
def test_a_device_8_h_behind_raises_clock_offset_with_the_offset_in_the_text(device_id):
    found = _run(device_id, _data(-8 * 3600.0))
    assert len(found) == 1
    f = found[0]
    assert f.evidence["offset_s"] == -28800.0 and f.evidence["limit_s"] == 120.0
    assert "-28800 s" in f.explanation_en and "-8.0 h" in f.explanation_en and "−28800 秒" in f.explanation_zh
    # raised after the on-delay (default 300 s), not at the first sample
    assert f.start_ns == T0 + 300 * NS


def test_within_the_bound_or_briefly_nothing():
    assert _run("m1", _data(-60.0)) == []
    assert _run("m1", _data(-8 * 3600.0, n=30)) == []                 # 145 s: shorter than the on-delay
    assert _run("m1", _data(-600.0), assess.Rules(clock_offset_limit_s=900.0)) == []
    assert len(_run("m1", _data(-200.0), assess.Rules(clock_offset_limit_s=150.0))) == 1


def test_a_backlog_delivered_late_is_not_a_clock_fault():
    """An hour of readings buffered by a gateway arrives in one burst: each is late by a different
    amount (stored at its arrival), and all arrive within seconds — the device clock is right."""
    n = 720
    sent = T0 + np.arange(n, dtype=np.int64) * 5 * NS
    arrival = sent[-1] + np.arange(n, dtype=np.int64) * 10**7             # a 7 s burst after the last reading
    d = {"time_ns": arrival, "device_clock_offset": (sent - arrival) / NS, "voltage_l1": np.full(n, 230.0)}
    assert _run("m1", d) == []


def test_a_dlt645_meter_clock_raises_the_same_finding():
    found = _run("m1", _data(400.0, n=120, step_s=15, channel="meter_clock_offset"))
    assert [f.evidence["offset_s"] for f in found] == [400.0]
    assert "+400 s" in found[0].explanation_en and found[0].evidence["source"] == "meter_clock"

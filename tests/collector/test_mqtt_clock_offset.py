"""The MQTT collector stores how far a message's own timestamp is from its arrival (device clock check)."""

from __future__ import annotations

import json

from collector.mqtt import CLOCK_OFFSET_RECORD_S, parse_payload
from core.config import parse_fleet

NOW = 1_764_288_000_000_000_000           # ns: the arrival time
NOW_MS = NOW // 1_000_000
FLEET = parse_fleet({"customer": [{"id": "c1", "site": [{"id": "s1", "device": [
    {"id": "m1", "kind": "meter", "transport": "mqtt"}]}]}]})


def _parse(ts_ms, values, retained=False):
    doc = {"ts": ts_ms, "values": values}
    pts, rej = parse_payload("eh/v1/s1/m1/telemetry", json.dumps(doc).encode(), FLEET, NOW, retained=retained)
    assert rej == [] and pts[0].time_ns == ts_ms * 1_000_000 and "device_clock_offset" not in pts[0].fields
    return pts


def test_a_device_8_h_behind_stores_its_offset_at_the_arrival_time():
    for values in ({"active_power": 1500.5}, {"active_power": 1500}):          # fast and per-channel path
        reading, offset = _parse(NOW_MS - 8 * 3600 * 1000, values)
        assert reading.fields == {"active_power": float(values["active_power"])}
        assert offset.time_ns == NOW and offset.measurement == "meter" and offset.tags == reading.tags
        assert offset.fields == {"device_clock_offset": -28800.0}


def test_a_device_2_min_ahead_stores_its_offset():
    assert _parse(NOW_MS + 120_000, {"active_power": 1.5})[1].fields == {"device_clock_offset": 120.0}


def test_a_punctual_device_or_a_retained_copy_stores_none():
    assert len(_parse(NOW_MS - 1000, {"active_power": 1.5})) == 1
    assert len(_parse(NOW_MS - int(CLOCK_OFFSET_RECORD_S * 1000) + 1, {"active_power": 1.5})) == 1
    assert len(_parse(NOW_MS - 3600_000, {"active_power": 1.5}, retained=True)) == 1


def test_a_batch_stores_one_offset_per_late_reading():
    doc = {"readings": [{"device": "m1", "ts": NOW_MS - 600_000, "values": {"active_power": 1.0}},
                        {"device": "m1", "ts": NOW_MS, "values": {"active_power": 2.0}}]}
    pts, rej = parse_payload("eh/v1/s1/gateway/gw1/batch", json.dumps(doc).encode(), FLEET, NOW)
    assert rej == [] and [p.fields.get("device_clock_offset") for p in pts] == [None, -600.0, None]


def test_a_backlog_drain_adds_one_offset_point_per_device_per_10_s():
    seen: dict[str, int] = {}

    def points(arrived_ns):
        doc = {"ts": NOW_MS - 3600_000, "values": {"active_power": 1.5}}
        return parse_payload("eh/v1/s1/m1/telemetry", json.dumps(doc).encode(), FLEET, arrived_ns,
                             clock_seen=seen)[0]
    assert len(points(NOW)) == 2 and seen == {"m1": NOW}
    assert len(points(NOW + 5 * 10**9)) == 1                      # 5 s later: the reading only
    assert len(points(NOW + 10 * 10**9)) == 2                     # 10 s on: the offset again

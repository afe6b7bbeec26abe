"""collector.mqtt.parse_payload: a pure function, tested on tables (no broker)."""

from __future__ import annotations

import json

import pytest

from collector.mqtt import MAX_PAYLOAD_BYTES, REASONS, parse_payload
from core.config import parse_fleet

NOW = 1_764_288_000_000_000_000           # ns
NOW_MS = NOW // 1_000_000

FLEET = parse_fleet({"customer": [{"id": "c1", "site": [
    {"id": "s1", "device": [
        {"id": "pv1", "kind": "pv_inverter", "transport": "mqtt"},
        {"id": "m1", "kind": "meter", "transport": "mqtt"},
        {"id": "mb1", "kind": "meter", "transport": "modbus", "profile": "p", "host": "127.0.0.1",
         "port": 1502},
    ]},
    {"id": "s2", "device": [{"id": "ev1", "kind": "ev_charger", "transport": "mqtt"}]},
]}]})


def parse(topic: str, doc, raw: bytes | None = None):
    payload = raw if raw is not None else json.dumps(doc).encode()
    return parse_payload(topic, payload, FLEET, NOW)


def test_single_reading():
    pts, rej = parse("eh/v1/s1/pv1/telemetry", {"ts": NOW_MS, "values": {"active_power": 1500, "dc_voltage": 610.5}})
    assert rej == []
    assert len(pts) == 1
    p = pts[0]
    assert p.measurement == "pv_inverter" and p.tags == {"customer": "c1", "site": "s1", "device": "pv1"}
    assert p.fields == {"active_power": 1500.0, "dc_voltage": 610.5}
    assert all(isinstance(v, float) for v in p.fields.values()) and p.time_ns == NOW


def test_clean_readings_come_out_as_float_fields():
    """orjson-decoded floats of known channels are taken whole (FloatFields, the encoder's fast
    path); a message with an int goes through the per-channel path and still gives floats."""
    from core.model import FloatFields
    for values in ({"active_power": 1500.5, "dc_voltage": 610.5}, {"active_power": 1500, "dc_voltage": 610.5}):
        pts, rej = parse("eh/v1/s1/pv1/telemetry", {"ts": NOW_MS, "values": values})
        assert rej == [] and type(pts[0].fields) is FloatFields
        assert pts[0].fields == {k: float(v) for k, v in values.items()}
        assert all(type(v) is float for v in pts[0].fields.values())


def test_batch_keeps_good_readings():
    doc = {"readings": [
        {"device": "pv1", "ts": NOW_MS - 1000, "values": {"active_power": 1.0}},
        {"device": "nope", "ts": NOW_MS, "values": {"active_power": 1.0}},
        {"device": "ev1", "ts": NOW_MS, "values": {"active_power": 1.0}},          # other site
        {"device": "mb1", "ts": NOW_MS, "values": {"active_power": 1.0}},          # modbus device
        {"device": "m1", "ts": NOW_MS, "values": {"active_power": "1.0", "frequency": 50.01}},
        {"device": "m1", "ts": NOW_MS + 10 * 60_000, "values": {"frequency": 50.0}},
        "not an object",
        {"ts": NOW_MS, "values": {}},
    ]}
    pts, rej = parse("eh/v1/s1/gateway/gw-a/batch", doc)
    assert [(p.tags["device"], p.fields) for p in pts] == [("pv1", {"active_power": 1.0}),
                                                          ("m1", {"frequency": 50.01})]
    assert pts[0].time_ns == NOW - 10**9
    assert [r.reason for r in rej] == ["unknown_device", "wrong_site", "not_mqtt_device", "wrong_type",
                                       "timestamp_future", "bad_schema", "missing_field"]
    assert "'nope'" in rej[0].detail and "'active_power'" in rej[3].detail


BAD_TABLE = [
    # (name, topic, payload bytes, expected reasons)
    ("bad json", "eh/v1/s1/pv1/telemetry", b"{not json", ["bad_json"]),
    ("not utf-8", "eh/v1/s1/pv1/telemetry", b"\xff\xfe{}", ["bad_json"]),
    ("array", "eh/v1/s1/pv1/telemetry", b"[1,2]", ["bad_schema"]),
    ("no ts", "eh/v1/s1/pv1/telemetry", b'{"values": {"active_power": 1}}', ["missing_field"]),
    ("no values", "eh/v1/s1/pv1/telemetry", b'{"ts": %d}' % NOW_MS, ["missing_field"]),
    ("values not object", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": [1]}' % NOW_MS, ["bad_schema"]),
    ("empty values", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {}}' % NOW_MS, ["empty_values"]),
    ("ts string", "eh/v1/s1/pv1/telemetry", b'{"ts": "2025-11-28T00:00:00Z", "values": {"active_power": 1}}',
     ["bad_timestamp"]),
    ("ts bool", "eh/v1/s1/pv1/telemetry", b'{"ts": true, "values": {"active_power": 1}}', ["bad_timestamp"]),
    ("ts NaN", "eh/v1/s1/pv1/telemetry", b'{"ts": NaN, "values": {"active_power": 1}}', ["bad_timestamp"]),
    ("ts in seconds", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": 1}}' % (NOW_MS // 1000),
     ["timestamp_past"]),
    ("ts in ns", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": 1}}' % NOW,
     ["timestamp_future"]),
    ("31 days old", "eh/v1/s1/pv1/telemetry",
     b'{"ts": %d, "values": {"active_power": 1}}' % (NOW_MS - 31 * 86400_000), ["timestamp_past"]),
    ("6 min ahead", "eh/v1/s1/pv1/telemetry",
     b'{"ts": %d, "values": {"active_power": 1}}' % (NOW_MS + 360_000), ["timestamp_future"]),
    ("NaN value", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": NaN}}' % NOW_MS,
     ["non_finite"]),
    ("Infinity", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": -Infinity}}' % NOW_MS,
     ["non_finite"]),
    ("1e309", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": 1e309}}' % NOW_MS,
     ["non_finite"]),
    ("huge int", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": 1%s}}' % (NOW_MS, b"0" * 400),
     ["non_finite"]),
    ("null", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": null}}' % NOW_MS, ["wrong_type"]),
    ("bool", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": true}}' % NOW_MS, ["wrong_type"]),
    ("object", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"active_power": {"v": 1}}}' % NOW_MS,
     ["wrong_type"]),
    ("unknown channel", "eh/v1/s1/pv1/telemetry", b'{"ts": %d, "values": {"kw": 1}}' % NOW_MS,
     ["unknown_channel"]),
    ("unknown device", "eh/v1/s1/zz/telemetry", b'{"ts": %d, "values": {"active_power": 1}}' % NOW_MS,
     ["unknown_device"]),
    ("unknown site", "eh/v1/zz/pv1/telemetry", b'{"ts": %d, "values": {"active_power": 1}}' % NOW_MS,
     ["unknown_device"]),
    ("wrong site", "eh/v1/s2/pv1/telemetry", b'{"ts": %d, "values": {"active_power": 1}}' % NOW_MS,
     ["wrong_site"]),
    ("modbus device", "eh/v1/s1/mb1/telemetry", b'{"ts": %d, "values": {"active_power": 1}}' % NOW_MS,
     ["not_mqtt_device"]),
    ("bad topic", "eh/v2/s1/pv1/telemetry", b"{}", ["bad_topic"]),
    ("topic wildcard chars", "eh/v1/s1/+/telemetry", b"{}", ["bad_topic"]),
    ("topic path tricks", "eh/v1/s1/../telemetry", b"{}", ["bad_topic"]),
    ("too deep", "eh/v1/s1/pv1/telemetry", b"[" * 100_000 + b"]" * 100_000, ["oversize"]),
    ("nesting", "eh/v1/s1/pv1/telemetry", b"[" * 30_000 + b"]" * 30_000, ["bad_json"]),
    ("oversize", "eh/v1/s1/pv1/telemetry", b" " * (MAX_PAYLOAD_BYTES + 1), ["oversize"]),
    ("batch no readings", "eh/v1/s1/gateway/g/batch", b'{"x": 1}', ["missing_field"]),
    ("batch not object", "eh/v1/s1/gateway/g/batch", b'"str"', ["bad_schema"]),
    ("status garbage", "eh/v1/s1/pv1/status", b'"maybe"', ["bad_schema"]),
    ("gw status devices not list", "eh/v1/s1/gateway/g/status", b'{"online": false, "devices": "pv1"}',
     ["bad_schema"]),
]


@pytest.mark.parametrize(("name", "topic", "payload", "reasons"), BAD_TABLE, ids=[r[0] for r in BAD_TABLE])
def test_bad_payloads(name, topic, payload, reasons):
    pts, rej = parse_payload(topic, payload, FLEET, NOW)
    assert pts == []
    assert [r.reason for r in rej] == reasons
    assert all(r.reason in REASONS and r.detail for r in rej)


def test_time_rejects_name_the_device():
    for doc, reason in (({"values": {"active_power": 1.0}}, "missing_field"),
                        ({"ts": NOW_MS + 360_000, "values": {"active_power": 1.0}}, "timestamp_future")):
        _, rej = parse("eh/v1/s1/pv1/telemetry", doc)
        assert [r.reason for r in rej] == [reason] and rej[0].detail.startswith("device 'pv1': "), rej
    _, rej = parse("eh/v1/s1/pv1/status", {"online": True, "ts": "x"})
    assert rej[0].detail.startswith("status: "), rej


def test_one_bad_value_keeps_the_others():
    pts, rej = parse("eh/v1/s1/m1/telemetry", None,
                     raw=b'{"ts": %d, "values": {"frequency": 50.0, "kw": 3, "voltage_l1": NaN}}' % NOW_MS)
    assert [p.fields for p in pts] == [{"frequency": 50.0}]
    assert sorted(r.reason for r in rej) == ["non_finite", "unknown_channel"]


def test_status_topics():
    pts, rej = parse("eh/v1/s1/pv1/status", {"online": False, "ts": NOW_MS})
    assert rej == [] and len(pts) == 1
    assert pts[0].measurement == "collector_status"
    assert pts[0].tags == {"customer": "c1", "site": "s1", "device": "pv1", "source": "mqtt"}
    assert pts[0].fields == {"status": "offline", "online": 0} and pts[0].time_ns == NOW
    pts, rej = parse_payload("eh/v1/s1/pv1/status", b'"online"', FLEET, NOW)
    assert pts[0].fields == {"status": "ok", "online": 1}
    pts, rej = parse("eh/v1/s1/gateway/gw1/status", {"online": False})       # all MQTT devices of s1
    assert sorted(p.tags["device"] for p in pts) == ["m1", "pv1"] and rej == []
    pts, rej = parse("eh/v1/s1/gateway/gw1/status", {"online": True, "devices": ["m1", "ev1"]})
    assert [p.tags["device"] for p in pts] == ["m1"] and [r.reason for r in rej] == ["unknown_device"]


def test_fractional_ms_and_float_ts():
    pts, _ = parse("eh/v1/s1/pv1/telemetry", {"ts": NOW_MS + 0.5, "values": {"active_power": 1}})
    assert pts[0].time_ns == NOW + 500_000


# ---------------------------------------------------------------- property: the parser is total
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=8), st.sampled_from(["active_power", "frequency", "pv1", "m1"]))
_json = st.recursive(_json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), kids, max_size=4)),
                     max_leaves=20)
_reading_like = st.fixed_dictionaries({"ts": st.one_of(st.integers(), st.floats(), st.just(NOW_MS)),
                                       "values": st.dictionaries(st.sampled_from(["active_power", "frequency",
                                                                                  "kw", "voltage_l1"]),
                                                                 _json_leaf, max_size=4)},
                                      optional={"device": st.sampled_from(["pv1", "m1", "ev1", "x"])})
_topics = st.sampled_from(["eh/v1/s1/pv1/telemetry", "eh/v1/s1/gateway/g/batch", "eh/v1/s1/pv1/status",
                           "eh/v1/s1/gateway/g/status", "eh/v1/s2/ev1/telemetry", "eh/v1//telemetry", "x"])


def _check(topic: str, payload: bytes) -> None:
    pts, rej = parse_payload(topic, payload, FLEET, NOW)
    assert all(r.reason in REASONS for r in rej)
    for p in pts:
        if p.measurement != "collector_status":
            assert p.fields and all(type(v) is float and v - v == 0.0 for v in p.fields.values())
            assert NOW - 30 * 86400 * 10**9 <= p.time_ns <= NOW + 5 * 60 * 10**9


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_topics, st.one_of(_json, _reading_like, st.builds(lambda r: {"readings": r}, st.lists(_reading_like,
                                                                                          max_size=5))))
def test_parser_never_raises_on_json(topic, doc):
    _check(topic, json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(_topics, st.binary(max_size=200))
def test_parser_never_raises_on_bytes(topic, raw):
    _check(topic, raw)


# ---------------------------------------------------------------- status defects found by outside clients
def test_status_for_a_modbus_device_is_rejected():
    """A Modbus device's status comes from its poller: an MQTT status for it must not be stored."""
    pts, rej = parse("eh/v1/s1/mb1/status", {"online": False, "ts": NOW_MS})
    assert pts == [] and [r.reason for r in rej] == ["not_mqtt_device"]
    pts, rej = parse("eh/v1/s1/gateway/gw1/status", {"online": False, "devices": ["m1", "mb1"]})
    assert [p.tags["device"] for p in pts] == ["m1"] and [r.reason for r in rej] == ["not_mqtt_device"]


def test_retained_status_keeps_its_own_time_or_is_not_stored():
    """The broker hands a retained status to every new subscription: stamping it "now" would store
    the same old state again at every reconnect. With its own ts it is stored at that ts; without
    one its time is unknown, so it is left out quietly (no reject)."""
    old = NOW_MS - 3_600_000
    for topic in ("eh/v1/s1/pv1/status", "eh/v1/s1/gateway/gw1/status"):
        pts, rej = parse_payload(topic, json.dumps({"online": False}).encode(), FLEET, NOW, retained=True)
        assert pts == [] and rej == []
        pts, rej = parse_payload(topic, json.dumps({"online": False, "ts": old}).encode(), FLEET, NOW,
                                 retained=True)
        assert pts and rej == [] and {p.time_ns for p in pts} == {old * 1_000_000}
    pts, rej = parse_payload("eh/v1/s1/pv1/status", b'"offline"', FLEET, NOW, retained=False)
    assert [p.time_ns for p in pts] == [NOW] and rej == []        # live, without ts: arrival time


@pytest.mark.parametrize("topic", ["eh/v1/s1/pv1/status", "eh/v1/s1/gateway/gw1/status",
                                   "eh/v1/s1/pv1/telemetry", "eh/v1/s1/gateway/gw1/batch"])
def test_empty_payload_clears_a_retained_message_quietly(topic):
    """A zero-byte payload is how MQTT deletes a retained message: nothing to store, nothing wrong."""
    for retained in (False, True):
        assert parse_payload(topic, b"", FLEET, NOW, retained=retained) == ([], [])
    assert [r.reason for r in parse_payload(topic, b" ", FLEET, NOW)[1]] == ["bad_json"]   # not empty: JSON

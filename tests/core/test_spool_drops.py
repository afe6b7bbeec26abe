"""What the spool byte cap drops: per site/device, persisted next to the spool, turned into an alarm.

The end-to-end proof with real influxd, mosquitto, ``energyhost collect`` and ``energyhost analyze``
is ``tests/faults/test_spool_faults.py::test_spool_cap_reached_drops_oldest_counted_alarmed_and_exposed``.
"""

from __future__ import annotations

import json

import numpy as np
from support.waiting import wait_for

from analytics.alarms import findings_to_events, readings_dropped_findings
from core.influx import points_to_lines
from core.model import Point
from core.spool import DropLedger, Spool, line_tags
from core.units import NS


def _payload(site: str, device: str, n: int, t0: int = 1_700_000_000 * NS) -> bytes:
    return points_to_lines(Point("meter", {"customer": "c", "site": site, "device": device},
                                 {"active_power": float(i)}, t0 + i) for i in range(n))


def test_line_tags_plain_and_escaped():
    assert line_tags(b"meter,device=d1,site=s1 active_power=1 5") == {"device": "d1", "site": "s1"}
    assert line_tags(b"meter active_power=1 5") == {}
    line = points_to_lines([Point("meter", {"site": "s 1,x=y", "device": "d2"}, {"note": "a\\b"}, 5)])
    assert line_tags(line) == {"site": "s 1,x=y", "device": "d2"}


def test_spool_reports_dropped_records_before_the_cursor_moves(tmp_path):
    seen: list[list[tuple[bytes, int]]] = []

    def on_drop(records):
        cursor = (tmp_path / "cursor").read_text() if (tmp_path / "cursor").exists() else ""
        seen.append([(p, n, cursor) for p, n in records])

    a, b, c = _payload("s1", "d1", 40), _payload("s1", "d2", 40), _payload("s2", "d3", 40)
    sp = Spool(tmp_path, max_bytes=len(a) + len(b) + 60, fsync=False, on_drop=on_drop)
    assert sp.append(a, 40) == 0 and sp.append(b, 40) == 0 and seen == []
    assert sp.append(c, 40) == 40                                # the oldest (a) goes
    [[(payload, n, cursor_then)]] = seen
    assert payload == a and n == 40 and cursor_then == ""        # reported before the drop was durable
    sp.close()


def test_ledger_counts_per_device_survives_reopen_and_clears_when_recorded(tmp_path):
    led = DropLedger(tmp_path, fsync=False)
    counts = led.add([(_payload("s1", "d1", 3) + b"\n" + _payload("s1", "d2", 2), 5), (b"", 7)], 100)
    assert counts == {("s1", "d1"): 3, ("s1", "d2"): 2, ("-", "-"): 7}
    led.add([(_payload("s1", "d1", 4), 4)], 200)
    again = DropLedger(tmp_path, fsync=False)                    # a collector restart
    assert again.unrecorded_points == 16 and again.state["dropped_total"] == 16
    assert again.state["unrecorded"]["s1/d1"] == {"site": "s1", "device": "d1", "points": 7, "first_ns": 100,
                                                  "last_ns": 200}
    rows = [dict(r) for r in again.state["unrecorded"].values()]
    again.add([(_payload("s1", "d1", 1), 1)], 300)               # a drop while the record was in flight
    again.recorded(rows, 400)
    assert again.state["unrecorded"] == {"s1/d1": {"site": "s1", "device": "d1", "points": 1, "first_ns": 200,
                                                   "last_ns": 300}}
    assert again.state["recorded_total"] == 16 and again.unrecorded_points == 1
    assert json.loads((tmp_path / "dropped.json").read_text())["dropped_total"] == 17


def test_unreadable_ledger_is_kept_aside_and_named(tmp_path):
    (tmp_path / "dropped.json").write_text("{not json")
    led = DropLedger(tmp_path)
    assert "unreadable" in led.load_error and led.unrecorded_points == 0
    assert [p.name.startswith("dropped.json.bad-") for p in tmp_path.iterdir()] == [True]


def test_drop_records_become_one_critical_site_alarm():
    t = 1_700_000_000 * NS
    health = {"d1": {"time_ns": np.array([t, t + 60 * NS]), "dropped_points": np.array([5.0, 2.0])},
              "d2": {"time_ns": np.array([t]), "dropped_points": np.array([3.0])}}
    fs = readings_dropped_findings("s1", health)
    assert [(f.start_ns, f.severity, f.device_id, f.evidence) for f in fs] == [
        (t, "critical", None, {"dropped_points": 8, "devices": {"d1": 5, "d2": 3}}),
        (t + 60 * NS, "critical", None, {"dropped_points": 2, "devices": {"d1": 2}})]
    [ev] = findings_to_events(fs, now_ns=t + 70 * NS)            # merged into one activation, still active
    assert ev.key == "s1/-/readings_dropped" and ev.cleared_ns is None and ev.severity == "critical"
    assert readings_dropped_findings("s1", {}) == []


def test_writer_records_a_previous_runs_drops_and_says_so_when_influxdb_refuses(influxd, influx_db, tmp_path,
                                                                               caplog):
    """A ledger left by a stopped collector: the next Writer records it as ingest_health at once; a
    400 (here a field type conflict) keeps it on disk and logs an ERROR, never drops it silently."""
    import logging

    from core.influx import InfluxClient, Writer

    caplog.set_level(logging.WARNING, logger="energyhost.influx")
    client = InfluxClient(influxd.url, influx_db, timeout=5.0)
    for name, site in (("ok", "s1"), ("conflict", "s2")):
        spool = tmp_path / name
        DropLedger(spool, fsync=False).add([(_payload(site, "d1", 3) + b"\n" + _payload(site, "d2", 2), 5)], 100)
    w = Writer(client, tmp_path / "ok", flush_interval_s=0.05, retry_max_s=0.2)
    try:
        assert wait_for(lambda: w.stats()["drops_unrecorded"] == 0)
        assert w.stats()["drops_total"] == 5
    finally:
        w.close()
    rows = client.query('SELECT "dropped_points", "first_drop_ns" FROM "ingest_health" WHERE "site" = $s '
                        'GROUP BY "device"', {"s": "s1"})
    assert {r["tags"]["device"]: r["values"][0][1:] for r in rows} == {"d1": [3, 100], "d2": [2, 100]}
    influxd.create_database(influx_db + "_c")
    other = InfluxClient(influxd.url, influx_db + "_c", timeout=5.0)
    now = __import__("time").time_ns()                          # same shard as the record: types must agree
    other.write_lines(b"ingest_health,device=d1,reason=spool_cap,site=s2 dropped_points=1.5 %d" % now)
    w = Writer(other, tmp_path / "conflict", flush_interval_s=0.05, retry_max_s=0.2)
    try:
        assert wait_for(lambda: any("refuses the drop record" in r.getMessage() for r in caplog.records))
        assert w.stats()["drops_unrecorded"] == 5
    finally:
        w.close()
    assert DropLedger(tmp_path / "conflict").unrecorded_points == 5
    assert any("not recorded in InfluxDB yet" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)


"""Tests for analytics.alarms: dedup, raise/clear, suppression by design, chattering, flood KPIs."""

import pytest

from analytics import alarms as al
from core.model import AlarmEvent, Finding

S = 10**9
MIN = 60 * S
T0 = 1_767_225_600 * S


def finding(type_, dev, start_min, end_min, sev="major", site="s1"):
    return Finding(type=type_, site_id=site, device_id=dev, start_ns=T0 + start_min * MIN,
                   end_ns=T0 + end_min * MIN, severity=sev, evidence={"v": start_min},
                   explanation_zh=f"{type_} 中文", explanation_en=f"{type_} text")


def test_key_and_validation():
    assert al.alarm_key("s1", "d1", "overload") == "s1/d1/overload"
    assert al.alarm_key("s1", None, "pf") == "s1/-/pf"
    with pytest.raises(ValueError, match="free of '/'"):
        al.alarm_key("s/1", "d1", "x")
    with pytest.raises(ValueError, match="severity"):
        al.findings_to_events([finding("x", "d1", 0, 1, sev="high")])


def test_merge_dedup_and_clear():
    fs = [finding("overload", "t1", 0, 10), finding("overload", "t1", 11, 20, sev="critical"),
          finding("overload", "t1", 60, 70), finding("saving_pf_correction", None, 0, 100)]
    ev = al.findings_to_events(fs)
    assert [(e.key, e.raised_ns, e.cleared_ns) for e in ev] == [
        ("s1/t1/overload", T0, T0 + 20 * MIN), ("s1/t1/overload", T0 + 60 * MIN, T0 + 70 * MIN)]
    assert ev[0].severity == "critical" and ev[0].evidence["merged_findings"] == 2
    # still active at now: no clear time
    ev = al.findings_to_events(fs, now_ns=T0 + 71 * MIN)
    assert ev[-1].cleared_ns is None and ev[0].cleared_ns == T0 + 20 * MIN


def test_off_delay_is_each_devices_own():
    """A slow device (a 30-s OCPP charger: 60-s off-delay) must not hold a fast device's alarm open:
    each key merges and clears by its own device's gap."""
    fast = finding("ev_fault", "ev-fast", 0, 1)           # ended 30 s before now
    slow = finding("ev_fault", "ev-slow", 0, 1)
    now = T0 + 1 * MIN + 30 * S
    ev = {e.device_id: e for e in al.findings_to_events([fast, slow], now_ns=now,
                                                        merge_gap_s={"ev-fast": 10.0, "ev-slow": 60.0, None: 10.0})}
    assert ev["ev-fast"].cleared_ns == T0 + 1 * MIN          # past its 10-s off-delay: cleared
    assert ev["ev-slow"].cleared_ns is None                  # within its 60-s off-delay: still active
    # a device not listed takes the default
    (only,) = al.findings_to_events([finding("x", "other", 0, 1)], now_ns=now, merge_gap_s={None: 10.0})
    assert only.cleared_ns == T0 + 1 * MIN


def test_comms_loss_suppresses_process_alarms():
    fs = [finding("comms_loss", "m1", 10, 40),
          *[finding(t, "m1", 12, 30) for t in ("stale", "inverter_offline", "out_of_range")],
          finding("stale", "m2", 12, 30), finding("overload", "m1", 50, 55)]
    ev = al.findings_to_events(fs)
    sup = {e.key: e.suppressed_by for e in ev}
    assert sup["s1/m1/comms_loss"] is None
    assert sup["s1/m1/stale"] == sup["s1/m1/inverter_offline"] == "s1/m1/comms_loss"
    assert sup["s1/m2/stale"] is None and sup["s1/m1/overload"] is None
    kpi = al.alarm_kpis(ev, T0, T0 + 3600 * S)
    assert kpi["annunciated"] == 3 and kpi["suppressed"] == 3


def test_gateway_comms_one_alarm_not_fifty():
    devs = [f"d{i}" for i in range(5)]
    fs = [finding("comms_loss", d, 10 + i, 40) for i, d in enumerate(devs)]
    fs += [finding("stale", d, 20, 30) for d in devs]
    ev = al.findings_to_events(fs, groups={"gw1": devs})
    annunciated = [e for e in ev if e.suppressed_by is None]
    assert [e.key for e in annunciated] == ["s1/gw1/comms_loss"]
    gw = annunciated[0]
    assert gw.raised_ns == T0 + 14 * MIN and gw.cleared_ns == T0 + 40 * MIN
    assert all(e.suppressed_by == "s1/gw1/comms_loss" for e in ev if e is not gw)
    # one device still talking: no gateway alarm
    ev = al.findings_to_events(fs[1:], groups={"gw1": devs})
    assert not any(e.device_id == "gw1" for e in ev)


def test_chattering_and_kpis():
    evs = [AlarmEvent(key="s1/d1/hi", type="hi", site_id="s1", device_id="d1", severity="minor",
                      raised_ns=T0 + i * 15 * S, cleared_ns=T0 + i * 15 * S + 5 * S, message_zh="",
                      message_en="", evidence={}) for i in range(4)]
    assert al.chattering(evs) == {"s1/d1/hi": 4}
    assert al.chattering(evs[:2]) == {}
    # flood: 12 alarms in the first 10 min, 6 in the next (still flood), 2 after (ends)
    flood = [AlarmEvent(key=f"s1/d{i}/x", type="x", site_id="s1", device_id=f"d{i}", severity="warning",
                        raised_ns=T0 + m * MIN, cleared_ns=T0 + m * MIN + S, message_zh="", message_en="",
                        evidence={}) for i, m in enumerate([1] * 12 + [12] * 6 + [25] * 2)]
    k = al.alarm_kpis(flood, T0, T0 + 60 * MIN)
    assert k["annunciated"] == 20 and k["max_per_10min"] == 12
    assert k["flood_periods_pct"] == round(100 / 6, 3)
    assert k["time_in_flood_pct"] == round(200 / 6, 3)
    assert k["per_hour"] == 20 and k["verdict"] == "overloaded"
    assert k["priority_pct"]["warning"] == 100.0 and k["top10_share_pct"] == 50.0
    stale = flood[0]._replace(cleared_ns=None)
    assert al.alarm_kpis([stale], T0, T0 + 25 * 3600 * S)["stale"] == [stale.key]
    with pytest.raises(ValueError, match="end_ns"):
        al.alarm_kpis(flood, T0, T0)


def test_events_round_trip_through_workflow_store(tmp_path):
    from workflow import Store

    st = Store(f"sqlite:///{tmp_path / 'wf.db'}", clock=lambda: T0)
    st.create_customer("c1", "Customer")
    st.create_site("s1", "c1", "Site 1")
    devs = ["d0", "d1"]
    fs = [finding("comms_loss", d, 10, 40) for d in devs] + [finding("stale", "d0", 20, 30)]
    fs.append(finding("overload", "d1", 50, 60, sev="critical"))
    ev = al.findings_to_events(fs, now_ns=T0 + 60 * MIN, groups={"gw1": devs})
    first = st.upsert_alarm_events(ev)
    assert first["raised"] == len(ev) and first["cleared"] == len(ev) - 1 and first["work_orders"] == 1
    again = st.upsert_alarm_events(ev)
    assert again["unchanged"] == len(ev) and again["raised"] == 0
    # the overload clears later: the same activation with a clear time
    cleared = [e._replace(cleared_ns=T0 + 65 * MIN) for e in ev if e.cleared_ns is None]
    assert st.upsert_alarm_events(cleared)["cleared"] == 1


def test_reconcile_sliding_windows_send_each_raise_and_clear_once():
    def window(now_min, active_from, active_to=None):
        # what findings_to_events sees in a 30-min window ending at now: start clamped to the window
        w0 = now_min - 30
        s = max(active_from, w0)
        e = now_min if active_to is None else active_to
        if e < w0:
            return []
        return al.findings_to_events([finding("overload", "t1", s, e)], now_ns=T0 + now_min * MIN)

    open_, done, sent = {}, {}, []
    for now in range(40, 101, 5):           # condition from minute 0 until minute 80, evaluated every 5 min
        evs = window(now, 0, 80 if now >= 80 else None)
        # evidence-only updates (the clamped start moves "v") are covered in tests/analytics
        out, open_, done = al.reconcile(open_, evs, T0 + now * MIN, done, deadband=float("inf"))
        sent += out
    assert [(e.raised_ns, e.cleared_ns) for e in sent] == [(T0 + 10 * MIN, None), (T0 + 10 * MIN, T0 + 80 * MIN)]
    assert open_ == {} and done == {"s1/t1/overload": T0 + 80 * MIN}
    # a raise+clear inside one window is sent once, not again on the next evaluations
    sent = []
    for now in (40, 45, 50):
        out, open_, done = al.reconcile(open_, al.findings_to_events([finding("stale", "m1", 32, 35)],
                                                                     now_ns=T0 + now * MIN), T0 + now * MIN, done)
        sent += out
    assert len(sent) == 1 and sent[0].cleared_ns == T0 + 35 * MIN
    # an open alarm whose condition disappears from the window clears at now
    out, open_, done = al.reconcile({"s1/m1/x": sent[0]._replace(key="s1/m1/x", cleared_ns=None)}, [], T0, {})
    assert out[0].cleared_ns == T0 and open_ == {}

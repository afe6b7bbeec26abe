"""Alarms: ISA-18.2 states, shelving, suppression by design, updates of an open alarm, automatic
work orders, and two instances racing on PostgreSQL."""

from __future__ import annotations

import pytest
from support.waiting import Clock
from support.workflow import CHEAP, NS, ROOT, T0, ev

from core.config import load_fleet
from workflow import Conflict, Invalid, Store


def test_alarm_isa_18_2_lifecycle(store, clock):
    out = store.upsert_alarm_events([ev()])
    assert out["raised"] == 1
    a = store.alarms(open_only=True)[0]
    assert a["state"] == "active-unacked" and a["evidence"] == {"temp_c": 131.0}
    assert store.upsert_alarm_events([ev()])["unchanged"] == 1          # resend: no change
    clock.advance(60)
    store.upsert_alarm_events([ev(cleared=T0 + 50 * NS)])
    assert store.alarm(a["id"])["state"] == "rtn-unacked"               # cleared but not acked: still open
    clock.advance(60)
    store.upsert_alarm_events([ev(raised=T0 + 100 * NS)])               # re-alarm reuses the open record
    a2 = store.alarm(a["id"])
    assert a2["state"] == "active-unacked" and a2["activations"] == 2
    store.ack_alarm(a["id"], "eng1", "checking fans")
    assert store.alarm(a["id"])["state"] == "active-acked"
    with pytest.raises(Conflict, match="already acknowledged"):
        store.ack_alarm(a["id"], "eng1")
    store.upsert_alarm_events([ev(raised=T0 + 100 * NS, cleared=T0 + 200 * NS)])
    assert store.alarm(a["id"])["state"] == "cleared"
    # a new raise after close opens a new record: still at most one open per key
    store.upsert_alarm_events([ev(raised=T0 + 300 * NS)])
    assert len(store.alarms(open_only=True)) == 1 and len(store.alarms()) == 2
    actions = [x["action"] for x in store.alarm_audit(a["id"])]
    assert actions == ["raise", "clear", "reactivate", "ack", "clear"]


def test_rtn_unacked_closes_on_ack(store):
    store.upsert_alarm_events([ev(raised=T0, cleared=T0 + NS)])         # a whole episode in one event
    a = store.alarms()[0]
    assert a["state"] == "rtn-unacked"
    assert store.ack_alarm(a["id"], "eng1")["state"] == "cleared"


def test_shelving_expires_and_is_bounded(store, clock):
    store.upsert_alarm_events([ev()])
    aid = store.alarms()[0]["id"]
    with pytest.raises(Invalid, match="reason"):
        store.shelve_alarm(aid, "eng1", clock() + 3600 * NS, " ")
    with pytest.raises(Invalid, match="8 h"):
        store.shelve_alarm(aid, "eng1", clock() + 9 * 3600 * NS, "maintenance")
    store.shelve_alarm(aid, "eng1", clock() + 3600 * NS, "fan replacement")
    assert store.alarm(aid)["state"] == "shelved"
    assert [a["id"] for a in store.alarms(state="shelved")] == [aid]
    assert store.alarms(state="active-unacked") == []                   # the state filter sees the shelve
    clock.advance(3601)
    assert store.alarm(aid)["state"] == "active-unacked"                # shelve expired by itself
    assert [a["id"] for a in store.alarms(state="active-unacked")] == [aid] and store.alarms(state="shelved") == []
    assert store.alarm_audit(aid)[-1]["note"] == "fan replacement"


def test_suppressed_by_design(store):
    comms = "acme-plant1/acme-plant1-t1-temp/comms_lost"
    store.upsert_alarm_events([ev(key=comms, severity="major"), ev(suppressed_by=comms)])
    st = {a["key"]: a["state"] for a in store.alarms()}
    assert st[comms] == "active-unacked"
    assert st["acme-plant1/acme-plant1-t1-temp/overtemp"] == "suppressed-by-design"
    store.upsert_alarm_events([ev(key=comms, cleared=T0 + 10 * NS)])
    st = {a["key"]: a["state"] for a in store.alarms()}
    assert st["acme-plant1/acme-plant1-t1-temp/overtemp"] == "active-unacked"


def test_critical_alarm_opens_work_order_once(store, clock):
    out = store.upsert_alarm_events([ev(severity="critical")])
    assert out["work_orders"] == 1
    wo = store.work_orders()[0]
    assert wo["owner"] == "li.wei" and wo["state"] == "new" and wo["created_by"] == "system"
    assert wo["response_due_ns"] == clock() + 15 * 60 * NS and wo["repair_due_ns"] == clock() + 8 * 3600 * NS
    store.upsert_alarm_events([ev(severity="critical", cleared=T0 + NS)])
    store.ack_alarm(wo["alarm_id"], "eng1")
    store.upsert_alarm_events([ev(severity="critical", raised=T0 + 5 * NS)])   # new record, order still open
    assert len(store.work_orders()) == 1


def test_follower_severity_and_evidence_updates_reach_the_store(store, clock):
    """The follower re-sends an open alarm with its first raise time when severity or evidence change.

    A dry-type transformer trends towards 150 °C (major), then reaches 165 °C with its trip bit
    set (critical): the store must take the new severity and evidence and start what a new
    critical alarm starts (automatic work order, response clock, escalation).
    """
    from analytics.alarms import reconcile

    key = "acme-plant1/acme-plant1-t1-temp/overtemp"
    trend = ev(severity="major")._replace(evidence={"temp_c": 80.7, "forecast_c": 150.0})
    send, open_, done = reconcile({}, [trend], T0)
    store.upsert_alarm_events(send)
    assert store.work_orders() == []
    clock.advance(600)
    hot = trend._replace(severity="critical", evidence={"temp_c": 165.0, "trip": 1})
    send, open_, done = reconcile(open_, [hot], clock(), done)
    assert [(e.raised_ns, e.severity) for e in send] == [(T0, "critical")]       # same activation, new severity
    out = store.upsert_alarm_events(send)
    assert out["updated"] == 1 and out["work_orders"] == 1
    a = store.alarms(open_only=True)[0]
    assert (a["key"], a["severity"], a["evidence"], a["activations"]) == (key, "critical",
                                                                         {"temp_c": 165.0, "trip": 1}, 1)
    wo = store.work_orders()[0]
    assert (wo["alarm_id"], wo["severity"], wo["created_by"]) == (a["id"], "critical", "system")
    assert wo["response_due_ns"] == clock() + 15 * 60 * NS                       # the critical response clock
    clock.advance(15 * 60 + 1)
    assert [(m["level"], m["notified"]) for m in store.escalate_overdue()] == [(1, "li.wei")]
    # severity down and a new evidence reach the store too; the order stays open
    cooler = trend._replace(severity="minor", evidence={"temp_c": 120.0})
    assert store.upsert_alarm_events([cooler])["updated"] == 1
    assert store.alarm(a["id"])["severity"] == "minor" and store.alarm(a["id"])["evidence"] == {"temp_c": 120.0}
    assert store.upsert_alarm_events([cooler._replace(evidence={"temp_c": 118.5})])["updated"] == 1
    assert store.alarm(a["id"])["evidence"] == {"temp_c": 118.5}
    assert store.upsert_alarm_events([cooler._replace(evidence={"temp_c": 118.5})])["unchanged"] == 1
    assert len(store.work_orders()) == 1
    upd = [x for x in store.alarm_audit(a["id"]) if x["action"] == "update"]
    assert [x["detail"].get("severity") for x in upd] == [["major", "critical"], ["critical", "minor"], None]
    # the clear with the original raise time still closes the activation
    store.upsert_alarm_events([cooler._replace(cleared_ns=clock())])
    assert store.alarm(a["id"])["state"] == "rtn-unacked"


def test_critical_alarm_released_from_suppression_opens_its_work_order(store, clock):
    comms = "acme-plant1/acme-plant1-t1-temp/comms_lost"
    out = store.upsert_alarm_events([ev(key=comms), ev(severity="critical", suppressed_by=comms)])
    assert out["work_orders"] == 0                                   # suppressed by design: no order yet
    out = store.upsert_alarm_events([ev(key=comms, cleared=T0 + 10 * NS)])
    assert out["work_orders"] == 1
    assert [w["severity"] for w in store.work_orders()] == ["critical"]


def test_two_instances_on_postgres_keep_one_open_alarm_per_key(postgres):
    """Two stores (two API/analytics instances) racing on the same alarm keys and work order."""
    import threading

    url = postgres.url(postgres.create_database())
    clock = Clock(T0)
    a = Store(url, clock=clock, password_cost=CHEAP)
    b = Store(url, clock=clock, password_cost=CHEAP)
    a.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    a.create_user("eng1", "engineer", password="eng-pass-1")
    events = [ev(key=f"acme-plant1/d/k{i}", severity="critical") for i in range(30)]
    errors: list[BaseException] = []

    def push(s: Store) -> None:
        try:
            for _ in range(3):
                s.upsert_alarm_events(events)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(a.alarms(open_only=True, limit=1000)) == 30
    assert len(b.work_orders(limit=1000)) == 30              # one automatic order per critical alarm
    wo = a.work_orders(limit=1)[0]
    a.assign_work_order(wo["id"], "eng1", "eng1")
    results: list[str] = []

    def dispatch(s: Store) -> None:
        try:
            s.transition_work_order(wo["id"], "dispatched", "eng1")
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=dispatch, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == ["conflict", "ok"]
    assert [x["to_state"] for x in a.work_order_log(wo["id"]) if x["action"] == "transition"] == ["dispatched"]
    a.close()
    b.close()


def test_alarm_list_json_built_by_the_database_equals_the_response_model(store, clock):
    """SQLite and PostgreSQL write the same objects as pydantic would: times to the microsecond, booleans,
    shelving shown only while shelved, operators' notes hidden from customers, NaN evidence as null."""
    import json
    import math

    from pydantic import TypeAdapter

    from api.alarm_cache import ALARM_FIELDS
    from api.models import AlarmOut, alarm_out

    t = clock() + 123_456_789                                            # sub-second raise times
    store.upsert_alarm_events([
        ev(key="acme-plant1/d1/a", raised=t)._replace(evidence={"nan": math.nan, "中文": "值", "x": [1, 2.5]}),
        ev(key="acme-plant1/d1/b", raised=t + 1000, cleared=t + 5 * NS),
        ev(key="acme-office/d2/c", raised=t + 2 * NS, severity="critical")])
    by_key = {a["key"]: a["id"] for a in store.alarms()}
    store.ack_alarm(by_key["acme-plant1/d1/a"], "eng1", "on my way")
    store.shelve_alarm(by_key["acme-office/d2/c"], "eng1", clock() + 3600 * NS, "maintenance")
    ref = TypeAdapter(list[AlarmOut])
    for staff in (True, False):
        want = json.loads(ref.dump_json([AlarmOut.model_validate(alarm_out(a, staff)) for a in store.alarms()]))
        got = json.loads(store.alarms_json(fields=ALARM_FIELDS, staff=staff))
        assert got == want and [list(x) for x in got] == [list(x) for x in want]
    assert json.loads(store.alarms_json(fields=ALARM_FIELDS, state="shelved"))[0]["shelve_reason"] == "maintenance"

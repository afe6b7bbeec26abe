"""Each alarm row keeps its list objects (staff and customer view) as written by database triggers:
they equal the API model's output in every ISA-18.2 state, follow every write, and the list uses them."""

from __future__ import annotations

import json

import pytest
from support.workflow import NS, ev

from workflow import Store
from workflow.alarm_json import STORED_FIELDS

K = "acme-plant1/acme-plant1-t1-temp/"


def model_objects(store, staff: bool) -> dict[int, dict]:
    """What ``GET /api/v1/alarms`` would answer for every alarm, by the pydantic model."""
    from api.models import AlarmOut, alarm_out

    return {a["id"]: json.loads(AlarmOut.model_validate(alarm_out(a, staff)).model_dump_json())
            for a in store.alarms(limit=1000)}


def stored_objects(store, staff: bool) -> dict[int, dict]:
    col = "json_staff" if staff else "json_public"
    return {i: json.loads(j) for i, j in store.db.tuples(f"SELECT id, {col} FROM alarms")}


def alarms_in_every_state(store, clock) -> dict[str, int]:
    t = clock() + 123_456_789
    store.upsert_alarm_events([
        ev(key=K + "unacked", raised=t),
        ev(key=K + "acked", raised=t + 1000),
        ev(key=K + "rtn", raised=t + 2000, cleared=t + 3 * NS),
        ev(key=K + "closed", raised=t + 3000, cleared=t + 4 * NS),
        ev(key=K + "suppressed", raised=t + 4000, suppressed_by=K + "unacked"),
        ev(key=K + "shelved", raised=t + 5000),
        ev(key=K + "unshelved", raised=t + 6000),
        ev(key="acme-office/acme-office-meter/nan", raised=t + 7000, site="acme-office",
           device=None)._replace(evidence={"nan": float("nan"), "中文": "值"})])
    ids = {a["key"].rsplit("/", 1)[-1]: a["id"] for a in store.alarms(limit=1000)}
    store.ack_alarm(ids["acked"], "eng1", "on my way")
    store.ack_alarm(ids["closed"], "eng1", "seen")
    for name in ("shelved", "unshelved"):
        store.shelve_alarm(ids[name], "eng1", clock() + 600 * NS, "maintenance")
    store.unshelve_alarm(ids["unshelved"], "eng1")
    return ids


def test_stored_fields_are_the_api_model_fields():
    from api.models import AlarmOut

    assert STORED_FIELDS == tuple(AlarmOut.model_fields)


@pytest.mark.parametrize("staff", [True, False])
def test_stored_objects_equal_the_model_in_every_state(store, clock, staff):
    ids = alarms_in_every_state(store, clock)
    want, got = model_objects(store, staff), stored_objects(store, staff)
    states = {want[i]["state"] for i in ids.values()}
    assert states == {"active-unacked", "active-acked", "rtn-unacked", "cleared", "suppressed-by-design", "shelved"}
    for name, i in ids.items():
        if name == "shelved":                       # stored: the object once the shelve has run out
            assert got[i]["state"] == "active-unacked" and got[i]["shelved_until"] is None
        elif name == "nan":                         # evidence not JSON: null in the row, put in by the list
            assert got[i]["evidence"] is None and want[i]["evidence"]["nan"] is None
            assert {**got[i], "evidence": want[i]["evidence"]} == want[i]
        else:
            assert got[i] == want[i] and list(got[i]) == list(want[i]), name
    clock.advance(601)                              # the shelve has run out: no write, the stored object holds
    assert stored_objects(store, staff)[ids["shelved"]] == model_objects(store, staff)[ids["shelved"]]


def test_stored_objects_follow_writes_and_the_sites_customer(store, clock):
    ids = alarms_in_every_state(store, clock)
    store.upsert_alarm_events([ev(key=K + "unacked", raised=clock() + 100 * NS, cleared=clock() + 101 * NS)])
    store.db.run("UPDATE sites SET customer_id = 'huadong' WHERE id = 'acme-plant1'")
    for staff in (True, False):
        want, got = model_objects(store, staff), stored_objects(store, staff)
        assert got[ids["unacked"]] == want[ids["unacked"]]
        assert got[ids["unacked"]]["state"] == "rtn-unacked" and got[ids["unacked"]]["customer_id"] == "huadong"


def test_the_list_joins_the_stored_bytes_and_builds_only_shelved_alarms(store, clock):
    ids = alarms_in_every_state(store, clock)
    for i in (ids["unacked"], ids["shelved"]):       # a marker no trigger writes (only these columns change)
        store.db.run("UPDATE alarms SET json_public = ? WHERE id = ?", (b'{"marker":1}', i))
    got = {x.get("id"): x for x in json.loads(store.alarms_json(fields=STORED_FIELDS, staff=False))}
    assert got[None] == {"marker": 1}                # the unacked alarm: its stored bytes as they are
    assert got[ids["shelved"]]["state"] == "shelved" and got[ids["shelved"]]["shelved_until"]


def test_a_clear_finds_the_alarms_it_suppressed_by_index(tmp_path):
    """The rows are wider with their objects: a clear must not scan them for the alarms it suppressed
    (the query plan is read on SQLite; PostgreSQL gets the same index from the same migration)."""
    store = Store(f"sqlite:///{tmp_path / 'plan.db'}")
    plan = store.db.tuples("EXPLAIN QUERY PLAN UPDATE alarms SET suppressed_by = NULL, updated_ns = ? "
                           "WHERE suppressed_by = ? AND closed_ns IS NULL", (1, "k"))
    store.close()
    assert any("alarms_suppressed_by" in str(row[-1]) for row in plan), plan

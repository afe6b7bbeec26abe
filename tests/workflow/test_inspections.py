"""Inspections: missed patrols, recorded results."""

from __future__ import annotations

import pytest
from support.workflow import NS, T0

from workflow import Conflict, Invalid


def test_inspections_missed_and_recorded(store, clock):
    plan = store.create_inspection_plan("acme-plant1", "weekly patrol", 7 * 86400,
                                        ["transformer temperature", "cabinet doors"], T0 + 86400 * NS, "eng1")
    assert plan["checklist"] == ["transformer temperature", "cabinet doors"]
    clock.advance(3 * 86400)                                    # due day 1, grace 1 day: missed at day 2
    assert store.refresh_inspections() == 1
    items = store.inspections(site_id="acme-plant1")
    assert [i["state"] for i in items] == ["scheduled", "missed"]
    with pytest.raises(Invalid, match="missing"):
        store.record_inspection(items[0]["id"], "eng1", {"cabinet doors": {"ok": True}})
    done = store.record_inspection(items[0]["id"], "eng1", {"cabinet doors": {"ok": True, "note": ""},
                                                            "transformer temperature": {"ok": False,
                                                                                        "note": "95 C"}})
    assert done["state"] == "done" and done["engineer"] == "eng1"
    assert len(store.inspections(state="scheduled")) == 1


def test_failed_item_opens_one_follow_up_work_order(store, clock):
    plan = store.create_inspection_plan("acme-plant1", "weekly patrol", 7 * 86400,
                                        ["transformer temperature", "cabinet doors", "fire extinguisher"],
                                        T0 + 86400 * NS, "eng1")
    [due] = store.inspections(site_id="acme-plant1", state="scheduled")
    assert due["plan_id"] == plan["id"]
    done = store.record_inspection(due["id"], "eng1", {
        "transformer temperature": {"ok": False, "note": "95 C on phase B"},
        "cabinet doors": {"ok": True, "note": ""},
        "fire extinguisher": {"ok": False, "note": "pressure low"}})
    orders = sorted(store.work_orders(site_id="acme-plant1"), key=lambda w: w["id"])
    assert [(w["inspection_id"], w["inspection_item"]) for w in orders] == [
        (due["id"], "transformer temperature"), (due["id"], "fire extinguisher")]
    assert all(w["site_id"] == "acme-plant1" and w["created_by"] == "eng1" and w["state"] == "new"
               for w in orders)
    assert "transformer temperature" in orders[0]["title"] and "95 C on phase B" in orders[0]["description"]
    assert sorted(done["follow_up_orders"]) == [w["id"] for w in orders]
    with pytest.raises(Conflict, match="already recorded"):          # a second recording opens nothing more
        store.record_inspection(due["id"], "eng1", {c: {"ok": False} for c in plan["checklist"]})
    assert len(store.work_orders(site_id="acme-plant1")) == 2
    [nxt] = store.inspections(site_id="acme-plant1", state="scheduled")  # an all-ok patrol opens nothing
    store.record_inspection(nxt["id"], "eng1", {c: {"ok": True} for c in plan["checklist"]})
    assert len(store.work_orders(site_id="acme-plant1")) == 2

"""Inspections: missed patrols, recorded results."""

from __future__ import annotations

import pytest
from wf_helpers import NS, T0

from workflow import Invalid


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

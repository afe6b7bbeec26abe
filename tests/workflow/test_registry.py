"""Registry: seeding from the fleet file is idempotent and keeps API edits."""

from __future__ import annotations

from support.workflow import ROOT

from core.config import load_fleet


def test_seed_is_idempotent_and_keeps_edits(store):
    store.update_site("acme-plant1", name="Plant One (edited)")
    again = store.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    assert again == {"customers": 0, "sites": 0, "devices": 0}
    assert store.site("acme-plant1")["name"] == "Plant One (edited)"
    assert len(store.devices(site_id="acme-plant1")) == 13

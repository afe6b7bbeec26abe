"""Supplier data of devices: fleet keys, registry columns, device API."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from core.config import ConfigError, load_fleet, parse_fleet

ROOT = Path(__file__).resolve().parents[2]
DEV = {"id": "d1", "kind": "meter", "transport": "mqtt"}


def _fleet(**extra) -> dict:
    return {"customer": [{"id": "c1", "site": [{"id": "s1", "device": [{**DEV, **extra}]}]}]}


def test_supplier_keys_are_read_as_dates_and_ids():
    fleet = parse_fleet(_fleet(supplier="acrel-meters", model="DTSD1352", installed=date(2023, 5, 1),
                               warranty_until="2028-04-30"), "f.toml")
    d = fleet.device("d1")
    assert (d.supplier, d.model, d.installed, d.warranty_until) == (
        "acrel-meters", "DTSD1352", date(2023, 5, 1), date(2028, 4, 30))
    bare = parse_fleet(_fleet(), "f.toml").device("d1")
    assert (bare.supplier, bare.installed, bare.warranty_until) == ("", None, None)


@pytest.mark.parametrize(("extra", "words"), [
    ({"supplier": "Acrel Meters"}, ["f.toml", "device 'd1'", "'supplier'", "Acrel Meters"]),
    ({"installed": "2023-13-01"}, ["f.toml", "device 'd1'", "'installed'", "2023-13-01"]),
    ({"installed": 20230501}, ["f.toml", "device 'd1'", "'installed'", "expected date/str"]),
    ({"installed": "2999-01-01"}, ["device 'd1'", "'installed'", "future"]),
    ({"installed": date(2024, 1, 1), "warranty_until": date(2023, 1, 1)},
     ["device 'd1'", "'warranty_until'", "before 'installed'"]),
    ({"model": "x" * 101}, ["device 'd1'", "'model'", "100 characters"]),
])
def test_bad_supplier_keys_name_file_device_and_key(extra, words):
    with pytest.raises(ConfigError) as err:
        parse_fleet(_fleet(**extra), "f.toml")
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_example_fleet_gives_every_device_a_supplier_and_two_per_category():
    fleet = load_fleet(ROOT / "sites.example.toml")
    per_kind: dict[str, set[str]] = defaultdict(set)
    count: dict[str, int] = defaultdict(int)
    for d in fleet.devices.values():
        assert d.supplier and d.installed is not None, d.id
        per_kind[d.kind].add(d.supplier)
        count[d.kind] += 1
    assert {"meter", "transformer", "pv_inverter", "ev_charger"} <= set(per_kind)
    # a ranking needs two suppliers in a category; a kind with a single device has one
    assert all(len(s) >= 2 for k, s in per_kind.items() if count[k] > 1), per_kind


def test_registry_stores_supplier_data_and_keeps_edits(store):
    d = store.device("acme-plant1-t1-temp")
    assert (d["supplier"], d["installed"], d["warranty_until"]) == (
        "jiangnan-transformer", "2021-03-10", "2026-03-10")
    store.update_device("acme-plant1-t1-temp", supplier="huaxia-electric", warranty_until=date(2027, 1, 1))
    store.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    d = store.device("acme-plant1-t1-temp")
    assert (d["supplier"], d["warranty_until"]) == ("huaxia-electric", "2027-01-01")
    assert {r["supplier"] for r in store.devices(kind="transformer")} >= {"huaxia-electric", "jiangnan-transformer"}

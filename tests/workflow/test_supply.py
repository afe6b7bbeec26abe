"""Supplier rating from the records: a simulated year in a real influxd and a real store.

The PV inverters of one supplier (``brightsolar``) get injected faults all year — silent
periods, trips, alarms and slow repairs, late deliveries — and that supplier must rank last
among the PV inverter suppliers, with the figures behind each score.
"""

from __future__ import annotations

import re
import subprocess
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from support.waiting import Clock
from support.workflow import CHEAP

from api.main import create_app
from api.settings import ApiSettings
from core.config import load_fleet
from core.influx import InfluxClient
from core.model import AlarmEvent
from core.units import NS
from simulators.backfill import backfill
from simulators.signals import FleetSignals
from workflow import Store
from workflow.supply import review, year_data

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
YEAR = 2025
BAD, GOOD = "brightsolar", "sunpeak-power"


def _t(month: int, day: int, hour: float = 0.0) -> float:
    return datetime(YEAR, month, day, tzinfo=TZ).timestamp() + hour * 3600


def _incident(store, clock, fleet, dev: str, raised: int, cleared: int, *, alarm: bool) -> None:
    site = fleet.device(dev).site_id
    key = f"{site}/{dev}/inverter_trip/{raised}"
    if alarm:
        store.record([AlarmEvent(key, "inverter_trip", site, dev, "major", raised, None, "逆变器跳闸", "trip", {})])
    clock.t = raised
    wo = store.create_work_order(site_id=site, title="inverter check", severity="major", created_by="eng1",
                                 device_id=dev, assignee="eng1")
    store.transition_work_order(wo["id"], "dispatched", "eng1")
    store.transition_work_order(wo["id"], "on_site", "eng1")
    clock.t = cleared
    if alarm:
        store.record([AlarmEvent(key, "inverter_trip", site, dev, "major", raised, cleared, "逆变器跳闸", "trip", {})])
    store.transition_work_order(wo["id"], "resolved", "eng1", note="reset")


@pytest.fixture(scope="module")
def year_env(tmp_path_factory, influxd):
    tmp = tmp_path_factory.mktemp("supply")
    fleet = load_fleet(ROOT / "sites.example.toml")
    pv = [d for d in fleet.devices.values() if d.kind == "pv_inverter"]
    bad = [d.id for d in pv if d.supplier == BAD]
    assert bad and any(d.supplier == GOOD for d in pv)
    faults = []
    for month in range(1, 13, 2):          # six incidents per faulty inverter: two silent days and a 3-day trip
        for dev in bad:
            faults.append((dev, "device_silent", _t(month, 3), _t(month, 5), {}))
            faults.append((dev, "inverter_trip", _t(month, 10, 6), _t(month, 13, 18), {}))
    influxd.create_database(f"supply{YEAR}")
    influx = InfluxClient(influxd.url, f"supply{YEAR}")
    counts = backfill(fleet, FleetSignals(fleet, seed=7), influx, days=364.5, end=_t(12, 31, 24), step_s=21_600,
                      faults=faults, devices=[d.id for d in pv], weather=False)
    assert counts["devices"] == len(pv)
    clock = Clock(int(_t(1, 1)) * NS)
    store = Store(f"sqlite:///{tmp / 'wf.db'}", clock=clock, password_cost=CHEAP)
    store.seed_fleet(fleet)
    store.create_user("eng1", "engineer", password="eng-pass-1")
    store.create_user("acme.user", "customer", password="cust-pass-1", customer_id="acme")
    for dev, fault, start, end, _ in faults:          # what the analytics raised, and the repairs
        if fault == "inverter_trip":
            _incident(store, clock, fleet, dev, int(start) * NS, int(end) * NS, alarm=True)
    for d in pv:                                       # the good supplier: one quick repair per inverter
        if d.supplier == GOOD:
            _incident(store, clock, fleet, d.id, int(_t(7, 1, 9)) * NS, int(_t(7, 1, 13)) * NS, alarm=False)
    for sup, late in ((BAD, 10), (GOOD, 0)):
        for month in (3, 6, 9):
            store.add_delivery(sup, "pv_inverter", date(YEAR, month, 1), date(YEAR, month, 1 + late * (month > 3)),
                               created_by="eng1")
    app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=store, influx=influx, clock=clock,
                     fleet=fleet)
    client = TestClient(app)
    yield store, influx, client
    client.close()
    influx.close()
    store.close()


def _pv(ratings):
    return {r.supplier: r for r in ratings if r.category == "pv_inverter"}


def test_year_data_reads_availability_yield_faults_and_repairs(year_env):
    store, influx, _ = year_env
    data = year_data(store, influx, YEAR)
    bad = {d.id for d in data.devices if d.supplier == BAD and d.category == "pv_inverter"}
    good = {d.id for d in data.devices if d.supplier == GOOD and d.category == "pv_inverter"}
    # six 2-day silent periods in a year: about 12 of 365 days offline
    for dev in bad:
        assert data.availability[dev] == pytest.approx(1 - 12 / 365, abs=0.01)
    assert all(data.availability[dev] > 0.999 for dev in good)
    # a 3.5-day trip every other month costs yield against the same-site peers
    assert all(data.peer_yield[d] < 0.99 for d in bad if d in data.peer_yield)
    assert sum(d in data.peer_yield for d in bad) >= 2
    assert sorted(f["device_id"] for f in data.faults) == sorted(list(bad) * 6)
    assert len([w for w in data.work_orders if w["device_id"] in good]) == len(good)


def test_injected_faults_rank_their_supplier_last(year_env):
    store, influx, _ = year_env
    rv = review(store, influx, YEAR)
    pv = _pv(rv.ratings)
    assert pv[BAD].rank == pv[BAD].of == 2 and pv[GOOD].rank == 1
    for aspect in ("quality", "operation", "after_sales", "delivery"):
        assert pv[BAD].scores[aspect] < pv[GOOD].scores[aspect], aspect
    assert "18 faults" in pv[BAD].evidence["quality"]
    assert "1 of 3 deliveries on time" in pv[BAD].evidence["delivery"]
    assert rv.flagged == []                       # no field data the year before: nobody ranked last twice


def test_rating_api_is_for_staff_and_carries_evidence(year_env):
    _, _, client = year_env

    def token(user, pw):
        r = client.post("/api/v1/auth/token", json={"username": user, "password": pw})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    eng, cust = token("eng1", "eng-pass-1"), token("acme.user", "cust-pass-1")
    assert client.get(f"/api/v1/suppliers/rating?year={YEAR}", headers=cust).status_code == 403
    assert client.get("/api/v1/suppliers/deliveries", headers=cust).status_code == 403
    r = client.get(f"/api/v1/suppliers/rating?year={YEAR}", headers=eng)
    assert r.status_code == 200, r.text
    pv = {x["supplier"]: x for x in r.json()["ratings"] if x["category"] == "pv_inverter"}
    assert pv[BAD]["rank"] == 2 and pv[GOOD]["rank"] == 1
    assert "availability" in pv[BAD]["evidence"]["operation"]
    assert client.get("/api/v1/suppliers/rating?year=20x5", headers=eng).status_code == 422
    assert client.get("/api/v1/suppliers/rating", headers=eng).status_code == 422
    r = client.post("/api/v1/suppliers/deliveries", headers=eng,
                    json={"supplier": "voltgo", "category": "ev_charger", "promised": "2025-11-01",
                          "delivered": "2025-11-03", "note": "12 chargers"})
    assert r.status_code == 201, r.text
    assert r.json()["on_time"] is False
    listed = client.get("/api/v1/suppliers/deliveries?year=2025&supplier=voltgo", headers=eng).json()
    assert [(x["promised"], x["delivered"], x["note"]) for x in listed] == [("2025-11-01", "2025-11-03", "12 chargers")]
    for bad in ({"supplier": "voltgo", "category": "toaster", "promised": "2025-11-01"},
                {"supplier": "voltgo", "category": "ev_charger", "promised": "2025-13-01"},
                {"supplier": "Volt Go", "category": "ev_charger", "promised": "2025-11-01"}):
        assert client.post("/api/v1/suppliers/deliveries", headers=eng, json=bad).status_code == 422


@pytest.mark.parametrize(("lang", "words"), [
    ("zh", ["供方评审报告", "光伏逆变器", "故障 18 次", "按期 1 批"]),
    ("en", ["Supplier review", "PV inverters", "18 faults", "1 of 3 deliveries on time"]),
])
def test_review_pdf_ranks_and_shows_evidence(year_env, tmp_path, lang, words):
    _, _, client = year_env
    r = client.post("/api/v1/auth/token", json={"username": "eng1", "password": "eng-pass-1"})
    eng = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = client.get(f"/api/v1/suppliers/review.pdf?year={YEAR}&lang={lang}", headers=eng)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    pdf = tmp_path / f"review-{lang}.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    for w in words:
        assert w in text, w
    pv = text[text.index(words[1]):]
    assert re.search(rf"1\s*/\s*2\s+{GOOD}", pv) and re.search(rf"2\s*/\s*2\s+{BAD}", pv)
    assert client.get(f"/api/v1/suppliers/review.pdf?year={YEAR}&lang=fr", headers=eng).status_code == 422

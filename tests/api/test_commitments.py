"""Commitments API: scorecard with tenancy, 404 without a contract, the letter PDF, the breach sweep."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.commitments import MONTH, _app, _late_critical_ack, _login

from api.settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]


def test_scorecard_shows_the_miss_and_its_case_with_tenancy(store, clock, acme_only, tmp_path):
    aid = _late_critical_ack(store, clock, 20)
    c = TestClient(_app(store, clock, acme_only, tmp_path))
    h = _login(c)
    for user in ("acme.user", "li.wei", "admin1"):
        r = c.get(f"/api/v1/commitments/acme?month={MONTH}", headers=h[user])
        assert r.status_code == 200, (user, r.text)
    body = r.json()
    assert body["contract"] == "ACME-EH-2026-01" and body["month"] == MONTH and body["missed"] >= 1
    ack = next(x for x in body["commitments"] if x["id"] == "ack-critical")
    assert ack["status"] == "missed" and ack["status_zh"] == "未兑现" and ack["value"] == 20.0
    assert ack["cases"] == [{"ref": f"alarm {aid}", "ref_zh": f"告警 {aid}", "measured": 20.0, "ok": False}]
    assert ack["target"] == 15 and ack["zh"].startswith("紧急告警") and ack["target_en"].endswith("15 min")
    data = next(x for x in body["commitments"] if x["id"] == "data")
    assert data["status"] == "no_data" and data["value"] is None          # nothing invented
    # other tenants: 404 like a customer without a contract
    assert c.get("/api/v1/commitments/acme", headers=h["huadong.user"]).status_code == 404
    assert c.get("/api/v1/commitments/acme", headers=h["zhang.min"]).status_code == 404
    # no contract file for huadong in this folder
    r = c.get("/api/v1/commitments/huadong", headers=h["admin1"])
    assert r.status_code == 404 and "no service contract" in r.json()["detail"]
    assert c.get("/api/v1/commitments/acme?month=2026-13", headers=h["admin1"]).status_code == 422
    assert c.get("/api/v1/commitments/acme").status_code == 401


def test_default_month_is_this_local_month_and_a_bad_contract_answers_503(store, clock, acme_only, tmp_path):
    c = TestClient(_app(store, clock, acme_only, tmp_path))
    h = _login(c)
    assert c.get("/api/v1/commitments/acme", headers=h["acme.user"]).json()["month"] == MONTH
    (acme_only / "broken.toml").write_text('customer = "x"\n', encoding="utf-8")
    r = c.get("/api/v1/commitments/acme", headers=h["acme.user"])
    assert r.status_code == 503 and str(acme_only) not in r.text


def test_the_shipped_contracts_cover_both_demo_customers(store, clock, tmp_path):
    c = TestClient(_app(store, clock, ROOT / "contracts", tmp_path))
    h = _login(c)
    r = c.get(f"/api/v1/commitments/huadong?month={MONTH}", headers=h["huadong.user"])
    assert r.status_code == 200 and r.json()["contract"] == "HD-EH-2026-03"
    assert {x["id"] for x in r.json()["commitments"]} >= {"on-site-critical", "on-site-major"}


@pytest.mark.parametrize("lang, words", [("zh", ["服务承诺书", "ACME-EH-2026-01", "紧急告警", "修复 ≤ 24 小时"]),
                                         ("en", ["Service commitment letter", "ACME-EH-2026-01",
                                                 "Authorised signature", "repaired ≤ 24 h"])])
def test_commitment_letter_is_a_pdf_with_every_commitment(store, clock, acme_only, tmp_path, lang, words):
    c = TestClient(_app(store, clock, acme_only, tmp_path))
    h = _login(c)
    r = c.get(f"/api/v1/commitments/acme/letter?lang={lang}", headers=h["acme.user"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = tmp_path / f"letter_{lang}.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = "".join(text.split())                    # layout spacing (letter-spaced title) aside
    for w in words:
        assert "".join(w.split()) in flat, w
    assert c.get("/api/v1/commitments/acme/letter?lang=fr", headers=h["acme.user"]).status_code == 422
    assert c.get("/api/v1/commitments/acme/letter", headers=h["huadong.user"]).status_code == 404


def test_the_background_sweep_alarms_a_breach_once(store, clock, acme_only, tmp_path):
    """``energyhost serve``'s periodic sweep raises the breach alarm; later passes raise no second one."""
    _late_critical_ack(store, clock, 20)
    app = _app(store, clock, acme_only, tmp_path, every=0.05, background=True)
    with TestClient(app):
        deadline = time.monotonic() + 20
        found = []
        while time.monotonic() < deadline and not found:
            found = [a for a in store.alarms(limit=500) if a["type"] == "commitment_breach"]
            time.sleep(0.05)
        time.sleep(0.3)                                 # several more passes
    keys = [a["key"] for a in store.alarms(limit=500) if a["type"] == "commitment_breach"]
    assert "acme/commitments/ack-critical/2026-01/commitment_breach" in keys
    assert len(keys) == len(set(keys))


def test_contract_folder_setting_from_the_environment(tmp_path):
    assert ApiSettings.from_env({"EH_CONTRACTS_DIR": str(tmp_path)}).contracts_dir == str(tmp_path)
    default = Path(ApiSettings.from_env({}).contracts_dir)
    assert default == ROOT / "contracts" and (default / "acme.toml").is_file()

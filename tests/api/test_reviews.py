"""Yearly service review: twelve months from the archive and the store, verified savings only in the total."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.commitments import PASSWORDS, _app, _late_critical_ack, _login

from core.units import NS
from reports.archive import ReportArchive
from reports.model import MonthlyReport, Savings
from reports.review import yearly_review
from workflow import month_bounds_ns

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400 * NS
assert "acme.user" in PASSWORDS


def _archive_month(arch: ReportArchive, month: str, verdict: str, base: float, actual: float, kwh: float) -> None:
    start, end = month_bounds_ns(month, "Asia/Shanghai")
    days = (end - start) / DAY
    r = MonthlyReport(customer_id="acme", customer_name="ACME", month=month, start_ns=start, end_ns=end,
                      generated_ns=end, days_in_month=days, days_covered=days,
                      savings=Savings(method="configured", baseline_yuan_per_kwh=base, actual_yuan_per_kwh=actual,
                                      actual_kwh=kwh, saved_yuan=(base - actual) * kwh, verdict=verdict))
    arch.save(r.to_dict(), {}, {})


def _setup(store, clock, tmp_path):
    _late_critical_ack(store, clock, 20)                  # January: the ack commitment is missed
    arch = ReportArchive(tmp_path / "reports")
    _archive_month(arch, "2026-01", "verified", 1.0, 0.8, 1000.0)
    _archive_month(arch, "2026-02", "not_verifiable", 1.0, 0.9, 500.0)
    clock.t = month_bounds_ns("2026-03", "Asia/Shanghai")[0] + 14 * DAY
    return arch


def test_review_figures_come_from_the_archive_and_the_store(store, clock, tmp_path):
    arch = _setup(store, clock, tmp_path)
    v = yearly_review(store, arch, "acme", 2026, now_ns=clock(), lang="en", contracts_folder=ROOT / "contracts")
    assert [m["month"] for m in v["months"]] == ["2026-01", "2026-02", "2026-03"]       # April has not begun
    jan, feb, mar = v["months"]
    assert jan["saving"]["verdict"] == "verified" and jan["saving"]["saved_yuan"] == pytest.approx(200.0)
    assert jan["saving"]["calc"] == "(1.0000 − 0.8000) × 1,000 kWh = 200.00"
    assert feb["saving"]["label"] == "not verified (reference only)" and mar["saving"] is None
    assert v["verified_total_yuan"] == pytest.approx(200.0) and v["verified_months"] == 1             # February left out
    assert jan["commitments"]["missed"] >= 1 and jan["commitments"]["total"] == 7
    assert jan["workflow"]["alarms_raised"] == 1 and jan["workflow"]["orders_opened"] == 1


def test_review_pdf_with_tenancy(store, clock, tmp_path):
    arch = _setup(store, clock, tmp_path)
    app = _app(store, clock, ROOT / "contracts", tmp_path)
    app.state.report_archive = arch
    c = TestClient(app)
    h = _login(c)
    r = c.get("/api/v1/reviews/acme/2026?lang=en", headers=h["acme.user"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "review.pdf"
    pdf.write_bytes(r.content)
    text = " ".join(subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                                   check=True, timeout=60).stdout.split())
    for w in ("Yearly service review", "ACME-EH-2026-01", "(1.0000 − 0.8000) × 1,000 kWh = 200.00",
              "not verified (reference only)", "no report", "Verified savings of the year"):
        assert w in text, w
    assert c.get("/api/v1/reviews/acme/2026", headers=h["huadong.user"]).status_code == 404
    assert c.get("/api/v1/reviews/acme/2027", headers=h["admin1"]).status_code == 422
    assert c.get("/api/v1/reviews/acme/1999", headers=h["admin1"]).status_code == 422
    assert c.get("/api/v1/reviews/nobody/2026", headers=h["admin1"]).status_code == 404
    zh = c.get("/api/v1/reviews/acme/2026?lang=zh", headers=h["li.wei"])
    assert zh.status_code == 200
    (tmp_path / "review_zh.pdf").write_bytes(zh.content)

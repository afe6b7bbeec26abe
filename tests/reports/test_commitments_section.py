"""The monthly report's service-commitments section: same verdicts as the API, in zh and en, in the PDF."""

from __future__ import annotations

import subprocess

import pytest
from support.report_month import CUSTOMER, MAR2, MONTH, fleet

from reports.archive import ReportArchive
from reports.assemble import build_monthly_report
from reports.commitments import report_scorecard
from reports.render import render_html, render_pdf


@pytest.fixture(scope="module")
def archived(month, store, tmp_path_factory):  # noqa: F811
    """The February report built with an archive holding January's delivery record (sent on 3 Feb)."""
    client, _ = month
    arch = ReportArchive(tmp_path_factory.mktemp("arch"))
    arch.mark_sent(CUSTOMER, "2026-01", ["energy@acme.example"], MAR2 - 27 * 86400 * 10**9)
    report = build_monthly_report(client, fleet(), CUSTOMER, MONTH, store=store, archive=arch,
                                  baseline_yuan_per_kwh=1.0, now_ns=MAR2)
    return report, arch


def test_section_holds_the_scorecard_of_the_shared_function(archived, store):  # noqa: F811
    report, arch = archived
    rows = {r["id"]: r for r in report.commitments["rows"]}
    assert report.commitments["contract"] == "ACME-EH-2026-01"
    same = report_scorecard(store, CUSTOMER, MONTH, archive=arch, now_ns=MAR2,
                            completeness_pct=report.completeness_pct)
    assert report.commitments["rows"] == same
    # the second order (12 Feb) was never resolved by 2 Mar: the repair commitment is missed
    assert rows["repair"]["status"] == "missed"
    late = [c for c in rows["repair"]["cases"] if c["ok"] is False]
    assert len(late) == 1 and late[0]["measured"] > 24 * 17
    assert rows["report"]["status"] == "kept"                      # January's report sent on 3 Feb
    assert rows["satisfaction"]["status"] == "kept" and rows["satisfaction"]["value"] == 4.5
    assert rows["data"]["value"] == pytest.approx(report.completeness_pct, abs=1e-3)
    assert rows["ack-critical"]["status"] == "no_cases"           # no critical alarm in February


@pytest.mark.parametrize("lang, words", [("zh", ["服务承诺兑现情况", "未兑现", "一般故障 24 小时内修复", "已兑现"]),
                                         ("en", ["Service commitments", "missed", "Faults repaired within 24 hours",
                                                 "kept"])])
def test_section_renders_in_the_pdf(archived, tmp_path, lang, words):
    report, _ = archived
    html = render_html(report, lang, charts=False)
    assert 'id="commitments"' in html
    path = tmp_path / f"r_{lang}.pdf"
    path.write_bytes(render_pdf(html))
    text = "".join(subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                                  check=True, timeout=60).stdout.split())
    for w in words:
        assert "".join(w.split()) in text, w
    repair = next(r for r in report.commitments["rows"] if r["id"] == "repair")
    miss = next(c for c in repair["cases"] if c["ok"] is False)
    assert "".join((miss["ref_zh"] if lang == "zh" else miss["ref"]).split()) in text


def test_no_contract_no_section(month, store, tmp_path):  # noqa: F811
    client, _ = month
    assert report_scorecard(store, CUSTOMER, MONTH, folder=tmp_path) == []
    assert report_scorecard(None, CUSTOMER, MONTH) == []
    report = build_monthly_report(client, fleet(), "beta", MONTH, store=store, now_ns=MAR2)
    assert report.commitments == {} and 'id="commitments"' not in render_html(report, "en", charts=False)


def test_a_contract_for_a_customer_missing_from_the_registry_leaves_the_section_out(store, tmp_path):  # noqa: F811
    (tmp_path / "ghost.toml").write_text(
        'customer = "ghost"\ncontract = "G-1"\n[[commitment]]\nid = "r"\nrule = "repair_hours"\ntarget = 24\n'
        'zh = "修复"\nen = "repair"\n', encoding="utf-8")
    assert report_scorecard(store, "ghost", MONTH, folder=tmp_path) == []

"""Records → scorecard from the real store (SQLite and PostgreSQL) and report archive, and breach alarms."""

from __future__ import annotations

from pathlib import Path

from support.workflow import T0, ev

from core.units import NS
from reports.archive import ReportArchive
from workflow import commitment_records as cr
from workflow import commitments as cm

ROOT = Path(__file__).resolve().parents[2]
MIN, HOUR, DAY = 60 * NS, 3600 * NS, 86_400 * NS
MONTH = "2026-01"                       # T0 = 2026-01-01 08:00 local (Asia/Shanghai)


def _acme():
    return cm.load_contracts(ROOT / "contracts")["acme"]


def _by_id(verdicts):
    return {v.commitment.id: v for v in verdicts}


def _late_ack(store, clock, minutes: float) -> int:
    """A critical alarm raised 1 h after T0, acknowledged ``minutes`` later; returns its id."""
    clock.t = T0 + HOUR
    store.record([ev(key="acme-plant1/acme-plant1-t1-temp/trip", severity="critical", raised=clock.t)])
    alarm = next(a for a in store.alarms() if a["key"] == "acme-plant1/acme-plant1-t1-temp/trip")
    clock.advance(minutes * 60)
    store.ack_alarm(alarm["id"], "eng1", "seen")
    return alarm["id"]


def test_records_come_from_alarms_orders_surveys_and_the_archive(store, clock, tmp_path):
    aid = _late_ack(store, clock, 20)
    wo = next(w for w in store.work_orders(customer_id="acme") if w["alarm_id"] == aid)
    store.assign_work_order(wo["id"], "eng1", "admin1")
    store.transition_work_order(wo["id"], "dispatched", "eng1")
    clock.advance(3600)
    store.transition_work_order(wo["id"], "on_site", "eng1")
    store.add_survey("acme", "monthly_report", "2025-12", 5, "", "acme.user")
    store.add_survey("huadong", "monthly_report", "2025-12", 1, "", "huadong.user")     # other customer
    archive = ReportArchive(tmp_path / "reports")
    archive.mark_sent("acme", "2025-12", ["a@acme.example"], T0 + 2 * DAY)

    recs = cr.month_records(store, "acme", MONTH, archive=archive)
    assert [a["id"] for a in recs.alarms] == [aid]
    assert recs.alarms[0]["acked_ns"] - recs.alarms[0]["first_raised_ns"] == 20 * MIN
    assert [w["id"] for w in recs.work_orders] == [wo["id"]]
    assert recs.work_orders[0]["on_site_ns"] is not None and recs.work_orders[0]["resolved_ns"] is None
    assert recs.survey_ratings == (5,)
    assert recs.previous_report_delivered_ns == T0 + 2 * DAY
    assert recs.completeness_pct is None             # no archived report of the month: no figure invented

    card = _by_id(cm.scorecard(_acme(), recs))
    assert card["ack-critical"].status == cm.MISSED
    assert card["ack-critical"].misses[0].ref == f"alarm {aid}"
    assert card["report"].status == cm.KEPT
    assert card["data"].status == cm.NO_DATA
    assert card["satisfaction"].status == cm.KEPT and card["satisfaction"].value == 5


def test_completeness_is_read_only_from_a_complete_archived_report(store, clock, tmp_path):
    archive = ReportArchive(tmp_path / "reports")
    folder = archive.folder("acme", MONTH)
    folder.mkdir(parents=True)
    (folder / "report.json").write_text('{"completeness_pct": 97.5, "partial": true}', encoding="utf-8")
    assert cr.month_records(store, "acme", MONTH, archive=archive).completeness_pct is None
    (folder / "report.json").write_text('{"completeness_pct": 97.5, "partial": false}', encoding="utf-8")
    recs = cr.month_records(store, "acme", MONTH, archive=archive)
    assert recs.completeness_pct == 97.5
    assert _by_id(cm.scorecard(_acme(), recs))["data"].status == cm.MISSED


def test_a_breach_alarms_once_per_customer_commitment_and_month(store, clock):
    aid = _late_ack(store, clock, 20)
    contracts = {"acme": _acme()}
    first = cr.raise_breaches(store, contracts)
    ack_breach = [e for e in first if e.evidence["commitment"] == "ack-critical"]
    assert len(ack_breach) == 1
    alarm = next(a for a in store.alarms() if a["type"] == cr.BREACH_TYPE and "ack-critical" in a["key"])
    assert alarm["severity"] == "major" and store.site(alarm["site_id"])["customer_id"] == "acme"
    assert alarm["evidence"]["cases"] == [{"ref": f"alarm {aid}", "measured": 20.0}]
    assert alarm["evidence"]["manager"] == "li.wei" and alarm["evidence"]["month"] == MONTH
    # the next sweeps, the alarm acknowledged and closed meanwhile: no second alarm for the same month
    store.ack_alarm(alarm["id"], "li.wei", "called the customer")
    clock.advance(600)
    assert not [e for e in cr.raise_breaches(store, contracts) if e.evidence["commitment"] == "ack-critical"]
    assert sum(a["type"] == cr.BREACH_TYPE and "ack-critical" in a["key"] for a in store.alarms(limit=500)) == 1
    # a breach alarm is major and is not itself a critical alarm the ack rule counts
    assert [a["id"] for a in cr.month_records(store, "acme", MONTH).alarms] == [aid]


def test_a_breach_is_raised_when_the_clock_passes_the_limit(store, clock):
    """A critical alarm left unacknowledged turns the commitment missed 15 min after it was raised."""
    clock.t = T0 + HOUR
    store.record([ev(key="acme-plant1/acme-plant1-t1-temp/trip", severity="critical", raised=clock.t)])
    contracts = {"acme": _acme()}
    clock.advance(14 * 60)
    assert not [e for e in cr.raise_breaches(store, contracts) if e.evidence["commitment"] == "ack-critical"]
    clock.advance(2 * 60)
    raised = [e for e in cr.raise_breaches(store, contracts) if e.evidence["commitment"] == "ack-critical"]
    assert len(raised) == 1 and raised[0].evidence["cases"][0]["measured"] == 16.0


def test_a_contract_for_a_customer_the_registry_lacks_is_skipped(store):
    other = cm.Contract("nobody", "X-1", "", "", _acme().commitments)
    assert cr.raise_breaches(store, {"nobody": other}) == []


def test_no_breach_alarm_outside_the_contract_term(store, clock):
    _late_ack(store, clock, 20)                      # January 2026: missed
    acme = _acme()
    later = cm.Contract("acme", acme.contract, "2026-02-01", "2028-12-31", acme.commitments)
    ended = cm.Contract("acme", acme.contract, "2025-01-01", "2025-12-31", acme.commitments)
    assert cr.raise_breaches(store, {"acme": later}) == []
    assert cr.raise_breaches(store, {"acme": ended}) == []
    assert cr.raise_breaches(store, {"acme": acme})                   # signed 2026-01-05: January is covered


def test_an_alarm_suppressed_by_design_is_not_counted(store, clock):
    clock.t = T0 + HOUR
    store.record([ev(key="acme-plant1/acme-plant1-t1-temp/hidden", severity="critical", raised=clock.t,
                     suppressed_by="acme-plant1/acme-plant1-t1-temp/comms_loss")])
    clock.advance(3600)
    recs = cr.month_records(store, "acme", MONTH)
    assert recs.alarms == []
    assert _by_id(cm.scorecard(_acme(), recs))["ack-critical"].status == cm.NO_CASES

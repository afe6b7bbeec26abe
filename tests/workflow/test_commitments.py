"""Service commitments: contract files, and every rule of the monthly scorecard over a controlled clock."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.units import NS
from workflow import commitments as cm
from workflow import month_bounds_ns

ROOT = Path(__file__).resolve().parents[2]
MIN, HOUR, DAY = 60 * NS, 3600 * NS, 86_400 * NS
TZ = "Asia/Shanghai"
START, END = month_bounds_ns("2026-11", TZ)


def _c(rule: str, target: float, **kw) -> cm.Commitment:
    return cm.Commitment(id=rule, rule=rule, target=target, zh="承诺", en="promise", **kw)


def _recs(now=END + DAY, **kw) -> cm.MonthRecords:
    return cm.MonthRecords(month="2026-11", start_ns=START, end_ns=END, now_ns=now, timezone=TZ, **kw)


def test_the_shipped_contract_loads_with_every_rule_known():
    contracts = cm.load_contracts(ROOT / "contracts")
    assert "acme" in contracts
    rules = {c.rule for c in contracts["acme"].commitments}
    assert rules == set(cm.RULES)


@pytest.mark.parametrize("body, message", [
    ('customer = "x"\ncontract = "k"\n', "no [[commitment]] entries"),
    ('customer = "x"\ncontract = "k"\n[[commitment]]\nid = "a"\nrule = "nope"\ntarget = 1\nzh = "z"\nen = "e"\n',
     "commitment 'a': key 'rule': 'nope' is not one of"),
    ('customer = "x"\ncontract = "k"\n[[commitment]]\nid = "a"\nrule = "repair_hours"\ntarget = -1\nzh = "z"\n'
     'en = "e"\n', "commitment 'a': key 'target' must be a positive number"),
    ('customer = "x"\ncontract = "k"\n[[commitment]]\nid = "a"\nrule = "repair_hours"\ntraget = 1\nzh = "z"\n'
     'en = "e"\n', "commitment 'a': unknown key 'traget'"),
    ('contract = "k"\n', "key 'customer' must be a non-empty string"),
])
def test_a_bad_contract_file_names_the_file_the_commitment_and_the_key(tmp_path, body, message):
    f = tmp_path / "bad.toml"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(cm.CommitmentError) as e:
        cm.load_contract(f)
    assert str(f) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_month_window_is_local_midnight_to_midnight():
    assert (END - START) == 30 * DAY
    assert START % DAY == 16 * HOUR          # 00:00 in UTC+8 is 16:00 UTC the day before


def test_critical_ack_kept_missed_and_pending():
    c = _c("critical_ack_minutes", 15)
    t0 = START + DAY
    alarms = [
        {"id": 1, "severity": "critical", "first_raised_ns": t0, "acked_ns": t0 + 10 * MIN},
        {"id": 2, "severity": "major", "first_raised_ns": t0, "acked_ns": None},           # not critical
        {"id": 3, "severity": "critical", "first_raised_ns": START - HOUR, "acked_ns": None},  # last month
    ]
    v = cm.critical_ack_minutes(c, _recs(alarms=alarms))
    assert v.status == cm.KEPT and v.value == pytest.approx(10.0) and len(v.cases) == 1

    late = alarms + [{"id": 4, "severity": "critical", "first_raised_ns": t0, "acked_ns": t0 + 16 * MIN}]
    v = cm.critical_ack_minutes(c, _recs(alarms=late))
    assert v.status == cm.MISSED
    assert [x.ref for x in v.misses] == ["alarm 4"] and v.misses[0].measured == pytest.approx(16.0)

    open_ = alarms + [{"id": 5, "severity": "critical", "first_raised_ns": t0, "acked_ns": None}]
    assert cm.critical_ack_minutes(c, _recs(now=t0 + 5 * MIN, alarms=open_)).status == cm.PENDING
    v = cm.critical_ack_minutes(c, _recs(now=t0 + 20 * MIN, alarms=open_))
    assert v.status == cm.MISSED and v.misses[0].measured == pytest.approx(20.0)


def test_on_site_counts_only_the_commitments_severity():
    c = _c("on_site_hours", 2, severity="critical")
    t0 = START + 3 * DAY
    orders = [
        {"id": 7, "severity": "critical", "created_ns": t0, "on_site_ns": t0 + 3 * HOUR, "resolved_ns": None},
        {"id": 8, "severity": "minor", "created_ns": t0, "on_site_ns": t0 + 30 * HOUR, "resolved_ns": None},
    ]
    v = cm.on_site_hours(c, _recs(work_orders=orders))
    assert v.status == cm.MISSED and [x.ref for x in v.misses] == ["work order 7"]
    assert v.value == pytest.approx(3.0)


def test_repair_hours_over_every_order_of_the_month():
    c = _c("repair_hours", 24)
    t0 = START + 3 * DAY
    orders = [
        {"id": 1, "severity": "minor", "created_ns": t0, "on_site_ns": None, "resolved_ns": t0 + 20 * HOUR},
        {"id": 2, "severity": "major", "created_ns": t0, "on_site_ns": None, "resolved_ns": t0 + 23 * HOUR},
    ]
    v = cm.repair_hours(c, _recs(work_orders=orders))
    assert v.status == cm.KEPT and v.value == pytest.approx(23.0)
    assert cm.repair_hours(c, _recs()).status == cm.NO_CASES


def test_inspections_share_done():
    c = _c("inspections_done", 100)
    due = START + 10 * DAY
    rows = [{"id": 1, "due_ns": due, "state": "done", "done_ns": due},
            {"id": 2, "due_ns": due, "state": "missed", "done_ns": None}]
    v = cm.inspections_done(c, _recs(inspections=rows))
    assert v.status == cm.MISSED and v.value == pytest.approx(50.0)
    assert [x.ref for x in v.misses] == ["inspection 2"]
    scheduled = [rows[0], {"id": 3, "due_ns": due + DAY, "state": "scheduled", "done_ns": None}]
    assert cm.inspections_done(c, _recs(now=due + HOUR, inspections=scheduled)).status == cm.PENDING


def test_report_by_day_is_due_at_the_end_of_that_local_day():
    c = _c("report_by_day", 5)
    due = cm.report_due_ns("2026-11", TZ, 5)
    assert due == START + 5 * DAY
    assert cm.report_by_day(c, _recs(previous_report_delivered_ns=due - 1)).status == cm.KEPT
    v = cm.report_by_day(c, _recs(previous_report_delivered_ns=due + 2 * DAY))
    assert v.status == cm.MISSED and v.misses[0].measured == pytest.approx(2.0)
    assert cm.report_by_day(c, _recs(now=due - HOUR)).status == cm.PENDING
    assert cm.report_by_day(c, _recs(now=due + DAY)).status == cm.MISSED
    assert cm.report_due_ns("2026-02", TZ, 31) == month_bounds_ns("2026-03", TZ)[0]   # capped at month end


def test_completeness_and_survey_score():
    assert cm.data_completeness_pct(_c("data_completeness_pct", 98), _recs(completeness_pct=97.9)).status == cm.MISSED
    assert cm.data_completeness_pct(_c("data_completeness_pct", 98), _recs()).status == cm.NO_DATA
    v = cm.survey_score(_c("survey_score", 4), _recs(survey_ratings=[5, 4, 3]))
    assert v.status == cm.KEPT and v.value == pytest.approx(4.0)
    assert cm.survey_score(_c("survey_score", 4), _recs(survey_ratings=[3, 4])).status == cm.MISSED


def test_scorecard_follows_the_contract_and_breaches_are_the_misses():
    contract = cm.load_contract(ROOT / "contracts" / "acme.toml")
    t0 = START + DAY
    recs = _recs(alarms=[{"id": 9, "severity": "critical", "first_raised_ns": t0, "acked_ns": t0 + HOUR}],
                 completeness_pct=99.5, survey_ratings=[5])
    card = cm.scorecard(contract, recs)
    assert [v.commitment.id for v in card] == [c.id for c in contract.commitments]
    by_id = {v.commitment.id: v for v in card}
    assert by_id["ack-critical"].status == cm.MISSED
    assert by_id["data"].status == cm.KEPT and by_id["satisfaction"].status == cm.KEPT
    assert by_id["repair"].status == cm.NO_CASES and math.isnan(by_id["repair"].value)
    assert [v.commitment.id for v in cm.breaches(card)] == ["ack-critical", "report"]


def test_report_rule_without_an_archive_is_no_data_not_a_miss():
    c = _c("report_by_day", 5)
    assert cm.report_by_day(c, _recs(report_archive_known=False)).status == cm.NO_DATA
    assert cm.report_by_day(c, _recs()).status == cm.MISSED          # archive looked in, nothing sent

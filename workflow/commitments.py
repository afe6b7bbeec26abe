"""Service commitments (服务十项承诺) as data, and the monthly scorecard that checks them.

A contract's commitments live in ``contracts/<customer>.toml``: for each one the zh/en
wording the customer signed, a measurable rule (:data:`RULES`) and its target.  Each rule is
evaluated from workflow records the system already keeps — alarm acknowledgement times,
work-order stage times, inspections, the report archive, surveys and ingest completeness —
so the scorecard needs no extra bookkeeping and every miss names the records behind it.

Rules (target unit in brackets):

``critical_ack_minutes`` [min]   every critical alarm first raised in the month is acknowledged
                                 within the target; one still unacknowledged past it is a miss.
``on_site_hours`` [h]            work orders of the commitment's ``severity`` (default critical):
                                 engineer on site within the target after the order was opened.
``repair_hours`` [h]             work orders resolved within the target after they were opened.
``inspections_done`` [%]         share of the inspections due in the month that were done.
``report_by_day`` [day]          the previous month's report delivered by that day of this month
                                 (no_data when no report archive was looked in).
``data_completeness_pct`` [%]    ingest completeness of the month at least the target.
``survey_score`` [1–5]           average satisfaction rating of the month at least the target.

The evaluation is a pure function of the records handed in (:class:`MonthRecords`), so it can
be tested over a controllable clock and recomputed from what the scorecard prints.
"""

from __future__ import annotations

import calendar
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.units import NS

MIN_NS = 60 * NS
HOUR_NS = 3600 * NS

KEPT, MISSED, PENDING, NO_CASES, NO_DATA = "kept", "missed", "pending", "no_cases", "no_data"


class CommitmentError(ValueError):
    """A contract file is malformed; the message names the file, the commitment and the key."""


@dataclass(frozen=True)
class Commitment:
    id: str
    rule: str
    target: float
    zh: str
    en: str
    severity: str = "critical"


@dataclass(frozen=True)
class Contract:
    customer: str
    contract: str
    signed: str
    valid_until: str
    commitments: tuple[Commitment, ...]


@dataclass(frozen=True)
class Case:
    """One record behind a verdict: what it is and what was measured."""

    ref: str            # e.g. "alarm 12", "work order 7", "inspection 3", "report 2026-10"
    measured: float     # in the rule's target unit; NaN when not measured (e.g. never done)
    ok: bool | None     # None: still within its limit


@dataclass(frozen=True)
class Verdict:
    commitment: Commitment
    status: str                       # kept / missed / pending / no_cases / no_data
    value: float                      # the month's figure in the target unit (NaN if none)
    cases: tuple[Case, ...] = ()

    @property
    def misses(self) -> tuple[Case, ...]:
        return tuple(c for c in self.cases if c.ok is False)


@dataclass(frozen=True)
class MonthRecords:
    """Everything the rules read, for one customer and one month ``[start_ns, end_ns)``."""

    month: str
    start_ns: int
    end_ns: int
    now_ns: int
    alarms: Sequence[Mapping[str, Any]] = ()        # id, severity, first_raised_ns, acked_ns
    work_orders: Sequence[Mapping[str, Any]] = ()   # id, severity, created_ns, on_site_ns, resolved_ns
    inspections: Sequence[Mapping[str, Any]] = ()   # id, due_ns, state, done_ns
    timezone: str = "Asia/Shanghai"                 # the customer's; sets the report's due day
    previous_report_delivered_ns: int | None = None
    report_archive_known: bool = True              # False: no archive to look in, the report rule is no_data
    completeness_pct: float | None = None
    survey_ratings: Sequence[int] = field(default_factory=tuple)


# --------------------------------------------------------------------------- loading
_KEYS = {"id", "rule", "target", "zh", "en", "severity"}


def load_contract(path: str | Path) -> Contract:
    """Read and validate one ``contracts/<customer>.toml``."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CommitmentError(f"{p}: {e}") from None
    for key in ("customer", "contract"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise CommitmentError(f"{p}: key '{key}' must be a non-empty string")
    items = data.get("commitment")
    if not isinstance(items, list) or not items:
        raise CommitmentError(f"{p}: no [[commitment]] entries")
    seen: set[str] = set()
    out = []
    for i, raw in enumerate(items):
        c = _commitment(p, i, raw)
        if c.id in seen:
            raise CommitmentError(f"{p}: commitment '{c.id}': id used twice")
        seen.add(c.id)
        out.append(c)
    return Contract(data["customer"], data["contract"], str(data.get("signed", "")),
                    str(data.get("valid_until", "")), tuple(out))


def _commitment(p: Path, i: int, raw: Any) -> Commitment:
    name = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
    where = f"{p}: commitment '{name}'"
    if not isinstance(raw, dict):
        raise CommitmentError(f"{where}: must be a table")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise CommitmentError(f"{where}: unknown key '{unknown[0]}'")
    for key in ("id", "rule", "zh", "en"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise CommitmentError(f"{where}: key '{key}' must be a non-empty string")
    if raw["rule"] not in RULES:
        raise CommitmentError(f"{where}: key 'rule': '{raw['rule']}' is not one of {', '.join(RULES)}")
    target = raw.get("target")
    if isinstance(target, bool) or not isinstance(target, int | float) or not target > 0:
        raise CommitmentError(f"{where}: key 'target' must be a positive number")
    return Commitment(raw["id"], raw["rule"], float(target), raw["zh"], raw["en"],
                      str(raw.get("severity", "critical")))


def load_contracts(folder: str | Path) -> dict[str, Contract]:
    """Every contract in a folder, by customer id."""
    out: dict[str, Contract] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        c = load_contract(path)
        if c.customer in out:
            raise CommitmentError(f"{path}: customer '{c.customer}' has a second contract file")
        out[c.customer] = c
    return out


# --------------------------------------------------------------------------- the report's due day
def report_due_ns(month: str, tz: str, day: int) -> int:
    """End of day ``day`` (capped at the month's length) of ``month``, local time, as ns."""
    y, m = (int(x) for x in month.split("-"))
    last = calendar.monthrange(y, m)[1]
    d = min(int(day), last)
    end = datetime(y, m, d, tzinfo=ZoneInfo(tz)).timestamp() + 86_400
    return int(end) * NS


# --------------------------------------------------------------------------- rules
def _within(c: Commitment, recs: MonthRecords, rows, start_key: str, end_key: str, unit_ns: int,
            ref: str) -> Verdict:
    """Every row's ``end - start`` within the target; one not ended and past the limit is a miss."""
    limit = c.target * unit_ns
    cases = []
    for r in rows:
        begun, ended = r[start_key], r.get(end_key)
        if ended is not None:
            cases.append(Case(f"{ref} {r['id']}", (ended - begun) / unit_ns, ended - begun <= limit))
        elif recs.now_ns - begun > limit:
            cases.append(Case(f"{ref} {r['id']}", (recs.now_ns - begun) / unit_ns, False))
        else:
            cases.append(Case(f"{ref} {r['id']}", float("nan"), None))
    return _tally(c, cases)


def _tally(c: Commitment, cases: list[Case]) -> Verdict:
    if not cases:
        return Verdict(c, NO_CASES, float("nan"))
    done = [x.measured for x in cases if x.ok is not None]
    worst = max(done) if done else float("nan")
    if any(x.ok is False for x in cases):
        status = MISSED
    elif any(x.ok is None for x in cases):
        status = PENDING
    else:
        status = KEPT
    return Verdict(c, status, worst, tuple(cases))


def _in_month(recs: MonthRecords, t: int | None) -> bool:
    return t is not None and recs.start_ns <= t < recs.end_ns


def critical_ack_minutes(c: Commitment, recs: MonthRecords) -> Verdict:
    rows = [a for a in recs.alarms if a["severity"] == "critical" and _in_month(recs, a["first_raised_ns"])]
    return _within(c, recs, rows, "first_raised_ns", "acked_ns", MIN_NS, "alarm")


def on_site_hours(c: Commitment, recs: MonthRecords) -> Verdict:
    rows = [w for w in recs.work_orders if w["severity"] == c.severity and _in_month(recs, w["created_ns"])]
    return _within(c, recs, rows, "created_ns", "on_site_ns", HOUR_NS, "work order")


def repair_hours(c: Commitment, recs: MonthRecords) -> Verdict:
    rows = [w for w in recs.work_orders if _in_month(recs, w["created_ns"])]
    return _within(c, recs, rows, "created_ns", "resolved_ns", HOUR_NS, "work order")


def inspections_done(c: Commitment, recs: MonthRecords) -> Verdict:
    due = [i for i in recs.inspections if _in_month(recs, i["due_ns"])]
    if not due:
        return Verdict(c, NO_CASES, float("nan"))
    cases = []
    for i in due:
        done = i["state"] == "done"
        open_ = i["state"] == "scheduled" and recs.now_ns < recs.end_ns
        cases.append(Case(f"inspection {i['id']}", 100.0 if done else 0.0, None if open_ else done))
    share = sum(x.measured for x in cases) / len(cases)
    still_open = 100.0 * sum(x.ok is None for x in cases) / len(cases)
    if share >= c.target:
        status = KEPT
    elif share + still_open >= c.target:
        status = PENDING
    else:
        status = MISSED
    return Verdict(c, status, share, tuple(cases))


def report_by_day(c: Commitment, recs: MonthRecords) -> Verdict:
    if not recs.report_archive_known:
        return Verdict(c, NO_DATA, float("nan"))
    due = report_due_ns(recs.month, recs.timezone, int(c.target))
    got = recs.previous_report_delivered_ns
    day_ns = 86_400 * NS
    if got is not None:
        late_days = (got - due) / day_ns
        case = Case("previous month's report", late_days, got <= due)
    elif recs.now_ns > due:
        case = Case("previous month's report", (recs.now_ns - due) / day_ns, False)
    else:
        case = Case("previous month's report", float("nan"), None)
    return _tally(c, [case])


def data_completeness_pct(c: Commitment, recs: MonthRecords) -> Verdict:
    v = recs.completeness_pct
    if v is None:
        return Verdict(c, NO_DATA, float("nan"))
    ok = v >= c.target
    return Verdict(c, KEPT if ok else MISSED, float(v), (Case("ingest completeness", float(v), ok),))


def survey_score(c: Commitment, recs: MonthRecords) -> Verdict:
    ratings = list(recs.survey_ratings)
    if not ratings:
        return Verdict(c, NO_CASES, float("nan"))
    mean = sum(ratings) / len(ratings)
    ok = mean >= c.target
    return Verdict(c, KEPT if ok else MISSED, mean, (Case(f"{len(ratings)} survey answers", mean, ok),))


RULES: dict[str, Callable[[Commitment, MonthRecords], Verdict]] = {
    "critical_ack_minutes": critical_ack_minutes,
    "on_site_hours": on_site_hours,
    "repair_hours": repair_hours,
    "inspections_done": inspections_done,
    "report_by_day": report_by_day,
    "data_completeness_pct": data_completeness_pct,
    "survey_score": survey_score,
}


def scorecard(contract: Contract, recs: MonthRecords) -> list[Verdict]:
    """One verdict per commitment of the contract, in the contract's order."""
    return [RULES[c.rule](c, recs) for c in contract.commitments]


def breaches(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts that are missed: what the customer manager is alarmed about at once."""
    return [v for v in verdicts if v.status == MISSED]

"""Work orders: service time limits, the new → closed workflow, escalation of overdue orders and its e-mail state.

Every order has a response, arrival and repair due time from its severity's :class:`Limit`;
an overdue stage escalates to the site's customer manager (level 1), then to the admins
(level 2).  The sender of escalation e-mail (``api.notify``) records its delivery here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflow.db import NS, Conflict, Ctx, Invalid, NotFound, sql_in
from workflow.vocab import SEVERITIES, SYSTEM, WO_NEXT, WO_STATES

if TYPE_CHECKING:
    from workflow.alarms import Alarms
    from workflow.registry import Registry

# --------------------------------------------------------------------------- time limits
@dataclass(frozen=True)
class Limit:
    """Time limits of one severity [s], all measured from the order's creation."""

    response_s: int
    arrival_s: int
    repair_s: int


DEFAULT_LIMITS: dict[str, Limit] = {
    "critical": Limit(15 * 60, 2 * 3600, 8 * 3600),
    "major": Limit(30 * 60, 4 * 3600, 24 * 3600),
    "minor": Limit(2 * 3600, 24 * 3600, 72 * 3600),
    "warning": Limit(8 * 3600, 72 * 3600, 168 * 3600),
}


@dataclass(frozen=True)
class TimeLimits:
    """Per-severity service time limits (response, arrival, repair) and escalation policy.

    An overdue stage escalates to the customer manager (level 1) as soon as it is overdue,
    and to the admins (level 2) once it is overdue by ``admin_factor`` × the stage's limit.
    """

    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    admin_factor: float = 1.0

    def __post_init__(self) -> None:
        missing = set(SEVERITIES) - set(self.limits)
        if missing:
            raise Invalid(f"time limits: no limits for severities {sorted(missing)}")
        for sev, lim in self.limits.items():
            if not 0 < lim.response_s <= lim.arrival_s <= lim.repair_s:
                raise Invalid(f"time limits: {sev}: need 0 < response <= arrival <= repair, got {lim}")

    @classmethod
    def from_toml(cls, path: str | Path) -> TimeLimits:
        """Read ``[critical] response_min = 15, arrival_min = 120, repair_min = 480`` etc.

        Missing severities keep their defaults; ``admin_factor`` may be given at top level.
        """
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise Invalid(f"{p}: cannot read time limits: {exc}") from None
        limits = dict(DEFAULT_LIMITS)
        for key, table in raw.items():
            if key == "admin_factor":
                continue
            if key not in SEVERITIES or not isinstance(table, dict):
                raise Invalid(f"{p}: unknown severity table {key!r}; expected one of {SEVERITIES}")
            try:
                limits[key] = Limit(*(int(float(table[k]) * 60) for k in ("response_min", "arrival_min",
                                                                          "repair_min")))
            except (KeyError, TypeError, ValueError) as exc:
                raise Invalid(f"{p}: [{key}] needs numeric response_min, arrival_min, repair_min "
                              f"({exc})") from None
        return cls(limits=limits, admin_factor=float(raw.get("admin_factor", 1.0)))



class WorkOrders:
    """Work orders, their log and escalations."""

    def __init__(self, ctx: Ctx, registry: Registry, limits: TimeLimits | None = None) -> None:
        self.db, self.clock = ctx.db, ctx.clock
        self.registry = registry
        self.limits = limits or TimeLimits()
        self.alarms: Alarms | None = None           # set by the store: alarm state for the closing rule

    def auto_order_for_alarm(self, alarm_id: int) -> int:
        """Open the automatic work order of an open, critical, not suppressed alarm; 1 if one was opened.

        One open order per alarm key: a key whose order is still open gets no second one.
        """
        a = self.db.one("SELECT key, site_id, device_id, severity, suppressed_by, closed_ns, type, message_zh, "
                        "message_en FROM alarms WHERE id = ?", (alarm_id,))
        if (a is None or a["closed_ns"] is not None or a["severity"] != "critical"
                or a["suppressed_by"] is not None or not self._no_open_order_for_key(a["key"])):
            return 0
        self._create_work_order(site_id=a["site_id"], device_id=a["device_id"], alarm_id=alarm_id,
                                title=a["message_en"] or a["type"], description=a["message_zh"],
                                severity="critical", created_by=SYSTEM)
        return 1

    def follow_up_inspection_item(self, inspection_id: int, site_id: str, item: str, note: str,
                                  created_by: str, severity: str = "minor") -> int | None:
        """Open the follow-up order of a failed patrol item (once per inspection and item); its id, or
        None if the item has one already."""
        if self.db.one("SELECT id FROM work_orders WHERE inspection_id = ? AND inspection_item = ?",
                       (inspection_id, item)):
            return None
        return self._create_work_order(site_id=site_id, device_id=None, alarm_id=None,
                                       title=f"Patrol finding: {item}",
                                       description=f"巡检不合格 / failed patrol item: {item}" + (f" — {note}" if note else ""),
                                       severity=severity, created_by=created_by, inspection=(inspection_id, item))

    def _no_open_order_for_key(self, key: str) -> bool:
        return self.db.one("SELECT w.id FROM work_orders w JOIN alarms a ON a.id = w.alarm_id "
                           "WHERE a.key = ? AND w.state <> 'closed'", (key,)) is None

    def _create_work_order(self, *, site_id: str, device_id: str | None, alarm_id: int | None, title: str,
                           description: str, severity: str, created_by: str, assignee: str | None = None,
                           inspection: tuple[int, str] | None = None) -> int:
        site = self.registry.site(site_id)
        owner = self.registry.customer(site["customer_id"])["manager"]
        lim = self.limits.limits[severity]
        now = self.clock()
        insp_id, item = inspection or (None, None)
        wo = self.db.insert(
            "INSERT INTO work_orders (site_id, device_id, alarm_id, title, description, severity, state, owner, "
            "created_ns, created_by, response_due_ns, arrival_due_ns, repair_due_ns, updated_ns, inspection_id, "
            "inspection_item) VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (site_id, device_id, alarm_id, title, description, severity, owner, now, created_by,
             now + lim.response_s * NS, now + lim.arrival_s * NS, now + lim.repair_s * NS, now, insp_id, item))
        self._wo_log(wo, created_by, "create", None, "new", description)
        if assignee is not None:
            self._assign(wo, assignee, created_by)
        return wo

    def create_work_order(self, *, site_id: str, title: str, severity: str, created_by: str,
                          device_id: str | None = None, alarm_id: int | None = None, description: str = "",
                          assignee: str | None = None) -> dict:
        """Create a work order by hand or from an alarm; due times from :attr:`limits`."""
        if severity not in SEVERITIES:
            raise Invalid(f"severity must be one of {SEVERITIES}, got {severity!r}")
        if not title.strip():
            raise Invalid("title must not be empty")
        with self.db.tx():
            self.registry.site(site_id)
            if device_id is not None:
                dev = self.registry.device(device_id)
                if dev["site_id"] != site_id:
                    raise Invalid(f"device {device_id!r} is not on site {site_id!r}")
            if alarm_id is not None:
                a = self.alarms.alarm(alarm_id)
                if a["site_id"] != site_id:
                    raise Invalid(f"alarm {alarm_id} is not on site {site_id!r}")
                if self.db.one("SELECT id FROM work_orders WHERE alarm_id = ? AND state <> 'closed'", (alarm_id,)):
                    raise Conflict(f"alarm {alarm_id} already has an open work order")
            wo = self._create_work_order(site_id=site_id, device_id=device_id, alarm_id=alarm_id, title=title,
                                         description=description, severity=severity, created_by=created_by,
                                         assignee=assignee)
        return self.work_order(wo)

    def _wo_log(self, wo: int, user_id: str, action: str, from_state: str | None, to_state: str | None,
                note: str = "") -> None:
        self.db.run("INSERT INTO work_order_log (work_order_id, time_ns, user_id, action, from_state, to_state, "
                    "note) VALUES (?, ?, ?, ?, ?, ?, ?)", (wo, self.clock(), user_id, action, from_state,
                                                          to_state, note))

    def _assign(self, wo: int, engineer: str, by: str) -> None:
        u = self.db.one("SELECT role, active FROM users WHERE id = ?", (engineer,))
        if u is None or u["role"] != "engineer" or not u["active"]:
            raise Invalid(f"assignee {engineer!r} is not an active engineer")
        self.db.run("UPDATE work_orders SET assignee = ?, updated_ns = ? WHERE id = ?", (engineer, self.clock(), wo))
        self._wo_log(wo, by, "assign", None, None, engineer)

    def assign_work_order(self, wo_id: int, engineer: str, by: str, site_ids: Collection[str] | None = None) -> dict:
        with self.db.tx():
            w = self.work_order(wo_id, site_ids)
            if w["state"] in ("resolved", "closed"):
                raise Conflict(f"work order {wo_id} is {w['state']}; it cannot be reassigned")
            self._assign(wo_id, engineer, by)
        return self.work_order(wo_id)

    def transition_work_order(self, wo_id: int, to_state: str, by: str, note: str = "",
                              site_ids: Collection[str] | None = None) -> dict:
        """Move a work order one step along new → dispatched → on_site → resolved → closed.

        Dispatching needs an assignee; closing needs a resolution note (``note``, or the one
        given when resolving) and, for an order opened from an alarm, the alarm's condition
        cleared (returned to normal).
        """
        if to_state not in WO_STATES:
            raise Invalid(f"state must be one of {WO_STATES}, got {to_state!r}")
        with self.db.tx():
            w = self.work_order(wo_id, site_ids)
            if WO_NEXT.get(w["state"]) != to_state:
                raise Conflict(f"work order {wo_id}: cannot go from {w['state']!r} to {to_state!r} "
                               f"(next allowed: {WO_NEXT.get(w['state'])!r})")
            now = self.clock()
            sets = {f"{to_state}_ns": now, f"{to_state}_by": by, "state": to_state, "updated_ns": now}
            if to_state == "dispatched" and not w["assignee"]:
                raise Conflict(f"work order {wo_id}: assign an engineer before dispatching")
            if to_state == "resolved" and note.strip():
                sets["resolution_note"] = note
            if to_state == "closed":
                resolution = note.strip() or w["resolution_note"].strip()
                if not resolution:
                    raise Conflict(f"work order {wo_id}: closing needs a resolution note")
                sets["resolution_note"] = resolution
                if w["alarm_id"] is not None:
                    a = self.alarms.alarm(w["alarm_id"])
                    if a["active"]:
                        raise Conflict(f"work order {wo_id}: alarm {w['alarm_id']} is still active; "
                                       f"it must be cleared before closing")
            n = self.db.run(f"UPDATE work_orders SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ? AND state = ?",
                            (*sets.values(), wo_id, w["state"]))
            if n != 1:                                # another instance moved it meanwhile
                raise Conflict(f"work order {wo_id} changed state concurrently; reload and retry")
            self._wo_log(wo_id, by, "transition", w["state"], to_state, note)
        return self.work_order(wo_id)

    def _wo_row(self, r: dict, now: int) -> dict:
        stage = {"new": "response", "dispatched": "arrival", "on_site": "repair"}.get(r["state"])
        r["due_ns"] = r[f"{stage}_due_ns"] if stage else None
        r["stage"] = stage
        r["overdue"] = bool(stage and now > r["due_ns"])
        for st, done in (("response", "dispatched_ns"), ("arrival", "on_site_ns"), ("repair", "resolved_ns")):
            due = r[f"{st}_due_ns"]
            r[f"{st}_ok"] = (r[done] <= due) if r[done] is not None else (False if now > due else None)
        r["in_time"] = None if r["state"] not in ("resolved", "closed") else bool(
            r["response_ok"] and r["arrival_ok"] and r["repair_ok"])
        return r

    _WO_SELECT = "SELECT w.*, s.customer_id, s.engineer_group FROM work_orders w JOIN sites s ON s.id = w.site_id"

    def work_order(self, wo_id: int, site_ids: Collection[str] | None = None) -> dict:
        """One work order with due time of its current stage, overdue flag and per-stage compliance."""
        frag, params = sql_in("w.site_id", site_ids)
        row = self.db.one(f"{self._WO_SELECT} WHERE w.id = ? AND {frag}", (wo_id, *params))
        if row is None:
            raise NotFound(f"work order {wo_id} does not exist")
        return self._wo_row(row, self.clock())

    def work_orders(self, site_ids: Collection[str] | None = None, *, site_id: str | None = None,
                    state: str | None = None, assignee: str | None = None, customer_id: str | None = None,
                    overdue: bool | None = None, created_from_ns: int | None = None,
                    created_to_ns: int | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        if state is not None and state not in WO_STATES:
            raise Invalid(f"state must be one of {WO_STATES}, got {state!r}")
        frag, params = sql_in("w.site_id", site_ids)
        where = [frag]
        for col, val in (("w.site_id", site_id), ("w.state", state), ("w.assignee", assignee),
                         ("s.customer_id", customer_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if created_from_ns is not None:
            where.append("w.created_ns >= ?")
            params.append(created_from_ns)
        if created_to_ns is not None:
            where.append("w.created_ns < ?")
            params.append(created_to_ns)
        now = self.clock()
        if overdue is not None:
            expr = ("((w.state = 'new' AND w.response_due_ns < ?) OR (w.state = 'dispatched' AND "
                    "w.arrival_due_ns < ?) OR (w.state = 'on_site' AND w.repair_due_ns < ?))")
            where.append(expr if overdue else f"NOT {expr}")
            params += [now, now, now]
        rows = self.db.rows(f"{self._WO_SELECT} WHERE {' AND '.join(where)} ORDER BY w.id DESC LIMIT ? OFFSET ?",
                            (*params, int(limit), int(offset)))
        return [self._wo_row(r, now) for r in rows]

    def work_order_log(self, wo_id: int) -> list[dict]:
        return self.db.rows("SELECT time_ns, user_id, action, from_state, to_state, note FROM work_order_log "
                            "WHERE work_order_id = ? ORDER BY id", (wo_id,))

    def escalate_overdue(self) -> list[dict]:
        """Escalate every overdue open order; return the escalations made now.

        Level 1 goes to the site's customer manager as soon as a stage is overdue; level 2
        goes to every active admin once it is overdue by ``admin_factor`` × the stage limit.
        Each (order, stage, level, person) is escalated once.
        """
        now = self.clock()
        made: list[dict] = []
        with self.db.tx():
            admins = [r["id"] for r in self.db.rows("SELECT id FROM users WHERE role = 'admin' AND active = 1")]
            for w in self.work_orders(overdue=True, limit=100000):
                stage, due = w["stage"], w["due_ns"]
                allowed = due - w["created_ns"]
                targets: list[tuple[int, str]] = [(1, w["owner"])] if w["owner"] else []
                if now > due + self.limits.admin_factor * allowed:
                    targets += [(2, a) for a in admins]
                for level, person in targets:
                    n = self.db.run("INSERT INTO escalations (work_order_id, time_ns, stage, level, notified) "
                                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                    (w["id"], now, stage, level, person))
                    if n:
                        made.append({"work_order_id": w["id"], "stage": stage, "level": level, "notified": person,
                                     "time_ns": now})
                        self._wo_log(w["id"], SYSTEM, "escalate", w["state"], w["state"],
                                     f"{stage} overdue: level {level} to {person}")
                top = max((lv for lv, _ in targets), default=0)
                if top > w["escalation_level"]:
                    self.db.run("UPDATE work_orders SET escalation_level = ? WHERE id = ?", (top, w["id"]))
        return made

    def escalations(self, notified: str | None = None, work_order_id: int | None = None,
                    site_ids: Collection[str] | None = None, mail_state: str | None = None) -> list[dict]:
        """Escalations with their order's ``site_id``, oldest first; ``site_ids`` (None = all) limits them
        to the orders of those sites, ``mail_state`` to one delivery state (e.g. ``dead``)."""
        frag, params = sql_in("w.site_id", site_ids)
        where = [frag]
        if mail_state is not None:
            where.append("e.mail_state = ?")
            params.append(mail_state)
        if notified is not None:
            where.append("e.notified = ?")
            params.append(notified)
        if work_order_id is not None:
            where.append("e.work_order_id = ?")
            params.append(work_order_id)
        return self.db.rows(f"SELECT e.id, e.work_order_id, w.site_id, e.time_ns, e.stage, e.level, e.notified, "
                            f"e.mail_state, e.mail_to, e.mail_attempts, e.mail_error, e.mail_sent_ns "
                            f"FROM escalations e JOIN work_orders w ON w.id = e.work_order_id "
                            f"WHERE {' AND '.join(where)} ORDER BY e.id", params)

    def escalation_mails_due(self, limit: int = 100) -> list[dict]:
        """Escalations whose e-mail is not sent yet (``pending``, or ``no_address`` to re-check), oldest
        first, with what a message needs: the order, its site and customer, the stage's due time and
        the addressee's e-mail (``''`` when the user has none or does not exist)."""
        return self.db.rows(
            "SELECT e.id, e.work_order_id, e.time_ns, e.stage, e.level, e.notified, e.mail_state, e.mail_attempts, "
            "e.mail_claim_ns, w.title, w.severity, w.state AS wo_state, w.created_ns, w.response_due_ns, "
            "w.arrival_due_ns, w.repair_due_ns, w.site_id, s.name AS site_name, s.timezone, s.customer_id, "
            "c.name AS customer_name, COALESCE(u.email, '') AS email, u.id AS user_id "
            "FROM escalations e JOIN work_orders w ON w.id = e.work_order_id JOIN sites s ON s.id = w.site_id "
            "JOIN customers c ON c.id = s.customer_id LEFT JOIN users u ON u.id = e.notified "
            "WHERE e.mail_state IN ('pending', 'no_address') ORDER BY e.id LIMIT ?", (int(limit),))

    def claim_escalation_mail(self, escalation_id: int, lease_s: float = 300.0) -> bool:
        """Take the right to send one escalation's e-mail; False if it is sent or another sender holds
        it (a claim older than ``lease_s`` is taken over: its sender died mid-send)."""
        now = self.clock()
        with self.db.tx():
            n = self.db.run("UPDATE escalations SET mail_claim_ns = ? WHERE id = ? "
                            "AND mail_state IN ('pending', 'no_address') "
                            "AND (mail_claim_ns IS NULL OR mail_claim_ns < ?)",
                            (now, escalation_id, now - int(lease_s * NS)))
        return n == 1

    def record_escalation_mail(self, escalation_id: int, state: str, *, to: str = "", error: str = "",
                               attempted: bool = True) -> None:
        """Record the outcome of a delivery: ``sent`` (to ``to``), ``pending`` (failed; ``error`` says
        why; retried next sweep), ``no_address``, or ``dead`` (failed too often: given up, kept with
        its last error for a person to see).  A sent escalation is never changed again."""
        if state not in ("sent", "pending", "no_address", "dead"):
            raise Invalid(f"mail state must be sent, pending, no_address or dead, got {state!r}")
        with self.db.tx():
            self.db.run("UPDATE escalations SET mail_state = ?, mail_to = ?, mail_error = ?, "
                        "mail_attempts = mail_attempts + ?, mail_sent_ns = ?, mail_claim_ns = NULL "
                        "WHERE id = ? AND mail_state <> 'sent'",
                        (state, to, error[:1000], int(attempted), self.clock() if state == "sent" else None,
                         escalation_id))

    def weekly_review(self, start_ns: int, site_ids: Collection[str] | None = None) -> dict:
        """Review of the week [start, start + 7 d): open, overdue and closed-in-time orders, by engineer and customer."""
        end = start_ns + 7 * 86400 * NS
        now = self.clock()
        frag, params = sql_in("w.site_id", site_ids)
        rows = [self._wo_row(r, min(now, end)) for r in self.db.rows(
            f"{self._WO_SELECT} WHERE {frag} AND w.created_ns < ? AND (w.closed_ns IS NULL OR w.closed_ns >= ?)",
            (*params, end, start_ns))]

        def blank() -> dict:
            return {"open": 0, "overdue": 0, "closed": 0, "closed_in_time": 0}

        total, by_eng, by_cust = blank(), {}, {}
        for r in rows:
            is_open = r["closed_ns"] is None or r["closed_ns"] >= end
            closed = not is_open
            for agg in (total, by_eng.setdefault(r["assignee"] or "(unassigned)", blank()),
                        by_cust.setdefault(r["customer_id"], blank())):
                agg["open"] += is_open
                agg["overdue"] += bool(is_open and r["overdue"])
                agg["closed"] += closed
                agg["closed_in_time"] += bool(closed and r["in_time"])
        return {"start_ns": start_ns, "end_ns": end, "total": total, "by_engineer": by_eng, "by_customer": by_cust,
                "orders": rows}

    def customer_work_orders(self, customer_id: str, start_ns: int, end_ns: int) -> dict:
        """Work orders of a customer created in [start, end) with time-limit compliance.

        Returns ``{"orders": [...], "compliance": {...}}`` where compliance counts, per stage
        (response, arrival, repair), orders in time / late / pending and the in-time ratio.
        """
        orders = self.work_orders(customer_id=customer_id, created_from_ns=start_ns, created_to_ns=end_ns,
                                  limit=100000)
        comp: dict[str, Any] = {}
        for st in ("response", "arrival", "repair"):
            ok = sum(1 for o in orders if o[f"{st}_ok"] is True)
            late = sum(1 for o in orders if o[f"{st}_ok"] is False)
            comp[st] = {"in_time": ok, "late": late, "pending": len(orders) - ok - late,
                        "ratio": ok / (ok + late) if ok + late else None}
        done = [o for o in orders if o["in_time"] is not None]
        comp["closed_or_resolved"] = len(done)
        comp["all_stages_in_time"] = sum(1 for o in done if o["in_time"])
        return {"orders": orders, "compliance": comp}

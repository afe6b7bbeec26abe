"""Alarms: the ISA-18.2 record of every alarm key, fed by analytics events and worked by operators.

One open alarm per key.  States (:data:`workflow.vocab.ALARM_STATES`) follow the ISA-18.2
transition diagram; every transition is audited; every activation (raise time) is kept for the
alarm KPIs.  An open critical alarm not suppressed by design has an automatic work order
(:meth:`workflow.workorders.WorkOrders.auto_order_for_alarm`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from core.model import AlarmEvent
from workflow import alarm_json
from workflow.db import Conflict, Ctx, Invalid, NotFound, sql_in, to_json
from workflow.vocab import ALARM_STATES, SEVERITIES, SYSTEM

if TYPE_CHECKING:
    from workflow.workorders import WorkOrders

MAX_SHELVE_NS = 8 * 3600 * 10**9          # one shift: ISA-18.2 clause 16.3 "shelving shall be time-limited"


class Alarms:
    """Alarm records, their activations and audit trail."""

    def __init__(self, ctx: Ctx) -> None:
        self.db, self.clock = ctx.db, ctx.clock
        self.orders: WorkOrders | None = None        # set by the store: automatic work orders

    # the derived ISA-18.2 state: the stored base_state column (migration 6) unless a shelve is in force
    _STATE_SQL = "CASE WHEN a.base_state <> 'cleared' AND a.shelved_until_ns > ? THEN 'shelved' ELSE a.base_state END"

    def upsert_alarm_events(self, events: Iterable[AlarmEvent]) -> dict[str, int]:
        """Store alarm raises, updates and clears from analytics; idempotent.

        Dedup by ``key``: at most one open alarm per key.  A raise for a key with an open
        alarm updates it (a new activation if the alarm had returned to normal); a clear
        returns it to normal (ISA-18.2: ``rtn-unacked`` if not yet acknowledged, else closed
        as ``cleared``).  An event for the current activation (same key and raise time) with
        another severity, evidence, message or suppression updates the open alarm.  Re-sending
        an event already stored changes nothing.  An open critical alarm that is not suppressed
        by design has an automatic work order: raised as critical, updated to critical or
        released from suppression, it opens one unless the key has an open order already.

        Returns counts: ``raised``, ``reactivated``, ``updated``, ``cleared``, ``unchanged``,
        ``work_orders``.
        """
        out = {"raised": 0, "reactivated": 0, "updated": 0, "cleared": 0, "unchanged": 0, "work_orders": 0}
        with self.db.tx():
            if self.db.dialect == "postgresql":       # several API / analytics instances: one writer at a time
                self.db.run("SELECT pg_advisory_xact_lock(4242002)")
            for ev in events:
                self._apply_event(ev, out)
        return out

    def _check_event(self, ev: AlarmEvent) -> None:
        if ev.severity not in SEVERITIES:
            raise Invalid(f"alarm {ev.key!r}: severity must be one of {SEVERITIES}, got {ev.severity!r}")
        if not self.db.one("SELECT id FROM sites WHERE id = ?", (ev.site_id,)):
            raise NotFound(f"alarm {ev.key!r}: site {ev.site_id!r} does not exist")
        if ev.cleared_ns is not None and ev.cleared_ns < ev.raised_ns:
            raise Invalid(f"alarm {ev.key!r}: cleared_ns {ev.cleared_ns} before raised_ns {ev.raised_ns}")

    def _apply_event(self, ev: AlarmEvent, out: dict[str, int]) -> None:
        self._check_event(ev)
        now = self.clock()
        seen = self.db.one("SELECT alarm_id, cleared_ns FROM alarm_activations WHERE key = ? AND raised_ns = ?",
                           (ev.key, ev.raised_ns))
        if seen is not None:
            updated = seen["cleared_ns"] is None and self._update_current(seen["alarm_id"], ev, now, out)
            if ev.cleared_ns is not None and seen["cleared_ns"] is None:
                out["work_orders"] += self._clear(seen["alarm_id"], ev, now)
                out["cleared"] += 1
            elif not updated:
                out["unchanged"] += 1
            return
        if ev.raised_ns < (self._last_cleared(ev.key) or -1):
            out["unchanged"] += 1           # an old activation arriving after a newer one was cleared
            return
        open_ = self.db.one("SELECT id FROM alarms WHERE key = ? AND closed_ns IS NULL", (ev.key,))
        if open_ is None:
            alarm_id = self.db.insert(
                "INSERT INTO alarms (key, type, site_id, device_id, severity, first_raised_ns, raised_ns, active, "
                "suppressed_by, message_zh, message_en, evidence, updated_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (ev.key, ev.type, ev.site_id, ev.device_id, ev.severity, ev.raised_ns, ev.raised_ns,
                 ev.suppressed_by, ev.message_zh, ev.message_en, to_json(ev.evidence), now))
            self._audit(alarm_id, SYSTEM, "raise", detail={"raised_ns": ev.raised_ns})
            out["raised"] += 1
        else:
            alarm_id = open_["id"]
            self.db.run("UPDATE alarms SET raised_ns = ?, cleared_ns = NULL, active = 1, acked = 0, "
                        "activations = activations + 1, severity = ?, suppressed_by = ?, message_zh = ?, "
                        "message_en = ?, evidence = ?, updated_ns = ? WHERE id = ?",
                        (ev.raised_ns, ev.severity, ev.suppressed_by, ev.message_zh, ev.message_en,
                         to_json(ev.evidence), now, alarm_id))
            self._audit(alarm_id, SYSTEM, "reactivate", detail={"raised_ns": ev.raised_ns})
            out["reactivated"] += 1
        out["work_orders"] += self.orders.auto_order_for_alarm(alarm_id)
        self.db.run("INSERT INTO alarm_activations (alarm_id, key, raised_ns) VALUES (?, ?, ?)",
                    (alarm_id, ev.key, ev.raised_ns))
        if ev.cleared_ns is not None:
            out["work_orders"] += self._clear(alarm_id, ev, now)
            out["cleared"] += 1

    def _update_current(self, alarm_id: int, ev: AlarmEvent, now: int, out: dict[str, int]) -> bool:
        """Take a new severity, evidence, message or suppression of the open alarm's current activation."""
        a = self.db.one("SELECT raised_ns, closed_ns, severity, suppressed_by, message_zh, message_en, evidence "
                        "FROM alarms WHERE id = ?", (alarm_id,))
        if a is None or a["closed_ns"] is not None or a["raised_ns"] != ev.raised_ns:
            return False
        new = {"severity": ev.severity, "suppressed_by": ev.suppressed_by, "message_zh": ev.message_zh,
               "message_en": ev.message_en, "evidence": to_json(ev.evidence)}
        changed = {k: v for k, v in new.items() if a[k] != v}
        if not changed:
            return False
        self.db.run(f"UPDATE alarms SET {', '.join(f'{k} = ?' for k in changed)}, updated_ns = ? WHERE id = ?",
                    (*changed.values(), now, alarm_id))
        detail: dict[str, Any] = {k: [a[k], v] for k, v in changed.items() if k in ("severity", "suppressed_by")}
        if "evidence" in changed:
            detail["evidence"] = ev.evidence
        self._audit(alarm_id, SYSTEM, "update", detail=detail)
        out["updated"] += 1
        out["work_orders"] += self.orders.auto_order_for_alarm(alarm_id)
        return True

    def _last_cleared(self, key: str) -> int | None:
        row = self.db.one("SELECT MAX(cleared_ns) AS c FROM alarm_activations WHERE key = ?", (key,))
        return row["c"] if row else None

    def _clear(self, alarm_id: int, ev: AlarmEvent, now: int) -> int:
        """Return the alarm's current activation to normal; return the work orders this opened."""
        a = self.db.one("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        assert a is not None
        self.db.run("UPDATE alarm_activations SET cleared_ns = ? WHERE key = ? AND raised_ns = ?",
                    (ev.cleared_ns, ev.key, ev.raised_ns))
        if a["closed_ns"] is not None or a["raised_ns"] != ev.raised_ns:
            return 0                     # a clear of an older activation: the current one stays
        shelved = a["shelved_until_ns"] is not None and a["shelved_until_ns"] > now
        close = bool(a["acked"]) or a["suppressed_by"] is not None or shelved
        self.db.run("UPDATE alarms SET active = 0, cleared_ns = ?, closed_ns = ?, updated_ns = ? WHERE id = ?",
                    (ev.cleared_ns, now if close else None, now, alarm_id))
        self._audit(alarm_id, SYSTEM, "clear", detail={"cleared_ns": ev.cleared_ns, "closed": close})
        # alarms suppressed by this one come back into annunciation (ISA-18.2 clause 17 designed suppression);
        # a critical one among them starts what a new critical alarm starts
        back = self.db.rows("SELECT id FROM alarms WHERE suppressed_by = ? AND closed_ns IS NULL", (a["key"],))
        self.db.run("UPDATE alarms SET suppressed_by = NULL, updated_ns = ? WHERE suppressed_by = ? "
                    "AND closed_ns IS NULL", (now, a["key"]))
        return sum(self.orders.auto_order_for_alarm(r["id"]) for r in back)

    def _audit(self, alarm_id: int, user_id: str | None, action: str, note: str = "",
               detail: dict | None = None) -> None:
        self.db.run("INSERT INTO alarm_audit (alarm_id, time_ns, user_id, action, note, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (alarm_id, self.clock(), user_id, action, note, to_json(detail or {})))

    def _alarm_row(self, r: dict, raw_evidence: bool = False) -> dict:
        if not raw_evidence:
            r["evidence"] = json.loads(r["evidence"])
        r["active"] = bool(r["active"])
        r["acked"] = bool(r["acked"])
        return r

    def alarm(self, alarm_id: int, site_ids: Collection[str] | None = None) -> dict:
        """One alarm with its derived ISA-18.2 ``state``; NotFound if absent or outside ``site_ids``."""
        frag, params = sql_in("a.site_id", site_ids)
        row = self.db.one(f"SELECT a.*, s.customer_id, {self._STATE_SQL} AS state FROM alarms a "
                          f"JOIN sites s ON s.id = a.site_id WHERE a.id = ? AND {frag}",
                          (self.clock(), alarm_id, *params))
        if row is None:
            raise NotFound(f"alarm {alarm_id} does not exist")
        return self._alarm_row(row)

    def alarms(self, site_ids: Collection[str] | None = None, *, site_id: str | None = None,
               device_id: str | None = None, severity: str | None = None, state: str | None = None,
               customer_id: str | None = None, since_ns: int | None = None, until_ns: int | None = None,
               open_only: bool = False, limit: int = 100, offset: int = 0,
               raw_evidence: bool = False) -> list[dict]:
        """Alarms visible in ``site_ids`` (None = all), newest first, filtered.

        ``since_ns``/``until_ns`` select alarms whose life [first raise, close] overlaps the interval.
        ``raw_evidence`` leaves ``evidence`` as the stored JSON text (for a caller that only re-encodes it).
        """
        where, params = self._filters(site_ids, site_id=site_id, device_id=device_id, severity=severity,
                                      state=state, customer_id=customer_id, since_ns=since_ns, until_ns=until_ns,
                                      open_only=open_only)
        sql = (f"SELECT a.*, s.customer_id, {self._STATE_SQL} AS state FROM alarms a "
               f"JOIN sites s ON s.id = a.site_id WHERE {where} ORDER BY a.raised_ns DESC, a.id DESC LIMIT ? OFFSET ?")
        rows = self.db.rows(sql, (self.clock(), *params, int(limit), int(offset)))
        return [self._alarm_row(r, raw_evidence) for r in rows]

    def alarms_json(self, site_ids: Collection[str] | None = None, *, fields: Sequence[str], staff: bool = True,
                    limit: int = 100, offset: int = 0, **filters: Any) -> bytes:
        """The alarms of :meth:`alarms` as one JSON array, each alarm an object of ``fields`` built by
        the database (no Python object per alarm): see :func:`workflow.alarm_json.select_json`."""
        where, params = self._filters(site_ids, **filters)
        return alarm_json.list_body(self.db, where, params, self.clock(), fields, staff, int(limit), int(offset))

    def _filters(self, site_ids: Collection[str] | None, *, site_id: str | None = None,
                 device_id: str | None = None, severity: str | None = None, state: str | None = None,
                 customer_id: str | None = None, since_ns: int | None = None, until_ns: int | None = None,
                 open_only: bool = False) -> tuple[str, list[Any]]:
        """The WHERE clause of an alarm list (``a`` alarms, ``s`` sites) and its parameters."""
        if state is not None and state not in ALARM_STATES:
            raise Invalid(f"state must be one of {ALARM_STATES}, got {state!r}")
        if severity is not None and severity not in SEVERITIES:
            raise Invalid(f"severity must be one of {SEVERITIES}, got {severity!r}")
        # the visible sites are a filter, not an index lookup ("+" on SQLite): the newest-first index
        # (alarms_raised) then serves the sort and the scan stops at the page's last alarm
        frag, params = sql_in("+a.site_id" if self.db.dialect == "sqlite" else "a.site_id", site_ids)
        where = [frag]
        for col, val in (("a.site_id", site_id), ("a.device_id", device_id), ("a.severity", severity),
                         ("s.customer_id", customer_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since_ns is not None:
            where.append("(a.closed_ns IS NULL OR a.closed_ns >= ?)")
            params.append(since_ns)
        if until_ns is not None:
            where.append("a.first_raised_ns < ?")
            params.append(until_ns)
        if open_only:
            where.append("a.closed_ns IS NULL")
        if state == "shelved":                    # served by the (base_state, raised_ns, id) index
            where.append("a.base_state <> 'cleared' AND a.shelved_until_ns > ?")
            params.append(self.clock())
        elif state is not None:
            where.append("a.base_state = ? AND (a.base_state = 'cleared' OR a.shelved_until_ns IS NULL "
                         "OR a.shelved_until_ns <= ?)")
            params += [state, self.clock()]
        return " AND ".join(where), params

    def alarms_version(self) -> int:
        """A counter that changes with every committed write to the alarms table, by any process.

        Database triggers bump it (migration 4), so it covers every instance sharing the
        database.  Read it *before* reading the alarms it is to validate.
        """
        row = self.db.one("SELECT n FROM change_counters WHERE name = 'alarms'")
        return int(row["n"]) if row else 0

    def next_shelve_expiry_ns(self, now_ns: int) -> int | None:
        """The earliest shelve expiry after ``now_ns``: when a derived alarm state next changes by itself."""
        row = self.db.one("SELECT MIN(shelved_until_ns) AS t FROM alarms WHERE shelved_until_ns > ?", (now_ns,))
        return int(row["t"]) if row and row["t"] is not None else None

    def ack_alarm(self, alarm_id: int, user_id: str, note: str = "",
                  site_ids: Collection[str] | None = None) -> dict:
        """Acknowledge: active-unacked → active-acked; rtn-unacked → cleared (closed)."""
        with self.db.tx():
            a = self.alarm(alarm_id, site_ids)
            if a["state"] == "cleared":
                raise Conflict(f"alarm {alarm_id} is already cleared")
            if a["acked"]:
                raise Conflict(f"alarm {alarm_id} is already acknowledged")
            now = self.clock()
            close = not a["active"]
            n = self.db.run("UPDATE alarms SET acked = 1, acked_ns = ?, acked_by = ?, ack_note = ?, closed_ns = ?, "
                            "updated_ns = ? WHERE id = ? AND acked = 0 AND active = ?",
                            (now, user_id, note, now if close else None, now, alarm_id, int(a["active"])))
            if n != 1:
                raise Conflict(f"alarm {alarm_id} changed concurrently; reload and retry")
            self._audit(alarm_id, user_id, "ack", note, {"closed": close})
        return self.alarm(alarm_id)

    def shelve_alarm(self, alarm_id: int, user_id: str, until_ns: int, reason: str,
                     site_ids: Collection[str] | None = None) -> dict:
        """Shelve an open alarm until ``until_ns`` (at most 8 h ahead, ISA-18.2 clause 16.3); reason required."""
        now = self.clock()
        if not reason or not reason.strip():
            raise Invalid("shelving needs a reason")
        if not now < until_ns <= now + MAX_SHELVE_NS:
            raise Invalid(f"shelve expiry must be in the future and at most 8 h ahead "
                          f"(got {(until_ns - now) / 3.6e12:.2f} h)")
        with self.db.tx():
            a = self.alarm(alarm_id, site_ids)
            if a["state"] == "cleared":
                raise Conflict(f"alarm {alarm_id} is cleared; only open alarms can be shelved")
            self.db.run("UPDATE alarms SET shelved_until_ns = ?, shelved_by = ?, shelve_reason = ?, updated_ns = ? "
                        "WHERE id = ?", (until_ns, user_id, reason, now, alarm_id))
            self._audit(alarm_id, user_id, "shelve", reason, {"until_ns": until_ns})
        return self.alarm(alarm_id)

    def unshelve_alarm(self, alarm_id: int, user_id: str, site_ids: Collection[str] | None = None) -> dict:
        with self.db.tx():
            a = self.alarm(alarm_id, site_ids)
            if a["state"] != "shelved":
                raise Conflict(f"alarm {alarm_id} is not shelved (state {a['state']})")
            now = self.clock()
            self.db.run("UPDATE alarms SET shelved_until_ns = NULL, updated_ns = ? WHERE id = ?", (now, alarm_id))
            self._audit(alarm_id, user_id, "unshelve")
        return self.alarm(alarm_id)

    def alarm_audit(self, alarm_id: int) -> list[dict]:
        rows = self.db.rows("SELECT time_ns, user_id, action, note, detail FROM alarm_audit WHERE alarm_id = ? "
                            "ORDER BY id", (alarm_id,))
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    def alarm_activations(self, site_ids: Collection[str] | None, start_ns: int, end_ns: int) -> list[dict]:
        """Activations (raise times) in [start, end) with key, site, severity and engineer group."""
        frag, params = sql_in("a.site_id", site_ids)
        return self.db.rows(
            f"SELECT v.key, v.raised_ns, v.cleared_ns, a.site_id, a.severity, a.type, a.suppressed_by, "
            f"s.engineer_group "
            f"FROM alarm_activations v JOIN alarms a ON a.id = v.alarm_id JOIN sites s ON s.id = a.site_id "
            f"WHERE {frag} AND v.raised_ns >= ? AND v.raised_ns < ? ORDER BY v.raised_ns",
            (*params, start_ns, end_ns))

    def customer_alarms(self, customer_id: str, start_ns: int, end_ns: int) -> list[dict]:
        """Alarms of a customer first raised in [start, end), oldest first."""
        rows = self.db.rows(f"SELECT a.*, s.customer_id, {self._STATE_SQL} AS state FROM alarms a "
                            f"JOIN sites s ON s.id = a.site_id WHERE s.customer_id = ? AND a.first_raised_ns >= ? "
                            f"AND a.first_raised_ns < ? ORDER BY a.first_raised_ns, a.id",
                            (self.clock(), customer_id, start_ns, end_ns))
        return [self._alarm_row(r) for r in rows]

"""Inspections: patrol (巡检) plans per site, the scheduled patrols, missed ones, and recorded results.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import TYPE_CHECKING

from workflow.db import NS, Conflict, Ctx, Invalid, NotFound, sql_in, to_json
from workflow.vocab import INSPECTION_STATES

if TYPE_CHECKING:
    from workflow.registry import Registry
    from workflow.workorders import WorkOrders

class Inspections:
    """Patrol plans and patrols."""

    def __init__(self, ctx: Ctx, registry: Registry, orders: WorkOrders) -> None:
        self.db, self.clock = ctx.db, ctx.clock
        self.registry, self.orders = registry, orders

    def create_inspection_plan(self, site_id: str, name: str, interval_s: int, checklist: list[str],
                               first_due_ns: int, created_by: str, grace_s: int = 86400) -> dict:
        """A patrol (巡檢) plan: every ``interval_s`` from ``first_due_ns``; missed after ``grace_s``."""
        if not checklist or not all(isinstance(c, str) and c.strip() for c in checklist):
            raise Invalid("checklist must be a non-empty list of non-empty item texts")
        if len(set(checklist)) != len(checklist):
            raise Invalid("checklist items must be unique")
        if not 3600 <= interval_s <= 366 * 86400:
            raise Invalid(f"interval must be 1 h .. 366 d, got {interval_s} s")
        if not 0 <= grace_s <= interval_s:
            raise Invalid(f"grace must be 0 .. interval, got {grace_s} s")
        with self.db.tx():
            self.registry.site(site_id)
            pid = self.db.insert(
                "INSERT INTO inspection_plans (site_id, name, interval_s, grace_s, checklist, first_due_ns, "
                "created_ns, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (site_id, name, interval_s, grace_s, to_json(checklist), first_due_ns, self.clock(), created_by))
            self.db.run("INSERT INTO inspections (plan_id, site_id, due_ns, state) VALUES (?, ?, ?, 'scheduled')",
                        (pid, site_id, first_due_ns))
        return self.inspection_plan(pid)

    def inspection_plan(self, plan_id: int, site_ids: Collection[str] | None = None) -> dict:
        frag, params = sql_in("site_id", site_ids)
        row = self.db.one(f"SELECT * FROM inspection_plans WHERE id = ? AND {frag}", (plan_id, *params))
        if row is None:
            raise NotFound(f"inspection plan {plan_id} does not exist")
        row["checklist"] = json.loads(row["checklist"])
        return row

    def inspection_plans(self, site_ids: Collection[str] | None = None, site_id: str | None = None) -> list[dict]:
        frag, params = sql_in("site_id", site_ids)
        if site_id is not None:
            frag += " AND site_id = ?"
            params.append(site_id)
        rows = self.db.rows(f"SELECT * FROM inspection_plans WHERE {frag} ORDER BY id", params)
        for r in rows:
            r["checklist"] = json.loads(r["checklist"])
        return rows

    def refresh_inspections(self) -> int:
        """Flag missed patrols (not done by due + grace) and schedule the next ones; return how many were missed."""
        now = self.clock()
        missed = 0
        with self.db.tx():
            for p in self.db.rows("SELECT * FROM inspection_plans WHERE active = 1"):
                for _ in range(1000):          # bounded catch-up after a long outage
                    last = self.db.one("SELECT * FROM inspections WHERE plan_id = ? ORDER BY due_ns DESC LIMIT 1",
                                       (p["id"],))
                    assert last is not None
                    if last["state"] == "scheduled" and now > last["due_ns"] + p["grace_s"] * NS:
                        self.db.run("UPDATE inspections SET state = 'missed' WHERE id = ?", (last["id"],))
                        missed += 1
                        last["state"] = "missed"
                    if last["state"] != "scheduled":
                        nxt = last["due_ns"] + p["interval_s"] * NS
                        self.db.run("INSERT INTO inspections (plan_id, site_id, due_ns, state) "
                                    "VALUES (?, ?, ?, 'scheduled') ON CONFLICT DO NOTHING", (p["id"], p["site_id"], nxt))
                        if nxt + p["grace_s"] * NS < now:
                            continue
                    break
        return missed

    def inspections(self, site_ids: Collection[str] | None = None, *, site_id: str | None = None,
                    state: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        frag, params = sql_in("i.site_id", site_ids)
        if site_id is not None:
            frag += " AND i.site_id = ?"
            params.append(site_id)
        if state is not None:
            if state not in INSPECTION_STATES:
                raise Invalid(f"state must be scheduled, done or missed, got {state!r}")
            frag += " AND i.state = ?"
            params.append(state)
        rows = self.db.rows(f"SELECT i.*, p.name AS plan_name, p.checklist FROM inspections i "
                            f"JOIN inspection_plans p ON p.id = i.plan_id WHERE {frag} "
                            f"ORDER BY i.due_ns DESC, i.id DESC LIMIT ? OFFSET ?", (*params, int(limit), int(offset)))
        follow = self._follow_ups([r["id"] for r in rows])
        for r in rows:
            r["checklist"] = json.loads(r["checklist"])
            r["results"] = json.loads(r["results"])
            r["follow_up_orders"] = follow.get(r["id"], [])
        return rows

    def inspection(self, inspection_id: int, site_ids: Collection[str] | None = None) -> dict:
        frag, params = sql_in("i.site_id", site_ids)
        row = self.db.one(f"SELECT i.*, p.name AS plan_name, p.checklist FROM inspections i "
                          f"JOIN inspection_plans p ON p.id = i.plan_id WHERE i.id = ? AND {frag}",
                          (inspection_id, *params))
        if row is None:
            raise NotFound(f"inspection {inspection_id} does not exist")
        row["checklist"] = json.loads(row["checklist"])
        row["results"] = json.loads(row["results"])
        row["follow_up_orders"] = self._follow_ups([inspection_id]).get(inspection_id, [])
        return row

    def _follow_ups(self, inspection_ids: list[int]) -> dict[int, list[int]]:
        """inspection id → ids of the work orders its failed items opened."""
        frag, params = sql_in("inspection_id", inspection_ids)
        out: dict[int, list[int]] = {}
        for r in self.db.rows(f"SELECT id, inspection_id FROM work_orders WHERE {frag} ORDER BY id", params):
            out.setdefault(int(r["inspection_id"]), []).append(int(r["id"]))
        return out

    def record_inspection(self, inspection_id: int, engineer: str, results: dict[str, dict], note: str = "",
                          site_ids: Collection[str] | None = None) -> dict:
        """Record a patrol's results: one ``{"ok": bool, "note": str}`` per checklist item, all items required."""
        with self.db.tx():
            i = self.inspection(inspection_id, site_ids)
            if i["state"] == "done":
                raise Conflict(f"inspection {inspection_id} is already recorded")
            missing = [c for c in i["checklist"] if c not in results]
            extra = [k for k in results if k not in i["checklist"]]
            if missing or extra:
                raise Invalid(f"inspection {inspection_id}: results must cover exactly the checklist; "
                              f"missing {missing}, unknown {extra}")
            for k, v in results.items():
                if not isinstance(v, dict) or not isinstance(v.get("ok"), bool):
                    raise Invalid(f"inspection {inspection_id}: item {k!r} needs {{'ok': true|false, 'note': ...}}")
            now = self.clock()
            self.db.run("UPDATE inspections SET state = 'done', done_ns = ?, engineer = ?, results = ?, note = ? "
                        "WHERE id = ?", (now, engineer, to_json(results), note, inspection_id))
            p = self.inspection_plan(i["plan_id"])
            self.db.run("INSERT INTO inspections (plan_id, site_id, due_ns, state) VALUES (?, ?, ?, 'scheduled') "
                        "ON CONFLICT DO NOTHING", (p["id"], p["site_id"], i["due_ns"] + p["interval_s"] * NS))
            for item in i["checklist"]:                   # a failed item opens its follow-up order
                if not results[item]["ok"]:
                    self.orders.follow_up_inspection_item(inspection_id, i["site_id"], item,
                                                          str(results[item].get("note") or ""), engineer)
        return self.inspection(inspection_id)

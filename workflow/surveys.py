"""Surveys: customers' satisfaction ratings (1–5) of closed work orders and monthly reports.
"""

from __future__ import annotations

from collections.abc import Collection

from workflow.db import Conflict, Ctx, Invalid, NotFound, month_bounds_ns, sql_in
from workflow.vocab import SURVEY_KINDS


class Surveys:
    """Survey answers and their summaries."""

    def __init__(self, ctx: Ctx) -> None:
        self.db, self.clock = ctx.db, ctx.clock


    def add_survey(self, customer_id: str, kind: str, ref: str, rating: int, comment: str, user_id: str) -> dict:
        """A satisfaction survey answer (rating 1–5) after a closed work order or a monthly report (``YYYY-MM``)."""
        if kind not in SURVEY_KINDS:
            raise Invalid(f"survey kind must be one of {SURVEY_KINDS}, got {kind!r}")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise Invalid(f"rating must be an integer 1..5, got {rating!r}")
        if len(comment) > 4000:
            raise Invalid("comment must be at most 4000 characters")
        with self.db.tx():
            if kind == "work_order":
                if not str(ref).isdigit():
                    raise Invalid(f"work order survey ref must be a work order id, got {ref!r}")
                w = self.db.one("SELECT w.state, s.customer_id FROM work_orders w JOIN sites s ON s.id = w.site_id "
                                "WHERE w.id = ?", (int(ref),))
                if w is None or w["customer_id"] != customer_id:
                    raise NotFound(f"work order {ref} does not exist")
                if w["state"] != "closed":
                    raise Conflict(f"work order {ref} is not closed yet")
            else:
                month_bounds_ns(ref)
            if self.db.one("SELECT id FROM surveys WHERE kind = ? AND ref = ? AND user_id = ?", (kind, ref, user_id)):
                raise Conflict(f"a survey for {kind} {ref} was already answered by {user_id!r}")
            sid = self.db.insert("INSERT INTO surveys (customer_id, kind, ref, rating, comment, user_id, created_ns) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (customer_id, kind, str(ref), rating, comment, user_id, self.clock()))
        return self.db.one("SELECT * FROM surveys WHERE id = ?", (sid,)) or {}

    def surveys(self, customer_ids: Collection[str] | None = None, start_ns: int | None = None,
                end_ns: int | None = None, kind: str | None = None) -> list[dict]:
        frag, params = sql_in("customer_id", customer_ids)
        if start_ns is not None:
            frag += " AND created_ns >= ?"
            params.append(start_ns)
        if end_ns is not None:
            frag += " AND created_ns < ?"
            params.append(end_ns)
        if kind is not None:
            frag += " AND kind = ?"
            params.append(kind)
        return self.db.rows(f"SELECT * FROM surveys WHERE {frag} ORDER BY created_ns, id", params)

    def survey_results(self, customer_ids: Collection[str] | None = None, start_ns: int | None = None,
                       end_ns: int | None = None) -> dict:
        """Count, mean rating and distribution (1..5) of survey answers, overall and per kind."""
        rows = self.surveys(customer_ids, start_ns, end_ns)

        def summary(rs: list[dict]) -> dict:
            dist = {str(k): sum(1 for r in rs if r["rating"] == k) for k in range(1, 6)}
            return {"count": len(rs), "mean_rating": (sum(r["rating"] for r in rs) / len(rs)) if rs else None,
                    "distribution": dist}

        out = summary(rows)
        out["by_kind"] = {k: summary([r for r in rows if r["kind"] == k]) for k in SURVEY_KINDS}
        out["answers"] = rows
        return out

"""Exports for spreadsheets: telemetry series, alarms, work orders and survey answers as CSV or
Excel (``?format=csv|xlsx``), with the same filters and tenancy as the JSON routes they mirror.

CSV is UTF-8 with a byte-order mark (so Excel opens Chinese text correctly); a text cell that
starts with ``= + - @`` gets a leading apostrophe, so no cell is ever run as a formula.  Excel
files are written by openpyxl in write-only mode.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import ClockDep, InfluxDep, ScopeDep, SettingsDep, StoreDep, check_filters
from api.models import AlarmState, Severity, WoState, alarm_out, to_ns, ts, work_order_out
from api.routes.surveys import _ids
from api.routes.telemetry import ChannelsQuery, series
from api.validation import ApiTime

router = APIRouter(prefix="/export", tags=["export"])
Format = Annotated[Literal["csv", "xlsx"], Query(description="csv (UTF-8 with BOM) or xlsx")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(v):
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    if isinstance(v, dict | list):
        return orjson.dumps(v).decode()
    return v


def table_response(name: str, header: Sequence[str], rows: Iterable[Sequence], fmt: str) -> Response:
    """The rows as a CSV or xlsx download named ``name.csv`` / ``name.xlsx``."""
    cleaned = [[_cell(v) for v in r] for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(cleaned)
        body, media = ("\ufeff" + buf.getvalue()).encode("utf-8"), "text/csv; charset=utf-8"
    else:
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet(name[:31])
        ws.append(list(header))
        for r in cleaned:
            ws.append(r)
        out = io.BytesIO()
        wb.save(out)
        body, media = out.getvalue(), XLSX
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"',
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


ALARM_COLS = ("id", "site_id", "device_id", "type", "severity", "state", "first_raised_at", "raised_at",
              "cleared_at", "acked", "acked_at", "acked_by", "ack_note", "activations", "message_zh", "message_en",
              "evidence")


@router.get("/alarms")
def export_alarms(scope: ScopeDep, store: StoreDep, format: Format = "csv",
                  site_id: Annotated[str | None, Query(max_length=64)] = None,
                  severity: Severity | None = None, state: AlarmState | None = None,
                  since: ApiTime | None = None, until: ApiTime | None = None, open_only: bool = False,
                  limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> Response:
    """Alarms of the caller's sites (filters as ``GET /alarms``); staff columns blank for customers."""
    check_filters(scope, store, site_id)
    rows = store.alarms(scope.site_ids, site_id=site_id, severity=severity, state=state,
                        since_ns=to_ns(since) if since else None, until_ns=to_ns(until) if until else None,
                        open_only=open_only, limit=limit)
    out = [alarm_out(a, scope.is_staff) for a in rows]
    return table_response("alarms", ALARM_COLS, ([a[c] for c in ALARM_COLS] for a in out), format)


WO_COLS = ("id", "site_id", "device_id", "alarm_id", "title", "severity", "state", "assignee", "created_at",
           "response_due", "arrival_due", "repair_due", "dispatched_at", "on_site_at", "resolved_at", "closed_at",
           "overdue", "response_ok", "arrival_ok", "repair_ok", "in_time", "resolution_note")


@router.get("/workorders")
def export_work_orders(scope: ScopeDep, store: StoreDep, format: Format = "csv",
                       site_id: Annotated[str | None, Query(max_length=64)] = None, state: WoState | None = None,
                       overdue: bool | None = None,
                       limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> Response:
    """Work orders of the caller's sites with due times and time-limit compliance."""
    check_filters(scope, store, site_id)
    rows = store.work_orders(scope.site_ids, site_id=site_id, state=state, overdue=overdue, limit=limit)
    out = [work_order_out(w, scope.is_staff).model_dump() for w in rows]
    return table_response("workorders", WO_COLS, ([w[c] for c in WO_COLS] for w in out), format)


@router.get("/surveys")
def export_surveys(scope: ScopeDep, store: StoreDep, format: Format = "csv",
                   customer_id: Annotated[str | None, Query(max_length=64)] = None,
                   start: ApiTime | None = None, end: ApiTime | None = None) -> Response:
    """Survey answers of the caller's customers."""
    ids = _ids(scope, customer_id)
    rows = store.surveys(ids, to_ns(start) if start else None, to_ns(end) if end else None)
    cols = ("id", "customer_id", "kind", "ref", "rating", "comment", "user_id", "created_at")
    return table_response("surveys", cols, ([s["id"], s["customer_id"], s["kind"], s["ref"], s["rating"],
                                             s["comment"], s["user_id"], ts(s["created_ns"])] for s in rows), format)


@router.get("/telemetry/{device_id}/series")
async def export_series(device_id: str, request: Request, scope: ScopeDep, store: StoreDep, influx: InfluxDep,
                        settings: SettingsDep, clock: ClockDep, format: Format = "csv",
                        channels: ChannelsQuery = None, start: ApiTime | None = None, end: ApiTime | None = None,
                        interval_s: Annotated[int | None, Query(ge=1, le=31 * 86400)] = None,
                        agg: Literal["mean", "min", "max"] = "mean") -> Response:
    """A device's downsampled series (as ``GET /telemetry/{device}/series``), one column per channel."""
    resp = await series(device_id, request, scope, store, influx, settings, clock, channels, start, end,
                        interval_s, agg)
    data = orjson.loads(resp.body)
    names = list(data["values"])
    rows = ([t, *(data["values"][n][i] for n in names)] for i, t in enumerate(data["times"]))
    return table_response(f"{device_id}-series", ["time", *names], rows, format)

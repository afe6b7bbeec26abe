"""Dashboard figures for the web pages: a site's energy and cost today and this month, the fleet's
tiles, a site's energy flow, the staff's list of engineers and the channel glossary in zh/en.

Every 元 figure comes with its evidence: the kWh of each time-of-use period, the period's price
and their product, so a customer can redo the sum.  Energies come from the meters' cumulative
counters (``energy_import`` / ``energy_export``) read every 15 min (the last value of each
15-min step, differenced; a counter going back — a meter reset or replacement — contributes
nothing); a PV inverter without an ``energy_export`` counter is integrated from its 15-min
mean ``active_power``.  The month's days before today are cached for ``HISTORY_TTL_S`` (5 min:
late data replayed by a collector shows within that), today is read on every request.  "Today" and "this month" start at the site's local midnight (the site's
time zone) and end now, so the month's figures never depend on any analysis window.

Billing meters of a site are the LV meters of its transformers (fleet file), else every meter.
Tenancy: a site the caller cannot see answers 404 like a missing one.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from fastapi import APIRouter, HTTPException, Request

from api.deps import ClockDep, InfluxDep, ScopeDep, StoreDep
from api.glossary import glossary
from api.models import ts
from api.routes.registry import visible_site
from api.routes.telemetry import TtlCache, _ident, _query, _rfc3339
from core.channels import DEVICE_KINDS
from core.units import NS

router = APIRouter(prefix="/dashboard", tags=["dashboard"])
STEP_S = 900
ONLINE_WINDOW_S = 900          # a device that sent nothing for 15 min shows as offline
HISTORY_TTL_S = 300            # the month's days before today are re-read at most this often


def local_starts(now_ns: int, tz: str) -> tuple[int, int]:
    """Local midnight of today and of the first of this month in ``tz``, as UTC ns."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(422, f"unknown time zone {tz!r}") from None
    local = datetime.fromtimestamp(now_ns / NS, zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    return int(day.timestamp()) * NS, int(month.timestamp()) * NS


def billing_meters(request: Request, store, site_id: str) -> list[dict]:
    """The LV meters of the site's transformers (fleet file), else every meter of the site."""
    meters = list(store.devices(site_id=site_id, kind="meter"))
    fleet = getattr(request.app.state, "fleet", None)
    site = fleet.sites.get(site_id) if fleet is not None else None
    ids = {t.meter for t in site.transformers if t.meter} if site is not None else set()
    chosen = [m for m in meters if m["id"] in ids]
    return chosen or meters


def step_columns(influx, kind: str, site_id: str, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
    """One query for a site's devices of ``kind``: per 15-min bucket and device the last
    ``energy_import`` (``ei``) and ``energy_export`` (``ee``) counter values and the mean
    ``active_power`` (``p``), from one bucket before ``start_ns`` (the counters' base) to ``end_ns``."""
    q = (f"SELECT last({_ident('energy_import')}) AS ei, last({_ident('energy_export')}) AS ee, "
         f"mean({_ident('active_power')}) AS p FROM {_ident(kind)} WHERE site = $site AND time >= $start "
         f"AND time < $end GROUP BY time({STEP_S}s), device fill(none)")
    return _query(influx, q, {"site": site_id, "start": _rfc3339(start_ns - STEP_S * NS), "end": _rfc3339(end_ns)})


def month_columns(request: Request, influx, kind: str, site_id: str, month0: int, day0: int,
                  now_ns: int) -> dict[str, np.ndarray]:
    """:func:`step_columns` from ``month0`` to now: the days before today come from a cache kept
    ``HISTORY_TTL_S`` (they change only when late data is replayed), today is always queried."""
    cache = getattr(request.app.state, "dashboard_history", None)
    if cache is None:
        cache = request.app.state.dashboard_history = TtlCache(HISTORY_TTL_S, size=1024)
    cut = day0 - STEP_S * NS                          # today's query starts one bucket before midnight
    today = step_columns(influx, kind, site_id, day0, now_ns)
    if cut <= month0 - STEP_S * NS:
        return today
    past = cache.get_or_compute((kind, site_id, month0, cut), lambda: step_columns(influx, kind, site_id, month0, cut))
    if len(past.get("time", ())) == 0:
        return today
    if len(today.get("time", ())) == 0:
        return past
    return {k: np.concatenate([past[k], today[k]]) for k in set(past) & set(today)}


def counter_steps(cols: dict, column: str, device_ids: set[str], start_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """15-min energy steps [kWh] of a Wh counter column, over ``device_ids``: (bucket start, kWh).

    A step is the counter's increase from the last value of one bucket with a value to the last
    value of the next, stamped with the later bucket; a decrease (reset, replacement) counts 0."""
    def steps(t, e):
        ok = np.isfinite(e)
        t, e = t[ok], e[ok]
        return t[1:], np.diff(e) / 1000.0
    return _per_device(cols, column, device_ids, start_ns, steps)


def power_steps(cols: dict, device_ids: set[str], start_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """15-min energy steps [kWh] integrated from the 15-min mean ``active_power`` [W] (production > 0)."""
    def steps(t, p):
        ok = np.isfinite(p)
        return t[ok], np.clip(p[ok], 0, None) * STEP_S / 3600 / 1000
    return _per_device(cols, "p", device_ids, start_ns, steps)


def _per_device(cols: dict, column: str, device_ids: set[str], start_ns: int, steps
                ) -> tuple[np.ndarray, np.ndarray]:
    t_all = cols.get("time", np.empty(0, dtype=np.int64))
    if len(t_all) == 0 or "device" not in cols or column not in cols:
        return np.empty(0, dtype=np.int64), np.empty(0)
    dev = cols["device"]
    x_all = np.asarray(cols[column], dtype=np.float64)
    ts_out, kwh_out = [], []
    for d in sorted(device_ids):
        sel = dev == d
        t, kwh = steps(t_all[sel], x_all[sel])
        kwh = np.where(np.isfinite(kwh) & (kwh >= 0), kwh, 0.0)
        keep = t >= start_ns
        ts_out.append(t[keep])
        kwh_out.append(kwh[keep])
    if not ts_out:
        return np.empty(0, dtype=np.int64), np.empty(0)
    return np.concatenate(ts_out), np.concatenate(kwh_out)


def _money(t: np.ndarray, kwh: np.ndarray, tariff, idx: np.ndarray | None = None) -> dict:
    """kWh, 元 and the evidence: per TOU period kWh (2 decimals) × price = 元 (2 decimals); the
    totals are the sums of those lines, so anyone can redo them from what is printed."""
    if idx is None:
        idx = tariff.period_index(t) if len(t) else np.empty(0, dtype=np.int64)
    sums = np.bincount(idx, weights=np.nan_to_num(kwh), minlength=len(tariff.periods))
    periods = []
    for i, p in enumerate(tariff.periods):
        k = round(float(sums[i]), 2)
        price = float(tariff.prices[i])
        periods.append({"period": p, "kwh": k, "price_yuan_per_kwh": price, "yuan": round(k * price, 2)})
    return {"kwh": round(sum(x["kwh"] for x in periods), 2), "yuan": round(sum(x["yuan"] for x in periods), 2),
            "periods": periods}


def _midnights(start_ns: int, end_ns: int, tz: str) -> list[tuple[str, int]]:
    """(local date, its midnight as UTC ns) for each day from ``start_ns``'s day to ``end_ns``."""
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(start_ns / NS, zone).date()
    out = []
    while True:
        m = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * NS
        if m > end_ns:
            return out
        out.append((day.isoformat(), m))
        day = date.fromordinal(day.toordinal() + 1)


def _daily(t: np.ndarray, kwh: np.ndarray, tariff, tz: str, month0: int, now_ns: int) -> list[dict]:
    """Energy and cost of each local day of the month (a step belongs to the day of its start)."""
    if len(t) == 0:
        return []
    idx = tariff.period_index(t)
    days = _midnights(month0, now_ns, tz)
    which = np.searchsorted(np.array([m for _, m in days], dtype=np.int64), t, side="right") - 1
    out = []
    for i, (d, _) in enumerate(days):
        sel = which == i
        if sel.any():
            m = _money(t[sel], kwh[sel], tariff, idx[sel])
            out.append({"date": d, "kwh": m["kwh"], "yuan": m["yuan"]})
    return out


def _tariff(site: dict):
    from analytics.tariffs import TariffError, load_tariff

    if not site["tariff"]:
        raise HTTPException(422, f"site {site['id']!r} has no tariff configured")
    try:
        return load_tariff(site["tariff"])
    except (TariffError, ValueError) as exc:
        raise HTTPException(422, f"site {site['id']!r} tariff: {exc}") from None


def _pv(pv_cols: dict, meter_cols: dict, pvs: set[str], meters: set[str], starts: tuple[int, int]) -> dict:
    """PV yield today / this month, the export to the grid and the self-consumed share."""
    day0, month0 = starts
    t, kwh = counter_steps(pv_cols, "ee", pvs, month0)
    if len(t) == 0:
        t, kwh = power_steps(pv_cols, pvs, month0)
    te, ex = counter_steps(meter_cols, "ee", meters, month0)
    out: dict[str, Any] = {}
    for name, t0 in (("today", day0), ("month", month0)):
        y = float(kwh[t >= t0].sum())
        x = float(ex[te >= t0].sum())
        out[name] = {"yield_kwh": round(y, 3), "export_kwh": round(x, 3),
                     "self_consumption": round(max(0.0, y - x) / y, 4) if y > 0 else None}
    return out


def _max_demand(cols: dict, meters: set[str], month0: int) -> tuple[float | None, int | None]:
    """Highest 15-min mean of the billing meters' summed active power this month [kW] and its time."""
    if len(cols.get("time", ())) == 0 or "device" not in cols:
        return None, None
    p = np.asarray(cols["p"], dtype=np.float64)
    sel = np.isin(cols["device"], list(meters)) & (cols["time"] >= month0) & np.isfinite(p)
    t, p = cols["time"][sel], p[sel]
    if len(t) == 0:
        return None, None
    uniq, inv = np.unique(t, return_inverse=True)
    total = np.zeros(len(uniq))
    np.add.at(total, inv, p)
    i = int(np.argmax(total))
    return round(float(total[i]) / 1000.0, 1), int(uniq[i])


@router.get("/sites/{site_id}")
def site_dashboard(site_id: str, request: Request, scope: ScopeDep, store: StoreDep, influx: InfluxDep,
                   clock: ClockDep) -> dict:
    """Today's and this month's energy and cost (with the TOU evidence), daily energy of the month,
    PV yield and self-consumption, and the month's maximum demand against the contract."""
    site = visible_site(store, scope, site_id)
    tariff = _tariff(site)
    now_ns = clock()
    day0, month0 = local_starts(now_ns, site["timezone"])
    meters = {m["id"] for m in billing_meters(request, store, site_id)}
    pvs = {d["id"] for d in store.devices(site_id=site_id) if d["kind"] == "pv_inverter"}
    # the meters' and the inverters' month, one query each, side by side
    with ThreadPoolExecutor(2) as pool:
        meter_f = pool.submit(month_columns, request, influx, "meter", site_id, month0, day0, now_ns)
        pv_f = pool.submit(month_columns, request, influx, "pv_inverter", site_id, month0, day0, now_ns) if pvs else None
        meter_cols, pv_cols = meter_f.result(), pv_f.result() if pv_f else None
    t, kwh = counter_steps(meter_cols, "ei", meters, month0)
    peak_kw, peak_ns = _max_demand(meter_cols, meters, month0)
    contract = site["contract_demand_kw"]
    return {
        "site_id": site_id, "name": site["name"], "timezone": site["timezone"], "now": ts(now_ns),
        "tariff": {"id": tariff.id, "name": tariff.name, "prices_are_example": tariff.prices_are_example},
        "billing_meters": sorted(meters),
        "today": {"start": ts(day0), **_money(t[t >= day0], kwh[t >= day0], tariff)},
        "month": {"start": ts(month0), **_money(t, kwh, tariff),
                  "days": _daily(t, kwh, tariff, site["timezone"], month0, now_ns)},
        "pv": _pv(pv_cols, meter_cols, pvs, meters, (day0, month0)) if pvs else None,
        "demand": {"max_kw": peak_kw, "at": ts(peak_ns) if peak_ns else None, "contract_kw": contract,
                   "ratio": round(peak_kw / contract, 4) if peak_kw is not None and contract else None},
    }


def _online(influx, site_id: str, now_ns: int) -> dict[str, bool]:
    """Device id -> sent anything in the last ONLINE_WINDOW_S (every device kind, one query)."""
    kinds = "|".join(DEVICE_KINDS)
    q = (f"SELECT * FROM /^({kinds})$/ WHERE site = $site AND time >= $start GROUP BY device "
         f"ORDER BY time DESC LIMIT 1")
    cols = _query(influx, q, {"site": site_id, "start": _rfc3339(now_ns - ONLINE_WINDOW_S * NS)})
    return {str(d): True for d in cols.get("device", ())}


@router.get("/fleet")
def fleet_tiles(request: Request, scope: ScopeDep, store: StoreDep, influx: InfluxDep, clock: ClockDep) -> list[dict]:
    """One tile per visible site: devices online, open alarms by severity, today's kWh and 元."""
    now_ns = clock()
    open_alarms: dict[str, dict[str, int]] = {}
    for a in store.alarms(scope.site_ids, open_only=True, limit=100_000):
        sev = open_alarms.setdefault(a["site_id"], {})
        sev[a["severity"]] = sev.get(a["severity"], 0) + 1
    tiles = []
    for s in store.sites(scope.site_ids):
        devices = list(store.devices(site_id=s["id"]))
        online = _online(influx, s["id"], now_ns)
        try:                        # a site without a valid tariff or zone shows no cost, not an error
            tariff = _tariff(s)
            day0, _ = local_starts(now_ns, s["timezone"])
        except HTTPException:
            today = None
        else:
            meters = {m["id"] for m in billing_meters(request, store, s["id"])}
            t, kwh = counter_steps(step_columns(influx, "meter", s["id"], day0, now_ns), "ei", meters, day0)
            today = _money(t, kwh, tariff)
        tiles.append({"site_id": s["id"], "name": s["name"], "customer_id": s["customer_id"],
                      "timezone": s["timezone"], "devices": len(devices),
                      "online": sum(1 for d in devices if online.get(d["id"])),
                      "alarms": open_alarms.get(s["id"], {}), "today": today})
    return tiles


@router.get("/sites/{site_id}/flow")
def site_flow(site_id: str, request: Request, scope: ScopeDep, store: StoreDep, influx: InfluxDep) -> dict:
    """Energy-flow graph of a site: grid → transformers → feeders, PV and EV chargers, with live kW."""
    visible_site(store, scope, site_id)
    devices = {d["id"]: d for d in store.devices(site_id=site_id)}
    fleet = getattr(request.app.state, "fleet", None)
    fsite = fleet.sites.get(site_id) if fleet is not None else None
    power = _latest_power(influx, site_id)
    nodes = [{"id": "grid", "kind": "grid", "name": "grid", "kw": None}]
    links = []
    incomers = set()
    for tr in (fsite.transformers if fsite else ()):
        nodes.append({"id": tr.id, "kind": "transformer", "name": tr.id, "kw": power.get(tr.meter),
                      "rated_kva": tr.rated_kva})
        links.append({"source": "grid", "target": tr.id, "kw": power.get(tr.meter)})
        if tr.meter:
            incomers.add(tr.meter)
    bus = "bus"
    nodes.append({"id": bus, "kind": "bus", "name": "bus", "kw": None})
    for tr in (fsite.transformers if fsite else ()):
        links.append({"source": tr.id, "target": bus, "kw": power.get(tr.meter)})
    if not incomers:
        links.append({"source": "grid", "target": bus, "kw": None})
    for d in devices.values():
        if d["id"] in incomers or d["kind"] == "transformer":
            continue
        kw = power.get(d["id"])
        nodes.append({"id": d["id"], "kind": d["kind"], "name": d["name"] or d["id"], "kw": kw})
        if d["kind"] == "pv_inverter":
            links.append({"source": d["id"], "target": bus, "kw": kw})
        else:
            links.append({"source": bus, "target": d["id"], "kw": kw})
    return {"site_id": site_id, "nodes": nodes, "links": links}


def _latest_power(influx, site_id: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in ("meter", "pv_inverter", "ev_charger"):
        q = (f"SELECT last({_ident('active_power')}) AS p FROM {_ident(kind)} WHERE site = $site "
             f"AND time > now() - 1h GROUP BY device")
        cols = _query(influx, q, {"site": site_id})
        for d, p in zip(cols.get("device", ()), cols.get("p", ()), strict=False):
            if p is not None and math.isfinite(float(p)):
                out[str(d)] = round(float(p) / 1000.0, 2)
    return out


@router.get("/engineers")
def engineers(scope: ScopeDep, store: StoreDep) -> list[dict]:
    """Engineers a work order can be assigned to (staff)."""
    scope.require_staff()
    return [{"id": u["id"], "name": u.get("name") or u["id"]} for u in store.users(role="engineer")
            if u.get("active", True)]


@router.get("/glossary")
def channel_glossary(scope: ScopeDep) -> dict:
    """Channel labels and units in zh/en, state words (OCPP, IEC 61851, inverter), device kinds.

    Signed-in users only, like every other route under /api/v1 (``scope`` authenticates)."""
    return glossary()


@router.get("/customers")
def my_customers(scope: ScopeDep, store: StoreDep, clock: ClockDep) -> list[dict]:
    """Status of each customer the caller looks after (staff): open alarms by severity, open and
    overdue orders, escalations of open orders, survey score, time-limit compliance of the orders
    closed in the last 30 days."""
    scope.require_staff()
    now_ns = clock()
    alarms = store.alarms(scope.site_ids, open_only=True, limit=100_000)
    orders = store.work_orders(scope.site_ids, limit=100_000)
    open_ids = {w["id"]: w["customer_id"] for w in orders if w["state"] != "closed"}
    escalated: dict[str, int] = {}
    for e in store.escalations():
        cid = open_ids.get(e["work_order_id"])
        if cid is not None:
            escalated[cid] = escalated.get(cid, 0) + 1
    out = []
    for c in store.customers(scope.customer_ids):
        cid = c["id"]
        sev: dict[str, int] = {}
        for a in alarms:
            if a["customer_id"] == cid:
                sev[a["severity"]] = sev.get(a["severity"], 0) + 1
        mine = [w for w in orders if w["customer_id"] == cid]
        closed = [w for w in mine if w["state"] == "closed" and w["closed_ns"] and w["closed_ns"] >= now_ns - 30 * 86400 * NS]
        survey = store.survey_results([cid])
        out.append({"customer_id": cid, "name": c["name"], "manager": c.get("manager"),
                    "sites": len(store.sites(scope.site_ids, customer_id=cid)), "open_alarms": sev,
                    "open_orders": sum(1 for w in mine if w["state"] != "closed"),
                    "overdue_orders": sum(1 for w in mine if w["overdue"]), "escalations": escalated.get(cid, 0),
                    "closed_30d": len(closed), "closed_in_time_30d": sum(1 for w in closed if w["in_time"]),
                    "survey_count": survey["count"], "survey_mean": survey["mean_rating"]})
    return out

"""Telemetry: latest values, downsampled time ranges, and energy per TOU period.

InfluxQL is assembled only from allow-listed identifiers: the measurement is the device
kind read from the registry (never from the request), field names must be channels of
:data:`core.channels.CHANNELS`, the aggregate is one of mean/min/max and the interval an
integer number of seconds.  Every user value (site, device, start, end) travels as a
bound parameter (``$site``, ``$device``, ``$start``, ``$end``), so no request text is
ever parsed as InfluxQL (reliability.md §13).  Ranges over ``max_range_days`` and
responses over ``max_points`` are refused with 422 (OWASP API4:2023).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from api.deps import ClockDep, InfluxDep, ScopeDep, SettingsDep, StoreDep
from api.models import EnergyTouOut, LatestOut, SeriesOut, TouPeriodOut, to_ns, ts
from api.routes.registry import visible_device, visible_site
from api.validation import ApiTime
from core.channels import CHANNELS, DEVICE_KINDS
from core.influx import InfluxError
from core.units import NS

router = APIRouter(prefix="/telemetry", tags=["telemetry"])
AGGREGATES = ("mean", "min", "max")
ChannelsQuery = Annotated[str | None, Query(max_length=2000, description="comma-separated channel names "
                                                                         "(core/channels.py); default: all")]


NICE_INTERVALS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                    7 * 86400)
MAX_AUTO_POINTS = 1000


_MISS = object()


class TtlCache:
    """A small thread-safe LRU of query results, each kept ``ttl_s`` seconds.

    Dashboards ask for the same "last 24 h" view again and again; with the default end
    aligned to the interval, those requests share one InfluxDB query per ``ttl_s``.
    Keys hold the device and site, and are looked up only after the tenancy check.

    :meth:`get_or_compute_async` is single-flight: while one request computes a key (in a
    worker thread), the other requests for that key wait for its result instead of sending
    the same query again, so an expiring entry under 50 dashboards costs one InfluxDB query,
    not a burst of them.  A key still asked for in the last fifth of its life is refreshed ahead in
    the background (the current value is served meanwhile, never older than ``ttl_s``), so a busy
    view does not make its requests wait for InfluxDB every ``ttl_s``.  ``ttl_s <= 0`` caches
    nothing (but still shares a running query).
    """

    def __init__(self, ttl_s: float = 5.0, size: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.size, self.clock = ttl_s, size, clock
        self._d: OrderedDict[tuple, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._running: dict[tuple, asyncio.Task] = {}      # touched only from event loops
        self.hits = self.misses = 0

    def _fresh(self, key: tuple, now: float, age: list[float] | None = None) -> object:
        with self._lock:
            hit = self._d.get(key)
            if hit is not None and 0 <= now - hit[0] < self.ttl_s:
                self._d.move_to_end(key)
                self.hits += 1
                if age is not None:
                    age.append(now - hit[0])
                return hit[1]
        return _MISS

    def _put(self, key: tuple, t: float, value: object) -> None:
        with self._lock:
            self.misses += 1
            if self.ttl_s <= 0:
                return
            self._d[key] = (t, value)
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def get_or_compute(self, key: tuple, compute: Callable[[], object]) -> object:
        now = self.clock()
        value = self._fresh(key, now)
        if value is _MISS:
            value = compute()
            self._put(key, now, value)
        return value

    async def get_or_compute_async(self, key: tuple, compute: Callable[[], object]) -> object:
        """Like :meth:`get_or_compute`, ``compute`` (blocking) running in a worker thread, single-flight."""
        now = self.clock()
        age: list[float] = []
        value = self._fresh(key, now, age)
        loop = asyncio.get_running_loop()
        run_key = (id(loop), key)
        task = self._running.get(run_key)
        if value is not _MISS:
            if task is None and age[0] >= 0.8 * self.ttl_s:
                self._start(loop, run_key, key, compute)          # refresh ahead; serve the current value
            return value
        if task is None:
            task = self._start(loop, run_key, key, compute)
        return await asyncio.shield(task)       # a waiter that goes away does not cancel the shared query

    def _start(self, loop: asyncio.AbstractEventLoop, run_key: tuple, key: tuple,
               compute: Callable[[], object]) -> asyncio.Task:
        async def fill() -> object:
            try:
                t = self.clock()
                v = await asyncio.to_thread(compute)
                self._put(key, t, v)
                return v
            finally:
                self._running.pop(run_key, None)

        task = self._running[run_key] = loop.create_task(fill())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())   # retrieved even if nobody waits
        return task


def auto_interval_s(span_s: float, poll_s: float) -> int:
    """The smallest "nice" interval >= the poll interval giving at most 1000 buckets."""
    need = max(poll_s, span_s / MAX_AUTO_POINTS)
    return next((i for i in NICE_INTERVALS_S if i >= need), int(math.ceil(need)))


def parse_channels(text: str | None) -> list[str] | None:
    """Split a comma-separated channel list; 422 naming the first unknown channel."""
    if text is None or not text.strip():
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    for c in names:
        if c not in CHANNELS:
            raise HTTPException(422, f"unknown channel {c[:80]!r}: channels are listed in core/channels.py")
    if len(names) > 50:
        raise HTTPException(422, "at most 50 channels per request")
    return list(dict.fromkeys(names))


def _ident(name: str) -> str:
    """Quote an identifier that is already known to be in an allow-list."""
    if name not in CHANNELS and name not in DEVICE_KINDS:
        raise ValueError(f"identifier {name!r} is not allow-listed")
    return '"' + name + '"'


def series_query(kind: str, channels: list[str], agg: str, interval_s: int) -> str:
    """InfluxQL of a downsampled range query; only allow-listed identifiers and bound parameters."""
    if agg not in AGGREGATES or not isinstance(interval_s, int) or interval_s < 1:
        raise ValueError(f"bad aggregate {agg!r} or interval {interval_s!r}")
    fields = ", ".join(f"{agg}({_ident(c)}) AS {_ident(c)}" for c in channels)
    return (f"SELECT {fields} FROM {_ident(kind)} WHERE site = $site AND device = $device "
            f"AND time >= $start AND time < $end GROUP BY time({interval_s}s) fill(none)")


def _rfc3339(ns: int) -> str:
    return ts(ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _range(start: datetime | None, end: datetime | None, now: int, max_days: int, default_s: int) -> tuple[int, int]:
    end_ns = to_ns(end) if end else now
    start_ns = to_ns(start) if start else end_ns - default_s * NS
    if end_ns <= start_ns:
        raise HTTPException(422, "end must be after start")
    if end_ns - start_ns > max_days * 86400 * NS:
        raise HTTPException(422, f"time range longer than {max_days} days")
    return start_ns, end_ns


def _query(influx, q: str, params: dict) -> dict[str, np.ndarray]:
    try:
        return influx.query_arrays(q, params)
    except InfluxError as exc:
        raise HTTPException(502, f"telemetry database error: {exc}") from None


@router.get("/{device_id}/latest", response_model=LatestOut)
def latest(device_id: str, scope: ScopeDep, store: StoreDep, influx: InfluxDep, settings: SettingsDep,
           channels: ChannelsQuery = None) -> LatestOut:
    """The latest snapshot of a device (within the range limit)."""
    dev = visible_device(store, scope, device_id)
    wanted = parse_channels(channels)
    q = (f"SELECT * FROM {_ident(dev['kind'])} WHERE site = $site AND device = $device "
         f"AND time > now() - {int(settings.max_range_days)}d ORDER BY time DESC LIMIT 1")
    cols = _query(influx, q, {"site": dev["site_id"], "device": dev["id"]})
    names = wanted or sorted(c for c in cols if c in CHANNELS)
    if len(cols.get("time", ())) == 0:
        return LatestOut(device_id=dev["id"], kind=dev["kind"], time=None, values=dict.fromkeys(names))
    values = {}
    for c in names:
        v = cols.get(c)
        x = None if v is None else v[0]
        values[c] = None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
    return LatestOut(device_id=dev["id"], kind=dev["kind"], time=ts(int(cols["time"][0])), values=values)


@router.get("/{device_id}/series", response_model=SeriesOut)
async def series(device_id: str, request: Request, scope: ScopeDep, store: StoreDep, influx: InfluxDep,
                 settings: SettingsDep, clock: ClockDep, channels: ChannelsQuery = None,
                 start: ApiTime | None = None, end: ApiTime | None = None,
                 interval_s: Annotated[int | None, Query(ge=1, le=31 * 86400)] = None,
                 agg: Literal["mean", "min", "max"] = "mean") -> Response:
    """Downsampled time range (mean/min/max per interval) of some channels of a device.

    Default range: the 24 h up to now, with its end rounded up to the interval; default
    interval: the smallest "nice" one (>= the poll interval) giving at most 1000 buckets.

    The checks run on the event loop; the InfluxDB query and the encoding run in a worker
    thread, once per ``EH_TELEMETRY_CACHE_S`` for identical queries (single-flight: concurrent
    requests for the same view share one query), and the cache holds the encoded JSON.
    """
    dev = visible_device(store, scope, device_id)
    names = parse_channels(channels) or ["active_power"]
    if end is None and interval_s is not None:
        now = clock()
        end = ts(-(-now // (interval_s * NS)) * interval_s * NS)
    start_ns, end_ns = _range(start, end, clock(), settings.max_range_days, 86400)
    span_s = (end_ns - start_ns) / NS
    if interval_s is None:
        interval_s = auto_interval_s(span_s, dev["poll_interval_s"])
        if end is None:
            step = interval_s * NS
            end_ns = -(-end_ns // step) * step
            start_ns = end_ns - int(span_s * NS)
    points = math.ceil(span_s / interval_s) * len(names)
    if points > settings.max_points:
        raise HTTPException(422, f"{points} points requested; at most {settings.max_points}: "
                                 f"use a longer interval_s, fewer channels or a shorter range")
    q = series_query(dev["kind"], names, agg, interval_s)
    params = {"site": dev["site_id"], "device": dev["id"], "start": _rfc3339(start_ns), "end": _rfc3339(end_ns)}

    def compute() -> bytes:
        cols = _query(influx, q, params)
        t = cols.get("time", np.empty(0, dtype=np.int64))
        values = {}
        for c in names:
            v = cols.get(c)
            if v is None:
                values[c] = [None] * len(t)
            else:
                arr = np.asarray(v, dtype=np.float64)
                values[c] = [x if math.isfinite(x) else None for x in arr.tolist()]
        # the fields of SeriesOut, in its order; orjson writes datetimes as pydantic does (...Z)
        return orjson.dumps({"device_id": dev["id"], "kind": dev["kind"], "start": ts(start_ns), "end": ts(end_ns),
                             "interval_s": interval_s, "agg": agg, "times": [ts(int(x)) for x in t],
                             "values": values}, option=orjson.OPT_UTC_Z)

    cache: TtlCache = request.app.state.telemetry_cache
    body = await cache.get_or_compute_async((q, tuple(sorted(params.items()))), compute)
    return Response(body, media_type="application/json")


def _site_meters(request: Request, store, site_id: str, device_id: str | None) -> list[str]:
    """The meters whose energy is the site's: ``device_id``, else the fleet's transformer (incomer)
    meters of the site, else its only meter; a site with several meters and no incomer known is asked."""
    meters = [d["id"] for d in store.devices(site_id=site_id, kind="meter")]
    if device_id is not None:
        if device_id not in meters:
            raise HTTPException(404, f"meter {device_id!r} does not exist on site {site_id!r}")
        return [device_id]
    fleet = getattr(request.app.state, "fleet", None)
    site = fleet.sites.get(site_id) if fleet is not None else None
    incomers = [t.meter for t in site.transformers if t.meter in meters] if site is not None else []
    if incomers:
        return incomers
    if len(meters) == 1:
        return meters
    if not meters:
        raise HTTPException(404, f"site {site_id!r} has no meter")
    raise HTTPException(422, f"site {site_id!r} has {len(meters)} meters and no transformer (incomer) meter is "
                             f"known: pass device_id, one of {', '.join(sorted(meters))}")


def _meter_kwh(influx, site_id: str, device_id: str, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(interval end [ns], kWh) per 15 min inside [start, end) from a meter's import counter."""
    q = (f"SELECT last({_ident('energy_import')}) AS e FROM {_ident('meter')} WHERE site = $site AND "
         f"device = $device AND time >= $start AND time < $end GROUP BY time(900s) fill(none)")
    cols = _query(influx, q, {"site": site_id, "device": device_id, "start": _rfc3339(start_ns - 900 * NS),
                              "end": _rfc3339(end_ns)})
    t = cols.get("time", np.empty(0, dtype=np.int64))
    e = np.asarray(cols.get("e", np.empty(0)), dtype=np.float64)
    if len(t) < 2:
        return np.empty(0, dtype=np.int64), np.empty(0)
    kwh = np.diff(e) / 1000.0                       # Wh counter -> kWh per 15-min step
    kwh = np.where((kwh >= 0) & np.isfinite(kwh), kwh, 0.0)   # a counter reset contributes nothing
    keep = (t[1:] >= start_ns) & (t[1:] < end_ns)
    return t[1:][keep], kwh[keep]


@router.get("/sites/{site_id}/energy", response_model=EnergyTouOut)
def energy_by_tou(request: Request, site_id: str, scope: ScopeDep, store: StoreDep, influx: InfluxDep,
                  settings: SettingsDep, clock: ClockDep, device_id: Annotated[str | None, Query(max_length=64)] = None,
                  start: ApiTime | None = None, end: ApiTime | None = None) -> EnergyTouOut:
    """Imported energy per TOU period of the site's tariff (15-min steps of the meters' counters).

    Without ``device_id`` the site's energy is the sum of its transformer (incomer) meters as the
    fleet file declares them, or its only meter; ``meters`` lists the meters summed.
    """
    from analytics.tariffs import TariffError, energy_cost, load_tariff

    site = visible_site(store, scope, site_id)
    meters = _site_meters(request, store, site_id, device_id)
    start_ns, end_ns = _range(start, end, clock(), settings.max_range_days, 86400)
    try:
        tariff = load_tariff(site["tariff"]) if site["tariff"] else None
    except (TariffError, ValueError) as exc:
        raise HTTPException(422, f"site {site_id!r} tariff: {exc}") from None
    if tariff is None:
        raise HTTPException(422, f"site {site_id!r} has no tariff configured")
    parts = [_meter_kwh(influx, site_id, m, start_ns, end_ns) for m in meters]
    t_all = np.concatenate([p[0] for p in parts])
    order = np.argsort(t_all, kind="stable")        # the meters' steps interleaved in time
    cost = energy_cost(t_all[order], np.concatenate([p[1] for p in parts])[order], tariff)
    periods = [TouPeriodOut(period=p, kwh=round(cost["kwh"][p], 6), yuan=round(cost["yuan"][p], 4))
               for p in tariff.periods]
    return EnergyTouOut(site_id=site_id, device_id=meters[0] if len(meters) == 1 else "+".join(meters),
                        meters=meters, start=ts(start_ns), end=ts(end_ns), tariff=tariff.id,
                        total_kwh=round(cost["total_kwh"], 6), periods=periods)

"""Read one site's month from InfluxDB as numpy arrays on a 1-min grid (core.influx only).

Queries use allow-listed identifiers (glossary channels and device kinds) and bound
parameters for every value (site, device, time range), so no request value is ever
spliced into InfluxQL.

Power is resampled to **1-min means** (``GROUP BY time(1m)``): the tariff and savings
functions of :mod:`analytics` take 1-min power (``analytics.tariffs.monthly_bill``) and the
15-min demand is a 15-sample window of it.  Power-quality channels are read as **10-min
means** (``GROUP BY time(10m)``, the IEC 61000-4-30 / GB/T 12325 aggregation interval,
aligned to the same UTC 10-min ticks) and assessed by
``analytics.power_quality.compliance_summary`` with ``period_s = 600``: InfluxDB's cost grows
with buckets x fields, and 10x fewer buckets for the 12 PQ channels make a month's report
several times faster.  The device queries run concurrently (3 at a time).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.channels import CHANNELS, DEVICE_KINDS, SITE_MEASUREMENTS
from core.config import Site
from core.units import NS

MINUTE_NS = 60 * NS

#: Meter channels fetched for power-quality checks (1-min means).
PQ_CHANNELS: tuple[str, ...] = (
    "voltage_l1", "voltage_l2", "voltage_l3", "voltage_l12", "voltage_l23", "voltage_l31",
    "voltage_angle_l2", "voltage_angle_l3", "frequency", "thd_voltage_l1", "thd_voltage_l2", "thd_voltage_l3",
)

#: The channel whose presence measures a device kind's data completeness.
HEARTBEAT: dict[str, str] = {"meter": "active_power", "pv_inverter": "active_power",
                             "ev_charger": "active_power", "transformer": "winding_temperature_l1",
                             "weather_station": "ambient_temperature"}


def _ident(name: str) -> str:
    if name not in CHANNELS and name not in DEVICE_KINDS and name not in SITE_MEASUREMENTS:
        raise ValueError(f"identifier {name!r} is not a glossary channel or device kind")
    return '"' + name + '"'


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SiteArrays:
    """A site's month on the 1-min grid ``time_ns`` (NaN = no data in that minute)."""

    site: Site
    start_ns: int
    end_ns: int
    time_ns: np.ndarray
    main_meters: list[str]
    grid_power_w: np.ndarray                 # sum of main meters' active power [W] (+ import)
    grid_reactive_var: np.ndarray            # sum of main meters' reactive power [var]
    pv_power_w: np.ndarray                   # sum of PV inverters' AC power [W]
    ev_power_w: dict[str, np.ndarray] = field(default_factory=dict)   # per charger [W]
    series: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # device -> {time_ns, channel}
    registers: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # meter -> 15-min last(energy_import)
    pq: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)  # 10-min means
    coverage: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)  # see coverage()


def month_grid(start_ns: int, end_ns: int) -> np.ndarray:
    """1-min grid [start, end) [ns]; ``start_ns`` must be on a whole minute."""
    if start_ns % MINUTE_NS or end_ns <= start_ns:
        raise ValueError(f"month range must start on a whole minute and be non-empty, got {start_ns}..{end_ns}")
    return np.arange(start_ns, end_ns, MINUTE_NS, dtype=np.int64)


def main_meter_ids(site: Site) -> list[str]:
    """Billing meters of a site: the LV meters of its transformers, else every meter of the site."""
    ids = [t.meter for t in site.transformers if t.meter]
    if ids:
        return ids
    return [d.id for d in site.devices if d.kind == "meter"]


def _means(influx: Any, kind: str, device_id: str, site_id: str, channels: list[str],
           start_ns: int, end_ns: int, interval: str = "1m") -> dict[str, np.ndarray]:
    if interval not in ("1m", "10m"):
        raise ValueError(f"interval must be '1m' or '10m', got {interval!r}")
    fields = ", ".join(f"mean({_ident(c)}) AS {_ident(c)}" for c in channels)
    q = (f"SELECT {fields} FROM {_ident(kind)} WHERE site = $site AND device = $device "
         f"AND time >= $start AND time < $end GROUP BY time({interval}) fill(none)")
    return influx.query_arrays(q, {"site": site_id, "device": device_id, "start": _rfc3339(start_ns),
                                   "end": _rfc3339(end_ns)})


def _on_grid(grid: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.full(grid.size, np.nan)
    if t.size:
        idx = (t - grid[0]) // MINUTE_NS
        ok = (idx >= 0) & (idx < grid.size)
        out[idx[ok]] = v[ok]
    return out


def _nansum(arrays: list[np.ndarray], n: int) -> np.ndarray:
    """Element-wise sum ignoring NaN; NaN where every input is NaN (no data at all)."""
    if not arrays:
        return np.full(n, np.nan)
    stack = np.vstack(arrays)
    s = np.nansum(stack, axis=0)
    return np.where(np.isfinite(stack).any(axis=0), s, np.nan)


def _register(influx: Any, device_id: str, site_id: str, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
    """Last ``energy_import`` reading [Wh] of each 15 min, from 15 min before the month (its opening reading)."""
    q = (f"SELECT last({_ident('energy_import')}) AS e FROM {_ident('meter')} WHERE site = $site AND "
         f"device = $device AND time >= $start AND time < $end GROUP BY time(15m) fill(none)")
    return influx.query_arrays(q, {"site": site_id, "device": device_id, "start": _rfc3339(start_ns - 15 * MINUTE_NS),
                                   "end": _rfc3339(end_ns)})


def _slots(minute_starts: np.ndarray, poll_interval_s: float, start_ns: int) -> tuple[np.ndarray, float]:
    """Expected intervals (poll period, at least 1 min) that hold at least one data minute."""
    minutes = max(1, int(np.ceil(poll_interval_s / 60.0 - 1e-9)))
    slots = np.unique((np.asarray(minute_starts, np.int64) - start_ns) // (minutes * MINUTE_NS))
    return start_ns + slots * minutes * MINUTE_NS, minutes * 60.0


def coverage(influx: Any, site: Site, start_ns: int, end_ns: int,
             device_ids: set[str] | None = None) -> dict[str, tuple[np.ndarray, float]]:
    """Intervals that hold data, per device of ``site``: ``device -> (interval starts [ns], interval [s])``.

    The expected interval of a device is its poll period, but at least 1 min: a 5-s meter
    is complete for a minute that holds any sample (history written at 1-min steps, e.g. a
    backfill, counts as complete), a 15-min MQTT device needs one sample per 15 min.
    ``analytics.faults.completeness(starts, 1, interval, start, end)`` of this is the
    device's data completeness.  ``device_ids`` limits the query to those devices.
    """
    out: dict[str, tuple[np.ndarray, float]] = {}
    wanted = [d for d in site.devices if device_ids is None or d.id in device_ids]
    for kind in sorted({d.kind for d in wanted}):
        col = _ident(HEARTBEAT[kind])
        q = (f"SELECT count({col}) AS n FROM {_ident(kind)} WHERE site = $site AND time >= $start "
             f"AND time < $end GROUP BY time(1m), device fill(none)")
        cols = influx.query_arrays(q, {"site": site.id, "start": _rfc3339(start_ns), "end": _rfc3339(end_ns)})
        t, devs, n = cols["time"], cols.get("device", np.empty(0, object)), cols.get("n", np.empty(0))
        for d in wanted:
            if d.kind == kind:
                out[d.id] = _slots(t[(devs == d.id) & (np.nan_to_num(n) > 0)], d.poll_interval_s, start_ns)
    return out


def fetch_site_month(influx: Any, site: Site, start_ns: int, end_ns: int) -> SiteArrays:
    """Query everything the report needs of one site for [start, end)."""
    grid = month_grid(start_ns, end_ns)
    meters = main_meter_ids(site)
    power = ("active_power", "reactive_power", "apparent_power")
    others = [d for d in site.devices if d.kind in ("pv_inverter", "ev_charger")]
    with ThreadPoolExecutor(max_workers=3) as pool:
        meter_jobs = {mid: pool.submit(_means, influx, "meter", mid, site.id, list(power), start_ns, end_ns)
                      for mid in meters}
        pq_jobs = {mid: pool.submit(_means, influx, "meter", mid, site.id, list(PQ_CHANNELS), start_ns, end_ns,
                                    "10m") for mid in meters}
        reg_jobs = {mid: pool.submit(_register, influx, mid, site.id, start_ns, end_ns) for mid in meters}
        other_jobs = {d.id: pool.submit(_means, influx, d.kind, d.id, site.id, ["active_power"], start_ns, end_ns)
                      for d in others}
        fetched = set(meters) | {d.id for d in others}
        rest = {d.id for d in site.devices} - fetched
        covered = pool.submit(coverage, influx, site, start_ns, end_ns, rest) if rest else None
        p_parts, q_parts = [], []
        pq: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        series: dict[str, dict[str, np.ndarray]] = {}
        for mid in meters:
            cols = meter_jobs[mid].result()
            t = cols["time"]
            series[mid] = {"time_ns": grid}
            for c in power:
                series[mid][c] = _on_grid(grid, t, cols.get(c, np.full(t.size, np.nan)))
            if not np.isfinite(series[mid]["apparent_power"]).any():
                del series[mid]["apparent_power"]
            p_parts.append(series[mid]["active_power"])
            q_parts.append(series[mid]["reactive_power"])
            cols = pq_jobs[mid].result()
            chans = {c: cols[c] for c in PQ_CHANNELS if c in cols and np.isfinite(cols[c]).any()}
            if cols["time"].size and chans:
                pq[mid] = (cols["time"], chans)
        pv_parts = []
        ev: dict[str, np.ndarray] = {}
        for d in others:
            cols = other_jobs[d.id].result()
            p = _on_grid(grid, cols["time"], cols.get("active_power", np.full(cols["time"].size, np.nan)))
            series[d.id] = {"time_ns": grid, "active_power": p}
            if d.kind == "pv_inverter":
                pv_parts.append(p)
            else:
                ev[d.id] = p
        # completeness of the fetched devices from their own 1-min data (the heartbeat channel is
        # active_power for meters, PV and EV); the others were counted by ``coverage``
        cov = covered.result() if covered is not None else {}
        registers = {mid: reg for mid in meters if (reg := _energy_register(reg_jobs[mid].result())) is not None}
        cov.update(_own_coverage(site, meters, meter_jobs, others, other_jobs, start_ns))
    return SiteArrays(site=site, start_ns=start_ns, end_ns=end_ns, time_ns=grid, main_meters=meters,
                      grid_power_w=_nansum(p_parts, grid.size), grid_reactive_var=_nansum(q_parts, grid.size),
                      pv_power_w=_nansum(pv_parts, grid.size) if pv_parts else np.zeros(grid.size),
                      ev_power_w=ev, series=series, registers=registers, pq=pq, coverage=cov)


def _energy_register(cols: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(time, energy register) of one meter, None when it has no finite reading."""
    if cols["time"].size and "e" in cols and np.isfinite(cols["e"]).any():
        return cols["time"], cols["e"]
    return None


def _own_coverage(site: Site, meters, meter_jobs: dict, others, other_jobs: dict, start_ns: int) -> dict:
    """Completeness of the fetched devices from their own 1-min active power (their heartbeat channel)."""
    cov = {}
    polls = {d.id: d.poll_interval_s for d in site.devices}
    for mid in meters:
        t_active = meter_jobs[mid].result()
        cov[mid] = _slots(t_active["time"][np.isfinite(t_active.get("active_power", np.full(t_active["time"].size,
                                                                                               np.nan)))],
                          polls.get(mid, 60.0), start_ns)
    for d in others:
        cols = other_jobs[d.id].result()
        ok = np.isfinite(cols.get("active_power", np.full(cols["time"].size, np.nan)))
        cov[d.id] = _slots(cols["time"][ok], d.poll_interval_s, start_ns)
    return cov


def fetch_weather(influx: Any, site: Site, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The site's outdoor temperature as 10-min means over [start, end): ``(time_ns, degC)``.

    Read from the site-level ``weather`` measurement (tags ``customer, site``; see
    ``core.channels.SITE_MEASUREMENTS``); empty arrays when the site has no weather data.
    """
    col = _ident("outdoor_temperature")
    q = (f"SELECT mean({col}) AS t FROM {_ident('weather')} WHERE site = $site AND time >= $start "
         f"AND time < $end GROUP BY time(10m) fill(none)")
    cols = influx.query_arrays(q, {"site": site.id, "start": _rfc3339(start_ns), "end": _rfc3339(end_ns)})
    t = np.asarray(cols.get("time", np.empty(0, np.int64)), dtype=np.int64)
    return t, np.asarray(cols.get("t", np.full(t.size, np.nan)), dtype=np.float64)


def fetch_consumption(influx: Any, site: Site, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The site's consumption on the 1-min grid [start, end): billing meters' net import + PV AC output [W].

    NaN where the billing meters hold no data in that minute.  This is the whole-facility
    quantity of the baseline model (PV output is added back, so sunshine is not a saving).
    """
    grid = month_grid(start_ns, end_ns)
    meters = main_meter_ids(site)
    pvs = [d.id for d in site.devices if d.kind == "pv_inverter"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = {(kind, did): pool.submit(_means, influx, kind, did, site.id, ["active_power"], start_ns, end_ns)
                for kind, ids in (("meter", meters), ("pv_inverter", pvs)) for did in ids}
        parts: dict[str, list[np.ndarray]] = {"meter": [], "pv_inverter": []}
        for (kind, _), job in jobs.items():
            cols = job.result()
            parts[kind].append(_on_grid(grid, cols["time"], cols.get("active_power", np.full(cols["time"].size,
                                                                                              np.nan))))
    return grid, consumption_w(_nansum(parts["meter"], grid.size),
                               _nansum(parts["pv_inverter"], grid.size) if pvs else np.zeros(grid.size))


def consumption_w(grid_power_w: np.ndarray, pv_power_w: np.ndarray) -> np.ndarray:
    """Site consumption [W] = net grid import + PV production (NaN where the grid meters have no data)."""
    return np.asarray(grid_power_w, dtype=np.float64) + np.nan_to_num(np.clip(pv_power_w, 0, None))

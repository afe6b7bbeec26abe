"""The thin I/O layer of analytics: read a site's data from InfluxDB, run the checks, store alarms.

* :func:`fetch_site` — one InfluxQL query per device kind (``GROUP BY device``) plus one for
  ``collector_status``, through :class:`core.influx.InfluxClient` (MessagePack, bound
  parameters ``$site``, ``$start``, ``$end``; identifiers only from the channel glossary
  :data:`core.channels.CHANNELS` and :data:`core.channels.DEVICE_KINDS`).  Period mode
  aggregates to 1-min (``mean`` of gauges, ``last`` of counters and states, ``min`` of
  ``online``); live mode reads raw samples.
* :func:`evaluate_period` — faults, power-quality table and priced savings over a period
  (``energyhost analyze --start … --end …``).
* :class:`PeriodicJobs` — the daily power-quality table and the monthly savings (last 30 days),
  logged and written as JSON to ``$EH_FINDINGS_DIR/<site>/<date>.json`` (started with ``--follow``).
* :class:`Follower` — near-real-time evaluation of a sliding window every few seconds
  (``energyhost analyze --follow``), with on-delays short enough to raise within two poll
  intervals + 10 s for state faults, and raises, updates and clears sent once each to an
  :class:`analytics.sink.AlarmSink` (the workflow store; analytics never imports it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np

from analytics import alarms, assess, tou_check
from analytics import tariffs as tf
from analytics.sink import AlarmSink
from core.channels import CHANNELS, DEVICE_KINDS
from core.config import Fleet, Site
from core.influx import INGEST_HEALTH
from core.model import AlarmEvent, Finding
from core.units import NS

log = logging.getLogger("energyhost.analyze")

MINUTE_NS = 60 * NS

# near-real-time delays: state faults at once, level faults on 2 consecutive polls (5 s polling); current
# unbalance (minor, load-dependent) after a minute, so a load step does not raise and clear it
LIVE_RULES = assess.Rules(voltage_on_delay_s=5, pf_on_delay_s=5, harmonic_on_delay_s=5, unbalance_on_delay_s=60,
                          overload_on_delay_s=5, pv_offline_on_delay_s=5, string_on_delay_s=5,
                          ev_stuck_on_delay_s=60, ev_preparing_max_s=600, pv_underperf_on_delay_s=900)


def _q(ident: str) -> str:
    """Quote an identifier that comes from the glossary (never from a request)."""
    if ident not in CHANNELS and ident not in DEVICE_KINDS and ident not in ("collector_status", "online", "device",
                                                                             "site", INGEST_HEALTH, "dropped_points"):
        raise ValueError(f"identifier {ident!r} is not in the channel glossary")
    return '"' + ident + '"'


class FieldCache:
    """Glossary channels present in each measurement (``SHOW FIELD KEYS``), refreshed every ``ttl_s``."""

    def __init__(self, client, ttl_s: float = 300.0):
        self.client, self.ttl_s = client, ttl_s
        self._cache: dict[str, tuple[float, list[str]]] = {}

    def get(self, kind: str) -> list[str]:
        hit = self._cache.get(kind)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        rows = self.client.query(f"SHOW FIELD KEYS FROM {_q(kind)}")
        keys = sorted({v[0] for s in rows for v in s.get("values") or [] if v and v[0] in CHANNELS})
        self._cache[kind] = (time.monotonic(), keys)
        return keys


def _split_by_device(cols: dict[str, np.ndarray], fields: list[str]) -> dict[str, dict[str, np.ndarray]]:
    t = cols.get("time", np.zeros(0, np.int64))
    if t.size == 0 or "device" not in cols:
        return {}
    dev = cols["device"]
    out = {}
    for d in np.unique(dev):
        m = dev == d
        tt = t[m]
        order = np.argsort(tt, kind="stable")
        out[str(d)] = {"time_ns": tt[order]} | {
            f: np.asarray(cols[f], object if f == "status" else float)[m][order] for f in fields if f in cols}
    return out


def _chunks(start_ns: int, end_ns: int, chunk_s: int | None, step_s: int | None) -> list[tuple[int, int]]:
    """``[start, end)`` cut into spans of ``chunk_s``, each boundary on a multiple of ``step_s`` (so no
    ``GROUP BY time`` bucket is split between two queries)."""
    if chunk_s is None or end_ns - start_ns <= chunk_s * NS:
        return [(start_ns, end_ns)]
    step = (step_s or 1) * NS
    size = max(step, chunk_s * NS - chunk_s * NS % step)
    first = start_ns - start_ns % step + size
    cuts = list(range(first, end_ns, size))
    return list(zip([start_ns, *cuts], [*cuts, end_ns], strict=True))


def _concat(parts: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Join per-chunk ``device → {time_ns, channel…}`` dicts in time order (NaN where a chunk lacks a channel)."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, dict[str, np.ndarray]] = {}
    for dev in sorted({d for p in parts for d in p}):
        mine = [p[dev] for p in parts if dev in p]
        keys = sorted({k for m in mine for k in m if k != "time_ns"})
        out[dev] = {"time_ns": np.concatenate([m["time_ns"] for m in mine])} | {
            k: np.concatenate([m.get(k, np.full(m["time_ns"].size, np.nan)) for m in mine]) for k in keys}
    return out


def _site_queries(site: Site, resolution_s: int | None, fc: FieldCache) -> list[tuple[str, list[str]]]:
    where = '"site" = $site AND time >= $start AND time < $end'
    out = []
    for kind in sorted({d.kind for d in site.devices}):
        names = fc.get(kind)
        if not names:
            continue
        if resolution_s is None:
            sel = ", ".join(_q(f) for f in names)
            q = f"SELECT {sel} FROM {_q(kind)} WHERE {where} GROUP BY \"device\""
        else:
            sel = ", ".join(f"{'mean' if CHANNELS[f].nature == 'gauge' else 'last'}({_q(f)}) AS {_q(f)}"
                            for f in names)
            q = f"SELECT {sel} FROM {_q(kind)} WHERE {where} GROUP BY time({resolution_s}s), \"device\" fill(none)"
        out.append((q, names))
    if resolution_s is None:
        q = f'SELECT "online", "status" FROM "collector_status" WHERE {where} GROUP BY "device"'
    else:
        q = (f'SELECT min("online") AS "online", last("status") AS "status" FROM "collector_status" WHERE {where} '
             f'GROUP BY time({resolution_s}s), "device" fill(none)')
    out.append((q, ["online", "status"]))
    return out


def fetch_site(client, site: Site, start_ns: int, end_ns: int, resolution_s: int | None = 60,
               fields: FieldCache | None = None, chunk_s: int | None = 86400) -> tuple[dict, dict]:
    """Read one site's device data and poll status for ``[start_ns, end_ns)``.

    Parameters
    ----------
    client : core.influx.InfluxClient
    site : core.config.Site
    start_ns, end_ns : int
        Window [ns since epoch, UTC].
    resolution_s : int or None
        Aggregate to this step (``mean`` gauges, ``last`` counters/states, ``min`` online);
        None = raw samples.
    fields : FieldCache, optional
        Reused field lists (live mode).
    chunk_s : int or None
        Longest span of one query [s] (default a day): a month's 1-min query of a site takes
        longer than a client timeout, a day's a fraction of a second.  None = one query.

    Returns
    -------
    data : dict
        device id → {``time_ns``, channel arrays}.
    status : dict
        device id → (time_ns, online, status text: ``ok``, ``timeout``, ``exception_02`` …).
    """
    if end_ns <= start_ns:
        raise ValueError(f"end_ns must be > start_ns, got {start_ns}..{end_ns}")
    if resolution_s is not None and (not isinstance(resolution_s, int) or resolution_s < 1):
        raise ValueError(f"resolution_s must be a positive integer number of seconds or None, got {resolution_s!r}")
    if chunk_s is not None and (not isinstance(chunk_s, int) or chunk_s < 1):
        raise ValueError(f"chunk_s must be a positive integer number of seconds or None, got {chunk_s!r}")
    queries = _site_queries(site, resolution_s, fields or FieldCache(client))
    data_parts, status_parts = [], []
    for a, b in _chunks(int(start_ns), int(end_ns), chunk_s, resolution_s):
        params = {"site": site.id, "start": a, "end": b}
        part: dict[str, dict[str, np.ndarray]] = {}
        for q, names in queries[:-1]:
            part.update(_split_by_device(client.query_arrays(q, params), names))
        data_parts.append(part)
        status_parts.append(_split_by_device(client.query_arrays(queries[-1][0], params), ["online", "status"]))
    data, st = _concat(data_parts), _concat(status_parts)
    status = {d: (v["time_ns"], v["online"], v.get("status", np.full(v["time_ns"].size, None, object)))
              for d, v in st.items() if "online" in v}
    known = {d.id for d in site.devices}
    return {k: v for k, v in data.items() if k in known}, {k: v for k, v in status.items() if k in known}


def fetch_ingest_health(client, site_id: str, start_ns: int, end_ns: int) -> dict[str, dict[str, np.ndarray]]:
    """The collectors' drop records of one site in ``[start_ns, end_ns)``: device id →
    ``{"time_ns", "dropped_points"}`` (``ingest_health``, written by :class:`core.influx.Writer`)."""
    q = (f'SELECT {_q("dropped_points")} FROM {_q(INGEST_HEALTH)} '
         f'WHERE "site" = $site AND time >= $start AND time < $end GROUP BY "device"')
    cols = client.query_arrays(q, {"site": site_id, "start": int(start_ns), "end": int(end_ns)})
    return _split_by_device(cols, ["dropped_points"])


def evaluate_period(fleet: Fleet, client, start_ns: int, end_ns: int, site_ids: Iterable[str] | None = None,
                    rules: assess.Rules | None = None, tariff_dir=None,
                    min_savings_days: float = 3.0) -> dict[str, list[Finding]]:
    """Faults, power-quality table, DL/T 645 meters' TOU-register and clock checks and priced savings of
    each site over a period (1-min data).

    Savings need at least ``min_savings_days`` days of billing-meter data in the period.

    Returns
    -------
    dict
        site id → findings (fault findings, ``pq_*`` table rows, ``saving_*`` ranked by yuan/month).
    """
    out: dict[str, list[Finding]] = {}
    for sid in site_ids or fleet.sites:
        if sid not in fleet.sites:
            raise ValueError(f"unknown site {sid!r}; sites: {', '.join(fleet.sites)}")
        site = fleet.sites[sid]
        data, status = fetch_site(client, site, start_ns, end_ns, 60)
        f = assess.assess_site(site, data, start_ns, end_ns, status, rules)
        f += alarms.readings_dropped_findings(sid, fetch_ingest_health(client, sid, start_ns, end_ns))
        for tr in site.transformers:
            if tr.meter in data:
                f += assess.pq_findings(site, tr.meter, data[tr.meter])
        tariff = None
        if site.tariff:
            try:
                tariff = tf.load_tariff(site.tariff, tariff_dir)
            except tf.TariffError as exc:
                log.warning("site %s: no savings: %s", sid, exc)
        f = _protocol_checks(site, data, tariff, f, rules or assess.Rules())
        if tariff is not None:
            f += assess.site_savings(site, _common_grid(data, start_ns, end_ns), tariff, min_days=min_savings_days)
        out[sid] = f
    return out


def _protocol_checks(site: Site, data: dict, tariff, findings: list[Finding], rules: assess.Rules) -> list[Finding]:
    """DL/T 645 meters: their TOU registers against ``tariff`` and their clock (:mod:`analytics.tou_check`).

    A meter's ``meter_clock_drift`` (which carries the drift rate) replaces the ``clock_offset`` that
    :mod:`analytics.assess` raised from the same ``meter_clock_offset``: one finding for one clock.
    """
    for d in site.devices:
        if d.transport != "dlt645" or d.id not in data:
            continue
        extra = tou_check.meter_checks(site.id, d.id, data[d.id], tariff, clock_limit_s=rules.clock_offset_limit_s)
        if any(x.type == "meter_clock_drift" for x in extra):
            findings = [x for x in findings if not (x.type == "clock_offset" and x.device_id == d.id
                                                    and x.evidence.get("source") == "meter_clock")]
        findings = findings + extra
    return findings


def _common_grid(data: dict, start_ns: int, end_ns: int) -> dict:
    """Place every device's 1-min series on one minute grid (NaN where missing) for site sums."""
    t0 = start_ns - start_ns % MINUTE_NS
    grid = np.arange(t0, end_ns, MINUTE_NS, dtype=np.int64)
    out = {}
    for dev, v in data.items():
        idx = (v["time_ns"] - t0) // MINUTE_NS
        ok = (idx >= 0) & (idx < grid.size)
        g = {"time_ns": grid}
        for k, a in v.items():
            if k != "time_ns":
                col = np.full(grid.size, np.nan)
                col[idx[ok]] = a[ok]
                g[k] = col
        out[dev] = g
    return out


def period_events(findings: Iterable[Finding], end_ns: int, fleet: Fleet | None = None) -> list[AlarmEvent]:
    """Alarm activations of a period's fault findings (``pq_*`` rows and savings are not alarms)."""
    fs = list(findings)
    groups = _gateway_groups(fleet) if fleet is not None else None
    return alarms.findings_to_events([f for f in fs if not f.type.startswith("pq_")], now_ns=end_ns, groups=groups)


def _gateway_groups(fleet: Fleet) -> dict[str, list[str]]:
    g: dict[str, list[str]] = {}
    for d in fleet.devices.values():
        if d.gateway:
            g.setdefault(d.gateway, []).append(d.id)
    return g


class Follower:
    """Near-real-time evaluation: every ``interval_s`` read the last ``lookback_s`` of raw data,
    evaluate, and send new raises, severity/suppression updates, evidence updates (a measured value
    moved beyond the deadband, at most once a minute) and clears (each once) to ``sink``."""

    def __init__(self, fleet: Fleet, client, sink: AlarmSink | None = None, *, site_ids: Iterable[str] | None = None,
                 lookback_s: float = 2100.0, rules: assess.Rules = LIVE_RULES, clock=time.time_ns,
                 startup_grace_s: float = 60.0, unseen_grace_s: float = 300.0, started_ns: int | None = None):
        self.fleet, self.client, self.sink = fleet, client, sink
        self.started_ns = clock() if started_ns is None else started_ns
        self.grace_ns = int(startup_grace_s * NS)
        self.unseen_grace_ns = int(unseen_grace_s * NS)
        self.first_seen: dict[str, int] = {}
        self.site_ids = list(site_ids or fleet.sites)
        self.lookback_ns = int(lookback_s * NS)
        self.rules, self.clock = rules, clock
        self.fields = FieldCache(client, ttl_s=60.0)
        self.open: dict[str, AlarmEvent] = {}
        self.done: dict[str, int] = {}
        self.sent: dict[str, int] = {}          # key → when an open alarm was last sent (evidence updates)
        self.groups = _gateway_groups(fleet)
        # off-delay of each device's alarms: two of its own polls (at least 10 s), so a 30-s charger does
        # not hold a 5-s meter's alarms open for a minute; site-level findings take the fastest device's
        self.merge_gaps: dict[str | None, float] = {d.id: max(2 * d.poll_interval_s, 10.0)
                                                    for d in fleet.devices.values()}
        self.merge_gaps[None] = min(self.merge_gaps.values(), default=10.0)

    def step(self) -> list[AlarmEvent]:
        """One evaluation at the clock's now; returns the events sent to the store.

        Comms loss is judged only from the follower's start on (a device is not "lost" for the
        time before monitoring began), not at all during the start-up grace period, and for a
        device never seen since the start only after ``unseen_grace_s`` (collectors may take a
        while to deliver their first polls; a device seen once is judged at once).
        """
        now = self.clock()
        findings: list[Finding] = []
        comms_start = min(max(now - self.lookback_ns, self.started_ns), now - 1)
        for sid in self.site_ids:
            site = self.fleet.sites[sid]
            data, status = fetch_site(self.client, site, now - self.lookback_ns, now, None, self.fields)
            for d, v in data.items():
                later = v["time_ns"][v["time_ns"] >= self.started_ns]
                if later.size and d not in self.first_seen:
                    self.first_seen[d] = int(later[0])
            findings += assess.assess_site(site, data, comms_start, now, status, self.rules)
            findings += alarms.readings_dropped_findings(sid, fetch_ingest_health(self.client, sid,
                                                                                  now - self.lookback_ns, now))
        findings = [f for f in findings if f.type != "comms_loss" or self._comms_counts(f, now)]
        events = alarms.findings_to_events(findings, now_ns=now, merge_gap_s=self.merge_gaps, groups=self.groups)
        send, self.open, self.done = alarms.reconcile(self.open, events, now, self.done, last_sent=self.sent)
        if send and self.sink is not None:
            self.sink.record(send)
        return send

    def _comms_counts(self, f: Finding, now: int) -> bool:
        """Is this comms-loss finding a loss, or just the collectors starting up?"""
        age = now - self.started_ns
        if age < self.grace_ns:
            return False
        first = self.first_seen.get(f.device_id or "")
        if first is None:                                   # never seen since start
            return age >= self.unseen_grace_ns
        # the gap before a device's first sample after start is start-up, if it came within the grace
        return not (f.end_ns <= first and first - self.started_ns < self.unseen_grace_ns)

    def run(self, stop: threading.Event, interval_s: float = 5.0) -> None:
        """Evaluate until ``stop`` is set; errors are reported and the loop goes on."""
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                for e in self.step():
                    state = "CLEAR" if e.cleared_ns is not None else "RAISE"
                    sup = f" (suppressed by {e.suppressed_by})" if e.suppressed_by else ""
                    at = datetime.fromtimestamp((e.cleared_ns or e.raised_ns) / NS, UTC).strftime("%H:%M:%S")
                    log.warning("%s %s %s (at %sZ)%s", state, e.key, e.severity, at, sup)
            except Exception as exc:  # noqa: BLE001 - a follower must survive a database hiccup
                log.error("evaluation failed: %s: %s", type(exc).__name__, exc)
            stop.wait(max(0.0, interval_s - (time.monotonic() - t0)))


class PeriodicJobs:
    """Daily power-quality table (last 24 h) and monthly savings (last 30 days) of every site.

    Results are logged and, with ``out_dir``, written as JSON to
    ``<out_dir>/<site>/<YYYY-MM-DD>.json`` (UTC date of the end of the window).
    """

    def __init__(self, fleet: Fleet, client, out_dir=None, *, site_ids: Iterable[str] | None = None,
                 clock=time.time_ns):
        self.fleet, self.client, self.clock = fleet, client, clock
        self.out_dir = out_dir
        self.site_ids = list(site_ids or fleet.sites)

    def run_once(self) -> dict[str, dict]:
        """Evaluate now; returns site → {"pq": [...], "savings": [...], "window": [start, end]}."""
        from pathlib import Path

        end = self.clock()
        end -= end % MINUTE_NS
        day = evaluate_period(self.fleet, self.client, end - 86400 * NS, end, self.site_ids)
        month = evaluate_period(self.fleet, self.client, end - 30 * 86400 * NS, end, self.site_ids)
        out = {}
        for sid in self.site_ids:
            res = {"window_pq": [end - 86400 * NS, end], "window_savings": [end - 30 * 86400 * NS, end],
                   "pq": [f._asdict() for f in day[sid] if f.type.startswith("pq_")],
                   "savings": [f._asdict() for f in month[sid] if f.type.startswith("saving_")]}
            out[sid] = res
            if self.out_dir is not None:
                d = Path(self.out_dir) / sid
                d.mkdir(parents=True, exist_ok=True)
                name = datetime.fromtimestamp(end / NS, UTC).strftime("%Y-%m-%d") + ".json"
                (d / name).write_text(json.dumps(res, default=_jsonable, ensure_ascii=False, indent=1))
        return out

    def run(self, stop: threading.Event, every_s: float = 86400.0, first_after_s: float = 120.0) -> None:
        """Run once after ``first_after_s``, then every ``every_s``, until ``stop``.

        A failed run (InfluxDB down or slow) is retried after ``first_after_s``, doubling up to
        ``every_s``, rather than a whole period later.
        """
        wait = first_after_s
        failures = 0
        while not stop.wait(wait):
            t0 = time.monotonic()
            try:
                for sid, r in self.run_once().items():
                    bad = sorted({x["type"] for x in r["pq"] if x["evidence"].get("compliant") is False})
                    nodata = sorted({x["type"] for x in r["pq"] if x["evidence"].get("compliant") is None})
                    sav = (f"savings {sum(x['yuan_month'] or 0 for x in r['savings']):,.0f} yuan/month"
                           if r["savings"] else "savings: not enough data (< 3 days)")
                    log.warning("daily %s: PQ non-compliant %s, no data %s; %s", sid, bad or "none",
                                nodata or "none", sav)
            except Exception as exc:  # noqa: BLE001 - the periodic job must not stop the follower
                failures += 1
                wait = min(every_s, max(1.0, first_after_s) * 2 ** (failures - 1))
                log.error("periodic job failed: %s: %s; retrying in %.0f s", type(exc).__name__, exc, wait)
                continue
            failures = 0
            wait = max(1.0, every_s - (time.monotonic() - t0))


# ---------------------------------------------------------------- CLI


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)

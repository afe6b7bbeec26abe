"""``energyhost analyze``: follow live data (``--follow``) or evaluate a past period.

The command around :mod:`analytics.jobs` (which holds the work): argument checks, the
workflow store, the printout.  Settings come from the CLI's :class:`~energyhost.settings.AppSettings`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime

from analytics.jobs import MINUTE_NS, Follower, PeriodicJobs, _jsonable, evaluate_period, period_events
from core.units import NS
from energyhost.settings import AppSettings


def _parse_time(text: str | None, default_ns: int, name: str) -> int:
    if text is None:
        return default_ns
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--{name}: not an ISO date/time: {text!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp()) * NS


def _store(args: argparse.Namespace, settings: AppSettings):
    url = getattr(args, "db", None) or settings.run.store_url
    if not url:
        return None
    from workflow import Store

    return Store(url if "://" in url else f"sqlite:///{url}")


def _follow(args: argparse.Namespace, settings: AppSettings, fleet, client, store, sites) -> int:
    from core.influx import InfluxClient

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    interval = min((d.poll_interval_s for d in fleet.devices.values()), default=5.0) / 2
    periodic = PeriodicJobs(fleet, InfluxClient.from_settings(settings.core, timeout=120.0),  # 30-day reads
                            settings.run.findings_dir, site_ids=sites)
    th = threading.Thread(target=periodic.run, args=(stop,), name="analytics-periodic", daemon=True)
    th.start()
    Follower(fleet, client, store, site_ids=sites).run(stop, interval)
    th.join(timeout=5.0)
    return 0


def _print_period(res: dict, events: list, stored, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"findings": {s: [f._asdict() for f in fs] for s, fs in res.items()},
                          "alarm_events": [e._asdict() for e in events], "stored": stored}, default=_jsonable,
                         ensure_ascii=False))
        return
    for sid, fs in res.items():
        faults_ = [f for f in fs if not f.type.startswith(("pq_", "saving_"))]
        sav = [f for f in fs if f.type.startswith("saving_")]
        print(f"{sid}: {len(faults_)} fault findings, {sum(1 for f in fs if f.type.startswith('pq_'))} PQ rows, "
              f"savings {sum(f.yuan_month or 0 for f in sav):,.0f} yuan/month")
        for f in sav:
            print(f"  {f.type:32s} {f.yuan_month or 0:>12,.0f} yuan/month  {f.kwh_month or 0:>10,.0f} kWh/month")
    print(f"alarm events: {len(events)}" + (f"; store: {stored}" if stored else ""))


def run_analyze(args: argparse.Namespace, settings: AppSettings) -> int:
    """``--follow`` (live alarms) or a period (``--start``/``--end``, default last 30 days)."""
    from core.config import load_fleet
    from core.influx import InfluxClient

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s analyze: %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)    # not one INFO line per InfluxDB query
    fleet = load_fleet(args.fleet)
    sites = [args.site] if getattr(args, "site", None) else None
    if sites and sites[0] not in fleet.sites:
        print(f"energyhost analyze: unknown site {sites[0]!r}; sites: {', '.join(fleet.sites)}", file=sys.stderr)
        return 2
    client = InfluxClient.from_settings(settings.core)
    store = _store(args, settings)
    if store is not None:
        store.seed_fleet(fleet)
    if args.follow:
        return _follow(args, settings, fleet, client, store, sites)
    now = time.time_ns()
    try:
        end = _parse_time(args.end, now - now % MINUTE_NS, "end")
        start = _parse_time(args.start, end - 30 * 86400 * NS, "start")
    except ValueError as exc:
        print(f"energyhost analyze: {exc}", file=sys.stderr)
        return 2
    if end <= start:
        print("energyhost analyze: --end must be after --start", file=sys.stderr)
        return 2
    res = evaluate_period(fleet, client, start, end, sites)
    events = period_events([f for fs in res.values() for f in fs], end, fleet)
    stored = store.record(events) if store is not None else None
    _print_period(res, events, stored, args.json)
    return 0

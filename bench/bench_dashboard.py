"""Latency of every dashboard API call over a full site-month of data (goal: p99 < 200 ms).

Usage::

    .venv/bin/python bench/bench_dashboard.py [--requests 200] [--max-seconds 20] [--step-s 60]

Starts its own ``influxd`` (energyhost.devstack, free loopback port, temp dir), writes one site's
month (meter, PV inverter, EV charger; a sample every ``--step-s``) ending at the app clock's
"now" (the last day of the previous month, 23:30 site time, so "this month" is a whole month),
seeds a SQLite store with the test fleet, users, alarms and orders, serves the app with uvicorn
on 127.0.0.1 in a second process, and calls each route ``--requests`` times one after another
(bounded by ``--max-seconds`` per route) after one first call (printed apart: for the site
dashboard it fills the month-history cache, ``api.routes.dashboard.HISTORY_TTL_S``, that later
calls use until it expires).  Prints p50 / p99 per route and, as the bare
component, the p99 of the single InfluxDB query behind the month's energy (the month's
15-min ``last(energy_import)`` steps) sent straight to influxd, with the ratio ours / bare.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np

from core.units import NS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))



def month_end_ns(tz: str) -> int:
    """23:30 site time on the last day of the previous month."""
    first = datetime.now(ZoneInfo(tz)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(first.timestamp() - 1800) * NS


def serve(args: argparse.Namespace) -> None:
    """Child process: the app over the prepared store and influxd, with the fixed clock."""
    import uvicorn
    from support.web_live import fleet

    from api.main import create_app
    from api.settings import ApiSettings
    from core.influx import InfluxClient
    from workflow import Store

    now = int(args.now)
    store = Store(args.store, clock=lambda: now)
    app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0, telemetry_cache_s=0), store=store,
                     influx=InfluxClient(args.influx, args.db), clock=lambda: now, background=False, fleet=fleet())
    uvicorn.run(app, host="127.0.0.1", port=int(args.port), log_level="warning")


def timed(fn, n: int, max_s: float) -> np.ndarray:
    out = []
    stop = time.monotonic() + max_s
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if time.monotonic() > stop:
            break
    return np.array(out) * 1000.0


def prepare(tmp: Path, influxd, now: int, step_s: int) -> tuple[str, dict[str, str], int]:
    from support.report_month import SITE
    from support.web_live import month_data, seed_store, write_data

    from core.influx import InfluxClient
    from workflow import Store

    influxd.create_database("bench")
    influx = InfluxClient(influxd.url, "bench")
    n = write_data(influx, month_data(now, step_s))
    influx.close()
    url = f"sqlite:///{tmp / 'wf.db'}"
    store = Store(url, clock=lambda: now, password_cost={"n": 2**10, "r": 8, "p": 1})
    seed_store(store, now)
    tokens = {u: store.issue_token(u, 3600)[0] for u in ("eng1", "li.wei", "acme.user")}
    store.close()
    print(f"data: {n} points, site {SITE}, month ending {datetime.fromtimestamp(now / NS)}")
    return url, tokens, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--step-s", type=int, default=60)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    for k in ("store", "influx", "db", "port", "now"):
        ap.add_argument(f"--{k}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return
    from support.report_month import METER, SITE, TZ

    from energyhost.devstack import Influxd, free_port

    now = month_end_ns(TZ)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        influxd = Influxd(tmp / "influxd").start()
        proc = None
        try:
            store_url, tokens, _ = prepare(tmp, influxd, now, args.step_s)
            port = free_port()
            proc = subprocess.Popen([sys.executable, __file__, "--serve", "--store", store_url, "--influx", influxd.url,
                                     "--db", "bench", "--port", str(port), "--now", str(now)], env=dict(os.environ))
            base = f"http://127.0.0.1:{port}/api/v1"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the app did not start") from None
                    time.sleep(0.2)
            run(base, tokens, args, influxd, now, SITE, METER)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
            influxd.stop()


def run(base: str, tokens: dict, args, influxd, now: int, site: str, meter: str) -> None:
    from api.routes.dashboard import local_starts
    from core.influx import InfluxClient

    routes = [("eng1", f"/dashboard/sites/{site}"), ("acme.user", f"/dashboard/sites/{site}"),
              ("eng1", "/dashboard/fleet"), ("eng1", f"/dashboard/sites/{site}/flow"),
              ("li.wei", "/dashboard/customers"), ("acme.user", "/dashboard/glossary"),
              ("acme.user", f"/telemetry/{meter}/series?channels=active_power"),
              ("eng1", "/export/workorders?format=xlsx")]
    rows = []
    with httpx.Client(timeout=30) as c:
        for user, path in routes:
            h = {"Authorization": f"Bearer {tokens[user]}"}
            t0 = time.perf_counter()
            r = c.get(base + path, headers=h)
            cold = (time.perf_counter() - t0) * 1000.0
            assert r.status_code == 200, (path, r.status_code, r.text[:200])
            ms = timed(lambda p=path, hh=h: c.get(base + p, headers=hh), args.requests, args.max_seconds)
            rows.append((f"{user:9s} {path}", len(ms), cold, np.percentile(ms, 50), np.percentile(ms, 99)))
    influx = InfluxClient(influxd.url, "bench")
    _, month0 = local_starts(now, "Asia/Shanghai")
    q = ("SELECT last(energy_import) AS e FROM meter WHERE site = $site AND time >= $start AND time < $end "
         "GROUP BY time(900s), device fill(none)")
    params = {"site": site, "start": datetime.fromtimestamp(month0 / NS - 900, ZoneInfo("UTC")).isoformat(),
              "end": datetime.fromtimestamp(now / NS, ZoneInfo("UTC")).isoformat()}
    bare = timed(lambda: influx.query_arrays(q, params), args.requests, args.max_seconds)
    influx.close()
    bare99 = np.percentile(bare, 99)
    print(f"{'route':58s} {'n':>4s} {'first ms':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'p99/bare':>9s}")
    for name, n, cold, p50, p99 in rows:
        print(f"{name:58s} {n:4d} {cold:8.1f} {p50:8.1f} {p99:8.1f} {p99 / bare99:9.1f}")
    print(f"{'bare: influxd month energy query':58s} {len(bare):4d} {'':8s} {np.percentile(bare, 50):8.1f} "
          f"{bare99:8.1f} {1.0:9.1f}")
    worst = max(r[4] for r in rows)
    print(f"worst p99 {worst:.1f} ms (goal < 200 ms): {'met' if worst < 200 else 'NOT met'}")


if __name__ == "__main__":
    main()

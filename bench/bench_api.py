"""Benchmark of the API under 50 concurrent clients: alarm list and 1-day telemetry vs a trivial endpoint.

Usage::

    .venv/bin/python bench/bench_api.py [--requests 3000] [--concurrency 50] [--max-seconds 30]
                                        [--wrk-seconds 15] [--wrk-only] [--alarm-cache-mb 16]

Starts its own ``influxd`` (energyhost.devstack, free loopback ports, temp dir), writes one day
of 5-s meter snapshots, seeds a SQLite workflow store with 500 alarms, then runs the app
in a separate ``uvicorn`` process on 127.0.0.1 and drives it from this process with
``--concurrency`` asyncio clients over keep-alive connections.  Each scenario is bounded
by ``--requests`` and ``--max-seconds``; the scenarios run in ``--rounds`` interleaved rounds
so that load from other processes on a shared machine affects them alike.  Prints p50/p99 latency and requests/s for

* ``trivial``   a plain FastAPI endpoint (``async def`` returning a constant) in the same app,
* ``alarms``    ``GET /api/v1/alarms`` (100 newest alarms of a customer user, tenancy applied; no alarm
  is written during the run, so after the first request the alarm-list response cache answers),
* ``alarms-miss`` the same 100 alarms with a different ``since`` (before every alarm) per request: every
  request misses the response cache and reads and encodes the rows (the figure while alarms change),
* ``telemetry`` ``GET /api/v1/telemetry/{device}/series`` for the last 24 h (auto interval: the
  same dashboard view for every client, so the 5-s result cache serves most requests),
* ``tele-nocache`` the same query with a different 24-h window per request (every request
  reaches InfluxDB: the uncached figure),

and the ratio alarms / trivial (target >= 50 %) and telemetry p99 (target < 200 ms).  When ``wrk``
is installed the same scenarios are then driven by it (``alarms-miss`` through a Lua script), in
``--rounds`` interleaved rounds sharing ``--wrk-seconds`` per scenario; ``--wrk-only`` skips the Python
client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.units import NS  # noqa: E402

DEVICE = "acme-plant1-t1-meter"


def serve(args: argparse.Namespace) -> None:
    """Child process: build the app over the prepared store and influxd, serve it with uvicorn."""
    import uvicorn

    from api.main import create_app
    from api.settings import ApiSettings
    from core.influx import InfluxClient
    from workflow import Store

    store = Store(f"sqlite:///{args.store}")
    app = create_app(ApiSettings(escalate_every_s=0, rate_limit=0, alarm_cache_mb=args.alarm_cache_mb), store=store,
                     influx=InfluxClient(args.influx_url, args.db), background=False)

    @app.get("/trivial", include_in_schema=False)
    async def trivial() -> dict:
        return {"ok": True}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, timeout_keep_alive=60,
                backlog=1024)


def prepare(workdir: Path, influx_url: str, db: str) -> tuple[str, str]:
    """Seed the store and influx; return (store path, password of the customer user)."""
    from api.auth import seed_demo_users
    from core.config import load_fleet
    from core.influx import InfluxClient, points_to_lines
    from core.model import AlarmEvent, Point
    from workflow import Store

    store_path = str(workdir / "workflow.db")
    store = Store(f"sqlite:///{store_path}")
    fleet = load_fleet(ROOT / "sites.example.toml")
    store.seed_fleet(fleet)
    pw = seed_demo_users(store, fleet, env={})
    now = time.time_ns()
    events = []
    for i in range(500):
        site = ("acme-plant1", "acme-office", "huadong-coldstore")[i % 3]
        events.append(AlarmEvent(f"{site}/dev{i % 20}/type{i}", f"type{i}", site, None, "minor",
                                 now - (i + 1) * 60 * NS, None if i % 4 else now - i * 60 * NS,
                                 "告警", "alarm", {"value": float(i)}))
    store.upsert_alarm_events(events)
    store.close()
    influx = InfluxClient(influx_url, db)
    influx.create_database()
    t = np.arange(now - 86400 * NS, now, 5 * NS, dtype=np.int64)
    p = 5e5 + 2e5 * np.sin(2 * np.pi * (t / NS) / 86400)
    pts = [Point("meter", {"customer": "acme", "site": "acme-plant1", "device": DEVICE},
                 {"active_power": float(p[i]), "voltage_l1": 230.0, "energy_import": 1e8 + i * 700.0}, int(t[i]))
           for i in range(len(t))]
    for k in range(0, len(pts), 5000):
        influx.write_lines(points_to_lines(pts[k:k + 5000]))
    influx.close()
    return store_path, pw["acme-user"]


async def load(url, headers: dict, n: int, concurrency: int, max_s: float) -> dict:
    """Bounded closed-loop load: ``concurrency`` clients share ``n`` requests, stop after ``max_s``."""
    lat: list[float] = []
    errors = 0
    counter = iter(range(n))
    deadline = time.perf_counter() + max_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.get(url(i) if callable(url) else url, headers=headers)
                except httpx.TransportError:
                    errors += 1                 # counted, not timed
                    continue
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    return {"lat": lat, "errors": errors, "elapsed": elapsed}


SINCE0 = 978307200                     # 2001-01-01T00:00:00Z: before every alarm of the benchmark

# wrk: a different `since` per request (2001-01-01 plus a counter, odd/even per wrk thread), i.e. the same
# alarms but never the same URL twice
MISS_LUA = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/api/v1/alarms?since=" .. os.date("!%Y-%m-%dT%H:%M:%SZ", SINCE_BASE + counter * 2 + tid))
end
"""


def wrk(url: str, headers: dict, connections: int, seconds: int, script: str | None = None) -> dict:
    """Run ``wrk --latency`` against ``url`` (bounded by ``seconds``); parse req/s and p50/p99."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout

    def ms(token: str) -> float:
        num = float(re.match(r"[0-9.]+", token).group())
        return num * {"us": 1e-3, "ms": 1.0, "s": 1e3}[re.search(r"(us|ms|s)$", token).group()]

    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"n": n, "errors": int(bad.group(1)) if bad else 0,
            "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "p50_ms": ms(pct["50"]) if "50" in pct else float("nan"),        # wrk leaves out the distribution
            "p99_ms": ms(pct["99"]) if "99" in pct else float("nan")}        # of a run without replies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time [s] the process has used (``/proc/<pid>/stat``): the load-independent cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(parts: list[dict]) -> dict:
    """Merge the rounds of one scenario: req/s over the summed time, percentiles over every request."""
    lat = [x for p in parts for x in p["lat"]]
    a = np.asarray(lat or [np.nan]) * 1e3
    return {"n": len(lat), "errors": sum(p["errors"] for p in parts),
            "rps": len(lat) / sum(p["elapsed"] for p in parts),
            "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def wrk_rounds(args: argparse.Namespace, scenarios: tuple, base: str, h: dict, work: Path, server_pid: int) -> None:
    """The fixed-URL scenarios driven by wrk (a C load generator: the Python client shares the 2 cores
    with the server and is itself a bottleneck; wrk leaves them to the server), with the server's CPU
    time per request."""
    # interleaved rounds, as for the Python client: a burst of load from other processes
    # hits every scenario alike instead of one of them
    rounds = args.rounds
    per = max(1, round(args.wrk_seconds / rounds))
    print(f"with wrk: {args.concurrency} connections, 2 threads, {rounds} interleaved rounds of {per} s "
          f"per scenario{'' if args.alarm_cache_mb else ' (alarm-list cache off)'}")
    runs: dict[str, list[dict]] = {name: [] for name, _ in scenarios[:4]}
    for rnd in range(rounds):
        for run, (name, url) in enumerate(scenarios[:4]):
            script = None
            if callable(url):
                script = str(work / f"miss{rnd}_{run}.lua")
                Path(script).write_text(MISS_LUA.replace("SINCE_BASE", str(SINCE0 + (rnd + 1) * 10**7)))
                url = base
            cpu0 = cpu_seconds(server_pid)
            runs[name].append(wrk(url, h, args.concurrency, per, script))
            runs[name][-1]["cpu_s"] = cpu_seconds(server_pid) - cpu0
    w = {}
    for name, rs in runs.items():
        w[name] = r = {"n": sum(x["n"] for x in rs), "errors": sum(x["errors"] for x in rs),
                       "rps": sum(x["rps"] for x in rs) / len(rs),
                       "p50_ms": float(np.median([x["p50_ms"] for x in rs])),
                       "p99_ms": max(x["p99_ms"] for x in rs),
                       "per_cpu_s": sum(x["n"] for x in rs) / max(1e-9, sum(x["cpu_s"] for x in rs))}
        print(f"{name:12s} n={r['n']:6d} non-2xx={r['errors']:3d} {r['rps']:8.1f} req/s  "
              f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms (worst round)  "
              f"{r['per_cpu_s']:7.0f} req per server CPU-s")
    per_round = [(runs["alarms"][i]["rps"] / runs["trivial"][i]["rps"],
                  runs["alarms-miss"][i]["rps"] / runs["trivial"][i]["rps"]) for i in range(rounds)]
    print("wrk rounds, alarm list / trivial (cached, miss): "
          + ", ".join(f"{a * 100:.1f} %/{m * 100:.1f} %" for a, m in per_round))
    print(f"wrk: alarm list / trivial = {w['alarms']['rps'] / w['trivial']['rps'] * 100:.1f} % "
          f"({w['alarms-miss']['rps'] / w['trivial']['rps'] * 100:.1f} % when every request misses "
          f"the alarm-list cache; median of rounds "
          f"{float(np.median([m for _, m in per_round])) * 100:.1f} %); "
          f"telemetry p99 {w['telemetry']['p99_ms']:.1f} ms (target < 200 ms)")
    print(f"server CPU per request (load-independent): alarm list / trivial = "
          f"{w['alarms']['per_cpu_s'] / w['trivial']['per_cpu_s'] * 100:.1f} %, cache misses "
          f"{w['alarms-miss']['per_cpu_s'] / w['trivial']['per_cpu_s'] * 100:.1f} %")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--max-seconds", type=float, default=30.0, help="per scenario, over all rounds")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every scenario")
    ap.add_argument("--wrk-seconds", type=int, default=15, help="per scenario driven by wrk, over all rounds")
    ap.add_argument("--wrk-only", action="store_true", help="skip the Python client (needs wrk)")
    ap.add_argument("--alarm-cache-mb", type=float, default=16.0,
                    help="the server's alarm-list response cache (EH_ALARM_CACHE_MB; 0 = off)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--influx-url", help=argparse.SUPPRESS)
    ap.add_argument("--db", default="bench_api", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    if (not 1 <= args.concurrency <= 200 or not 1 <= args.requests <= 100_000 or not 0 < args.max_seconds <= 300
            or not 1 <= args.rounds <= 50 or not 1 <= args.wrk_seconds <= 120 or not 0 <= args.alarm_cache_mb <= 4096):
        ap.error("bounds: concurrency 1..200, requests 1..100000, max-seconds 0..300, rounds 1..50, "
                 "wrk-seconds 1..120, alarm-cache-mb 0..4096")
    if args.wrk_only and not shutil.which("wrk"):
        ap.error("--wrk-only needs wrk (Debian package wrk)")

    from energyhost.devstack import Influxd, free_port, listener_pid_matches, stop_process

    with tempfile.TemporaryDirectory(prefix="eh-bench-api-") as tmp:
        work = Path(tmp)
        influxd = Influxd(work / "influxd").start()
        server = None
        try:
            store_path, password = prepare(work, influxd.url, args.db)
            port = free_port()
            server = subprocess.Popen([sys.executable, __file__, "--serve", "--store", store_path,
                                       "--influx-url", influxd.url, "--db", args.db, "--port", str(port),
                                       "--alarm-cache-mb", str(args.alarm_cache_mb)],
                                      cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("API server did not start")
                time.sleep(0.1)
            if not listener_pid_matches(server.pid, port):
                raise RuntimeError(f"port {port} is answered by another process than our server {server.pid}")
            tok = httpx.post(f"{base}/api/v1/auth/token",
                             json={"username": "acme-user", "password": password}).json()["access_token"]
            h = {"Authorization": f"Bearer {tok}"}
            first = httpx.get(f"{base}/api/v1/alarms", headers=h).json()
            series = httpx.get(f"{base}/api/v1/telemetry/{DEVICE}/series", headers=h).json()
            print(f"alarm list returns {len(first)} alarms; telemetry returns {len(series['times'])} points "
                  f"at interval {series['interval_s']} s from {86400 // 5} raw samples")
            results = {}
            t_end = time.time()

            def distinct_window(i: int) -> str:
                """A different 24-h window per request: every one is a real InfluxDB query."""
                e = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_end - i))
                s = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_end - i - 86400))
                return f"{base}/api/v1/telemetry/{DEVICE}/series?start={s}&end={e}&interval_s=120"

            def distinct_since(i: int) -> str:
                """The same alarms as the plain list, a different URL per request: every one misses the cache."""
                return f"{base}/api/v1/alarms?since=" + time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime(SINCE0 + 2 * i + 1))

            assert httpx.get(distinct_since(0), headers=h).json() == first   # since before every alarm: same list
            scenarios = (("trivial", f"{base}/trivial"), ("alarms", f"{base}/api/v1/alarms"),
                         ("alarms-miss", distinct_since),
                         ("telemetry", f"{base}/api/v1/telemetry/{DEVICE}/series"),
                         ("tele-nocache", distinct_window))
            for _, url in scenarios if not args.wrk_only else ():                     # warm-up
                asyncio.run(load(url, h, min(100, args.requests), args.concurrency, 10))
            # interleaved rounds, so load from other processes on the machine hits every scenario alike
            parts: dict[str, list[dict]] = {name: [] for name, _ in scenarios}
            per_round = max(1, args.requests // args.rounds)
            for _ in range(args.rounds if not args.wrk_only else 0):
                for name, url in scenarios:
                    parts[name].append(asyncio.run(load(url, h, per_round, args.concurrency,
                                                        args.max_seconds / args.rounds)))
            for name, _ in scenarios if not args.wrk_only else ():
                results[name] = r = summarise(parts[name])
                print(f"{name:12s} n={r['n']:6d} errors={r['errors']:3d} {r['rps']:8.1f} req/s  "
                      f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms")
            if not args.wrk_only:
                ratio = results["alarms"]["rps"] / results["trivial"]["rps"]
                miss = results["alarms-miss"]["rps"] / results["trivial"]["rps"]
                print(f"alarm list / trivial endpoint: {ratio * 100:.1f} % of the trivial req/s (target >= 50 %); "
                      f"{miss * 100:.1f} % when every request misses the alarm-list cache")
                print(f"telemetry 1-day p99: {results['telemetry']['p99_ms']:.1f} ms with the 5-s result cache "
                      f"(dashboard view), {results['tele-nocache']['p99_ms']:.1f} ms when every request is a new "
                      f"InfluxDB query (target < 200 ms)")
            if shutil.which("wrk"):
                wrk_rounds(args, scenarios, base, h, work, server.pid)
        finally:
            if server is not None:
                stop_process(server, 10, signal.SIGINT)     # SIGINT: uvicorn's graceful shutdown
            influxd.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""DL/T 645 polling: data items/s of the collector beside a bare asyncio request/answer loop.

The same simulated meters (simulators/dlt645_server.py in a child process, 127.0.0.1 only, one TCP
line per meter) are read first by a bare loop — one asyncio stream per meter writing prebuilt
read-data frames and reading back exactly the answer's length, nothing checked or decoded — then by
``collector.dlt645.Dlt645Collector`` (schedule, deframing, address/DI checks, BCD decoding to
channels, status Points) with an interval short enough that it is saturated.  Printed: items/s and
client CPU µs per item of each, and the ratio.  Loopback has no serial line: on a real 9600 Bd line the
wire time (~0.1 s per item) dominates both by three orders of magnitude.

Usage: ``.venv/bin/python bench/bench_dlt645.py [--meters 20] [--seconds 6]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.dlt645 import Dlt645Collector  # noqa: E402
from core.config import parse_fleet  # noqa: E402
from core.dlt645 import PREAMBLE, load_dlt645_profiles, read_request  # noqa: E402
from energyhost.devstack import free_port  # noqa: E402
from simulators.dlt645_server import serve_dlt645  # noqa: E402

VALUES = {"energy_import": 123_456_780.0, "voltage_l1": 229.8, "current_l1": 12.345, "active_power": 8_765.4,
          "power_factor": 0.96, "frequency": 50.01, "demand_active_power_max": 9_000.0}


def fleet_raw(n: int, interval: float) -> dict:
    ports: set[int] = set()
    for _ in range(20 * n):
        ports.add(free_port())
        if len(ports) == n:
            break
    devices = [{"id": f"m{i}", "kind": "meter", "transport": "dlt645", "profile": "meter_dlt645_2007",
                "address": f"{i + 1:012d}", "host": "127.0.0.1", "port": port, "poll_interval_s": interval,
                "timeout_s": 1.0} for i, port in enumerate(sorted(ports))]
    return {"customer": [{"id": "bench", "site": [{"id": "bench-site", "device": devices}]}]}


def _serve(raw: dict, ready, stop) -> None:
    async def main():
        sim = await serve_dlt645(parse_fleet(raw), load_dlt645_profiles(), lambda d, t: VALUES, update_interval_s=1.0)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await sim.stop()

    asyncio.run(main())


async def bare(fleet, seconds: float) -> int:
    items = load_dlt645_profiles()["meter_dlt645_2007"].items
    deadline = time.monotonic() + seconds

    async def one(dev) -> int:
        reader, writer = await asyncio.open_connection(dev.host, dev.port)
        frames = [(read_request(dev.address, i.di), len(PREAMBLE) + 12 + 4 + i.size) for i in items]
        n = 0
        while time.monotonic() < deadline:
            for req, size in frames:
                writer.write(req)
                await reader.readexactly(size)
                n += 1
        writer.close()
        return n

    return sum(await asyncio.gather(*(one(d) for d in fleet.devices.values())))


async def ours(fleet, seconds: float) -> int:
    profiles = load_dlt645_profiles()
    # past the fleet file's 0.1 s floor, so the pollers are saturated (a slot missed is skipped, counted)
    for did, d in list(fleet.devices.items()):
        fleet.devices[did] = replace(d, poll_interval_s=0.001)
    polls = []
    col = Dlt645Collector(fleet, profiles, polls.extend)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    bad = col.stats()["failures"]
    if bad:
        raise SystemExit(f"collector failures during the benchmark: {bad}")
    return col.stats()["ok"] * len(profiles["meter_dlt645_2007"].items)


def timed(fn, fleet, seconds: float) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.monotonic()
    n = asyncio.run(fn(fleet, seconds))
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    return n / wall, cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=6.0)
    a = ap.parse_args()
    a.seconds = min(a.seconds, 60.0)
    raw = fleet_raw(a.meters, 0.1)
    ready, stop = mp.Event(), mp.Event()
    sim = mp.Process(target=_serve, args=(raw, ready, stop), daemon=True)
    sim.start()
    try:
        if not ready.wait(30):
            raise SystemExit("simulator did not start")
        fleet = parse_fleet(raw)
        b_rate, b_cpu = timed(bare, fleet, a.seconds)
        o_rate, o_cpu = timed(ours, fleet, a.seconds)
    finally:
        stop.set()
        sim.join(10)
    print(f"meters {a.meters}, {a.seconds:.0f} s each, simulator in a child process (2-core machine), "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"bare asyncio loop : {b_rate:8.0f} items/s  {b_cpu:6.1f} us CPU/item")
    print(f"Dlt645Collector   : {o_rate:8.0f} items/s  {o_cpu:6.1f} us CPU/item")
    print(f"ours / bare       : {o_rate / b_rate:8.0%} items/s   CPU per item x{o_cpu / b_cpu:.2f}")


if __name__ == "__main__":
    main()

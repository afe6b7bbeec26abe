"""Modbus polling: device polls/s of one collector process beside a bare pymodbus client loop.

The same simulated devices (simulators/modbus_server.py, in a child process, 127.0.0.1 only)
are polled first by a bare loop — one ``AsyncModbusTcpClient`` per device reading the
profile's blocks back to back, nothing else — then by ``collector.modbus.ModbusCollector``
(schedule, status Points, decoding, Points into a sink) with an interval short enough that it is
saturated.  Printed: polls/s and client CPU µs per poll of each, and the ratio (target ≥ 80 %).

The collector decodes FC 03/04 answers with its own classes (one ``struct`` call per answer,
registered through pymodbus's custom-response API) instead of pymodbus's register-by-register
decoder.  So that this gain is not mistaken for a free collector, a third loop is timed too: the
bare loop with those same answer classes; "ours / bare + answers" is the cost of everything the
collector adds (scheduling, retries, checks, decoding to channels, Points).

Usage: ``.venv/bin/python bench/bench_modbus.py [--devices 60] [--seconds 8] [--profile meter_acrel_dtsd1352]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from collector.modbus import HoldingRegistersAnswer, InputRegistersAnswer, ModbusCollector  # noqa: E402
from core.config import parse_fleet  # noqa: E402
from core.profiles import load_profiles  # noqa: E402
from energyhost.devstack import free_port, stop_process  # noqa: E402
from simulators.modbus_server import serve_fleet  # noqa: E402


def fleet_raw(n: int, profile: str, kind: str, interval: float) -> dict:
    ports: set[int] = set()
    for _ in range(20 * n):                         # distinct ports (free_port alone may repeat one)
        ports.add(free_port())
        if len(ports) == n:
            break
    devices = [{"id": f"d{i}", "kind": kind, "transport": "modbus", "profile": profile, "host": "127.0.0.1",
                "port": port, "unit_id": 1, "poll_interval_s": interval, "timeout_s": 1.0, "retries": 1}
               for i, port in enumerate(sorted(ports))]
    return {"customer": [{"id": "bench", "site": [{"id": "bench-site", "device": devices}]}]}


def _serve(raw: dict, ready, stop) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)   # cancelled requests at stop are expected

    async def main():
        fleet = parse_fleet(raw)
        profiles = load_profiles()
        sim = await serve_fleet(fleet, profiles, lambda dev, t: {"voltage_l1": 230.0 + t % 10,
                                                                  "active_power": 1000.0}, update_interval_s=1.0)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await sim.stop()

    asyncio.run(main())


@contextlib.contextmanager
def simulator(raw: dict, timeout_s: float = 60.0):
    """The simulated devices of fleet ``raw`` in a child process (not the measured one), until exit."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(raw, ready, stop), daemon=True)
    proc.start()
    try:
        if not ready.wait(timeout_s):
            raise SystemExit("simulator did not start")
        yield proc
    finally:
        stop.set()
        proc.join(10)
        stop_process(proc, 10)


async def bare(fleet, profiles, seconds: float, answers: bool = False) -> tuple[int, float]:
    """Bare pymodbus: each device read block after block as fast as it answers.

    ``answers=True``: with the collector's one-unpack FC 03/04 answer classes registered.
    """
    polls = 0
    deadline = 0.0

    async def device_loop(dev):
        nonlocal polls
        blocks = profiles[dev.profile].blocks
        c = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=1.0, retries=0, reconnect_delay=0)
        if answers:
            c.register(HoldingRegistersAnswer)
            c.register(InputRegistersAnswer)
        await c.connect()
        try:
            while time.monotonic() < deadline:
                for b in blocks:
                    fn = c.read_holding_registers if b.table == "holding" else c.read_input_registers
                    rr = await fn(b.start, count=b.count, device_id=dev.unit_id)
                    assert not rr.isError()
                polls += 1
        finally:
            c.close()

    devs = list(fleet.devices.values())
    cpu0 = time.process_time()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(device_loop(d) for d in devs))
    return polls, time.process_time() - cpu0


async def ours(fleet, profiles, seconds: float, interval: float) -> tuple[int, float, dict]:
    n = 0
    # an interval far below the poll time saturates the collector (config allows >= 0.1 s; the
    # bench sets it directly so that the schedule never limits the rate)
    fleet = replace(fleet, devices={k: replace(d, poll_interval_s=interval) for k, d in fleet.devices.items()})

    def sink(points):
        nonlocal n
        n += 1

    col = ModbusCollector(fleet, profiles, sink)
    stop = asyncio.Event()
    cpu0 = time.process_time()
    task = asyncio.create_task(col.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return n, time.process_time() - cpu0, col.stats()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--profile", default="meter_acrel_dtsd1352")
    ap.add_argument("--interval", type=float, default=1e-6,
                    help="collector poll interval [s]; far below a poll's duration, so every device is polled "
                         "back to back like the bare loop (a 2 ms slot grid costs ~10-20 %% in idle wake-ups)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating bare/ours rounds (median reported)")
    args = ap.parse_args(argv)
    if not (1 <= args.devices <= 500 and 1 <= args.seconds <= 60):
        raise SystemExit("--devices 1..500, --seconds 1..60")
    profiles = load_profiles()
    prof = profiles[args.profile]
    raw = fleet_raw(args.devices, args.profile, prof.kind, interval=0.1)
    fleet = parse_fleet(raw)
    with simulator(raw):
        asyncio.run(bare(fleet, profiles, 2.0))            # warm-up (connections, caches), not counted
        runs = []
        for _ in range(max(1, min(args.rounds, 9))):       # alternate, so machine load hits all alike
            b_polls, b_cpu = asyncio.run(bare(fleet, profiles, args.seconds))
            o_polls, o_cpu, stats = asyncio.run(ours(fleet, profiles, args.seconds, args.interval))
            a_polls, a_cpu = asyncio.run(bare(fleet, profiles, args.seconds, answers=True))
            runs.append((o_polls / b_polls, b_polls, b_cpu, o_polls, o_cpu, stats, a_polls, a_cpu))
            print(f"  round {len(runs)}: bare {b_polls / args.seconds:7.1f} polls/s, "
                  f"ours {o_polls / args.seconds:7.1f} polls/s, ratio {100 * runs[-1][0]:5.1f} %;  "
                  f"bare + answers {a_polls / args.seconds:7.1f} polls/s, ours / that "
                  f"{100 * o_polls / a_polls:5.1f} %", flush=True)
        runs.sort(key=lambda r: r[0])
        _, b_polls, b_cpu, o_polls, o_cpu, stats, a_polls, a_cpu = runs[len(runs) // 2]
    b_rate, o_rate = b_polls / args.seconds, o_polls / args.seconds
    print(f"median round: {args.devices} devices x {len(prof.blocks)} blocks ({args.profile}), "
          f"{args.seconds:.0f} s each, simulator in a separate process")
    print(f"  bare pymodbus loop   {b_rate:8.1f} polls/s   {1e6 * b_cpu / max(b_polls, 1):7.0f} us CPU/poll")
    print(f"  ModbusCollector      {o_rate:8.1f} polls/s   {1e6 * o_cpu / max(o_polls, 1):7.0f} us CPU/poll"
          f"   (ok {stats['ok']}, failures {stats['failures']})")
    print(f"  ratio ours / bare    {100 * o_rate / b_rate:8.1f} %  (target >= 80 %);  CPU per poll "
          f"{100 * (o_cpu / max(o_polls, 1)) / (b_cpu / max(b_polls, 1)):.0f} % of bare")
    print(f"  bare + our answers   {a_polls / args.seconds:8.1f} polls/s   {1e6 * a_cpu / max(a_polls, 1):7.0f} us "
          f"CPU/poll   (ours / this: {100 * o_polls / max(a_polls, 1):.1f} %, the cost of what the collector "
          "adds)")


if __name__ == "__main__":
    main()

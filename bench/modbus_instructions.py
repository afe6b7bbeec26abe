"""Modbus client cost in CPU instructions per device poll: the collector beside a bare pymodbus loop.

Wall-clock polls/s on a shared 2-core machine swings by ±15 % between rounds; the number of
instructions the client executes for a fixed amount of work does not.  Each variant is run
twice under ``valgrind --tool=cachegrind --cache-sim=no`` (polls N1 and N2 per device); the
difference of the two instruction totals divided by the extra polls is the cost of one poll,
start-up and imports cancelled out.  The simulator runs in a separate process, not traced.

Variants: ``bare`` (``AsyncModbusTcpClient``, stock answer decoding), ``bare_answers`` (the same
with the collector's one-unpack answer classes), ``ours`` (``ModbusCollector``: schedule, retries,
checks, decoding to channels, Points).  Needs ``valgrind`` (not installed by scripts/test.sh).

Usage: ``.venv/bin/python bench/modbus_instructions.py [--devices 10] [--polls 100 400]``
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROFILE = "meter_acrel_dtsd1352"


async def _bare(fleet, profiles, per_dev: int, answers: bool) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    from collector.modbus import HoldingRegistersAnswer, InputRegistersAnswer

    async def loop(dev):
        c = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=5.0, retries=0, reconnect_delay=0)
        if answers:
            c.register(HoldingRegistersAnswer)
            c.register(InputRegistersAnswer)
        await c.connect()
        for _ in range(per_dev):
            for b in profiles[dev.profile].blocks:
                fn = c.read_holding_registers if b.table == "holding" else c.read_input_registers
                assert not (await fn(b.start, count=b.count, device_id=dev.unit_id)).isError()
        c.close()

    await asyncio.gather(*(loop(d) for d in fleet.devices.values()))


async def _ours(fleet, profiles, per_dev: int) -> None:
    from collector.modbus import ModbusCollector

    fleet = replace(fleet, devices={k: replace(d, poll_interval_s=1e-6, timeout_s=5.0)
                                    for k, d in fleet.devices.items()})
    stop = asyncio.Event()
    n, target = 0, per_dev * len(fleet.devices)

    def sink(points):
        nonlocal n
        n += 1
        if n >= target:
            stop.set()

    col = ModbusCollector(fleet, profiles, sink)
    await col.run(stop)
    s = col.stats()
    assert s["ok"] == s["polls"] >= target, s


def _child(variant: str, devices: int, per_dev: int) -> None:
    """Run one variant for a fixed number of polls (this process is the one under valgrind)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_modbus import fleet_raw, simulator

    from core.config import parse_fleet
    from core.profiles import load_profiles

    profiles = load_profiles()
    raw = fleet_raw(devices, PROFILE, profiles[PROFILE].kind, 0.1)
    fleet = parse_fleet(raw)
    with simulator(raw, timeout_s=120):
        if variant == "ours":
            asyncio.run(_ours(fleet, profiles, per_dev))
        else:
            asyncio.run(_bare(fleet, profiles, per_dev, answers=variant == "bare_answers"))


def _instructions(variant: str, devices: int, per_dev: int) -> int:
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, __file__, "--child", variant, str(devices), str(per_dev)],
                         capture_output=True, text=True, timeout=1800, check=False)
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or not m:
        raise SystemExit(f"{variant}: valgrind run failed (exit {out.returncode}): {out.stderr[-800:]}")
    return int(m.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], int(argv[2]), int(argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--polls", type=int, nargs=2, default=[100, 400], metavar=("N1", "N2"))
    args = ap.parse_args(argv)
    n1, n2 = args.polls
    if not (1 <= args.devices <= 100 and 1 <= n1 < n2 <= 5000):
        raise SystemExit("--devices 1..100, --polls N1 < N2 <= 5000")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (apt install valgrind)")
    per_poll = {}
    for variant in ("bare", "bare_answers", "ours"):
        a, b = _instructions(variant, args.devices, n1), _instructions(variant, args.devices, n2)
        per_poll[variant] = (b - a) / (args.devices * (n2 - n1))
        print(f"  {variant:13s} {per_poll[variant]:10,.0f} instructions/poll", flush=True)
    print(f"{args.devices} devices x {len(__import__('core.profiles', fromlist=['x']).load_profiles()[PROFILE].blocks)}"
          f" blocks ({PROFILE}); polls {n1} and {n2} per device")
    print(f"  ours / bare          {100 * per_poll['bare'] / per_poll['ours']:6.1f} %  (instructions of bare per "
          "instruction of ours: the polls/s ratio if the client is CPU-bound and cycles track instructions)")
    print(f"  ours / bare+answers  {100 * per_poll['bare_answers'] / per_poll['ours']:6.1f} %")


if __name__ == "__main__":
    main()

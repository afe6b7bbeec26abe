"""MQTT ingest cost in CPU instructions per message: the collector beside a bare paho subscriber.

Wall-clock messages/s on a shared 2-core machine swing between rounds (``bench_mqtt_ingest.py``
interleaves rounds against that); the number of instructions a consumer executes for a fixed
number of messages does not.  Each variant drains a queue of N single-reading messages (QoS 1,
15 fields, the workload of ``bench_mqtt_ingest.py`` part A) that the broker holds for its
persistent session, twice, under ``valgrind --tool=cachegrind --cache-sim=no``, with N1 and N2
messages; the difference of the two instruction totals divided by N2 - N1 is the cost of one
message, start-up and imports cancelled out.  Mosquitto and influxd run outside valgrind.

Variants: ``bare`` (paho subscriber, auto-ack, no processing), ``ours`` (``MqttCollector`` +
``Writer``: parse, validate, encode, write to InfluxDB, manual ack once written).
Needs ``valgrind``.

Usage: ``.venv/bin/python bench/mqtt_instructions.py [--messages 1000 4000]``
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_mqtt_ingest as ingest  # noqa: E402

from core.topics import SUBSCRIPTIONS  # noqa: E402
from energyhost.devstack import Influxd, Mosquitto  # noqa: E402


def _child(variant: str, port: int, n: int, influx_url: str, db: str, fleet: str, spool: str) -> None:
    """Drain ``n`` queued messages (this process is the one under valgrind)."""
    if variant == "bare":
        res = ingest.role_bare_sub(port, n)
        ok = res["ok"]
    else:
        from collector.mqtt import MqttCollector
        from core.config import Settings, load_fleet
        from core.influx import InfluxClient, Writer

        st = Settings(influx_url=influx_url, influx_db=db, mqtt_port=port, spool_dir=spool)
        # valgrind runs ~50x slower: a longer flush interval keeps batches as large as in a real run
        writer = Writer(InfluxClient.from_settings(st), spool, batch_size=5000, flush_interval_s=5.0)
        col = MqttCollector(load_fleet(fleet), st, writer, client_id=f"instr-{variant}")
        col.start(timeout=60)
        deadline = time.monotonic() + ingest.TIMEOUT_S * 10
        while (writer.stats()["written"] < n or col.stats()["acked"] < n) and time.monotonic() < deadline:
            time.sleep(0.1)           # polling is not the work measured: rarely
        ok = writer.stats()["written"] >= n and col.stats()["acked"] >= n
        col.stop()
        writer.close()
    if not ok:
        raise SystemExit(f"{variant}: not all {n} messages consumed")


def _instructions(variant: str, mosq: Mosquitto, influxd: Influxd, n: int, tmp: Path, tag: str) -> int:
    client_id = "bench-bare" if variant == "bare" else f"instr-{variant}"
    ingest.register_session(mosq.port, client_id, list(SUBSCRIPTIONS))
    ingest.publish_all(mosq.port, ingest.single_messages(n, int(time.time() * 1000) - 86400_000))
    db = f"instr_{variant}_{tag}"
    import httpx
    httpx.post(f"{influxd.url}/query", data={"q": f'CREATE DATABASE "{db}"'})
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, __file__, "--child", variant, str(mosq.port), str(n), influxd.url, db,
                          str(tmp / "fleet.toml"), str(tmp / f"spool_{variant}_{tag}")],
                         capture_output=True, text=True, timeout=3600, cwd=ROOT)
    ingest.delete_session(mosq.port, client_id)
    if out.returncode != 0:
        raise SystemExit(f"{variant}: valgrind run failed (exit {out.returncode}): {out.stderr[-800:]}")
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if m is None:
        raise SystemExit(f"{variant}: no instruction count in valgrind's output: {out.stderr[-400:]}")
    return int(m.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, nargs=2, default=(1000, 4000), metavar=("N1", "N2"))
    ap.add_argument("--variants", nargs="+", choices=("bare", "ours"), default=["bare", "ours"])
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (thread interleaving varies)")
    ap.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        v, port, n, url, db, fleet, spool = a.child
        _child(v, int(port), int(n), url, db, fleet, spool)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (apt install valgrind)")
    n1, n2 = (max(100, min(x, 20_000)) for x in a.messages)
    if n2 <= n1:
        raise SystemExit("--messages N1 N2 needs N2 > N1")
    per_msg: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-instr-") as tmp:
        tmp = Path(tmp)
        ingest.fleet_toml(tmp / "fleet.toml")
        mosq = Mosquitto(tmp / "mosquitto", autosave_changes=1_000_000).start()
        influxd = Influxd(tmp / "influxd").start()
        try:
            for variant in a.variants:
                runs = []
                for r in range(max(1, min(a.repeat, 5))):
                    i1 = _instructions(variant, mosq, influxd, n1, tmp, f"n1r{r}")
                    i2 = _instructions(variant, mosq, influxd, n2, tmp, f"n2r{r}")
                    runs.append((i2 - i1) / (n2 - n1))
                    print(f"  {variant:5s} {runs[-1] / 1e3:8.1f} k instructions/message  "
                          f"({i1:,} at {n1}, {i2:,} at {n2})", flush=True)
                per_msg[variant] = sorted(runs)[len(runs) // 2]          # the median run
        finally:
            influxd.stop()
            mosq.stop()
    if len(per_msg) == 2:
        print(f"MQTT single-reading ingest, instructions per message (median run): ours {per_msg['ours'] / 1e3:.1f} k, "
              f"bare paho subscriber {per_msg['bare'] / 1e3:.1f} k; bare / ours = {per_msg['bare'] / per_msg['ours']:.1%}")


if __name__ == "__main__":
    main()

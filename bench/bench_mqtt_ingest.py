"""Benchmark: MQTT → InfluxDB ingest of one collector process vs the bare components.

Run:  .venv/bin/python bench/bench_mqtt_ingest.py [--messages 30000] [--batches 300]

What is measured (all on 127.0.0.1, own mosquitto + influxd started in a temp dir):

A. single-reading messages (QoS 1, 15 fields each): the broker holds a queue of N messages for
   an offline persistent session; then the consumer connects and drains it.
   * collector : ``python -m``-style child process running MqttCollector + Writer (manual ack
     after the points are in InfluxDB), timed from connect until InfluxDB has all N points.
   * bare sub  : a bare paho subscriber (auto-ack, no processing) on the same queued stream.
   * bare write: the same N points, pre-encoded line protocol, POSTed to /write in 5,000-line
     batches (no MQTT, no parsing).
   Target: collector ≥ 80 % of the slower bare component, and ≥ 5,000 messages/s.
B. gateway batch messages (100 readings x 15 fields each): collector fields/s stored vs the
   bare /write of the same points.  Target ≥ 50 %.

Queuing first and draining afterwards means the publisher does not compete for the 2 CPU cores
while the consumer is measured.  Every phase is bounded by a count and a timeout.
Mosquitto runs with autosave after 10^6 changes here: with the default small threshold, every
10 queued messages rewrite the whole persistence file, which measures disk, not us.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from core.topics import SUBSCRIPTIONS, batch_topic, telemetry_topic  # noqa: E402
from energyhost.devstack import Influxd, Mosquitto  # noqa: E402

CHANNELS15 = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
              "active_power", "reactive_power", "apparent_power", "power_factor", "frequency",
              "energy_import", "energy_export", "thd_voltage_l1", "thd_current_l1"]
N_DEVICES = 100
SITE = "bench-site"
TIMEOUT_S = 180.0


def fleet_toml(path: Path) -> None:
    lines = ['[[customer]]', 'id = "bench"', "  [[customer.site]]", f'  id = "{SITE}"']
    for d in range(N_DEVICES):
        lines += ["    [[customer.site.device]]", f'    id = "dev{d:03d}"', '    kind = "meter"',
                  '    transport = "mqtt"']
    path.write_text("\n".join(lines) + "\n")


def reading(d: int, k: int, t_ms: int) -> dict:
    return {ch: round(200.0 + d + i * 1.5 + (k % 97) * 0.01, 3) for i, ch in enumerate(CHANNELS15)}


def single_messages(n: int, t0_ms: int) -> list[tuple[str, bytes]]:
    out = []
    for k in range(n):
        d = k % N_DEVICES
        t = t0_ms + (k // N_DEVICES) * 100
        out.append((telemetry_topic(SITE, f"dev{d:03d}"),
                    json.dumps({"ts": t, "values": reading(d, k, t)}).encode()))
    return out


def batch_messages(n: int, t0_ms: int) -> list[tuple[str, bytes]]:
    out = []
    for k in range(n):
        t = t0_ms + k * 100
        rs = [{"device": f"dev{d:03d}", "ts": t, "values": reading(d, k, t)} for d in range(N_DEVICES)]
        out.append((batch_topic(SITE, "gw1"), json.dumps({"readings": rs}).encode()))
    return out


def lines_for(msgs: list[tuple[str, bytes]]) -> list[bytes]:
    """The line protocol a perfect consumer would write for ``msgs`` (pre-encoded, for bare /write)."""
    out = []
    for topic, payload in msgs:
        doc = json.loads(payload)
        rs = doc["readings"] if "readings" in doc else [{"device": topic.split("/")[3], **doc}]
        for r in rs:
            fields = ",".join(f"{k}={float(v)!r}" for k, v in r["values"].items())
            out.append(f"meter,customer=bench,device={r['device']},site={SITE} {fields} "
                       f"{r['ts'] * 1_000_000}".encode())
    return out


# ------------------------------------------------------------------ broker helpers
def session_connect(port: int, client_id: str, on_message=None, manual=False) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                    manual_ack=manual)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
    return c


def register_session(port: int, client_id: str, topics: list[str]) -> None:
    """Create a persistent session with subscriptions, then leave (the broker queues for it)."""
    c = session_connect(port, client_id)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.loop_start()
    c.subscribe([(t, 1) for t in topics])
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def delete_session(port: int, client_id: str) -> None:
    """End a persistent session (clean start, expiry 0) so that it stops queuing messages."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port, 30, clean_start=True)
    c.loop_start()
    time.sleep(0.1)
    c.disconnect()
    c.loop_stop()


def publish_all(port: int, msgs: list[tuple[str, bytes]]) -> float:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    acked = [0]
    lock = threading.Lock()

    def on_pub(*_a):
        with lock:
            acked[0] += 1
    c.on_publish = on_pub
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    t = time.perf_counter()
    for topic, payload in msgs:
        c.publish(topic, payload, qos=1)
    deadline = time.monotonic() + TIMEOUT_S
    while acked[0] < len(msgs) and time.monotonic() < deadline:
        time.sleep(0.01)
    dt = time.perf_counter() - t
    c.disconnect()
    c.loop_stop()
    if acked[0] < len(msgs):
        raise RuntimeError(f"publisher: only {acked[0]}/{len(msgs)} acked")
    return len(msgs) / dt


# ------------------------------------------------------------------ roles (child processes)
def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def role_bare_sub(port: int, n: int) -> dict:
    got = [0]
    done = threading.Event()

    def on_msg(client, userdata, msg):
        got[0] += 1
        if got[0] >= n:
            done.set()
    t, cpu = time.perf_counter(), _cpu()
    c = session_connect(port, "bench-bare", on_msg)
    c.loop_start()
    ok = done.wait(TIMEOUT_S)
    dt, cpu = time.perf_counter() - t, _cpu() - cpu
    c.disconnect()
    c.loop_stop()
    return {"ok": ok, "messages": got[0], "seconds": dt, "cpu_s": cpu}


def role_collector(port: int, influx_url: str, db: str, fleet: str, spool: str, n_points: int) -> dict:
    from collector.mqtt import MqttCollector
    from core.config import Settings, load_fleet
    from core.influx import InfluxClient, Writer
    st = Settings(influx_url=influx_url, influx_db=db, mqtt_port=port, spool_dir=spool)
    client = InfluxClient.from_settings(st)
    client.create_database()
    writer = Writer(client, spool, batch_size=5000, flush_interval_s=0.2)
    col = MqttCollector(load_fleet(fleet), st, writer, client_id="bench-collector")
    t, cpu = time.perf_counter(), _cpu()
    col.start()
    deadline = time.monotonic() + TIMEOUT_S
    while writer.stats()["written"] < n_points and time.monotonic() < deadline:
        time.sleep(0.005)
    dt, cpu = time.perf_counter() - t, _cpu() - cpu
    s, w = col.stats(), writer.stats()
    col.stop()
    writer.close()
    return {"ok": w["written"] >= n_points, "seconds": dt, "cpu_s": cpu, "collector": s, "writer": w}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--role", *args], capture_output=True, text=True,
                         timeout=TIMEOUT_S + 30, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bare_write(url: str, db: str, lines: list[bytes], batch: int = 5000) -> float:
    with httpx.Client(base_url=url, timeout=60) as c:
        c.post("/query", data={"q": f'CREATE DATABASE "{db}"'})
        t = time.perf_counter()
        for i in range(0, len(lines), batch):
            r = c.post("/write", params={"db": db, "precision": "ns"}, content=b"\n".join(lines[i:i + batch]))
            if r.status_code != 204:
                raise RuntimeError(f"bare write: {r.status_code} {r.text[:300]}")
        return len(lines) / (time.perf_counter() - t)


def count_points(url: str, db: str) -> int:
    r = httpx.post(f"{url}/query", data={"q": 'SELECT count("frequency") FROM meter', "db": db}).json()
    s = r["results"][0].get("series")
    return s[0]["values"][0][1] if s else 0


# ------------------------------------------------------------------ orchestration
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=30000, help="single-reading messages (part A)")
    ap.add_argument("--batches", type=int, default=300, help="gateway batch messages of 100 readings (part B)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (best is reported)")
    ap.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        r = args.role
        res = role_bare_sub(int(r[1]), int(r[2])) if r[0] == "bare-sub" else \
            role_collector(int(r[1]), r[2], r[3], r[4], r[5], int(r[6]))
        print(json.dumps(res))
        return 0

    n, nb, rounds = min(args.messages, 200_000), min(args.batches, 2000), max(1, min(args.rounds, 5))
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        tmp = Path(tmp)
        fleet = tmp / "fleet.toml"
        fleet_toml(fleet)
        mosq = Mosquitto(tmp / "mosquitto", autosave_changes=1_000_000).start()
        influxd = Influxd(tmp / "influxd").start()
        topics = list(SUBSCRIPTIONS)
        a = {"col": [], "sub": [], "write": [], "col_cpu": [], "sub_cpu": [], "stored": []}
        b = {"col": [], "write": [], "stored": []}
        try:
            for r in range(rounds):          # alternating rounds: the 2 shared cores are noisy
                t0_ms = int(time.time() * 1000) - 20 * 86400_000 + r * 3_600_000
                single = single_messages(n, t0_ms)
                # each consumer gets its own fresh session holding exactly this round's messages
                register_session(mosq.port, "bench-bare", topics)
                pub_rate = publish_all(mosq.port, single)
                bare = run_child("bare-sub", str(mosq.port), str(n))
                delete_session(mosq.port, "bench-bare")
                a["sub"].append(bare["messages"] / bare["seconds"])
                a["sub_cpu"].append(bare["cpu_s"] / n * 1e6)
                register_session(mosq.port, "bench-collector", topics)
                publish_all(mosq.port, single)
                col = run_child("collector", str(mosq.port), influxd.url, f"bench_a{r}", str(fleet),
                                str(tmp / f"spool_a{r}"), str(n))
                a["col"].append(n / col["seconds"])
                a["col_cpu"].append(col["cpu_s"] / n * 1e6)
                a["stored"].append(count_points(influxd.url, f"bench_a{r}"))
                delete_session(mosq.port, "bench-collector")
                a["write"].append(bare_write(influxd.url, f"bare_a{r}", lines_for(single)))

                batches = batch_messages(nb, t0_ms + 10 * 86400_000)
                n_b = nb * N_DEVICES
                register_session(mosq.port, "bench-collector", topics)
                publish_all(mosq.port, batches)
                colb = run_child("collector", str(mosq.port), influxd.url, f"bench_b{r}", str(fleet),
                                 str(tmp / f"spool_b{r}"), str(n_b))
                b["col"].append(n_b * len(CHANNELS15) / colb["seconds"])
                delete_session(mosq.port, "bench-collector")
                b["stored"].append(count_points(influxd.url, f"bench_b{r}"))
                b["write"].append(bare_write(influxd.url, f"bare_b{r}", lines_for(batches)) * len(CHANNELS15))
        finally:
            influxd.stop()
            mosq.stop()

    def fmt(xs):
        return " ".join(f"{x:,.0f}" for x in xs)
    col_rate, sub_rate, write_rate = max(a["col"]), max(a["sub"]), max(a["write"])
    slower = min(sub_rate, write_rate)
    print(f"MQTT -> InfluxDB ingest, QoS 1, {len(CHANNELS15)} fields/reading, loopback, {rounds} alternating "
          f"rounds (best shown; all rounds in brackets); publisher while queuing ~{pub_rate:,.0f} msg/s")
    print(f"A  single-reading messages: {n:,} per round")
    print(f"   collector process          {col_rate:10,.0f} msg/s     [{fmt(a['col'])}]  "
          f"stored {a['stored']} of {n:,} each")
    print(f"   bare paho subscriber       {sub_rate:10,.0f} msg/s     [{fmt(a['sub'])}]")
    print(f"   bare /write same points    {write_rate:10,.0f} points/s  [{fmt(a['write'])}]")
    print(f"   ratio collector / slower bare = {col_rate / slower:6.1%}   (target >= 80 %, and >= 5,000 msg/s)")
    print(f"   CPU per message: collector {min(a['col_cpu']):.0f} us, bare subscriber {min(a['sub_cpu']):.0f} us "
          f"(ratio {min(a['sub_cpu']) / min(a['col_cpu']):.1%}: what the collector reaches when CPU-bound)")
    print(f"B  gateway batches: {nb:,} messages x {N_DEVICES} readings x {len(CHANNELS15)} fields per round")
    print(f"   collector process          {max(b['col']):10,.0f} fields/s  [{fmt(b['col'])}]  "
          f"stored {b['stored']} of {nb * N_DEVICES:,} each")
    print(f"   bare /write same points    {max(b['write']):10,.0f} fields/s  [{fmt(b['write'])}]")
    print(f"   ratio = {max(b['col']) / max(b['write']):6.1%}   (target >= 50 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

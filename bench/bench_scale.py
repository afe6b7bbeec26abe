"""Scale figures for docs/scaling.md, measured through real ``energyhost collect`` processes.

Run:  .venv/bin/python bench/bench_scale.py [--mqtt-readings 20000] [--modbus-devices 200] [--seconds 30]

All on loopback (127.0.0.1; simulated Modbus devices on 127.1.x.y) with our own influxd and mosquitto (auth + fleet ACL on, as in production).

A. MQTT readings/s per collector core.  A persistent session of ``energyhost collect --no-modbus``
   is created, the process stopped, N readings queued as gateway batches (50 readings x 15
   channels per message), the process started again and timed until InfluxDB holds all N.
   Ours: readings per CPU-second of the collector process (``/proc/<pid>/stat`` utime+stime,
   start-up excluded).  Raw: the same points as pre-encoded line protocol POSTed straight to
   ``/write`` (5,000 lines per request), points per wall-second; printed beside it with the ratio
   of the wall rates.
B. Devices per collector.  K simulated Modbus meters (meter_acrel_dtsd1352, one TCP server each on its
   own loopback address, served by ``--sim-procs`` child processes) polled every 5 s by one
   ``energyhost collect --no-mqtt`` for ``--seconds``, for each K of ``--modbus-devices``:
   polls stored per device vs slots due (on schedule = every slot stored), poll latency
   (p50/p99/max of the stored ``collector_status.latency_ms``), the collector's schedule lag p99
   (``energyhost_poll_lag_ms_p99``), its CPU share -> devices per core at 5 s, and the share of
   the window the collector and the simulators spent runnable but waiting for a CPU (schedstat):
   on a shared machine that, not the collector, is what makes it fall behind.
C. InfluxDB write load per 1,000 devices: points/s and request bytes/s that influxd itself
   counted (``/debug/vars`` httpd pointsWrittenOK / writeReqBytes) during B, scaled to 1,000.

Every phase is bounded by a count and a timeout; the machine's other load shows in the figures
(2 cores shared), so they are lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from support.waiting import wait_for  # noqa: E402

from core.config import load_fleet, parse_fleet  # noqa: E402
from core.influx import InfluxClient  # noqa: E402
from core.topics import batch_topic  # noqa: E402
from energyhost.devstack import (  # noqa: E402
    COLLECTOR_USER,
    Influxd,
    Mosquitto,
    fleet_acl,
    free_port,
    gateway_user,
    stop_process,
    write_secrets,
)

CH15 = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3", "active_power",
        "reactive_power", "apparent_power", "power_factor", "frequency", "energy_import", "energy_export",
        "thd_voltage_l1", "thd_current_l1"]
TICK = os.sysconf("SC_CLK_TCK")


def runq_wait_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (``/proc/<pid>/task/*/schedstat``
    field 2): on a shared machine, the time it wanted to run and another process had the core."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK




class Collect:
    def __init__(self, argv: list[str], env: dict, log: Path):
        self.log = log
        with open(log, "ab") as f:
            self.p = subprocess.Popen([sys.executable, "-m", "energyhost", "collect", *argv], env=env, cwd=ROOT,
                                      stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        ok = wait_for(lambda: "collector started" in log.read_text() or self.p.poll() is not None, 60)
        if not ok or self.p.poll() is not None:
            raise RuntimeError(f"collector did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.p, 60)


def count(client: InfluxClient, meas: str, field: str) -> int:
    s = client.query(f'SELECT count("{field}") FROM "{meas}"')
    return int(s[0]["values"][0][1]) if s else 0


def influx_vars(url: str) -> tuple[int, int]:
    with urllib.request.urlopen(f"{url}/debug/vars", timeout=5) as r:
        v = json.loads(r.read())
    pts = byt = 0
    for key, stat in v.items():          # "httpd" or "httpd::<bind address>" depending on the build
        if key.startswith("httpd") and isinstance(stat, dict):
            h = stat.get("values", {})
            pts += int(h.get("pointsWrittenOK", 0))
            byt += int(h.get("writeReqBytes", 0))
    return pts, byt


# ------------------------------------------------------------------------------------------- A. MQTT
def bench_mqtt(tmp: Path, influx: Influxd, n_readings: int) -> dict:
    import paho.mqtt.client as mqtt

    per_msg = 50
    lines = ['[[customer]]', 'id = "c-b"', '  [[customer.site]]', '  id = "s-b"']
    for d in range(per_msg):
        lines += ["    [[customer.site.device]]", f'    id = "m{d}"', '    kind = "meter"', '    transport = "mqtt"']
    fleet_path = tmp / "mqtt-fleet.toml"
    fleet_path.write_text("\n".join(lines) + "\n")
    fleet = load_fleet(fleet_path)
    acc = fleet_acl(fleet)
    files = write_secrets(acc, tmp / "secrets")
    mosq = Mosquitto(tmp / "mq", users=acc.passwords, acl=acc.acl_text(), autosave_changes=10**6).start()
    db = "bench_mqtt"
    influx.create_database(db)
    env = {**os.environ, "EH_INFLUX_URL": influx.url, "EH_INFLUX_DB": db, "EH_MQTT_PORT": str(mosq.port),
           "EH_MQTT_USER": COLLECTOR_USER, "EH_MQTT_PASSWORD_FILE": str(files[COLLECTOR_USER]),
           "EH_SPOOL_DIR": str(tmp / "spool"), "PYTHONUNBUFFERED": "1"}
    argv = ["--fleet", str(fleet_path), "--no-modbus", "--instance", "bench"]
    try:
        Collect(argv, env, tmp / "mqtt-collect.log").stop()          # creates the persistent session
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
        gw = gateway_user("s-b")
        pub.username_pw_set(gw, acc.passwords[gw])
        pub.max_inflight_messages_set(1000)
        acked = [0]
        pub.on_publish = lambda *a: acked.__setitem__(0, acked[0] + 1)
        pub.connect("127.0.0.1", mosq.port)
        pub.loop_start()
        n_msgs = n_readings // per_msg
        t0 = int(time.time() * 1000) - 3_600_000
        for k in range(n_msgs):
            readings = [{"device": f"m{d}", "ts": t0 + k, "values": {c: 100.0 + i + d + k % 7 for i, c in enumerate(CH15)}}
                        for d in range(per_msg)]
            pub.publish(batch_topic("s-b", gw), json.dumps({"readings": readings}), qos=1)
        wait_for(lambda: acked[0] >= n_msgs, 120, 0.05)
        pub.disconnect()
        pub.loop_stop()
        client = InfluxClient(influx.url, db)
        col = Collect(argv, env, tmp / "mqtt-collect.log")
        c0, w0 = cpu_s(col.p.pid), time.monotonic()
        done = wait_for(lambda: count(client, "meter", "active_power") >= n_readings, 300, 0.1)
        c1, w1 = cpu_s(col.p.pid), time.monotonic()
        col.stop()
        if not done:
            raise RuntimeError(f"only {count(client, 'meter', 'active_power')} of {n_readings} stored")
        # raw: the same points as line protocol straight to /write
        raw_db = "bench_raw"
        influx.create_database(raw_db)
        raw = InfluxClient(influx.url, raw_db)
        body = []
        for k in range(n_msgs):
            for d in range(per_msg):
                f = ",".join(f"{c}={100.0 + i + d + k % 7}" for i, c in enumerate(CH15))
                body.append(f"meter,customer=c-b,site=s-b,device=m{d} {f} {(t0 + k) * 1_000_000}")
        r0 = time.monotonic()
        for i in range(0, len(body), 5000):
            raw.write_lines("\n".join(body[i:i + 5000]) + "\n")
        raw_s = time.monotonic() - r0
    finally:
        mosq.stop()
    out = {"readings": n_readings, "wall_s": w1 - w0, "cpu_s": c1 - c0,
           "readings_per_cpu_s": n_readings / max(c1 - c0, 1e-9), "readings_per_wall_s": n_readings / (w1 - w0),
           "raw_write_points_per_s": n_readings / raw_s}
    print(f"A. MQTT  {n_readings} readings (15 ch), one collector process:  ours {out['readings_per_wall_s']:,.0f} "
          f"readings/s wall, {out['readings_per_cpu_s']:,.0f} readings per collector CPU-second  |  raw /write "
          f"{out['raw_write_points_per_s']:,.0f} points/s  |  ratio (wall) "
          f"{out['readings_per_wall_s'] / out['raw_write_points_per_s']:.2f}", flush=True)
    return out


# ------------------------------------------------------------------------------------------ B/C. Modbus
def _serve(raw: dict, ids: list[str], ready, stop) -> None:
    """One simulator process serving the devices ``ids`` of the fleet (one TCP server each)."""
    from core.profiles import load_profiles
    from simulators.modbus_server import serve_fleet

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def main():
        sim = await serve_fleet(parse_fleet(raw), load_profiles(),
                                lambda dev, t: {"voltage_l1": 230.0 + t % 10, "active_power": 1000.0,
                                                "current_l1": 5.0, "frequency": 50.0},
                                devices=ids, update_interval_s=5.0)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await sim.stop()

    asyncio.run(main())


def endpoints(k: int) -> list[tuple[str, int]]:
    """``k`` loopback endpoints: one port, free on every address, and a loopback address per device
    (127.1.x.y, as each meter has its own IP), so the benchmark takes no port that concurrent tests may
    pick and leaves the ephemeral range to the collector's k outgoing connections."""
    import socket

    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))        # nobody holds it on any address (bind only, no listen)
            except OSError:
                continue
        return [(f"127.1.{i // 250}.{i % 250 + 1}", port) for i in range(k)]
    raise RuntimeError("no free port")


def bench_modbus(tmp: Path, influx: Influxd, k: int, seconds: float, interval: float = 5.0,
                 sim_procs: int = 1) -> dict:
    devices = [{"id": f"d{i}", "kind": "meter", "transport": "modbus", "profile": "meter_acrel_dtsd1352",
                "host": host, "port": p, "unit_id": 1, "poll_interval_s": interval}
               for i, (host, p) in enumerate(endpoints(k))]
    raw = {"customer": [{"id": "bench", "site": [{"id": "bench-site", "device": devices}]}]}
    fleet_path = tmp / f"modbus-fleet-{k}.toml"
    fleet_path.write_text(tomli_w.dumps(raw))
    stop = mp.Event()
    sims = []
    t_spawn = time.monotonic()
    for j in range(sim_procs):          # several simulator processes, so the simulator side is not the limit
        ready = mp.Event()
        ids = [d["id"] for d in devices[j::sim_procs]]
        proc = mp.Process(target=_serve, args=(raw, ids, ready, stop), daemon=True)
        proc.start()
        sims.append((proc, ready))
    for proc, ready in sims:
        while not ready.wait(1.0):
            if not proc.is_alive() or time.monotonic() - t_spawn > 300:
                stop.set()
                raise RuntimeError("Modbus simulator did not start (see its traceback above)")
    db = f"bench_modbus_{k}"
    influx.create_database(db)
    mport = free_port()
    env = {**os.environ, "EH_INFLUX_URL": influx.url, "EH_INFLUX_DB": db, "EH_SPOOL_DIR": str(tmp / "spool-mb"),
           "PYTHONUNBUFFERED": "1"}
    try:
        col = Collect(["--fleet", str(fleet_path), "--no-mqtt", "--instance", "mb", "--metrics-port", str(mport)],
                      env, tmp / "modbus-collect.log")
        time.sleep(2 * interval + min(k / 1000, 20))    # every device connected and polled: steady state
        t_start = time.time()
        c0, s0, (p0, b0) = cpu_s(col.p.pid), sum(cpu_s(p.pid) for p, _ in sims), influx_vars(influx.url)
        w0, load0 = runq_wait_s(col.p.pid), os.getloadavg()[0]
        sw0 = sum(runq_wait_s(p.pid) for p, _ in sims)
        time.sleep(seconds)
        c1, s1, (p1, b1) = cpu_s(col.p.pid), sum(cpu_s(p.pid) for p, _ in sims), influx_vars(influx.url)
        w1, load1 = runq_wait_s(col.p.pid), os.getloadavg()[0]
        sw1 = sum(runq_wait_s(p.pid) for p, _ in sims)
        t_end = time.time()
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        col.stop()
    finally:
        stop.set()
        for proc, _ in sims:
            proc.join(60)
            if proc.is_alive():
                proc.kill()
    client = InfluxClient(influx.url, db)
    # slots wholly inside [t_start, t_end): every device should have one status point per slot
    lo = (int(t_start // interval) + 1) * interval
    hi = int(t_end // interval) * interval
    due = int((hi - lo) / interval) * k
    q = (f'SELECT count("online") FROM "collector_status" WHERE time >= {int(lo * 1e9)} AND time < {int(hi * 1e9)} '
         'GROUP BY "device"')
    per_dev = {s["tags"]["device"]: int(s["values"][0][1]) for s in client.query(q)}
    ok_q = (f'SELECT count("active_power") FROM "meter" WHERE time >= {int(lo * 1e9)} AND time < {int(hi * 1e9)}')
    ok = client.query(ok_q)
    stored_ok = int(ok[0]["values"][0][1]) if ok else 0
    lq = client.query(f'SELECT median("latency_ms"), percentile("latency_ms", 99), max("latency_ms") FROM '
                      f'"collector_status" WHERE time >= {int(lo * 1e9)} AND time < {int(hi * 1e9)}')
    lat = lq[0]["values"][0][1:4] if lq else [None, None, None]
    offline = re.search(r"^energyhost_devices_offline ([0-9.e+]+)$", body, re.M)
    lag = re.search(r"^energyhost_poll_lag_ms_p99 ([0-9.e+]+)$", body, re.M)
    cpu_share = (c1 - c0) / (t_end - t_start)
    sim_share = (s1 - s0) / (t_end - t_start)
    pts_s, bytes_s = (p1 - p0) / (t_end - t_start), (b1 - b0) / (t_end - t_start)
    out = {"devices": k, "interval_s": interval, "slots_due": due, "status_stored": sum(per_dev.values()),
           "readings_stored": stored_ok, "devices_short": sum(1 for d in devices if per_dev.get(d["id"], 0) <
                                                             (hi - lo) / interval),
           "latency_ms_p50": lat[0], "latency_ms_p99": lat[1], "latency_ms_max": lat[2],
           "devices_offline": float(offline.group(1)) if offline else None, "cpu_share": cpu_share,
           "lag_ms_p99": float(lag.group(1)) if lag else None, "simulator_processes": sim_procs,
           "collector_runq_wait_share": (w1 - w0) / (t_end - t_start), "load_avg_1m": (load0 + load1) / 2,
           "simulator_runq_wait_share": (sw1 - sw0) / (t_end - t_start),
           "simulator_cpu_share": sim_share,
           "devices_per_core": k / cpu_share if cpu_share > 0 else None,
           "influx_points_per_s": pts_s, "influx_bytes_per_s": bytes_s,
           "per_1000_points_per_s": pts_s * 1000 / k, "per_1000_bytes_per_s": bytes_s * 1000 / k}
    print(f"B. Modbus {k} devices @ {interval:g} s for {t_end - t_start:.0f} s: slots due {due}, status points "
          f"{out['status_stored']}, readings {stored_ok}, devices short of a slot {out['devices_short']}, "
          f"poll latency p50/p99/max {lat[0]:.1f}/{lat[1]:.1f}/{lat[2]:.1f} ms, schedule lag p99 "
          f"{out['lag_ms_p99'] or float('nan'):.0f} ms, offline {out['devices_offline']:.0f}, "
          f"collector CPU {cpu_share * 100:.1f} % of a core (simulator {sim_share * 100:.0f} % in {sim_procs} "
          f"processes), waiting for a CPU: collector {out['collector_runq_wait_share'] * 100:.0f} %, simulators "
          f"{out['simulator_runq_wait_share'] * 100:.0f} % of the time, "
          f"load {out['load_avg_1m']:.1f} "
          f"-> ~{out['devices_per_core']:,.0f} devices per core at {interval:g} s (CPU-bound estimate)", flush=True)
    print(f"C. InfluxDB write load: {pts_s:,.1f} points/s, {bytes_s:,.0f} B/s for {k} devices -> per 1,000 devices "
          f"{out['per_1000_points_per_s']:,.0f} points/s, {out['per_1000_bytes_per_s'] / 1024:,.1f} KiB/s "
          f"(line protocol, uncompressed)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mqtt-readings", type=int, default=20000)
    ap.add_argument("--modbus-devices", type=int, nargs="+", default=[200],
                    help="device counts, measured one after the other (e.g. 2000 5000 10000)")
    ap.add_argument("--sim-procs", type=int, default=4, help="simulator processes serving the devices")
    ap.add_argument("--no-mqtt", action="store_true", help="skip phase A")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eh-bench-scale-") as d:
        tmp = Path(d)
        influx = Influxd(tmp / "influxd").start()
        try:
            res = {"mqtt": None if args.no_mqtt else bench_mqtt(tmp, influx, args.mqtt_readings),
                   "modbus": [bench_modbus(tmp, influx, k, args.seconds, sim_procs=args.sim_procs)
                              for k in args.modbus_devices]}
        finally:
            influx.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

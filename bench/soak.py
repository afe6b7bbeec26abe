"""Soak: ``energyhost collect`` under a fault every minute, with memory, fds and accounting checked.

Real processes on loopback: ``influxd`` 1.6.7, ``mosquitto`` 2.0.11, the collector as
``python -m energyhost collect`` (Modbus + MQTT + Writer + spool), Modbus simulators (a serial
gateway with 3 units and 2 direct devices, 1-s polls) and an MQTT gateway (10 devices, QoS 1,
5 readings/s each) in this driver process.  Faults rotate, one per ``fault_every_s``, each lasting
a third of it:

1. influxd SIGKILLed, restarted;  2. mosquitto SIGKILLed, restarted;  3. every gateway unit
silent (blackhole);  4. exception storm (06 busy on every gateway unit, 0B on the direct ones);
5. the collector SIGKILLed and restarted.

Checks printed at the end (and returned by :func:`run_soak`):

* MQTT: readings published == readings stored (QoS 1 end to end, across every fault);
* every cleanly stopped collector run: received == written + pending + rejected + dropped with
  pending == dropped == rejected == 0;
* Modbus, the last (clean) run: ``collector_status`` points stored in its window == its polls;
  a killed run has stored at least every poll it reported (stats line, every 30 s) before the kill
  (it can lose only the Writer's in-memory buffer: flush 0.5 s, <= 1 poll per device);
* RSS of each collector run: growth after its warm-up <= max(10 %, 8 MiB); open fds: spread
  <= 12 (sockets to daemons that are being killed come and go) and back to the start count +- 4;
* the spool drained to 0 and nothing quarantined.

    .venv/bin/python bench/soak.py --hours 24 --workdir var/soak24   # the 24-h soak; progress
                                                     # records in var/soak24/soak-progress.jsonl
    .venv/bin/python bench/soak.py --minutes 10      # the CI-sized run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from support.fault_harness import CollectorProc, count, proc_fds, proc_rss_kib, values_fn, wait_for  # noqa: E402

from core.config import load_fleet  # noqa: E402
from core.influx import InfluxClient  # noqa: E402
from core.profiles import load_profiles  # noqa: E402
from energyhost.devstack import Influxd, Mosquitto, free_port  # noqa: E402
from simulators.modbus_server import serve_fleet  # noqa: E402
from simulators.mqtt_gateway import MqttGateway  # noqa: E402
from simulators.signals import FleetSignals  # noqa: E402

FAULTS = ("influxd_kill", "mosquitto_kill", "modbus_silent", "exception_storm", "collector_kill")
MQTT_INTERVAL = 0.2     # [s] per round of 10 devices
RSS_TOL_FRAC, RSS_TOL_KIB = 0.10, 8 * 1024
FD_SPREAD, FD_RETURN = 12, 4


def _fleet_file(d: Path) -> Path:
    gw_port = free_port()
    lines = ["[[customer]]", 'id = "soak"', "  [[customer.site]]", '  id = "soak-site"',
             "    [[customer.site.gateway]]", '    id = "soak-gw"', '    host = "127.0.0.1"', f"    port = {gw_port}",
             '    framer = "rtu"', "    pause_s = 0.01", "    timeout_s = 0.3"]
    for u in range(1, 4):
        lines += ["    [[customer.site.device]]", f'    id = "soak-gw-m{u}"', '    kind = "meter"',
                  '    profile = "meter_acrel_dtsd1352"', '    transport = "modbus"', '    gateway = "soak-gw"',
                  f"    unit_id = {u}", "    poll_interval_s = 1"]
    for i, (kind, prof) in enumerate([("meter", "meter_eastron_sdm630"), ("ev_charger", "ev_charger_generic_ac")]):
        lines += ["    [[customer.site.device]]", f'    id = "soak-tcp-{i}"', f'    kind = "{kind}"',
                  f'    profile = "{prof}"', '    transport = "modbus"', '    host = "127.0.0.1"',
                  f"    port = {free_port()}", "    unit_id = 1", "    poll_interval_s = 1", "    timeout_s = 0.3"]
    for i in range(10):
        lines += ["    [[customer.site.device]]", f'    id = "soak-mq-{i}"', '    kind = "pv_inverter"',
                  '    transport = "mqtt"']
    path = d / "soak-fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class _ModbusSim:
    """The Modbus simulators on their own event loop thread; ``mode`` picks the misbehaviour."""

    def __init__(self, fleet) -> None:
        self.fleet, self.mode = fleet, "normal"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="modbus-sim", daemon=True)
        self.handle = None

    def behaviour(self, did: str):
        if self.mode == "silent" and did.startswith("soak-gw-"):
            return "silent"
        if self.mode == "storm":
            return 0x06 if did.startswith("soak-gw-") else 0x0B
        return "normal"

    def start(self) -> _ModbusSim:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            serve_fleet(self.fleet, load_profiles(), FleetSignals(self.fleet), self.behaviour), self.loop)
        self.handle = fut.result(30)
        return self

    def stop(self) -> None:
        if self.handle is not None:
            asyncio.run_coroutine_threadsafe(self.handle.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _stats_lines(log: Path) -> list[tuple[str, dict]]:
    """("stats" | "stopped", json) lines of ``energyhost collect``'s log, in order."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if " stats {" in line:
            out.append(("stats", json.loads(line[line.index(" stats {") + 7:])))
        elif "collector stopped" in line and ": {" in line:
            out.append(("stopped", json.loads(line[line.index(": {") + 2:])))
    return out


def _stats_by_run(log: Path) -> list[list[dict]]:
    """The periodic stats lines of ``energyhost collect``, grouped per process run (split at each start)."""
    runs: list[list[dict]] = []
    for line in log.read_text(errors="replace").splitlines():
        if "collector started:" in line:
            runs.append([])
        elif " stats {" in line and runs:
            runs[-1].append(json.loads(line[line.index(" stats {") + 7:]))
    return runs


def run_soak(seconds: float, workdir: Path, *, fault_every_s: float | None = None, say=print,
             progress_every_s: float = 600.0) -> dict:
    """Run the soak for ``seconds`` in ``workdir``; return the checks and figures.

    Every ``progress_every_s`` a line goes to ``<workdir>/soak-progress.jsonl`` (and ``say``):
    elapsed time, faults so far, the collector run, its RSS and fds, readings published and
    stored so far — so a long soak that is cut short still leaves its record.
    """
    fault_every = fault_every_s or min(60.0, seconds / 10)
    fault_len = fault_every / 3
    fleet_path = _fleet_file(workdir)
    fleet = load_fleet(fleet_path)
    influxd = Influxd(workdir / "influxd").start()
    influxd.create_database("soak")
    mosq = Mosquitto(workdir / "mosquitto").start()
    sim = _ModbusSim(fleet).start()
    spool = workdir / "spool"
    col = CollectorProc.service(fleet_path, influxd.url, "soak", mosq.port, spool, workdir / "collect.log")
    runs: list[dict] = []          # per collector process: pid, start, end, samples, killed
    faults_done: list[tuple[float, str]] = []
    gw = None
    t_start = time.time()

    def new_run() -> None:
        spawned = time.time()          # before the process starts: it polls while start() waits for it
        col.start(60)
        runs.append({"pid": col.pid, "start": time.time(), "spawned": spawned, "end": None, "samples": [],
                     "killed": False})

    def sample() -> None:
        r = runs[-1]
        try:
            r["samples"].append((time.time() - r["start"], proc_rss_kib(r["pid"]), proc_fds(r["pid"])))
        except OSError:
            pass

    client = InfluxClient(influxd.url, "soak")
    published = 0
    try:
        new_run()
        gw = MqttGateway(fleet, "soak-site", "127.0.0.1", mosq.port, values_fn, client_id="soak-gw-mqtt").start()
        gw._c.reconnect_delay_set(0.1, 2)
        gw.run(MQTT_INTERVAL, rounds=int(seconds / MQTT_INTERVAL), t0=time.time())
        k = 0
        next_fault = t_start + fault_every
        next_progress = t_start + progress_every_s
        deadline = t_start + seconds
        while time.time() < deadline:
            time.sleep(min(2.0, max(0.0, deadline - time.time())))
            sample()
            if time.time() >= next_progress:
                next_progress += progress_every_s
                _progress(workdir, t_start, runs, faults_done, gw.readings, client, say)
            if time.time() < next_fault or time.time() + fault_len > deadline:
                continue
            fault = FAULTS[k % len(FAULTS)]
            k += 1
            next_fault += fault_every
            faults_done.append((round(time.time() - t_start, 1), fault))
            say(f"[{time.time() - t_start:7.1f} s] fault {fault}")
            if fault == "influxd_kill":
                influxd.kill()
                time.sleep(fault_len)
                influxd.start()
            elif fault == "mosquitto_kill":
                mosq.kill()
                time.sleep(min(fault_len, 5.0))
                mosq.start()
            elif fault in ("modbus_silent", "exception_storm"):
                sim.mode = "silent" if fault == "modbus_silent" else "storm"
                time.sleep(fault_len)
                sim.mode = "normal"
            elif fault == "collector_kill":
                col.kill()
                runs[-1]["end"], runs[-1]["killed"] = time.time(), True
                time.sleep(1.0)
                new_run()
        gw._thread.join(60)
        gw.wait_acked(60)
        published = gw.readings
        wait_for(lambda: count(client, "pv_inverter") >= published, 120, 0.5)
        time.sleep(2.0)                    # late redeliveries, last Modbus polls
        gw.stop()
        gw = None
        time.sleep(1.0)
        col.stop(60)
        runs[-1]["end"] = time.time()
        return _checks(runs, col, client, spool, published, faults_done, time.time() - t_start, say)
    finally:
        if gw is not None:
            gw.stop()
        col.kill()
        sim.stop()
        mosq.stop()
        influxd.stop()


def _progress(workdir: Path, t_start: float, runs: list[dict], faults: list, published: int,
              client: InfluxClient, say) -> None:
    """One progress record (stored count may lag the published one by the pipeline's latency)."""
    try:
        stored = count(client, "pv_inverter")
    except Exception as exc:  # noqa: BLE001 - influxd may be down for a fault right now
        stored = f"unavailable ({type(exc).__name__})"
    last = runs[-1]["samples"][-1] if runs[-1]["samples"] else (0, None, None)
    rec = {"elapsed_s": round(time.time() - t_start, 1), "faults": len(faults), "collector_runs": len(runs),
           "rss_kib": last[1], "fds": last[2], "mqtt_published": published, "mqtt_stored": stored}
    with open(workdir / "soak-progress.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
    say(f"[{rec['elapsed_s']:7.1f} s] progress {json.dumps(rec)}")


def _growth_ok(samples: list[tuple[float, int, int]], warmup_s: float) -> tuple[bool, bool, dict]:
    """RSS and fd flatness of one process run, from its samples after ``warmup_s``."""
    after = [s for s in samples if s[0] >= warmup_s]
    if len(after) < 3:
        return True, True, {"samples": len(after)}
    rss0 = statistics.median(s[1] for s in after[:3])
    rss1 = statistics.median(s[1] for s in after[-3:])
    fds = [s[2] for s in after]
    rss_ok = rss1 - rss0 <= max(RSS_TOL_FRAC * rss0, RSS_TOL_KIB)
    fd_ok = max(fds) - min(fds) <= FD_SPREAD and abs(fds[-1] - fds[0]) <= FD_RETURN
    return rss_ok, fd_ok, {"rss_kib_start": int(rss0), "rss_kib_end": int(rss1), "fd_min": min(fds),
                           "fd_max": max(fds), "fd_first": fds[0], "fd_last": fds[-1], "samples": len(after)}


def _checks(runs, col, client, spool: Path, published: int, faults, elapsed: float, say) -> dict:
    lines = _stats_lines(col.log)
    stopped = [j for kind, j in lines if kind == "stopped"]
    stats = [j for kind, j in lines if kind == "stats"]
    res: dict = {"elapsed_s": round(elapsed, 1), "faults": faults, "runs": len(runs), "checks": {}}
    chk = res["checks"]
    # MQTT end to end
    stored_mqtt = count(client, "pv_inverter")
    chk["mqtt_exact"] = stored_mqtt == published
    res["mqtt"] = {"published": published, "stored": stored_mqtt, "lost": published - stored_mqtt}
    # clean runs: the Writer's identity with nothing pending, dropped or rejected
    clean = [r for r in runs if not r["killed"]]
    chk["clean_runs_reported"] = len(stopped) == len(clean)
    chk["writer_identity"] = all(
        w["received"] == w["written"] + w["pending"] + w["rejected"] + w["dropped"] and
        w["pending"] == w["dropped"] == w["rejected"] == 0 for w in stopped)
    res["writer_last_run"] = stopped[-1] if stopped else None
    # Modbus: the last run's polls == its stored status points
    last = runs[-1]
    polls = stats[-1]["modbus"]["polls"] if stats else -1
    # a reading is stamped with its slot's start, up to one poll interval (1 s) before the poll itself, and
    # the process polls before start() returns: count from a slot before the spawn, never into the last run
    prev_end = runs[-2]["end"] if len(runs) > 1 and runs[-2]["end"] else 0.0
    since = max(last["spawned"] - 1.0, prev_end)
    q = client.query("SELECT count(online) FROM collector_status WHERE source = 'modbus' AND time >= $t",
                     {"t": int(since * 1e9)})
    stored_polls = int(q[0]["values"][0][1]) if q else 0
    chk["modbus_last_run_exact"] = stored_polls == polls
    res["modbus_last_run"] = {"polls": polls, "stored_status_points": stored_polls,
                              "skipped_slots": stats[-1]["modbus"]["skipped_slots"] if stats else None}
    # Modbus: a killed run stored at least every poll it had reported (stats every 30 s) before the kill
    per_run_stats = _stats_by_run(col.log)
    killed = []
    for i, r in enumerate(runs):
        if not r["killed"]:
            continue
        q = client.query("SELECT count(online) FROM collector_status WHERE source = 'modbus' AND time >= $a "
                         "AND time < $b", {"a": int(r["start"] * 1e9), "b": int(r["end"] * 1e9)})
        st = per_run_stats[i] if i < len(per_run_stats) else []
        reported = st[-1]["modbus"]["polls"] if st else 0
        killed.append({"run": i, "seconds": round(r["end"] - r["start"], 1),
                       "stored_status_points": int(q[0]["values"][0][1]) if q else 0,
                       "polls_reported_before_kill": reported})
    chk["modbus_killed_runs_kept_reported_polls"] = all(
        k["stored_status_points"] >= k["polls_reported_before_kill"] for k in killed)
    res["modbus_killed_runs"] = killed
    # memory and fds per run
    warm = min(60.0, max(10.0, 0.2 * min((r["end"] or time.time()) - r["start"] for r in runs)))
    flat = [_growth_ok(r["samples"], warm) for r in runs]
    chk["rss_flat"] = all(f[0] for f in flat)
    chk["fds_flat"] = all(f[1] for f in flat)
    res["per_run"] = [f[2] for f in flat]
    res["warmup_s"] = warm
    # spool drained, nothing quarantined
    chk["spool_drained"] = bool(stopped) and stopped[-1]["spooled"] == 0
    chk["nothing_quarantined"] = not any((spool / "quarantine").glob("*.bad"))
    res["ok"] = all(chk.values())
    say(json.dumps(res, indent=1, default=str))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--hours", type=float, help="soak duration [h] (24 for the full soak)")
    g.add_argument("--minutes", type=float, help="soak duration [min]")
    ap.add_argument("--fault-every", type=float, default=60.0, help="[s] between faults")
    ap.add_argument("--workdir", default=None, help="keep logs here (default: a temp dir, removed)")
    ap.add_argument("--progress-every", type=float, default=600.0,
                    help="[s] between progress records (<workdir>/soak-progress.jsonl and stdout)")
    args = ap.parse_args(argv)
    seconds = (args.hours or 0) * 3600 + (args.minutes or 0) * 60
    if not 60 <= seconds <= 7 * 86400:
        raise SystemExit("duration must be between 1 minute and 7 days")
    if args.workdir:
        wd = Path(args.workdir)
        wd.mkdir(parents=True, exist_ok=True)
        res = run_soak(seconds, wd, fault_every_s=args.fault_every, progress_every_s=args.progress_every)
    else:
        with tempfile.TemporaryDirectory(prefix="eh-soak-") as tmp:
            res = run_soak(seconds, Path(tmp), fault_every_s=args.fault_every,
                           progress_every_s=args.progress_every)
    print("SOAK", "PASSED" if res["ok"] else "FAILED", json.dumps(res["checks"]))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""How long an InfluxDB outage the spool rides out: measured bytes per reading and throughputs.

Measures, for the demo fleet (``sites.example.toml``) and for the same mix scaled to N devices:

1. readings/s and points/s the fleet produces (each device's ``poll_interval_s``; a Modbus poll
   yields the device Point plus a ``collector_status`` Point, an MQTT reading one Point);
2. bytes per point in the spool on disk (line protocol of FleetSignals values restricted to the
   channels each profile maps, in records of one collector flush = 0.5 s of the fleet's points,
   24-byte record header included);
3. spool append throughput with ``fdatasync`` (our :class:`core.spool.Spool`) beside a raw
   ``os.write`` + ``os.fdatasync`` of the same records (the component), and the ratio;
4. replay throughput from the spool into a real ``influxd`` 1.6.7 (our :class:`core.influx.Writer`
   draining a spool) beside raw ``/write`` of the same payloads, and the ratio.

Then: outage ride-out = spool cap / spool bytes per second, and catch-up time after an outage.
Loopback only, bounded: every loop stops after ``--seconds`` or its count.

    .venv/bin/python bench/spool_capacity.py [--devices 1000] [--seconds 4] [--cap-bytes 1073741824]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import load_fleet  # noqa: E402
from core.influx import InfluxClient, Writer, encode_points  # noqa: E402
from core.model import Point  # noqa: E402
from core.profiles import load_profiles  # noqa: E402
from core.spool import Spool, encode_record  # noqa: E402
from energyhost.devstack import Influxd  # noqa: E402
from simulators.backfill import served_channels  # noqa: E402
from simulators.signals import FleetSignals  # noqa: E402

FLUSH_S = 0.5       # collector.service: Writer(flush_interval_s=0.5)


def fleet_points(fleet, signals, profiles, t: float) -> list[tuple[Point, float]]:
    """(point, interval [s]) for one reading of every device at ``t``."""
    out = []
    for dev in fleet.devices.values():
        only = served_channels(dev, profiles, signals.n_mppt)
        vals = {k: float(v) for k, v in signals.values(dev, t).items() if only is None or k in only}
        t_ns = int(t // dev.poll_interval_s * dev.poll_interval_s * 1e9)
        out.append((Point(dev.kind, dict(dev.tags), vals, t_ns), dev.poll_interval_s))
        if dev.transport == "modbus":
            out.append((Point("collector_status", {**dev.tags, "source": "modbus"},
                              {"status": "ok", "online": 1, "latency_ms": 12.345}, t_ns), dev.poll_interval_s))
    return out


def scaled_lines(sample: list[tuple[Point, float]], n_devices: int, n_fleet: int, seconds: float) -> list[bytes]:
    """Line-protocol lines the fleet scaled to ``n_devices`` writes in ``seconds`` (device ids suffixed)."""
    reps = max(1, round(n_devices / n_fleet))
    lines: list[bytes] = []
    for r in range(reps):
        for p, interval in sample:
            per = seconds / interval
            k = int(per) + (1 if (r % 100) / 100 < per - int(per) else 0)
            tags = {**p.tags, "device": f"{p.tags['device']}-{r}"}
            for j in range(k):
                q = Point(p.measurement, tags, p.fields, p.time_ns + int(j * interval * 1e9))
                lines += encode_points([q]).lines
    return lines


def rate(sample, n_devices: int, n_fleet: int) -> float:
    return sum(1.0 / iv for _, iv in sample) * n_devices / n_fleet


def bench_append(directory: Path, record: bytes, n_points: int, seconds: float) -> tuple[float, float]:
    """(our records/s, raw records/s): the better of 2 alternating rounds of ``seconds`` / 2 each."""
    ours, raw = [], []
    for k in range(2):
        o, r = _append_round(directory / f"r{k}", record, n_points, seconds / 2)
        ours.append(o)
        raw.append(r)
    return max(ours), max(raw)


def _append_round(directory: Path, record: bytes, n_points: int, seconds: float) -> tuple[float, float]:
    directory.mkdir(parents=True, exist_ok=True)
    sp = Spool(directory / "ours", max_bytes=2**40, fsync=True)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds and n < 1_000_000:
        sp.append(record, n_points)
        n += 1
    ours = n / (time.perf_counter() - t0)
    sp.close()
    raw_rec = encode_record(record, n_points)
    fd = os.open(directory / "raw.seg", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds and n < 1_000_000:
        os.write(fd, raw_rec)
        os.fdatasync(fd)
        n += 1
    raw = n / (time.perf_counter() - t0)
    os.close(fd)
    return ours, raw


def bench_replay(influxd: Influxd, directory: Path, records: list[bytes], n_per: int, db: str) -> tuple[float, float]:
    """(our points/s draining a spool of ``records`` via Writer, raw /write points/s of the same bodies)."""
    sp = Spool(directory, max_bytes=2**40, fsync=False)
    for r in records:
        sp.append(r, n_per)
    sp.close()
    influxd.create_database(db)
    client = InfluxClient(influxd.url, db, timeout=30)
    t0 = time.perf_counter()
    w = Writer(client, directory, flush_interval_s=0.1)
    ok = w.drain(600)
    ours_s = time.perf_counter() - t0
    st = w.stats()
    w.close()
    if not ok or st["written"] != len(records) * n_per:
        raise SystemExit(f"replay incomplete: {st}")
    influxd.create_database(db + "_raw")
    raw_client = InfluxClient(influxd.url, db + "_raw", timeout=30)
    t0 = time.perf_counter()
    for r in records:
        raw_client.write_lines(r)
    raw_s = time.perf_counter() - t0
    total = len(records) * n_per
    return total / ours_s, total / raw_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fleet", default=str(ROOT / "sites.example.toml"))
    ap.add_argument("--devices", type=int, default=1000, help="scaled fleet size")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each append measurement [s]")
    ap.add_argument("--replay-points", type=int, default=200_000,
                    help="points spooled for the replay run (at most 5,000 records)")
    ap.add_argument("--cap-bytes", type=int, default=2**30, help="spool cap (Writer default 1 GiB)")
    args = ap.parse_args(argv)
    if args.devices < 1 or args.seconds <= 0 or args.replay_points < 1000:
        raise SystemExit("--devices >= 1, --seconds > 0, --replay-points >= 1000")

    fleet = load_fleet(args.fleet)
    profiles = load_profiles()
    signals = FleetSignals(fleet)
    t = 1_780_000_000.0         # a June noon-ish instant (PV producing): longest lines
    sample = fleet_points(fleet, signals, profiles, t)
    n_fleet = len(fleet.devices)
    print(f"fleet {args.fleet}: {n_fleet} devices "
          f"({sum(d.transport == 'modbus' for d in fleet.devices.values())} Modbus, "
          f"{sum(d.transport == 'mqtt' for d in fleet.devices.values())} MQTT)")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="eh-spoolcap-") as tmp:
        tmpd = Path(tmp)
        influxd = Influxd(tmpd / "influxd").start()
        try:
            for label, n_dev in (("demo", n_fleet), (f"{args.devices} devices", args.devices)):
                pts_s = rate(sample, n_dev, n_fleet)
                readings_s = sum(1.0 / d.poll_interval_s for d in fleet.devices.values()) * n_dev / n_fleet
                # the fleet's mix over 60 s, cut into records of one collector flush (0.5 s of points)
                lines = scaled_lines(sample, n_dev, n_fleet, 60.0)
                per_rec = max(1, round(pts_s * FLUSH_S))
                recs = [b"\n".join(lines[i:i + per_rec]) for i in range(0, len(lines) - per_rec + 1, per_rec)]
                bpp = sum(len(encode_record(r, per_rec)) for r in recs) / (len(recs) * per_rec)
                payload = max(recs, key=len)          # the benchmarks use the largest record
                ours, raw = bench_append(tmpd / f"append-{n_dev}", payload, per_rec, args.seconds)
                n_recs = max(10, min(args.replay_points // per_rec, 5000))
                rp_ours, rp_raw = bench_replay(influxd, tmpd / f"replay-{n_dev}", (recs * (n_recs // len(recs) + 1))[:n_recs],
                                               per_rec, f"replay{n_dev}")
                spool_bps = pts_s * bpp
                ride_s = args.cap_bytes / spool_bps
                rows[label] = (n_dev, readings_s, pts_s, per_rec, bpp, ours, raw, rp_ours, rp_raw, spool_bps, ride_s)
        finally:
            influxd.stop()

    print(f"\nspool cap {args.cap_bytes / 2**20:.0f} MiB; one spool record = one collector flush ({FLUSH_S} s)")
    for label, (n_dev, rd_s, pts_s, per_rec, bpp, ours, raw, rp_ours, rp_raw, spool_bps, ride_s) in rows.items():
        catch_1h = 3600 * pts_s / max(rp_ours - pts_s, 1e-9)
        print(f"\n== {label}: {n_dev} devices")
        print(f"  readings/s {rd_s:10.1f}   points/s {pts_s:10.1f}   points per record {per_rec}")
        print(f"  bytes per point in the spool        {bpp:10.1f}")
        print(f"  spool bytes/s during an outage      {spool_bps:10.1f}   ({spool_bps * 86400 / 2**20:.1f} MiB/day)")
        print(f"  append+fdatasync records/s   ours {ours:10.1f}   raw write+fdatasync {raw:10.1f}   "
              f"ratio {ours / raw:5.2f}   (needed {1 / FLUSH_S:.0f}/s)")
        print(f"  append points/s (ours)              {ours * per_rec:10.0f}   = {ours * per_rec / pts_s:,.0f}x the fleet")
        print(f"  replay points/s into influxd ours {rp_ours:10.0f}   raw /write {rp_raw:10.0f}   "
              f"ratio {rp_ours / rp_raw:5.2f}")
        print(f"  OUTAGE RIDDEN OUT by the cap         {ride_s / 3600:10.1f} h ({ride_s / 86400:.2f} days)")
        print(f"  catch-up after a 1 h outage          {catch_1h:10.1f} s (replay while the fleet keeps sending)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

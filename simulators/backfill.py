"""Backfill: write N days of consistent simulated history straight into InfluxDB.

``backfill(fleet, signals, client, days=30)`` asks :meth:`FleetSignals.values_array` for every device
on a ``step_s`` grid ending at ``end`` (default: now, floored to the step), formats line protocol with
one preformatted template per device (``%``-formatting of whole rows, no per-field Python calls), and
POSTs bodies of about ``chunk_bytes`` through :class:`core.influx.InfluxClient` (``write_lines``),
formatting the next body while the previous one is in flight.

What lands (schema of docs/architecture.md):

* measurement = device kind, tags ``customer, site, device``, fields = every channel of the device
  (floats; states as whole numbers, still float fields), time = the grid instant;
* ``weather`` per site and instant (``weather=True``): tags ``customer, site``, field
  ``outdoor_temperature`` [°C] from :meth:`FleetSignals.weather` -- what a weather feed would
  deliver; the monthly report's baseline model uses its daily mean;
* ``collector_status`` per device and instant: tags ``customer, site, device, source`` (the
  device's transport), fields ``status`` (``"ok"``), ``online`` (``1i``), ``latency_ms``.
  While a ``device_silent`` fault is active there is no device point and the status is
  ``"timeout"``/``online=0i``; while ``device_exceptions`` is active, ``"exception_NN"``/``0i``.

The history equals what the live simulators serve for the same instants (same ``FleetSignals``
seed), so a demo can backfill a month and then run live without a seam in the counters.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from core.channels import CHANNELS
from core.config import Device, Fleet
from core.influx import InfluxClient, escape_field_key, escape_key, escape_measurement
from core.profiles import Profile
from simulators.signals import FleetSignals

# decimals per channel stem: enough for every profile's register resolution, no more (bytes cost time)
_FORMATS = {"energy": "%.1f", "reactive": "%.1f", "active": "%.1f", "apparent": "%.1f", "demand": "%.1f",
            "voltage": "%.2f", "current": "%.3f", "thd": "%.3f", "winding": "%.2f", "temperature": "%.2f",
            "irradiance": "%.2f", "frequency": "%.3f", "power": "%.4f", "session": "%.1f", "dc": "%.3f"}


@dataclass
class BackfillResult:
    """Counts of one backfill run."""

    start: float                    # first instant [unix s]
    end: float                      # instant after the last one [unix s]
    step_s: int
    devices: int = 0
    points: int = 0                 # device points written
    fields: int = 0                 # device field values written
    status_points: int = 0          # collector_status points written
    weather_points: int = 0         # site weather points written
    gap_points: int = 0             # device instants left out (silent / exceptions)
    requests: int = 0               # /write requests
    bytes: int = 0                  # line-protocol bytes sent
    seconds: float = 0.0
    per_device: dict[str, int] = field(default_factory=dict)

    @property
    def total_points(self) -> int:
        return self.points + self.status_points + self.weather_points


def _fmt(channel: str) -> str:
    if CHANNELS[channel].nature == "state":
        return "%d"
    stem = channel.split("_", 1)[0]
    if stem.startswith("mppt"):
        return "%.3f"
    return _FORMATS.get(stem, "%.3f")


def _tags(device: Device) -> str:
    return ",".join(f"{escape_key(k)}={escape_key(v, f'tag {k!r} value')}"
                    for k, v in sorted(device.tags.items()))


def device_lines(device: Device, values: dict[str, np.ndarray], seconds: np.ndarray,
                 keep: np.ndarray | None = None) -> list[str]:
    """Line-protocol lines (without newline) of one device for integral unix ``seconds``.

    ``keep`` (bool array) selects the instants to write.  Raises ``ValueError`` naming a channel
    with a non-finite value, which line protocol cannot carry.
    """
    names = list(values)
    if not names:
        return []
    cols = np.column_stack([values[c] for c in names])
    if keep is not None:
        cols, seconds = cols[keep], seconds[keep]
    if not np.all(np.isfinite(cols)):
        bad = names[int(np.nonzero(~np.isfinite(cols).all(axis=0))[0][0])]
        raise ValueError(f"device {device.id!r}: channel {bad!r} has a non-finite value")
    return _lines(f"{escape_measurement(device.kind)},{_tags(device)}", [(c, _fmt(c)) for c in names], cols,
                  seconds)


def _lines(series: str, fields: list[tuple[str, str]], cols: np.ndarray, seconds: np.ndarray) -> list[str]:
    """One line per row of ``cols`` (a column per field, ``fields`` = (name, %-format)): ``series``
    (measurement and tags, already escaped), the field set and the instant ``seconds`` as ns, by
    one %-template."""
    body = ",".join(f"{escape_field_key(c).replace('%', '%%')}={fmt}" for c, fmt in fields)
    tmpl = f"{series.replace('%', '%%')} {body} %d000000000"
    return [tmpl % tuple(r) for r in np.column_stack([cols, seconds]).tolist()]


def weather_lines(customer_id: str, site_id: str, values: dict[str, np.ndarray], seconds: np.ndarray) -> list[str]:
    """``weather`` lines of one site (tags ``customer, site``) for integral unix ``seconds``."""
    tags = f"customer={escape_key(customer_id, 'tag customer value')},site={escape_key(site_id, 'tag site value')}"
    names = [c for c in values if np.all(np.isfinite(values[c]))]
    if not names:
        return []
    return _lines(f"weather,{tags}", [(c, "%.2f") for c in names], np.column_stack([values[c] for c in names]),
                  seconds)


def status_lines(device: Device, seconds: np.ndarray, status: np.ndarray, latency_ms: np.ndarray) -> list[str]:
    """``collector_status`` lines for one device: ``status`` (str array), online from status == "ok"."""
    tags = _tags(device) + f",source={escape_key(device.transport, 'tag source value')}"
    prefix = f"collector_status,{tags}".replace("%", "%%")
    ok_t = prefix + ' status="ok",online=1i,latency_ms=%.1f %d000000000'
    out = []
    for s, st, lat in zip(seconds.tolist(), status.tolist(), latency_ms.tolist(), strict=True):
        if st == "ok":
            out.append(ok_t % (lat, s))
        else:
            out.append(f'{prefix} status="{st}",online=0i,latency_ms={lat:.1f} {int(s)}000000000')
    return out


def _status(signals: FleetSignals, device: Device, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(seconds)
    status = np.full(n, "ok", dtype=object)
    u = np.modf(np.sin(seconds * 12.9898 + zlib.crc32(device.id.encode()) % 1000) * 43758.5453)[0]
    latency = 8.0 + 30.0 * np.abs(u)
    for w in signals.windows(device):
        if w.fault == "device_exceptions":
            m = w.mask(seconds)
            status[m] = f"exception_{w.params['code']:02d}"
            latency[m] = 6.0 + 10.0 * np.abs(u[m])
    silent = signals.fault_mask(device, "device_silent", seconds)
    status[silent] = "timeout"
    latency[silent] = device.timeout_s * 1000.0 * (device.retries + 1)
    return status, latency


def example_fault_schedule(fleet: Fleet, *, days: float, end: float | None = None) -> list[tuple]:
    """A plausible set of incidents per site over the ``days`` before ``end`` (default now).

    Per site, when the device kinds exist: an inverter trip (3 h, 10:00 local), a string loss on
    MPPT 2 of the last inverter from 06:00 of one day until ``end`` (persistent), a transformer
    over-temperature (13:00-15:00), a feeder at PF 0.80 for 48 h, harmonic distortion (09:00-15:00)
    and a 40 % voltage sag (3 min) on the main meter, a 24 h phase unbalance (ratio 0.3), an EV
    charger fault (code 3, 08:00-14:00) and a stuck charge (09:00-11:00), a device silent for 2 h
    (02:00-04:00), a device answering exception 04 for 30 min, and a feeder meter reset.
    Returns ``(device_id, fault, start, end, params)`` tuples for :func:`backfill` /
    :meth:`FleetSignals.schedule`; incidents that fall outside the period are left out.
    """
    stop = time.time() if end is None else float(end)
    first = stop - days * 86400.0
    out: list[tuple] = []
    for site in fleet.sites.values():
        by = {k: [d for d in site.devices if d.kind == k] for k in ("meter", "transformer", "pv_inverter",
                                                                    "ev_charger")}
        mains = {t.meter for t in site.transformers if t.meter}
        meters = by["meter"]
        main = next((m for m in meters if m.id in mains), meters[0] if meters else None)
        feeder = next((m for m in meters if m.id not in mains and m is not main), main)
        local_day = pd_day(stop, site.timezone)

        def at(frac: float, hour: float, _day=local_day, _tz=site.timezone) -> float:
            back = max(1, int(round(frac * days)))
            return day_start(_day - back, _tz) + hour * 3600.0

        plan: list[tuple] = []
        if by["pv_inverter"]:
            plan.append((by["pv_inverter"][0].id, "inverter_trip", at(0.15, 10), at(0.15, 13), {}))
            plan.append((by["pv_inverter"][-1].id, "string_loss", at(0.12, 6), stop, {"mppt": 2}))
        if by["transformer"]:
            plan.append((by["transformer"][0].id, "transformer_overtemp", at(0.3, 13), at(0.3, 15), {}))
        if feeder is not None:
            plan.append((feeder.id, "low_power_factor", at(0.6, 0), at(0.6, 48), {"pf": 0.80}))
            plan.append((feeder.id, "phase_unbalance", at(0.4, 8), at(0.4, 32), {"ratio": 0.3}))
            plan.append((feeder.id, "meter_reset", at(0.7, 3), at(0.7, 3) + 60, {}))
        if main is not None:
            plan.append((main.id, "harmonic_distortion", at(0.5, 9), at(0.5, 15), {}))
            plan.append((main.id, "voltage_sag", at(0.45, 10.5), at(0.45, 10.55), {"depth": 0.4}))
        if by["ev_charger"]:
            plan.append((by["ev_charger"][0].id, "ev_fault", at(0.25, 8), at(0.25, 14), {"code": 3}))
            plan.append((by["ev_charger"][-1].id, "ev_stuck", at(0.1, 9), at(0.1, 11), {}))
        others = [d for d in site.devices if main is None or d.id != main.id]
        if others:
            plan.append((others[0].id, "device_silent", at(0.35, 2), at(0.35, 4), {}))
            plan.append((others[-1].id, "device_exceptions", at(0.55, 14), at(0.55, 14.5), {"code": 4}))
        for dev, fault, a, b, params in plan:
            if first <= a < stop:
                out.append((dev, fault, a, min(b, stop), params))
    return out


def pd_day(t: float, tz: str) -> int:
    """Local day number (days since 1970-01-01 in ``tz``) of unix time ``t``."""
    local = datetime.fromtimestamp(t, ZoneInfo(tz)).date()
    return (local - date(1970, 1, 1)).days


def day_start(day: int, tz: str) -> float:
    """Unix time of local midnight starting local day number ``day`` in ``tz``."""
    d = date(1970, 1, 1) + timedelta(days=day)
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).timestamp()


def served_channels(device: Device, profiles: Mapping[str, Profile] | None, n_mppt: int) -> frozenset[str] | None:
    """Channels a live collector stores for ``device``: its profile's channels for a Modbus device
    (``mppt{n}_*`` expanded to 1..``n_mppt``), None (= every channel) for MQTT or without profiles."""
    if profiles is None or device.transport != "modbus" or device.profile is None:
        return None
    try:
        prof = profiles[device.profile]
    except KeyError:
        raise ValueError(f"device {device.id!r}: profile {device.profile!r} not among the profiles given") from None
    out: set[str] = set()
    for c in prof.channels:
        if "{n}" in c:
            out.update(c.replace("{n}", str(n)) for n in range(1, n_mppt + 1))
        else:
            out.add(c)
    return frozenset(out)


def backfill(fleet: Fleet, signals: FleetSignals, client: InfluxClient, *, days: float, end: float | None = None,
             step_s: int = 60, faults: Iterable[Sequence] | None = None, devices: Iterable[str] | None = None,
             chunk_bytes: int = 4_000_000, status: bool = True,
             profiles: Mapping[str, Profile] | None = None, weather: bool = True) -> dict[str, Any]:
    """Write ``days`` of history ending at ``end`` into InfluxDB; return the counts (a JSON-able dict).

    The dict holds the fields of :class:`BackfillResult` plus ``total_points``.

    Parameters
    ----------
    fleet, signals : the fleet and its :class:`FleetSignals` (same seed as the live simulators).
    client : :class:`core.influx.InfluxClient` of the target database (must exist).
    days : length of the history [d], > 0.
    end : unix time [s] after the last instant; default now; floored to ``step_s``.
    step_s : grid step [s], whole seconds ≥ 1.
    faults : schedule ``(device_id, fault, start, end[, params])`` added to ``signals`` first.
    devices : device ids to write (default all).
    chunk_bytes : target size of one ``/write`` body [bytes].
    status : also write ``collector_status`` points.
    profiles : when given (``core.profiles.load_profiles()``), a Modbus device gets only the channels
        its profile maps, as the live collector stores them; MQTT devices always get every channel.
    weather : also write the ``weather`` of every site that has a device written.

    Raises ``ValueError`` naming a bad argument; :class:`core.influx.InfluxWriteError` if a write fails.
    """
    seconds, stop = _time_grid(days, step_s, end, chunk_bytes)
    times = seconds.astype(np.float64)
    ids = list(fleet.devices) if devices is None else list(devices)
    for d in ids:
        if d not in fleet.devices:
            raise ValueError(f"unknown device {d!r}: not in the fleet")
    if faults:
        signals.schedule(list(faults))
    res = BackfillResult(start=float(times[0]), end=float(stop), step_s=step_s)
    t_begin = time.perf_counter()
    per_day = max(1, int(86400 // step_s))       # one day at a time keeps memory flat for long backfills
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-write") as pool:
        out = _ChunkedWriter(pool, client, res, chunk_bytes)
        for did in ids:
            _backfill_device(out, signals, did, fleet.devices[did], profiles, seconds, times, per_day, status)
        if weather:
            for sid in dict.fromkeys(fleet.devices[d].site_id for d in ids):
                site = fleet.sites[sid]
                for sl in _days(len(seconds), per_day):
                    w_lines = weather_lines(site.customer_id, sid, signals.weather(sid, times[sl]), seconds[sl])
                    res.weather_points += len(w_lines)
                    out.add(w_lines)
        out.close()
    res.seconds = time.perf_counter() - t_begin
    return {**asdict(res), "total_points": res.total_points}


def _time_grid(days, step_s, end, chunk_bytes) -> tuple[np.ndarray, int]:
    """Unix seconds of the ``days`` of instants before ``end`` (floored to ``step_s``), and that floor."""
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3660:
        raise ValueError(f"days must be a number in (0, 3660], got {days!r}")
    if isinstance(step_s, bool) or not isinstance(step_s, int) or step_s < 1:
        raise ValueError(f"step_s must be a whole number of seconds >= 1, got {step_s!r}")
    if not 1000 <= chunk_bytes <= 20_000_000:
        raise ValueError(f"chunk_bytes must be 1000..20000000 (InfluxDB max-body-size is 25 MB), got {chunk_bytes!r}")
    now = time.time() if end is None else float(end)
    if not math.isfinite(now):
        raise ValueError(f"end must be finite unix seconds, got {end!r}")
    stop = math.floor(now / step_s) * step_s
    n = int(round(days * 86400 / step_s))
    if n < 1:
        raise ValueError(f"days={days!r} with step_s={step_s} gives no instant")
    return stop - step_s * np.arange(n, 0, -1, dtype=np.int64), stop


def _days(n: int, per_day: int) -> list[slice]:
    return [slice(a, min(n, a + per_day)) for a in range(0, n, per_day)]


class _ChunkedWriter:
    """Lines gathered into ``/write`` bodies of about ``chunk_bytes``, sent by ``pool``, at most two in flight."""

    def __init__(self, pool: ThreadPoolExecutor, client: InfluxClient, res: BackfillResult, chunk_bytes: int):
        self.pool, self.client, self.res, self.chunk_bytes = pool, client, res, chunk_bytes
        self.buf: list[str] = []
        self.size = 0
        self.pending: list[Future] = []

    def flush(self) -> None:
        if not self.buf:
            return
        body = "\n".join(self.buf).encode()
        self.buf, self.size = [], 0
        while len(self.pending) >= 2:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self.client.write_lines, body))
        self.res.requests += 1
        self.res.bytes += len(body)

    def add(self, lines: list[str]) -> None:
        for i in range(0, len(lines), 2000):
            part = lines[i:i + 2000]
            self.buf.extend(part)
            self.size += sum(map(len, part)) + len(part)
            if self.size >= self.chunk_bytes:
                self.flush()

    def close(self) -> None:
        """Send the rest and wait for every write (re-raising a failed one)."""
        self.flush()
        for f in self.pending:
            f.result()


def _backfill_device(out: _ChunkedWriter, signals: FleetSignals, did: str, dev: Device,
                     profiles: Mapping[str, Profile] | None, seconds: np.ndarray, times: np.ndarray,
                     per_day: int, status: bool) -> None:
    """One device's points (and status points), a day at a time; counts go to ``out.res``."""
    res = out.res
    only = served_channels(dev, profiles, signals.n_mppt)
    st, lat = _status(signals, dev, times)
    keep = st == "ok"
    written = 0
    for sl in _days(len(seconds), per_day):
        k = keep[sl]
        if k.any():
            vals = signals.values_array(dev, times[sl])
            if only is not None:
                vals = {c: v for c, v in vals.items() if c in only}
            lines = device_lines(dev, vals, seconds[sl], k)
            written += len(lines)
            res.fields += len(lines) * len(vals)
            out.add(lines)
        if status:
            sl_lines = status_lines(dev, seconds[sl], st[sl], lat[sl])
            res.status_points += len(sl_lines)
            out.add(sl_lines)
    res.points += written
    res.gap_points += int((~keep).sum())
    res.per_device[did] = written
    res.devices += 1

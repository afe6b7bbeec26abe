"""The outdoor temperature of a site for the baseline model: where it comes from and which days have enough.

Source rule (docs/reports.md, "Outdoor temperature"), per site and per period (baseline days, month):

1. the site's weather station: the ``ambient_temperature`` of its ``weather_station`` devices, in fleet
   order (the first one holding data in the period is used);
2. else the operator's external feed: a CSV file of hourly temperatures per site named by the customer's
   ``weather_feed`` in the baselines file (:func:`load_feed`); nothing is fetched from the internet;
3. else the site-level ``weather`` measurement (``outdoor_temperature``, written by a deployment's own
   feed or the simulators' backfill).

The report prints the source used.  Gaps are never filled: a local day with fewer than
:data:`MIN_HOURS_PER_DAY` hours holding a temperature gets no daily mean (NaN), so the baseline
comparison leaves it out, and the report counts it (:func:`daily_temperature`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analytics import tariffs as tf
from core.config import Site
from core.units import NS
from reports.fetch import _ident, _rfc3339, fetch_weather

MIN_HOURS_PER_DAY = 20          # hours of a local day that must hold a temperature for the day to be compared
FEED_COLUMNS = ("site", "time", "temperature_c")
FEED_MAX_ROWS = 2_000_000       # about 20 years of hourly values for 10 sites


@dataclass(frozen=True)
class OutdoorTemperature:
    """A site's outdoor temperature over one period and where it came from.

    ``source``: ``station`` (``detail`` = the device id), ``feed`` (``detail`` = the file name),
    ``weather`` (the ``weather`` measurement) or ``none`` (no data anywhere).
    """

    time_ns: np.ndarray
    degc: np.ndarray
    source: str
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.source}:{self.detail}" if self.detail else self.source


def _series(cols: dict) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(cols.get("time", np.empty(0, np.int64)), dtype=np.int64)
    v = np.asarray(cols.get("t", np.full(t.size, np.nan)), dtype=np.float64)
    return t, v


def fetch_station(influx: Any, site: Site, device_id: str, start_ns: int, end_ns: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """10-min means of a weather station's ``ambient_temperature`` over [start, end): ``(time_ns, degC)``."""
    q = (f"SELECT mean({_ident('ambient_temperature')}) AS t FROM {_ident('weather_station')} "
         f"WHERE site = $site AND device = $device AND time >= $start AND time < $end GROUP BY time(10m) fill(none)")
    return _series(influx.query_arrays(q, {"site": site.id, "device": device_id, "start": _rfc3339(start_ns),
                                           "end": _rfc3339(end_ns)}))


@dataclass(frozen=True)
class Feed:
    """An operator's file of outdoor temperatures: ``series[site] = (time_ns sorted, degC)``."""

    path: str
    series: dict[str, tuple[np.ndarray, np.ndarray]]

    def window(self, site_id: str, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        t, v = self.series.get(site_id, (np.empty(0, np.int64), np.empty(0)))
        i, j = np.searchsorted(t, start_ns), np.searchsorted(t, end_ns)
        return t[i:j], v[i:j]


def _feed_row(where: str, row: dict) -> tuple[str, int, float]:
    site = (row.get("site") or "").strip()
    if not site:
        raise ValueError(f"{where}: column 'site' is empty")
    try:
        ts = datetime.fromisoformat((row.get("time") or "").strip())
    except ValueError:
        raise ValueError(f"{where}: column 'time' must be an ISO 8601 time with its UTC offset, "
                         f"got {row.get('time')!r}") from None
    if ts.tzinfo is None:
        raise ValueError(f"{where}: column 'time' {row.get('time')!r} has no UTC offset (e.g. +08:00)")
    try:
        temp = float((row.get("temperature_c") or "").strip())
    except ValueError:
        raise ValueError(f"{where}: column 'temperature_c' must be a number, got {row.get('temperature_c')!r}") from None
    if not -80.0 <= temp <= 70.0:
        raise ValueError(f"{where}: column 'temperature_c' {temp} is outside -80..70 degC")
    return site, int(ts.timestamp()) * NS, temp


def load_feed(path: str | os.PathLike) -> Feed:
    """Read an external temperature feed: CSV with header ``site,time,temperature_c``, one row per site and hour.

    ``time`` is ISO 8601 with its UTC offset (``2026-02-01T13:00:00+08:00``), the start of the hour the
    value stands for; ``temperature_c`` the hour's outdoor temperature [°C].  ``ValueError`` names the
    file, the line and the column of a bad row.
    """
    p = Path(path)
    rows: dict[str, list[tuple[int, float]]] = {}
    try:
        with p.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != FEED_COLUMNS:
                raise ValueError(f"{p}: header must be {','.join(FEED_COLUMNS)}, got {reader.fieldnames}")
            for n, row in enumerate(reader, start=2):
                if n > FEED_MAX_ROWS:
                    raise ValueError(f"{p}: more than {FEED_MAX_ROWS} rows")
                site, t, v = _feed_row(f"{p}:{n}", row)
                rows.setdefault(site, []).append((t, v))
    except OSError as exc:
        raise ValueError(f"{p}: cannot read the weather feed: {exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{p}: not a UTF-8 CSV file: {exc}") from None
    series = {}
    for site, pairs in rows.items():
        a = np.array(pairs, dtype=np.float64)
        order = np.argsort(a[:, 0], kind="stable")
        series[site] = (a[order, 0].astype(np.int64), a[order, 1])
    return Feed(path=p.name, series=series)


def outdoor_temperature(influx: Any, site: Site, start_ns: int, end_ns: int, feed: Feed | None = None
                        ) -> OutdoorTemperature:
    """The site's outdoor temperature over [start, end) from the first source holding data (module docstring)."""
    for d in site.devices:
        if d.kind == "weather_station":
            t, v = fetch_station(influx, site, d.id, start_ns, end_ns)
            if np.isfinite(v).any():
                return OutdoorTemperature(t, v, "station", d.id)
    if feed is not None:
        t, v = feed.window(site.id, start_ns, end_ns)
        if np.isfinite(v).any():
            return OutdoorTemperature(t, v, "feed", feed.path)
    t, v = fetch_weather(influx, site, start_ns, end_ns)
    if np.isfinite(v).any():
        return OutdoorTemperature(t, v, "weather")
    return OutdoorTemperature(t, v, "none")


def daily_temperature(t_ns: np.ndarray, degc: np.ndarray, tz: str, first_day: date, n_days: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per local day from ``first_day``: the mean of its hourly means [°C] and the hours holding a value.

    The mean is NaN (the day is not compared) when fewer than :data:`MIN_HOURS_PER_DAY` hours hold a
    value; averaging hourly means first keeps a day with a dense hour from weighing that hour more.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    v = np.asarray(degc, dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"time and temperature must have the same shape, got {t.shape} and {v.shape}")
    hours = np.zeros(n_days, dtype=np.int64)
    if not t.size:
        return np.full(n_days, np.nan), hours
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    f = tf.local_fields(t, tz)
    slot = (f["day"] - (first_day - date(1970, 1, 1)).days) * 24 + f["minute"] // 60
    ok = (slot >= 0) & (slot < n_days * 24) & np.isfinite(v)
    s = np.bincount(slot[ok], weights=v[ok], minlength=n_days * 24)
    c = np.bincount(slot[ok], minlength=n_days * 24)
    has = c > 0
    hourly = np.divide(s, c, out=np.zeros_like(s), where=has)
    hours = has.reshape(n_days, 24).sum(axis=1)
    total = hourly.reshape(n_days, 24).sum(axis=1)
    mean = np.divide(total, hours, out=np.full(n_days, np.nan), where=hours > 0)
    return np.where(hours >= MIN_HOURS_PER_DAY, mean, np.nan), hours

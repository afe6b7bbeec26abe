"""Time base of the signal model: the 60 s grid, the simulated period, local days and day types."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from core import workdays

GRID_S = 60.0                      # base grid step [s]
PRE_S = 6 * 3600                   # history before a day block (thermal lag, demand window) [s]
DEMAND_S = 900                     # demand window [s]
ORIGIN = date(2026, 1, 1)          # counters have their seeded start value at local midnight of this day
EARLIEST = date(2025, 1, 1)        # values before this local day are refused
EPOCH_DATE = date(1970, 1, 1)
ORIGIN_DAY = (ORIGIN - EPOCH_DATE).days
EARLIEST_DAY = (EARLIEST - EPOCH_DATE).days
STEP_EPS_S = 1e-3                  # left limit used to integrate across a fault step [s]

_DAY_TYPE_CACHE: dict[int, int] = {}


def day_types(days: np.ndarray) -> np.ndarray:
    """Day type (core.workdays: working / rest Saturday / Sunday or holiday) of local day numbers."""
    days = np.asarray(days, dtype=np.int64)
    unique_days, inverse = np.unique(days, return_inverse=True)
    out = np.empty(unique_days.size, dtype=np.int64)
    for i, day in enumerate(unique_days.tolist()):
        kind = _DAY_TYPE_CACHE.get(day)
        if kind is None:
            kind = _DAY_TYPE_CACHE[day] = workdays.day_type(EPOCH_DATE + timedelta(days=day))
        out[i] = kind
    return out[inverse].reshape(days.shape)


class LocalClock:
    """Local days of one time zone: day numbers (days since 1970-01-01, local) and their start."""

    def __init__(self, timezone: str):
        self.timezone = timezone
        self._day_starts: dict[int, float] = {}

    def day_start(self, day: int) -> float:
        """Unix time of local midnight starting ``day``."""
        start = self._day_starts.get(day)
        if start is None:
            ts = pd.Timestamp(day * 86400, unit="s").tz_localize(self.timezone, nonexistent="shift_forward",
                                                                   ambiguous=False)
            start = self._day_starts[day] = float(ts.timestamp())
        return start

    def local(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Local day number, local hour [h], weekday (Mon = 0) and day of year of unix times."""
        idx = pd.to_datetime(np.asarray(t, dtype=np.float64) * 1e9, unit="ns", utc=True).tz_convert(self.timezone)
        local_s = idx.tz_localize(None).asi8.astype(np.float64) / 1e9
        day = np.floor(local_s / 86400.0)
        hour = (local_s - day * 86400.0) / 3600.0
        weekday = (day.astype(np.int64) + 3) % 7
        day_of_year = idx.day_of_year.to_numpy().astype(np.float64)
        return day.astype(np.int64), hour, weekday, day_of_year

    def day_of(self, t: np.ndarray) -> np.ndarray:
        """Local day numbers of unix times."""
        return self.local(t)[0]

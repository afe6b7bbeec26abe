"""Meter demand: the 15-min sliding mean of the net active power, and the month's maximum demand."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date

import numpy as np

from .clock import DEMAND_S, EPOCH_DATE, GRID_S
from .counters import CounterHistory
from .faults import POWER_FAULTS, FaultWindow

#: net imported energy [Wh] at times (and their local days, if known)
NetEnergy = Callable[..., np.ndarray]


def running_demand(spans: list[tuple[float, float]], net: NetEnergy) -> tuple[np.ndarray, np.ndarray]:
    """Grid points of ``spans`` [s] and the running maximum of the demand there [W]."""
    g = np.unique(np.concatenate([np.arange(math.ceil(a / GRID_S) * GRID_S, e, GRID_S) for a, e in spans]))
    if not len(g):
        return g, g
    demand = (net(g) - net(g - DEMAND_S)) * 3600.0 / DEMAND_S
    return g, np.maximum.accumulate(demand)


def _split_windows(power_windows: list[FaultWindow], month_start: float, latest: float
                   ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Spans (window + demand interval, from the month start) already over by ``latest``, and the rest."""
    done, running = [], []
    for w in power_windows:
        a = max(w.start, month_start)
        if w.end + DEMAND_S <= latest:
            if w.end + DEMAND_S > a:
                done.append((a, w.end + DEMAND_S))
        else:
            e = min(w.end + DEMAND_S, latest + 1)
            if e > a:
                running.append((a, e))
    return done, running


class Demand:
    """Present and maximum demand of one meter at given times, with faults."""

    def __init__(self, history: CounterHistory, site, dev: str, windows: list[FaultWindow]):
        self.history, self.site, self.dev, self.windows = history, site, dev, windows
        self.power_windows = [w for w in windows if w.fault in POWER_FAULTS]

    def net(self, times: np.ndarray, days: np.ndarray | None = None) -> np.ndarray:
        c = self.history.at(self.site, self.dev, times, self.windows, days, resets=False)
        return c["energy_import"] - c["energy_export"]

    def channels(self, times: np.ndarray, days: np.ndarray) -> dict[str, np.ndarray]:
        present = (self.net(times, days) - self.net(times - DEMAND_S)) * 3600.0 / DEMAND_S
        maximum = np.empty(len(times))
        for day in np.unique(days):
            sel = np.nonzero(days == day)[0]
            maximum[sel] = self._maximum(int(day), times[sel])
        return {"demand_active_power": present, "demand_active_power_max": maximum}

    def _maximum(self, day: int, tt: np.ndarray) -> np.ndarray:
        """Maximum demand: largest grid-point demand since the local month start, up to floor(t)."""
        site, dev = self.site, self.dev
        d0 = date.fromordinal(EPOCH_DATE.toordinal() + day)
        month_day = day - (d0.day - 1)
        earlier = max((site.day_max_demand(d)[dev] for d in range(month_day, day)), default=-math.inf)
        block = site.block(day)
        k = np.clip(((tt - block.day_start) // GRID_S).astype(np.int64), 0, len(block.demand_runmax[dev]) - 1)
        out = np.maximum(earlier, block.demand_runmax[dev][k])
        # faulted demand at grid points inside fault windows (+ demand window) of this month.
        # The running maximum over a set of points is the maximum of the running maxima over any
        # split of it, so the windows already over (with their demand interval) are evaluated
        # once and memoised; only the windows still running are evaluated at every call.
        month_start = site.clock.day_start(month_day)
        done, running = _split_windows(self.power_windows, month_start, float(tt.max()))
        parts = [self._completed(month_start, done)] if done else []
        if running:
            parts.append(running_demand(running, self.net))
        for g, run in parts:
            if not len(g):
                continue
            j = np.searchsorted(g, tt, side="right") - 1
            out = np.where(j >= 0, np.maximum(out, run[np.maximum(j, 0)]), out)
        return out

    def _completed(self, month_start: float, spans: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        """(grid points, running max demand) over completed fault windows of the month, memoised on
        the device, the month and every power fault that starts before the last of those points."""
        last = max(e for _, e in spans)
        key = ("demand", self.dev, month_start, tuple(sorted(spans)),
               tuple(sorted((w.device_id, w.fault, w.start, w.end) for w in self.power_windows if w.start < last)))
        memo = self.history.window_memo
        hit = memo.get(key)
        if hit is None:
            hit = running_demand(spans, self.net)
            if len(memo) > 100_000:
                memo.clear()
            memo[key] = hit
        return hit

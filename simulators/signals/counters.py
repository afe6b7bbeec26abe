"""Energy counters: day blocks of grid quantities, fault-free daily totals and start values, and the
counters with fault windows (exact integrals of the faulted power) and meter resets applied."""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .clock import DEMAND_S, EARLIEST, EARLIEST_DAY, GRID_S, ORIGIN_DAY, PRE_S, STEP_EPS_S
from .faults import POWER_FAULTS, FaultWindow, active_faults
from .integrate import cumulative_trapezoid, cumulative_trapezoid_uneven, integral_at

BLOCKS_KEPT = 72                   # a month plus the days before it in the month (maximum demand)
TOTALS_CHUNK_DAYS = 32


@dataclass
class DayBlock:
    """Base (fault-free) grid quantities of one site for one local day, with a pre-window."""

    day: int
    day_start: float
    day_end: float
    t0: float
    i0: int                     # index of day_start in the grid
    grid: np.ndarray
    comps: dict[str, np.ndarray]
    cum: dict[tuple[str, str], np.ndarray]      # (device, counter) -> Wh since day_start (day part)
    demand_runmax: dict[str, np.ndarray]        # meter -> running max of demand over the day part [W]


class LazyComponents(Mapping):
    """A block's components interpolated at ``times`` on first access."""

    def __init__(self, block: DayBlock, times: np.ndarray):
        self.block, self.times, self._cache = block, times, {}
        self._on_grid = bool(np.all(np.mod(times - block.t0, GRID_S) == 0))
        self._idx = ((times - block.t0) / GRID_S).astype(np.int64) if self._on_grid else None

    def __getitem__(self, k: str) -> np.ndarray:
        if k not in self._cache:
            arr = self.block.comps[k]
            self._cache[k] = arr[self._idx] if self._on_grid else np.interp(self.times, self.block.grid, arr)
        return self._cache[k]

    def __iter__(self):
        return iter(self.block.comps)

    def __len__(self) -> int:
        return len(self.block.comps)


class SiteCounters:
    """The fault-free counters of a site (the base :class:`~.site.SiteModel` builds on).

    Needs from the site model: ``clock``, ``devices``, ``initial_counters``, ``counters(dev)``,
    ``grid_components(t)``, ``channels(...)``, ``integrands(...)`` and ``add_thermal(block)``.
    """

    def __init__(self) -> None:
        self._blocks: OrderedDict[int, DayBlock] = OrderedDict()
        self._totals: dict[int, dict[tuple[str, str], float]] = {}
        self._day_start_counters: dict[int, dict[tuple[str, str], float]] = {}
        self._day_max_demand: dict[int, dict[str, float]] = {}

    def block(self, day: int) -> DayBlock:
        """Grid quantities of local ``day`` (cached): components, counter integrals, running max demand."""
        cached = self._blocks.get(day)
        if cached is not None:
            self._blocks.move_to_end(day)
            return cached
        start, end = self.clock.day_start(day), self.clock.day_start(day + 1)
        t0 = start - PRE_S
        grid = np.arange(t0, end + GRID_S / 2, GRID_S)
        i0 = int(round(PRE_S / GRID_S))
        comps = self.grid_components(grid)
        block = DayBlock(day, start, end, t0, i0, grid, comps, {}, {})
        totals = self.totals(day)
        for dev in self.devices:
            if self.counters(dev):
                self._integrate_block(block, dev, totals)
        self.add_thermal(block)
        self._blocks[day] = block
        while len(self._blocks) > BLOCKS_KEPT:
            self._blocks.popitem(last=False)
        return block

    def _integrate_block(self, block: DayBlock, dev: str, totals: Mapping[tuple[str, str], float]) -> None:
        comps, i0 = block.comps, block.i0
        ch = self.channels(dev, LazyComponents(block, block.grid), block.grid, None)
        for c in self.counters(dev):
            y = ch["_cp:" + c][i0:]
            cum = cumulative_trapezoid(y, GRID_S) / 3600.0
            np.minimum(cum, totals[(dev, c)], out=cum)
            block.cum[(dev, c)] = cum
            comps[f"_cpgrid:{dev}:{c}"] = y
        if self.devices[dev].kind == "meter":
            net = ch["_cp:energy_import"] - ch["_cp:energy_export"]
            cum_net = cumulative_trapezoid(net, GRID_S)
            lag = int(DEMAND_S / GRID_S)
            demand = (cum_net[i0:] - cum_net[i0 - lag:len(cum_net) - lag]) / DEMAND_S
            block.demand_runmax[dev] = np.maximum.accumulate(demand)
            comps[f"load_s:{dev}"] = np.hypot(ch["active_power"], ch["reactive_power"])

    def totals(self, day: int) -> dict[tuple[str, str], float]:
        """Base daily integrals [Wh] of every counter, computed in bulk 32-day chunks (no pre-window)."""
        if day in self._totals:
            return self._totals[day]
        # chunks aligned on fixed 32-day periods: a day's total never depends on the query history
        d0 = ORIGIN_DAY + (day - ORIGIN_DAY) // TOTALS_CHUNK_DAYS * TOTALS_CHUNK_DAYS
        d1 = d0 + TOTALS_CHUNK_DAYS
        starts = [self.clock.day_start(d) for d in range(d0, d1 + 1)]
        grid = np.arange(starts[0], starts[-1] + GRID_S / 2, GRID_S)
        comps = self.grid_components(grid, integrands_only=True)
        lazy = LazyComponents(DayBlock(d0, starts[0], starts[-1], starts[0], 0, grid, comps, {}, {}), grid)
        per_device = {dev: self.integrands(dev, lazy, len(grid)) for dev in self.devices if self.counters(dev)}
        for j, d in enumerate(range(d0, d1)):
            a = int(round((starts[j] - starts[0]) / GRID_S))
            e = int(round((starts[j + 1] - starts[0]) / GRID_S))
            day_totals = {}
            for dev, ch in per_device.items():
                for c in self.counters(dev):
                    y = ch["_cp:" + c][a:e + 1]
                    day_totals[(dev, c)] = float(cumulative_trapezoid(y, GRID_S)[-1] / 3600.0)
            self._totals[d] = day_totals
        return self._totals[day]

    def counters_at_day_start(self, day: int) -> dict[tuple[str, str], float]:
        """Base counter values [Wh] at the local midnight starting ``day``: the seeded values at
        ORIGIN plus (or minus) the daily totals in between."""
        known = self._day_start_counters
        if day in known:
            return known[day]
        if day < EARLIEST_DAY - 1:     # one day of margin: an overnight EV session plugged in the day before
            raise ValueError(f"time before {EARLIEST.isoformat()} (local) is outside the simulated period")
        if not known:
            known[ORIGIN_DAY] = dict(self.initial_counters)
        if day == ORIGIN_DAY:          # the first question may be the origin day itself
            return known[day]
        if day > ORIGIN_DAY:
            d = max(k for k in known if k < day)
            while d < day:
                totals = self.totals(d)
                known[d + 1] = {k: v + totals[k] for k, v in known[d].items()}
                d += 1
        else:
            d = min(k for k in known if k > day)
            while d > day:
                totals = self.totals(d - 1)
                known[d - 1] = {k: v - totals[k] for k, v in known[d].items()}
                d -= 1
        return known[day]

    def day_max_demand(self, day: int) -> dict[str, float]:
        """Each meter's largest fault-free demand [W] on ``day``'s grid."""
        if day not in self._day_max_demand:
            block = self.block(day)
            self._day_max_demand[day] = {m: float(v[-1]) for m, v in block.demand_runmax.items()}
        return self._day_max_demand[day]


def merge_spans(windows: list[FaultWindow], until: float) -> list[list[float]]:
    """Sorted, merged [start, end] of the windows that start by ``until``."""
    merged: list[list[float]] = []
    for a, e in sorted((w.start, w.end) for w in windows if w.start <= until):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([a, e])
    return merged


def integration_points(a: float, end: float, breakpoints: list[float]) -> np.ndarray:
    """Where to evaluate the faulted power over [a, end]: the grid, both ends, and both sides of every
    fault start or end inside."""
    grid = np.arange(math.ceil(a / GRID_S) * GRID_S, end, GRID_S)
    inner = [x for x in breakpoints if a < x <= end]
    points = np.concatenate([grid, [a, end], inner, [x - STEP_EPS_S for x in inner]])
    s = np.unique(points[points >= a])
    return s if len(s) >= 2 else np.array([a, a + STEP_EPS_S])


class CounterHistory:
    """Counters with fault windows applied, for one fleet's signal model.

    Memoises what a live simulator asks again and again: the counters after each completed fault
    window (keyed by the window and every power fault up to its end: windows are replaced, never
    mutated, so the key is the content) and counters at a few fixed instants.
    """

    def __init__(self) -> None:
        self.window_memo: dict[tuple, dict[str, float]] = {}
        self.instant_memo: dict[tuple, dict[str, np.ndarray]] = {}

    def clear_memos(self) -> None:
        self.window_memo.clear()
        self.instant_memo.clear()

    def evaluate(self, site, dev: str, times: np.ndarray, windows: list[FaultWindow] | None
                 ) -> dict[str, np.ndarray]:
        """Gauge channels and ``_cp`` integrands at ``times`` (with the windows applied)."""
        days = site.clock.day_of(times)
        out: dict[str, np.ndarray] = {}
        for day in np.unique(days):
            sel = np.nonzero(days == day)[0]
            tt = times[sel]
            faults = active_faults(windows, tt) if windows else None
            ch = site.channels(dev, LazyComponents(site.block(int(day)), tt), tt, faults)
            for k, v in ch.items():
                if k not in out:
                    out[k] = np.empty(len(times))
                out[k][sel] = v
        return out

    @staticmethod
    def base(site, dev: str, times: np.ndarray, days: np.ndarray) -> dict[str, np.ndarray]:
        """Fault-free counters [Wh]: start of day + exact integral of the grid integrand up to t."""
        out = {c: np.empty(len(times)) for c in site.counters(dev)}
        for day in np.unique(days):
            sel = np.nonzero(days == day)[0]
            tt = times[sel]
            block = site.block(int(day))
            start = site.counters_at_day_start(int(day))
            g = block.grid[block.i0:]
            k = np.clip(((tt - block.day_start) // GRID_S).astype(np.int64), 0, len(g) - 2)
            frac = (tt - g[k]) / GRID_S
            for c in out:
                y = block.comps[f"_cpgrid:{dev}:{c}"]
                y_t = y[k] + (y[k + 1] - y[k]) * frac
                part = (tt - g[k]) * 0.5 * (y[k] + y_t) / 3600.0
                cum = block.cum[(dev, c)]
                out[c][sel] = start[(dev, c)] + np.minimum(cum[k] + part, cum[k + 1])
        return out

    def at(self, site, dev: str, times: np.ndarray, windows: list[FaultWindow], days: np.ndarray | None = None,
           *, resets: bool = True) -> dict[str, np.ndarray]:
        """Counters at ``times``, memoised for the few fixed instants asked again and again (meter
        reset times, EV plug-in times, the previous demand interval): the result depends only on the
        instants, the device and the fault windows, which the key holds."""
        if len(times) > 64:
            return self._compute(site, dev, times, windows, days, resets=resets)
        content = tuple((w.device_id, w.fault, w.start, w.end) for w in windows
                        if w.fault in POWER_FAULTS or (w.fault == "meter_reset" and w.device_id == dev))
        key = (dev, resets, np.asarray(times, dtype=np.float64).tobytes(), content)
        hit = self.instant_memo.get(key)
        if hit is None:
            hit = self._compute(site, dev, times, windows, days, resets=resets)
            if len(self.instant_memo) > 20_000:
                self.instant_memo.clear()
            self.instant_memo[key] = {c: v.copy() for c, v in hit.items()}
            return hit
        return {c: v.copy() for c, v in hit.items()}

    def _compute(self, site, dev: str, times: np.ndarray, windows: list[FaultWindow],
                 days: np.ndarray | None = None, *, resets: bool = True) -> dict[str, np.ndarray]:
        """Counters [Wh, varh] at ``times`` with faults, restarted at meter resets.

        Outside fault windows a counter is the base counter plus a constant; inside a (merged) window
        of power-changing faults it is its value at the window start plus the exact integral of the
        faulted integrand.  Each piece is monotonic in floating point, so the counter never goes back.
        """
        days = site.clock.day_of(times) if days is None else days
        out = self.base(site, dev, times, days)
        power_windows = [w for w in windows if w.fault in POWER_FAULTS]
        if power_windows and len(times):
            self._apply_windows(site, dev, times, power_windows, out)
        if resets:
            reset_times = sorted(w.start for w in windows if w.fault == "meter_reset" and w.device_id == dev)
            if reset_times:
                at = np.array(reset_times)
                before = self.at(site, dev, at, windows, resets=False)
                k = np.searchsorted(at, times, side="right") - 1
                for c in out:
                    out[c] = np.where(k >= 0, out[c] - before[c][np.maximum(k, 0)], out[c])
        return out

    def _apply_windows(self, site, dev: str, times: np.ndarray, power_windows: list[FaultWindow],
                       out: dict[str, np.ndarray]) -> None:
        """Replace ``out`` (base counters) inside and after each merged fault window."""
        latest = float(times.max())
        merged = merge_spans(power_windows, latest)
        if not merged:
            return
        breakpoints = sorted({x for w in power_windows for x in (w.start, w.end) if x <= latest})
        edges = np.array([x for a, e in merged for x in (a, e if e <= latest else a)])
        base_at_edges = self.base(site, dev, edges, site.clock.day_of(edges))
        base = dict(out)
        by_start = sorted(power_windows, key=lambda w: w.start)
        starts = [w.start for w in by_start]
        content = tuple((w.device_id, w.fault, w.start, w.end) for w in by_start)
        after_previous: dict[str, float] = {}     # counter at the end of the previous window
        for j, (a, e) in enumerate(merged):
            key = None
            if e <= latest:
                # a completed window: its integral is the same for every later query, so a
                # live simulator does not re-integrate months of history at every update
                key = (dev, a, e, content[:bisect.bisect_left(starts, e)])
                hit = self.window_memo.get(key)
                if hit is not None and not ((times >= a) & (times < e)).any():
                    after_previous = dict(hit)
                    after = times >= e
                    for c in out:
                        out[c] = np.where(after, after_previous[c] + (base[c] - base_at_edges[c][2 * j + 1]), out[c])
                    continue
            s = integration_points(a, min(e, latest), breakpoints)
            faulted = self.evaluate(site, dev, s, power_windows)
            inside = (times >= a) & (times < e)
            after = times >= e
            for c in out:
                at_start = base_at_edges[c][2 * j]
                at_a = at_start if j == 0 else after_previous[c] + (at_start - base_at_edges[c][2 * j - 1])
                y = faulted["_cp:" + c] / 3600.0
                cum = cumulative_trapezoid_uneven(s, y)
                out[c] = np.where(inside, at_a + integral_at(s, y, cum, times), out[c])
                if e <= latest:
                    after_previous[c] = at_a + float(cum[-1])
                    out[c] = np.where(after, after_previous[c] + (base[c] - base_at_edges[c][2 * j + 1]), out[c])
            if key is not None:
                if len(self.window_memo) > 100_000:
                    self.window_memo.clear()
                self.window_memo[key] = dict(after_previous)

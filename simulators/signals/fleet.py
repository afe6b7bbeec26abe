"""``FleetSignals``: the signal model of a whole fleet, its fault injection and schedule."""

from __future__ import annotations

import math
import threading
import time as _time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from core.config import Device, Fleet

from .clock import EARLIEST, EARLIEST_DAY
from .counters import CounterHistory
from .demand import Demand
from .faults import FAULT_TYPES, FaultWindow, check_params
from .site import SiteModel


class FleetSignals:
    """Signals of every device of ``fleet``; deterministic for a given ``seed``.

    Parameters
    ----------
    fleet : core.config.Fleet
    seed : int
        Seed of every random choice (load variation, clouds, EV sessions, counter start values).
    n_mppt : int
        MPPT inputs per PV inverter (channels ``mppt1_*`` .. ``mppt<n>_*``), 1..8.
    """

    def __init__(self, fleet: Fleet, seed: int = 0, *, n_mppt: int = 4):
        if not 1 <= n_mppt <= 8:
            raise ValueError(f"n_mppt must be 1..8, got {n_mppt!r}")
        self.fleet, self.seed, self.n_mppt = fleet, seed, n_mppt
        self._sites = {sid: SiteModel(s, seed, n_mppt) for sid, s in fleet.sites.items()}
        self._faults: list[FaultWindow] = []
        self._schedule: list[FaultWindow] = []
        self._lock = threading.RLock()     # caches and computation
        self._history = CounterHistory()
        self._flock = threading.Lock()     # the fault lists (never held during a computation)

    # ------------------------------------------------------------------ values
    def _device(self, device: str | Device) -> Device:
        did = device.id if isinstance(device, Device) else device
        try:
            return self.fleet.devices[did]
        except KeyError:
            raise KeyError(f"unknown device {did!r}: not in the fleet") from None

    def channels(self, device: str | Device) -> tuple[str, ...]:
        """Channel names that :meth:`values` returns for ``device``."""
        return tuple(self.values(device, _time.time()))

    def values(self, device: str | Device, t: float) -> dict[str, float]:
        """All channels of ``device`` at unix time ``t`` [s] (same numbers as :meth:`values_array`)."""
        arr = self.values_array(device, np.array([float(t)]))
        return {k: float(v[0]) for k, v in arr.items()}

    def __call__(self, device: str | Device, t: float) -> dict[str, float]:
        """``values_fn(device, t)`` for ``simulators.modbus_server``."""
        return self.values(device, t)

    def values_array(self, device: str | Device, times: np.ndarray) -> dict[str, np.ndarray]:
        """All channels of ``device`` at each of ``times`` [unix s], vectorised."""
        dev = self._device(device)
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 1:
            raise ValueError("times must be a 1-D array of unix seconds")
        if not np.all(np.isfinite(times)):
            raise ValueError("times must be finite unix seconds")
        with self._lock:
            return self._values(dev, times)

    def weather(self, site_id: str, times: np.ndarray) -> dict[str, np.ndarray]:
        """Site weather at each of ``times`` [unix s]: ``outdoor_temperature`` [°C] (the ambient the
        load, the transformer room and the PV modules see), as a weather feed would deliver it."""
        try:
            site = self._sites[site_id]
        except KeyError:
            raise KeyError(f"unknown site {site_id!r}: not in the fleet") from None
        t = np.asarray(times, dtype=np.float64)
        if t.ndim != 1 or not np.all(np.isfinite(t)):
            raise ValueError("times must be a 1-D array of finite unix seconds")
        return {"outdoor_temperature": site.outdoor_temperature(t)}

    def warm(self, t: float | None = None) -> float:
        """Fill the caches every later call near ``t`` (default now) needs; returns the seconds taken.

        The first call for a site integrates the counters from ORIGIN and the month's maximum
        demand (a few seconds per site); a live simulator can call this before serving.
        """
        t0 = _time.perf_counter()
        now = _time.time() if t is None else float(t)
        for site in self.fleet.sites.values():
            if site.devices:
                self.values(site.devices[0], now)
                meters = [d for d in site.devices if d.kind == "meter"]
                if meters:
                    self.values(meters[0], now)
        return _time.perf_counter() - t0

    def _values(self, dev: Device, times: np.ndarray) -> dict[str, np.ndarray]:
        site = self._sites[dev.site_id]
        if not len(times):
            return {}
        days = site.clock.day_of(times)
        if days.min() < EARLIEST_DAY:
            raise ValueError(f"time {times.min()} is before {EARLIEST.isoformat()} (local), outside the simulated period")
        windows = self._site_windows(dev.site_id)
        ch = self._history.evaluate(site, dev.id, times, windows)
        out = {k: v for k, v in ch.items() if not k.startswith("_")}
        if site.counters(dev.id):
            out.update(self._history.at(site, dev.id, times, windows, days))
        if dev.kind == "ev_charger":
            out["session_energy"] = self._session_energy(site, dev.id, times, windows, days, ch["_plug_at"])
        if dev.kind == "meter":
            out.update(Demand(self._history, site, dev.id, windows).channels(times, days))
        return out

    def _session_energy(self, site: SiteModel, dev: str, times: np.ndarray, windows: list[FaultWindow],
                        days: np.ndarray, plug_at: np.ndarray) -> np.ndarray:
        """Energy charged since the car was plugged in [Wh] (0 when no car)."""
        plugged = ~np.isnan(plug_at)
        out = np.zeros(len(times))
        if plugged.any():
            now = self._history.at(site, dev, times[plugged], windows, days[plugged], resets=False)["energy_import"]
            plug_times = np.unique(plug_at[plugged])
            at_plug = self._history.at(site, dev, plug_times, windows, resets=False)["energy_import"]
            out[plugged] = np.maximum(now - at_plug[np.searchsorted(plug_times, plug_at[plugged])], 0.0)
        return out

    # ------------------------------------------------------------------ faults
    def inject(self, device: str | Device, fault: str, *, start: float | None = None, end: float | None = None,
               **params: Any) -> FaultWindow:
        """Start ``fault`` on ``device`` at ``start`` (default now) until cleared or ``end``."""
        w = self._window(device, fault, _time.time() if start is None else start, end, params)
        with self._flock:
            self._faults.append(w)
        return w

    def clear(self, device: str | Device, fault: str | None = None, *, at: float | None = None) -> int:
        """End the active faults of ``device`` (only ``fault`` if given) at ``at`` (default now).

        Returns the number of faults ended.  ``meter_reset`` events are not undone.
        """
        dev = self._device(device)
        if fault is not None and fault not in FAULT_TYPES:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULT_TYPES)}")
        now = _time.time() if at is None else at
        n = 0
        with self._flock:       # replaced, not mutated: a computation in progress keeps its snapshot
            for i, w in enumerate(self._faults):
                if w.device_id == dev.id and (fault is None or w.fault == fault) and w.end > now \
                        and w.fault != "meter_reset":
                    self._faults[i] = replace(w, end=max(now, w.start), params=dict(w.params))
                    n += 1
        return n

    def active_faults(self, t: float | None = None) -> list[dict[str, Any]]:
        """Faults active at ``t`` (default now), injected or scheduled, as dicts."""
        now = _time.time() if t is None else t
        with self._flock:
            return [w.as_dict() for w in self._faults + self._schedule
                    if w.start <= now < w.end and w.fault != "meter_reset"]

    def schedule(self, faults: Iterable[tuple]) -> list[FaultWindow]:
        """Add scheduled faults: ``(device_id, fault, start, end[, params])`` tuples [unix s]."""
        out = []
        for i, item in enumerate(faults):
            if not isinstance(item, tuple | list) or len(item) not in (4, 5):
                raise ValueError(f"fault schedule entry #{i}: expected (device, fault, start, end[, params]), "
                                 f"got {item!r}")
            dev, fault, start, end = item[:4]
            params = dict(item[4]) if len(item) == 5 and item[4] else {}
            out.append(self._window(dev, fault, start, end, params))
        with self._flock:
            self._schedule.extend(out)
        return out

    def behaviour(self, device: str | Device, t: float | None = None) -> str | int:
        """``"silent"``, a Modbus exception code (int) or ``"normal"`` for ``device`` at ``t`` (default now)."""
        dev = self._device(device)
        now = _time.time() if t is None else t
        code: int | None = None
        with self._flock:
            for w in self._faults + self._schedule:
                if w.device_id == dev.id and w.start <= now < w.end:
                    if w.fault == "device_silent":
                        return "silent"
                    if w.fault == "device_exceptions":
                        code = w.params["code"]
        return code if code is not None else "normal"

    def fault_mask(self, device: str | Device, fault: str, times: np.ndarray) -> np.ndarray:
        """True where ``fault`` is active on ``device`` at ``times`` (injected or scheduled)."""
        dev = self._device(device)
        times = np.asarray(times, dtype=np.float64)
        m = np.zeros(len(times), dtype=bool)
        with self._flock:
            for w in self._faults + self._schedule:
                if w.device_id == dev.id and w.fault == fault:
                    m |= w.mask(times)
        return m

    def windows(self, device: str | Device | None = None) -> list[FaultWindow]:
        """All fault windows (injected and scheduled), optionally of one device."""
        with self._flock:
            ws = self._faults + self._schedule
        if device is None:
            return list(ws)
        did = self._device(device).id
        return [w for w in ws if w.device_id == did]

    def _window(self, device, fault, start, end, params) -> FaultWindow:
        dev = self._device(device)
        if fault not in FAULT_TYPES:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULT_TYPES)}")
        kinds, defaults = FAULT_TYPES[fault]
        if dev.kind not in kinds:
            raise ValueError(f"fault {fault!r} does not apply to {dev.kind} {dev.id!r} (applies to {kinds})")
        try:
            start = float(start)
            end = math.inf if end is None else float(end)
        except (TypeError, ValueError):
            raise ValueError(f"fault {fault!r}: start/end must be unix seconds, got {start!r}/{end!r}") from None
        if not math.isfinite(start) or end <= start:
            raise ValueError(f"fault {fault!r}: end ({end}) must be after start ({start})")
        params = check_params(fault, defaults, params, self.n_mppt)
        params["_start"] = start
        return FaultWindow(dev.id, fault, start, end, params)

    def _site_windows(self, site_id: str) -> list[FaultWindow]:
        with self._flock:
            ws = self._faults + self._schedule
        return [w for w in ws if self.fleet.devices[w.device_id].site_id == site_id]

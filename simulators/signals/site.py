"""One site's signal model: its devices' parameters, the grid components and the device channels.

Grid components (``grid_components``, a day block's ``comps``), by key:

=====================  ==========================================================================
``amb``                outdoor temperature [°C]
``load``, ``pf``       site load [W] and its power factor
``v1`` .. ``v3``       per-unit phase voltages at the busbar
``freq``               frequency [Hz]
``thdv``, ``thdi``     voltage and current THD [%] before the per-phase spread
``pv_ac:<dev>``        AC power [W] (``pv_uncl``: before clipping; ``pv_dc``: DC power)
``pv_vmp/voc:<dev>``   MPP and open-circuit voltage [V]
``pv_poa/tmod:<dev>``  plane-of-array irradiance [W/m²], module temperature [°C]
``ev_p:<dev>``         charging power [W]
``load_s:<meter>``     apparent power a meter carries [VA] (day blocks; the transformers' load)
``tw1..3:<dev>``       winding temperatures [°C]; ``fan:<dev>`` fan state with hysteresis
``_cpgrid:<dev>:<c>``  the integrand of counter ``c`` on the day's grid
=====================  ==========================================================================

Channels carry ``_cp:<counter>`` (the power a counter integrates) and, for chargers,
``_plug_at``; names starting with ``_`` never reach a caller.  The noise stream names
(:data:`NOISE_STREAMS`) are part of the seed: renaming one changes the signals.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np

from core.config import Device, Site

from . import ev as ev_model
from . import met as met_model
from . import meters as meter_model
from . import pv as pv_model
from .clock import LocalClock
from .counters import DayBlock, SiteCounters
from .ev import Session
from .faults import ALL_KINDS, ActiveFaults
from .load import SiteLoad
from .noise import stable_key
from .supply import supply_components
from .transformer import controller_channels, transformer_units, winding_temperatures
from .weather import outdoor_temperature

#: names of the site's noise streams (each its own seeded key)
NOISE_STREAMS = ("day", "l15", "l1", "amb", "ambd", "sky", "dip1", "dip2", "pf", "volt", "freq", "thdv", "thdi")
_COUNTERS = {"meter": meter_model.COUNTERS, "pv_inverter": ("energy_export",), "ev_charger": ("energy_import",)}
_INITIAL_FRACTION = {"reactive_energy_import": 0.45, "reactive_energy_export": 0.005}


class SiteModel(SiteCounters):
    """Everything of one site that is a pure function of (site, seed, time)."""

    def __init__(self, site: Site, seed: int, n_mppt: int):
        super().__init__()
        self.site, self.seed = site, seed
        self.clock = LocalClock(site.timezone)
        self.devices = {d.id: d for d in site.devices}
        self.load = SiteLoad(site, random.Random(stable_key(seed, site.id, "site")))
        self.keys = {name: stable_key(seed, site.id, name) for name in NOISE_STREAMS}
        by_kind: dict[str, list[Device]] = {k: [] for k in ALL_KINDS}
        for d in site.devices:
            by_kind[d.kind].append(d)
        self.meter_roles = meter_model.meter_roles(site, by_kind["meter"], seed)
        self.phase_shares = {d.id: meter_model.phase_shares(d.id, seed) for d in site.devices}
        self.transformers = transformer_units(site, by_kind["transformer"], self.meter_roles,
                                              self.load.transformer_va)
        self.pv = pv_model.pv_arrays(site, by_kind["pv_inverter"], seed, n_mppt)
        self.ev = {d.id: ev_model.ev_charger(d.id, d.rated_power_kw, seed) for d in by_kind["ev_charger"]}
        self._sessions: dict[tuple[str, int], list[Session]] = {}
        self.initial_counters = self._initial_counters()
        self.line_key = self.keys["volt"] + 11

    def _initial_counters(self) -> dict[tuple[str, str], float]:
        """Seeded counter values at ORIGIN, sized so that going back to EARLIEST stays > 0."""
        out = {}
        for d in self.site.devices:
            draw = random.Random(stable_key(self.seed, d.id, "e0"))
            for c in self.counters(d.id):
                scale = (self.load.peak_w * 0.5 if d.kind == "meter" else
                         self.pv[d.id].ac_w * 0.2 if d.kind == "pv_inverter" else self.ev[d.id].rated_w * 0.4)
                fraction = 0.02 if c == "energy_export" and d.kind == "meter" else _INITIAL_FRACTION.get(c, 1.0)
                out[(d.id, c)] = scale * 8760 * fraction * draw.uniform(1.3, 2.5)
        return out

    def counters(self, dev: str) -> tuple[str, ...]:
        """Energy counters of the device (none for a temperature controller)."""
        return _COUNTERS.get(self.devices[dev].kind, ())

    def sessions(self, dev: str, day: int) -> list[Session]:
        """EV sessions arriving on local ``day`` (cached)."""
        key = (dev, day)
        if key not in self._sessions:
            self._sessions[key] = ev_model.sessions_of_day(self.ev[dev], self.seed, dev, day, self.clock.day_start)
        return self._sessions[key]

    def outdoor_temperature(self, t: np.ndarray) -> np.ndarray:
        day, hour, _, day_of_year = self.clock.local(t)
        return outdoor_temperature(self.site.latitude, self.keys, t, hour, day_of_year)

    # ------------------------------------------------------------------ grid components
    def grid_components(self, t: np.ndarray, *, integrands_only: bool = False) -> dict[str, np.ndarray]:
        """Base (fault-free) components on sorted grid times ``t`` (multiples of 60 s)."""
        with np.errstate(all="ignore"):
            return self._grid_components(t, integrands_only)

    def _grid_components(self, t: np.ndarray, integrands_only: bool) -> dict[str, np.ndarray]:
        day, hour, _weekday, day_of_year = self.clock.local(t)
        ambient = outdoor_temperature(self.site.latitude, self.keys, t, hour, day_of_year)
        out: dict[str, np.ndarray] = {"amb": ambient,
                                      "load": self.load.power(self.keys, t, hour, day_of_year, day)}
        out["pf"] = self.load.power_factor(self.keys, t)
        sun = None
        if self.pv:
            sun = pv_model.solar(self.site, self.keys, t, day, day_of_year, ambient)
            for dev, pv in self.pv.items():
                pv_model.pv_components(pv, sun, t, out, dev)
        for dev in self.ev:
            out[f"ev_p:{dev}"] = ev_model.charging_power(lambda d, dev=dev: self.sessions(dev, d), t, day)
        if integrands_only:
            return out
        stations = [d.id for d in self.site.devices if d.kind == "weather_station"]
        if stations:
            sun = sun or pv_model.solar(self.site, self.keys, t, day, day_of_year, ambient)
            met = met_model.station_channels(self.site.latitude, self.keys, t, hour, day_of_year, sun)
            out.update({f"met_{k}:{dev}": v for dev in stations for k, v in met.items()})
        out.update(supply_components(self.keys, t, out["load"] / self.load.transformer_va))
        return out

    def add_thermal(self, block: DayBlock) -> None:
        for dev, unit in self.transformers.items():
            winding_temperatures(dev, unit, self.phase_shares[dev], block.comps)

    # ------------------------------------------------------------------ device channels
    def channels(self, dev: str, comps: Mapping[str, np.ndarray], t: np.ndarray,
                 faults: ActiveFaults | None) -> dict[str, np.ndarray]:
        """Channels (without counters/demand) plus ``_cp:<counter>`` integrand powers [W or var]."""
        kind = self.devices[dev].kind
        faults = faults or {}
        nominal_v = self.site.nominal_voltage_v
        if kind == "meter":
            pq = self._meter_power(dev, comps, faults, len(t))
            return meter_model.meter_channels(pq, self.phase_shares[dev], nominal_v, self.line_key, dev, comps, t,
                                              faults)
        if kind == "pv_inverter":
            return pv_model.inverter_channels(self.pv[dev], nominal_v, self.line_key, dev, comps, t, faults)
        if kind == "weather_station":
            return {c: comps[f"met_{c}:{dev}"] for c in met_model.CHANNELS}
        if kind == "ev_charger":
            days = self.clock.day_of(t) if len(t) else np.zeros(0, dtype=np.int64)
            return ev_model.charger_channels(self.ev[dev], lambda d: self.sessions(dev, d), days, nominal_v, dev,
                                             comps, t, faults)
        return controller_channels(dev, comps, t, faults)

    def _meter_power(self, dev: str, comps, faults: ActiveFaults, n: int):
        def pv_power() -> np.ndarray:
            return sum((pv_model.faulted_power(self.pv[d], d, comps, faults, n)[0] for d in self.pv), np.zeros(n))

        def ev_power() -> np.ndarray:
            return sum((ev_model.faulted_power(d, comps, faults, n)[0] for d in self.ev), np.zeros(n))

        return meter_model.meter_power(self.meter_roles[dev], dev, comps, faults, n, pv_power, ev_power)

    def integrands(self, dev: str, comps: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Fault-free counter integrands (same numbers as :meth:`channels` gives as ``_cp:*``)."""
        kind = self.devices[dev].kind
        if kind == "meter":
            p, q, _pf = self._meter_power(dev, comps, {}, n)
            return meter_model.counter_integrands(p, q)
        if kind == "pv_inverter":
            return {"_cp:energy_export": pv_model.faulted_power(self.pv[dev], dev, comps, {}, n)[0]}
        if kind == "ev_charger":
            return {"_cp:energy_import": ev_model.faulted_power(dev, comps, {}, n)[0]}
        return {}

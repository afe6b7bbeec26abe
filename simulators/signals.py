"""Deterministic, physically plausible signals for every device of a fleet, with fault injection.

``FleetSignals(fleet, seed)`` answers ``values(device_id, t)`` for ANY unix time ``t`` (and
``values_array(device_id, times)`` vectorised, bit-identical at the same ``t``): the live Modbus/MQTT
simulators and the InfluxDB backfill see the same history.  All values are in the canonical units
and sign rules of :mod:`core.channels`.  The model is a pure function of ``(fleet, seed, t)`` plus the
injected/scheduled faults; nothing depends on when or in which process it is asked.

Model (per site)
----------------
* **Time grid.**  Base quantities are computed on a 60 s grid (UTC-aligned) and interpolated
  linearly in between, so every gauge is piecewise linear and every energy counter is the EXACT
  integral of that piecewise-linear power (trapezoid on the grid + exact partial segment).  Counters
  start at a seeded value at local midnight 2026-01-01 (:data:`ORIGIN`) and are integrated forward and
  backward from there; times before :data:`EARLIEST` (2025-01-01) raise ``ValueError``.
* **Ambient** (outdoor) temperature: 16.5 ± 12 °C seasonal (coldest mid-January in the north), ± 4 °C
  daily (warmest 14:30 local), seeded day-to-day (± 2.5 °C), 5-day weather-system (± 1.5 °C) and hourly
  (± 0.5 °C) variation.  ``FleetSignals.weather(site, times)`` serves it as ``outdoor_temperature``.
* **Load** (commercial/industrial): peak ≈ 0.55 × Σ transformer kVA (≤ 0.85 × contract demand; else
  0.8 × contract demand, or 1.2 × PV kWp, or 300 kW), night base 22–32 % of peak, working-day shape 08:00–17:30 with a lunch dip to ~72 %
  at 12:00–13:00 and an evening shoulder; rest Saturday 45 %, Sunday and Chinese public holidays 20 % of the
  day-time swing, make-up working days (调休) as working days (calendar: ``core.workdays``); air
  conditioning driven by the day-to-day outdoor temperature: +1.15 %/K above and +0.37 %/K below
  18 °C (≈ +12 % on a July day, +5 % in January); seeded day factor (±8 %), 15-min (±5 %) and
  per-minute (±1.5 %) variation.  Site PF (with automatic capacitor bank) 0.93–0.97, slowly varying.
* **PV** (pvlib): analytical solar position (Spencer declination/equation of time), Ineichen clear sky with Linke
  turbidity 3.5, seeded daily sky class (clear / broken clouds with dips / overcast), isotropic
  plane-of-array transposition (tilt 15–25°, azimuth ±10° of equator-facing), Faiman module temperature,
  PVWatts DC (γ = −0.37 %/K, 5 % system losses) and PVWatts inverter efficiency with clipping at the AC
  rating.  DC kWp = site ``pv_capacity_kwp`` split by ``rated_power_kw`` (or 1.15 × AC rating).
  ``n_mppt`` (default 4) MPPT inputs share the DC power (±1 % mismatch); MPPT voltage ≈ 600 V at STC,
  −0.35 %/K.  SunSpec state 2 (sleeping) at night, 4 (MPPT), 5 (throttled) when clipping.
* **EV chargers**: seeded sessions per local day (working days 1–4, mostly arriving 07:45–10:30 or
  13:00–15:00, some evening arrivals staying overnight; weekends 0–2), energy need 8–45 kWh, power
  = min(charger rating, vehicle limit) with a 1-min soft start/stop and a 10-min taper.  IEC 61851
  state / OCPP status: A/Available (no car), B/Preparing (first minute), C/Charging, B/SuspendedEV
  (full, still plugged), B/Finishing (last minute).  Rating ≤ 7.4 kW → single phase (L1), else 3-phase.
  ``session_energy`` = ``energy_import`` since plug-in (0 when no car).
* **Meters**: the transformer meters (``Transformer.meter``) carry load − PV + EV in proportion to
  their kVA (the first meter is the main meter if no transformer names one); other meters are feeders
  with a seeded 10–35 % share of the load.  P > 0 = import.  Q = |P|·tan(acos(pf)) ≥ 0 (inductive).
  Per phase: seeded shares within ±2 %, same PF on every phase, so P = ΣP_l, Q = ΣQ_l, S = ΣS_l =
  √(P² + Q²), PF = P/S (signed IEC: negative when exporting; 1 when S = 0), I_l = S_l / V_l.
  V ≈ nominal × (1.03 ± 0.8 %) − 3.5 % × per-unit loading; line voltages and neutral current from
  phasors (U2 at 240°, U3 at 120° ± 0.2°); f = 50 Hz ± 0.05; THD_u 1.2–2.6 %, THD_i 4–14 % (higher at
  light load).  Demand = 15-min sliding mean of P [W] from the counters; maximum demand = the largest
  demand on the 1-min grid since the start of the local calendar month.
* **Transformer temperature controller**: dry-type winding rise Δθ = 100 K × ((P0 + β²·Pk)/(P0 + Pk))^0.8
  per phase (β from the transformer's meter; exponent 0.8 on the loss ratio ≈ K^1.6, the natural-air
  winding exponent of the IEC 60076-12 loading guide [K]), first-order lag τ = 45 min, room = ambient + 8 K.  Fan
  on at 110 °C / off at 90 °C, alarm contact > 130 °C, trip contact > 150 °C (standards.md §7.4 defaults).

Channels per kind (``FleetSignals.channels(device)``)
----------------------------------------------------
* meter: ``voltage_l1..3``, ``voltage_l12/l23/l31``, ``voltage_angle_l2/l3``, ``current_l1..3``, ``current_n``,
  ``active/reactive/apparent_power[_l1..3]``, ``power_factor[_l1..3]``, ``frequency``,
  ``thd_voltage_l1..3``, ``thd_current_l1..3``, ``energy_import/export``, ``reactive_energy_import/export``,
  ``demand_active_power``, ``demand_active_power_max``.
* transformer: ``winding_temperature_l1..3``, ``fan_running``, ``temperature_alarm``, ``temperature_trip``.
* pv_inverter: ``mppt<k>_dc_current/voltage/power`` (k = 1..n_mppt), ``dc_current/voltage/power``,
  ``voltage_l1..3``, ``voltage_l12/l23/l31``, ``current_l1..3``, ``active_power[_l1..3]``, ``reactive_power``
  (0), ``apparent_power``, ``power_factor`` (1), ``frequency``, ``temperature_heatsink``,
  ``temperature_cabinet``, ``irradiance_poa``, ``temperature_module``, ``inverter_state``,
  ``inverter_events``, ``energy_export``.
* ev_charger: ``voltage_l1..3``, ``current_l1..3``, ``active_power``, ``power_factor``, ``frequency``,
  ``charger_state``, ``ocpp_status``, ``fault_code``, ``max_current_offered``, ``energy_import``,
  ``session_energy``.

Normal ranges (fault-free) that detectors can rely on: V within ±7 % of nominal (GB/T 12325),
|f − 50| < 0.2 Hz (GB/T 15945), PF 0.93–0.97 while importing, THD_u < 3 %, THD_i < 15 %, phase
shares within ±2 % (current unbalance (Imax − Imin)/Imax < 5 %), winding temperature < 130 °C
(summer peaks of heavily loaded units can reach the 110 °C fan threshold), MPPT input currents of
one inverter within ±3 % of their median in daylight, inverter state never 7, charger state never 6,
counters never decrease (tests/test_signals.py checks these on a summer and a winter week).

Fault effects (``inject(device_id, fault, **params)`` or a backfill schedule)
--------------------------------------------------------------------------
Faults take effect exactly at their start time (``start <= t < end``).  Counters stay the exact
integral of the faulted power (a correction is integrated over the fault window), so they never go
backwards except at ``meter_reset``.

==========================  ===============  ==============================================================
fault (params, default)     device kinds     effect
==========================  ===============  ==============================================================
``inverter_trip``           pv_inverter      AC power, per-phase currents, DC power/current, all MPPT
(``event="GROUND_FAULT"``)                   currents/powers = 0; DC voltages = open-circuit ≈ 1.22 × V_mp
                                             in daylight; ``inverter_state`` = 7 (FAULT);
                                             ``inverter_events`` = 1 << bit of the SunSpec Evt1 name
                                             (GROUND_FAULT bit 0 ... see :data:`SUNSPEC_EVENTS`);
                                             ``energy_export`` stops; the site meter imports the lost PV.
``string_loss`` (``mppt=1``) pv_inverter     that MPPT input's current and power = 0, its voltage = open
                                             circuit; DC power drops by its share (≈ 1/n_mppt); AC power
                                             = min(normal AC, unclipped AC × DC ratio); counters follow.
                                             No event bit (real inverters often do not flag it).
``transformer_overtemp``    transformer      the hottest winding ramps linearly to ``target_c`` over 30 min
(``target_c=140``)                           (all three phases get the same offset, max(0, target − hottest)
                                             × min(1, (t − start)/1800 s)); fan = 1 above 110 °C,
                                             ``temperature_alarm`` = 1 above 130 °C, ``temperature_trip``
                                             = 1 above 150 °C (so the default raises the alarm, not the trip).
``low_power_factor``        meter            PF magnitude = ``pf`` on every phase: Q = |P|·tan(acos(pf)),
(``pf=0.78``)                                S and currents rise accordingly, ``reactive_energy_import``
                                             grows faster.  P unchanged.
``harmonic_distortion``     meter            ``thd_voltage_l1..3`` = ``thd_voltage`` × (1 ± 3 %),
(``thd_voltage=6.5,                          ``thd_current_l1..3`` = ``thd_current`` × (1 ± 5 %).  P, Q, S
thd_current=35``)                            unchanged (S is the vector apparent power √(P²+Q²)).
``phase_unbalance``         meter            phase shares ∝ (1, 1 − ratio/2, 1 − ratio): (Imax − Imin)/Imax
(``ratio=0.35``)                             = ``ratio`` for currents and phase powers (totals unchanged);
                                             V_l × (1 − 0.04 × (3·share_l − 1)) → a small voltage unbalance.
``voltage_sag``             meter, pv_inv.,  phase voltages (``phases``, default all) × (1 − ``depth``);
(``depth=0.3,               ev_charger       line voltages follow; powers unchanged, so currents rise by
phases=(1,2,3)``)                            1/(1 − depth).
``device_silent``           any              ``behaviour()`` = ``"silent"``; values unchanged; backfill
                                             leaves a gap and writes status ``timeout``, online 0.
``device_exceptions``       any              ``behaviour()`` = ``code`` (Modbus exception, default 4);
(``code=4``)                                 backfill leaves a gap, status ``exception_04``, online 0.
``ev_fault`` (``code=1``)   ev_charger       ``charger_state`` = 6 (F), ``ocpp_status`` = 8 (Faulted),
                                             ``fault_code`` = ``code``, power/currents = 0,
                                             ``max_current_offered`` = 0, ``energy_import`` stops.
``ev_stuck``                ev_charger       ``charger_state`` = 3 (C), ``ocpp_status`` = 2 (Charging),
                                             power and currents = 0, ``energy_import`` and
                                             ``session_energy`` flat (no energy while "charging").
``meter_reset``             meter, pv_inv.,  an event: every counter of the device (``energy_*``,
                            ev_charger       ``reactive_energy_*``) restarts from 0 at ``start`` and
                                             integrates on from there; ``clear`` does not undo it.
==========================  ===============  ==============================================================

Faults of a PV inverter or EV charger change the site's transformer/main meters consistently (the
meter sees the lost PV as extra import, a faulted charger as less load).  Known simplifications:
the transformer temperatures follow the fault-free meter load; maximum demand ignores decreases of
demand caused by faults (it includes the increases).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pvlib

from core import workdays as wd
from core.channels import CHANNELS, DEVICE_KINDS
from core.config import Device, Fleet, Site, Transformer

GRID_S = 60.0                      # base grid step [s]
PRE_S = 6 * 3600                   # pre-window of a day block (thermal lag, demand) [s]
DEMAND_S = 900                     # demand window [s]
ORIGIN = date(2026, 1, 1)          # counters have their seeded start value at local midnight of this day
EARLIEST = date(2025, 1, 1)        # values before this local day are refused
_EPOCH_DATE = date(1970, 1, 1)
ORIGIN_DAY = (ORIGIN - _EPOCH_DATE).days
EARLIEST_DAY = (EARLIEST - _EPOCH_DATE).days
_EPS_S = 1e-3                      # left limit used to integrate across a fault step [s]
BALANCE_C = 18.0                   # balance point of the load's heating / cooling part [°C]
COOLING_PER_K = 0.0115             # load increase per K of outdoor temperature above BALANCE_C [1/K]
HEATING_PER_K = 0.0037             # load increase per K below BALANCE_C [1/K]

SUNSPEC_EVENTS = ("GROUND_FAULT", "DC_OVER_VOLT", "AC_DISCONNECT", "DC_DISCONNECT", "GRID_DISCONNECT",
                  "CABINET_OPEN", "MANUAL_SHUTDOWN", "OVER_TEMP", "OVER_FREQUENCY", "UNDER_FREQUENCY",
                  "AC_OVER_VOLT", "AC_UNDER_VOLT", "BLOWN_STRING_FUSE", "UNDER_TEMP", "MEMORY_LOSS",
                  "HW_TEST_FAILED")

_COUNTER_KINDS = ("meter", "pv_inverter", "ev_charger")
_ALL_KINDS = DEVICE_KINDS

#: fault name -> (device kinds it applies to, default parameters)
FAULT_TYPES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "inverter_trip": (("pv_inverter",), {"event": "GROUND_FAULT"}),
    "string_loss": (("pv_inverter",), {"mppt": 1}),
    "transformer_overtemp": (("transformer",), {"target_c": 140.0}),
    "low_power_factor": (("meter",), {"pf": 0.78}),
    "harmonic_distortion": (("meter",), {"thd_voltage": 6.5, "thd_current": 35.0}),
    "phase_unbalance": (("meter",), {"ratio": 0.35}),
    "voltage_sag": (("meter", "pv_inverter", "ev_charger"), {"depth": 0.3, "phases": (1, 2, 3)}),
    "device_silent": (_ALL_KINDS, {}),
    "device_exceptions": (_ALL_KINDS, {"code": 4}),
    "ev_fault": (("ev_charger",), {"code": 1}),
    "ev_stuck": (("ev_charger",), {}),
    "meter_reset": (_COUNTER_KINDS, {}),
}
#: faults that change a power that some counter integrates
_POWER_FAULTS = frozenset({"inverter_trip", "string_loss", "low_power_factor", "ev_fault", "ev_stuck"})

_DAY_FACTOR = {wd.WORKING: 1.0, wd.SATURDAY: 0.45, wd.REST: 0.20}   # day-time swing by day type
_DAY_TYPES: dict[int, int] = {}


def day_types(days: np.ndarray) -> np.ndarray:
    """Day type (core.workdays: working / rest Saturday / Sunday or holiday) of local day numbers."""
    days = np.asarray(days, dtype=np.int64)
    uniq, inv = np.unique(days, return_inverse=True)
    out = np.empty(uniq.size, dtype=np.int64)
    for i, d in enumerate(uniq.tolist()):
        v = _DAY_TYPES.get(d)
        if v is None:
            v = _DAY_TYPES[d] = wd.day_type(_EPOCH_DATE + timedelta(days=d))
        out[i] = v
    return out[inv].reshape(days.shape)

# ----------------------------------------------------------------------------------------- noise
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _key(*parts: object) -> int:
    """Stable 63-bit key of ``parts`` (Python's ``hash`` is salted per process)."""
    h = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1


def _u01(key: int, idx: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) numbers, a pure function of (key, integer index): splitmix64."""
    x = np.asarray(idx, dtype=np.float64).astype(np.int64).astype(np.uint64) * _GOLD + np.uint64(key)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _smooth(key: int, t: np.ndarray, period: float) -> np.ndarray:
    """Smooth value noise in [-1, 1] with knots every ``period`` seconds."""
    x = np.asarray(t, dtype=np.float64) / period
    k = np.floor(x)
    f = x - k
    f = f * f * (3.0 - 2.0 * f)
    a, b = _u01(key, k), _u01(key, k + 1)
    return 2.0 * (a + (b - a) * f) - 1.0


def _cum_trapz(y: np.ndarray, dt: float | np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral [unit·s] starting at 0, same length as ``y``."""
    seg = (y[:-1] + y[1:]) * (0.5 * dt)
    out = np.empty(len(y))
    out[0] = 0.0
    np.cumsum(seg, out=out[1:])
    return out


def _integral_at(s: np.ndarray, y: np.ndarray, cum: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Exact integral from ``s[0]`` to ``t`` of the piecewise-linear function through (s, y)."""
    t = np.clip(t, s[0], s[-1])
    k = np.clip(np.searchsorted(s, t, side="right") - 1, 0, len(s) - 2)
    h = s[k + 1] - s[k]
    frac = np.where(h > 0, (t - s[k]) / np.where(h > 0, h, 1.0), 0.0)
    yt = y[k] + (y[k + 1] - y[k]) * frac
    return np.minimum(cum[k] + (t - s[k]) * 0.5 * (y[k] + yt), cum[k + 1])


# ----------------------------------------------------------------------------------------- faults
@dataclass
class FaultWindow:
    """One fault on one device over ``start <= t < end`` [unix s]; ``end`` = inf while active."""

    device_id: str
    fault: str
    start: float
    end: float = math.inf
    params: dict[str, Any] = field(default_factory=dict)

    def mask(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.start) & (t < self.end)

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device_id, "fault": self.fault, "start": self.start,
                "end": None if math.isinf(self.end) else self.end,
                "params": {k: v for k, v in self.params.items() if not k.startswith("_")}}


def _check_params(fault: str, kind_defaults: dict[str, Any], params: Mapping[str, Any], n_mppt: int) -> dict:
    unknown = set(params) - set(kind_defaults)
    if unknown:
        raise ValueError(f"fault {fault!r}: unknown parameter {sorted(unknown)[0]!r}; "
                         f"allowed: {sorted(kind_defaults) or 'none'}")
    p = {**kind_defaults, **params}

    def num(name: str, lo: float, hi: float, integer: bool = False) -> None:
        v = p[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and int(v) != v):
            raise ValueError(f"fault {fault!r}: parameter {name!r} must be a{'n integer' if integer else ' number'}"
                             f", got {v!r}")
        if not lo <= v <= hi or not math.isfinite(v):
            raise ValueError(f"fault {fault!r}: parameter {name!r} must be in {lo}..{hi}, got {v!r}")
        p[name] = int(v) if integer else float(v)

    if fault == "inverter_trip" and p["event"] not in SUNSPEC_EVENTS:
        raise ValueError(f"fault 'inverter_trip': parameter 'event' must be one of {SUNSPEC_EVENTS}, "
                         f"got {p['event']!r}")
    checks = {"mppt": (1, n_mppt, True), "target_c": (20.0, 250.0, False), "pf": (0.05, 1.0, False),
              "thd_voltage": (0.0, 100.0, False), "thd_current": (0.0, 300.0, False),
              "ratio": (0.0, 0.95, False), "depth": (0.0, 1.0, False), "code": (1, 65535, True)}
    for name, (lo, hi, integer) in checks.items():
        if name in p:
            num(name, lo, hi, integer)
    if fault == "device_exceptions" and not 1 <= p["code"] <= 255:
        raise ValueError(f"fault 'device_exceptions': parameter 'code' must be a Modbus exception code 1..255, "
                         f"got {p['code']!r}")
    if "phases" in p:
        ph = p["phases"]
        if isinstance(ph, int):
            ph = (ph,)
        if (not isinstance(ph, list | tuple) or not ph
                or any(isinstance(x, bool) or x not in (1, 2, 3) for x in ph)):
            raise ValueError(f"fault {fault!r}: parameter 'phases' must be a list of 1, 2, 3, got {p['phases']!r}")
        p["phases"] = tuple(sorted(set(ph)))
    return p


# ----------------------------------------------------------------------------------------- site model
@dataclass
class _Pv:
    dc_w: float
    ac_w: float
    tilt: float
    azimuth: float
    shares: np.ndarray          # MPPT shares of DC power (sum 1)
    v_mp: float                 # MPPT voltage at STC [V]
    key: int


@dataclass
class _Ev:
    rated_w: float
    phases: int
    key: int

    @property
    def rated_a(self) -> float:
        return self.rated_w / (self.phases * 230.0)


@dataclass
class _Tr:
    nameplate: Transformer
    meter: str | None           # meter whose load the transformer carries (None: the site share)
    share: float                # kVA share of the site when there is no meter


@dataclass
class _Block:
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


class _Lazy(Mapping):
    """Components interpolated at ``times`` on first access."""

    def __init__(self, block: _Block, times: np.ndarray):
        self.block, self.times, self._c = block, times, {}
        self._on_grid = bool(np.all(np.mod(times - block.t0, GRID_S) == 0))
        self._idx = ((times - block.t0) / GRID_S).astype(np.int64) if self._on_grid else None

    def __getitem__(self, k: str) -> np.ndarray:
        if k not in self._c:
            arr = self.block.comps[k]
            self._c[k] = arr[self._idx] if self._on_grid else np.interp(self.times, self.block.grid, arr)
        return self._c[k]

    def __iter__(self):
        return iter(self.block.comps)

    def __len__(self) -> int:
        return len(self.block.comps)


class _SiteModel:
    def __init__(self, site: Site, seed: int, n_mppt: int):
        self.site, self.seed = site, seed
        self.tz = site.timezone
        self.devices = {d.id: d for d in site.devices}
        rnd = random.Random(_key(seed, site.id, "site"))
        kva = sum(t.rated_kva for t in site.transformers)
        if kva:
            peak = 0.55 * kva
            if site.contract_demand_kw:
                peak = min(peak, 0.85 * site.contract_demand_kw)
        elif site.contract_demand_kw:
            peak = 0.8 * site.contract_demand_kw
        elif site.pv_capacity_kwp:
            peak = 1.2 * site.pv_capacity_kwp
        else:
            peak = 300.0
        self.peak_w = peak * 1000.0 * rnd.uniform(0.92, 1.08)
        self.base_frac = rnd.uniform(0.22, 0.32)
        self.pf_mid = rnd.uniform(0.945, 0.955)
        self.kva_w = (kva or peak / 0.55) * 1000.0
        self.k = {name: _key(seed, site.id, name) for name in
                  ("day", "l15", "l1", "amb", "ambd", "sky", "dip1", "dip2", "pf", "volt", "freq", "thdv", "thdi")}
        # ---- meters
        by_kind: dict[str, list[Device]] = {k: [] for k in _ALL_KINDS}
        for d in site.devices:
            by_kind[d.kind].append(d)
        tr_meters = [t.meter for t in site.transformers if t.meter]
        self.meter_role: dict[str, tuple[str, float]] = {}
        if tr_meters:
            tot = sum(t.rated_kva for t in site.transformers if t.meter)
            for t in site.transformers:
                if t.meter:
                    self.meter_role[t.meter] = ("main", t.rated_kva / tot)
        elif by_kind["meter"]:
            self.meter_role[by_kind["meter"][0].id] = ("main", 1.0)
        for d in by_kind["meter"]:
            if d.id not in self.meter_role:
                self.meter_role[d.id] = ("feeder", random.Random(_key(seed, d.id, "feeder")).uniform(0.10, 0.35))
        self.phase_share = {}
        for d in site.devices:
            r = random.Random(_key(seed, d.id, "phases"))
            s = np.array([1 + r.uniform(-0.02, 0.02) for _ in range(3)])
            self.phase_share[d.id] = s / s.sum()
        # ---- transformers (temperature controllers)
        self.tr: dict[str, _Tr] = {}
        named = {t.temperature_controller: t for t in site.transformers if t.temperature_controller}
        free = [t for t in site.transformers if not t.temperature_controller]
        default = Transformer(id=f"{site.id}-default", rated_kva=1000.0, p0_kw=1.415, pk_kw=8.13)
        for i, d in enumerate(by_kind["transformer"]):
            t = named.get(d.id) or (free[i] if i < len(free) else default)
            share = t.rated_kva * 1000.0 / self.kva_w if t is not default else 1.0
            self.tr[d.id] = _Tr(t, t.meter if t.meter in self.meter_role else None, min(share, 1.0))
        # ---- PV
        self.pv: dict[str, _Pv] = {}
        pvs = by_kind["pv_inverter"]
        ac = {d.id: (d.rated_power_kw or (site.pv_capacity_kwp / max(len(pvs), 1) / 1.15) or 100.0) * 1000.0
              for d in pvs}
        tot_ac = sum(ac.values())
        for d in pvs:
            r = random.Random(_key(seed, d.id, "pv"))
            dc = site.pv_capacity_kwp * 1000.0 * ac[d.id] / tot_ac if site.pv_capacity_kwp else 1.15 * ac[d.id]
            sh = np.array([1 + r.uniform(-0.01, 0.01) for _ in range(n_mppt)])
            az = (180.0 if site.latitude >= 0 else 0.0) + r.uniform(-10, 10)
            self.pv[d.id] = _Pv(dc, ac[d.id], r.uniform(15, 25), az, sh / sh.sum(), r.uniform(580, 620),
                                _key(seed, d.id, "pvnoise"))
        # ---- EV
        self.ev: dict[str, _Ev] = {}
        for d in by_kind["ev_charger"]:
            rated = (d.rated_power_kw or 7.0) * 1000.0
            self.ev[d.id] = _Ev(rated, 1 if rated <= 7400 else 3, _key(seed, d.id, "ev"))
        self._sessions: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
        # ---- counters: seeded start values at ORIGIN, sized so that going back to EARLIEST stays > 0
        self.e0: dict[tuple[str, str], float] = {}
        for d in site.devices:
            r = random.Random(_key(seed, d.id, "e0"))
            for c in self.counters(d.id):
                scale = (self.peak_w * 0.5 if d.kind == "meter" else
                         self.pv[d.id].ac_w * 0.2 if d.kind == "pv_inverter" else self.ev[d.id].rated_w * 0.4)
                frac = {"energy_export": 0.02 if d.kind == "meter" else 1.0, "reactive_energy_import": 0.45,
                        "reactive_energy_export": 0.005}.get(c, 1.0)
                self.e0[(d.id, c)] = scale * 8760 * frac * r.uniform(1.3, 2.5)
        self._day_start: dict[int, float] = {}
        self._blocks: OrderedDict[int, _Block] = OrderedDict()
        self._totals: dict[int, dict[tuple[str, str], float]] = {}
        self._cum_start: dict[int, dict[tuple[str, str], float]] = {}
        self._day_max_demand: dict[int, dict[str, float]] = {}

    # ------------------------------------------------------------------ bookkeeping
    def counters(self, dev: str) -> tuple[str, ...]:
        kind = self.devices[dev].kind
        if kind == "meter":
            return ("energy_import", "energy_export", "reactive_energy_import", "reactive_energy_export")
        if kind == "pv_inverter":
            return ("energy_export",)
        if kind == "ev_charger":
            return ("energy_import",)
        return ()

    def day_start(self, day: int) -> float:
        v = self._day_start.get(day)
        if v is None:
            ts = pd.Timestamp(day * 86400, unit="s").tz_localize(self.tz, nonexistent="shift_forward",
                                                                   ambiguous=False)
            v = self._day_start[day] = float(ts.timestamp())
        return v

    def local(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Local day number, local hour [h], weekday (Mon = 0) and day of year of unix times."""
        idx = pd.to_datetime(np.asarray(t, dtype=np.float64) * 1e9, unit="ns", utc=True).tz_convert(self.tz)
        loc_s = idx.tz_localize(None).asi8.astype(np.float64) / 1e9
        day = np.floor(loc_s / 86400.0)
        hour = (loc_s - day * 86400.0) / 3600.0
        weekday = (day.astype(np.int64) + 3) % 7
        doy = idx.day_of_year.to_numpy().astype(np.float64)
        return day.astype(np.int64), hour, weekday, doy

    def day_of(self, t: np.ndarray) -> np.ndarray:
        return self.local(t)[0]

    # ------------------------------------------------------------------ physics on a grid
    def _weather(self, t, doy) -> np.ndarray:
        """The slow (day-to-day) part of the outdoor temperature [°C]: season + weather systems."""
        north = 1.0 if self.site.latitude >= 0 else -1.0
        return (16.5 + north * 12.0 * np.cos(2 * np.pi * (doy - 200) / 365.0)
                + 2.5 * _smooth(self.k["ambd"], t, 86400.0) + 1.5 * _smooth(self.k["ambd"] + 1, t, 5 * 86400.0))

    def _ambient(self, t, hour, doy, day) -> np.ndarray:
        return (self._weather(t, doy) + 4.0 * np.cos(2 * np.pi * (hour - 14.5) / 24.0)
                + 0.5 * _smooth(self.k["amb"], t, 3600.0))

    def _load(self, t, hour, weekday, doy, day) -> np.ndarray:
        knots_h = [0, 6, 7, 8, 9, 11.5, 12, 13, 13.5, 17, 18, 19, 21, 22, 23, 24]
        knots_v = [0, 0, 0.15, 0.75, 1.0, 1.0, 0.72, 0.72, 0.98, 0.95, 0.6, 0.4, 0.3, 0.1, 0, 0]
        shape = np.interp(hour, knots_h, knots_v)
        dtype = day_types(day)
        dayf = np.where(dtype == wd.REST, _DAY_FACTOR[wd.REST],
                        np.where(dtype == wd.SATURDAY, _DAY_FACTOR[wd.SATURDAY], 1.0))
        dayf = dayf * (1.0 + 0.08 * (2 * _u01(self.k["day"], day) - 1))
        # air conditioning follows the weather: +1.15 %/K above and +0.37 %/K below 18 °C of the slow
        # outdoor temperature (≈ +12 % on a 28.5 °C July day, +5 % on a 4.5 °C January day)
        temp = self._weather(t, doy)
        season = 1.0 + COOLING_PER_K * np.maximum(0.0, temp - BALANCE_C) + HEATING_PER_K * np.maximum(0.0, BALANCE_C - temp)
        frac = self.base_frac + (1 - self.base_frac) * shape * dayf
        noise = (1.0 + 0.05 * _smooth(self.k["l15"], t, 900.0)
                 + 0.015 * (2 * _u01(self.k["l1"], np.floor(t / GRID_S)) - 1))
        return self.peak_w * frac * season * noise

    def _sky(self, t, day) -> np.ndarray:
        """Clear-sky index [0..1] of the site: daily sky class and cloud dips."""
        u = _u01(self.k["sky"], day)
        u2 = _u01(self.k["sky"] + 1, day)
        kc_day = np.where(u < 0.4, 0.95 + 0.05 * u2, np.where(u < 0.75, 0.75 + 0.2 * u2, 0.2 + 0.25 * u2))
        cloudy = np.where(u < 0.4, 0.05, np.where(u < 0.75, 1.0, 0.3))
        dip = np.clip(_smooth(self.k["dip1"], t, 420.0), 0, 1) * np.clip(_smooth(self.k["dip2"], t, 2400.0) + 0.3,
                                                                        0, 1)
        return np.clip(kc_day * (1.0 - 0.75 * cloudy * dip), 0.05, 1.0)

    def _solar(self, t, day, doy, amb) -> dict[str, np.ndarray]:
        s = self.site
        # analytical solar position (Spencer 1971 declination and equation of time, pvlib): ~0.5 deg,
        # pure numpy -- the counters integrate PV from ORIGIN, so this runs on ~10^6 instants per site
        decl = pvlib.solarposition.declination_spencer71(doy)
        eot = pvlib.solarposition.equation_of_time_spencer71(doy)
        ha = np.radians((np.mod(t, 86400.0) / 3600.0 - 12.0) * 15.0 + s.longitude + eot / 4.0)
        lat = np.radians(s.latitude)
        zen_r = pvlib.solarposition.solar_zenith_analytical(lat, ha, decl)
        zen = np.degrees(zen_r)
        azi = np.degrees(pvlib.solarposition.solar_azimuth_analytical(lat, ha, decl, zen_r))
        am = pvlib.atmosphere.get_relative_airmass(zen)
        am_abs = pvlib.atmosphere.get_absolute_airmass(am)
        dni_extra = pvlib.irradiance.get_extra_radiation(doy)
        cs = pvlib.clearsky.ineichen(zen, am_abs, 3.5, altitude=0.0, dni_extra=dni_extra)
        kc = self._sky(t, day)
        ghi = np.nan_to_num(cs["ghi"]) * kc
        dni = np.nan_to_num(cs["dni"]) * np.clip((kc - 0.25) / 0.75, 0, 1) ** 1.5
        cosz = np.clip(np.cos(np.radians(zen)), 0, 1)
        dhi = np.clip(ghi - dni * cosz, 0, None)
        return {"zen": zen, "azi": azi, "ghi": ghi, "dni": dni, "dhi": dhi, "dni_extra": dni_extra, "amb": amb}

    def _pv(self, p: _Pv, sol: dict[str, np.ndarray], t: np.ndarray, out: dict[str, np.ndarray], dev: str) -> None:
        irr = pvlib.irradiance.get_total_irradiance(p.tilt, p.azimuth, sol["zen"], sol["azi"], sol["dni"],
                                                    sol["ghi"], sol["dhi"], albedo=0.2, model="isotropic")
        poa = np.clip(np.nan_to_num(np.asarray(irr["poa_global"], dtype=np.float64)), 0, None)
        poa = poa * (1.0 + 0.01 * _smooth(p.key, t, 600.0))
        tmod = np.asarray(pvlib.temperature.faiman(poa, sol["amb"], wind_speed=1.5), dtype=np.float64)
        pdc = np.asarray(pvlib.pvsystem.pvwatts_dc(poa, tmod, p.dc_w, -0.0037), dtype=np.float64) * 0.95
        pdc = np.clip(pdc, 0, None)
        pdc0 = p.ac_w / 0.96
        zeta = np.maximum(pdc / pdc0, 1e-9)
        eta = 0.96 / 0.9637 * (-0.0162 * zeta - 0.0059 / zeta + 0.9858)
        ac_uncl = np.clip(eta * pdc, 0, None)
        ac = np.minimum(ac_uncl, p.ac_w)
        day = poa > 5.0
        vmp = np.where(day, p.v_mp * (1 - 0.0035 * (tmod - 25)) * (1 + 0.03 * np.log(np.maximum(poa, 5.0) / 1000)), 0)
        voc = np.where(day, 1.22 * p.v_mp * (1 - 0.0029 * (tmod - 25)), 0)
        out[f"pv_ac:{dev}"] = ac
        out[f"pv_uncl:{dev}"] = ac_uncl
        out[f"pv_dc:{dev}"] = pdc
        out[f"pv_vmp:{dev}"] = vmp
        out[f"pv_voc:{dev}"] = voc
        out[f"pv_poa:{dev}"] = poa
        out[f"pv_tmod:{dev}"] = tmod

    def sessions(self, dev: str, day: int) -> list[tuple[float, float, float, float]]:
        """EV sessions starting on local ``day``: (plug_in, charge_end, unplug, power [W])."""
        key = (dev, day)
        if key in self._sessions:
            return self._sessions[key]
        ev = self.ev[dev]
        r = random.Random(_key(self.seed, dev, "sessions", day))
        off = int(day_types(np.array([day]))[0]) != wd.WORKING
        n = r.choice((0, 0, 1, 1, 2)) if off else r.choice((1, 2, 2, 3, 3, 4))
        ds = self.day_start(day)
        out: list[tuple[float, float, float, float]] = []
        free_from = ds + 7.75 * 3600
        for i in range(n):
            u = r.random()
            if i == 0 and u < 0.8:
                arr_h = r.uniform(7.75, 10.5)
            elif u < 0.85:
                arr_h = r.uniform(11.0, 15.5)
            else:
                arr_h = r.uniform(17.5, 21.0)
            plug = max(ds + arr_h * 3600, free_from)
            plug = math.ceil(plug / GRID_S) * GRID_S
            if plug > ds + 21.5 * 3600:
                break
            vehicle_w = r.choice((6600.0, 7000.0, 11000.0, 11000.0, 22000.0))
            power = min(ev.rated_w, vehicle_w) * r.uniform(0.95, 0.99)
            need_wh = r.uniform(8000, 45000)
            charge_s = math.ceil((need_wh / power * 3600 + 300) / GRID_S) * GRID_S
            overnight = arr_h >= 17.5
            stay = (self.day_start(day + 1) + r.uniform(7.0, 7.6) * 3600 - plug) if overnight \
                else r.uniform(2.5, 9.0) * 3600
            stay = max(stay, charge_s + 2 * GRID_S + GRID_S * 10)
            unplug = math.floor((plug + stay) / GRID_S) * GRID_S
            unplug = min(unplug, math.floor((self.day_start(day + 1) + 7.6 * 3600) / GRID_S) * GRID_S)
            cend = min(plug + GRID_S + charge_s, unplug - GRID_S)
            out.append((plug, cend, unplug, power))
            free_from = unplug + 10 * 60
        self._sessions[key] = out
        return out

    def _ev_power(self, dev: str, t: np.ndarray, days: np.ndarray) -> np.ndarray:
        p = np.zeros(len(t))
        for day in range(int(days.min()) - 1, int(days.max()) + 1):
            for plug, cend, _unplug, power in self.sessions(dev, day):
                i0, i1 = np.searchsorted(t, [plug + GRID_S, cend], side="right")   # grid t is sorted
                i1 = i1 - 1 if i1 > 0 and t[i1 - 1] == cend else i1
                if i1 <= i0:
                    continue
                taper = np.clip((cend - t[i0:i1]) / 600.0, 0.0, 1.0)
                p[i0:i1] = power * (0.3 + 0.7 * taper)
        return p

    def grid_components(self, t: np.ndarray, *, integrands_only: bool = False) -> dict[str, np.ndarray]:
        """Base (fault-free) components on sorted grid times ``t`` (multiples of 60 s)."""
        with np.errstate(all="ignore"):
            return self._grid_components(t, integrands_only)

    def _grid_components(self, t: np.ndarray, integrands_only: bool) -> dict[str, np.ndarray]:
        day, hour, weekday, doy = self.local(t)
        amb = self._ambient(t, hour, doy, day)
        out: dict[str, np.ndarray] = {"amb": amb, "load": self._load(t, hour, weekday, doy, day)}
        out["pf"] = np.clip(self.pf_mid + 0.012 * _smooth(self.k["pf"], t, 5400.0), 0.93, 0.97)
        if self.pv:
            sol = self._solar(t, day, doy, amb)
            for dev, p in self.pv.items():
                self._pv(p, sol, t, out, dev)
        for dev in self.ev:
            out[f"ev_p:{dev}"] = self._ev_power(dev, t, day)
        if integrands_only:
            return out
        load_pu = out["load"] / self.kva_w
        for ph in (1, 2, 3):
            out[f"v{ph}"] = (1.03 + 0.008 * _smooth(self.k["volt"] + ph, t, 1800.0)) - 0.035 * load_pu
        out["freq"] = 50.0 + 0.035 * _smooth(self.k["freq"], t, 120.0) + 0.01 * _smooth(self.k["freq"] + 1, t, 60.0)
        out["thdv"] = 1.9 + 0.6 * _smooth(self.k["thdv"], t, 1800.0)
        out["thdi"] = np.clip(4.0 + 8.0 * (1.0 - load_pu / 0.55) + 1.5 * _smooth(self.k["thdi"], t, 900.0), 3.0, 14.0)
        return out

    # ------------------------------------------------------------------ blocks and counters
    def block(self, day: int) -> _Block:
        b = self._blocks.get(day)
        if b is not None:
            self._blocks.move_to_end(day)
            return b
        ds, de = self.day_start(day), self.day_start(day + 1)
        t0 = ds - PRE_S
        grid = np.arange(t0, de + GRID_S / 2, GRID_S)
        i0 = int(round(PRE_S / GRID_S))
        comps = self.grid_components(grid)
        b = _Block(day, ds, de, t0, i0, grid, comps, {}, {})
        lazy = _Lazy(b, grid)
        totals = self.totals(day)
        for dev in self.devices:
            cs = self.counters(dev)
            if not cs:
                continue
            ch = self.channels(dev, lazy, grid, None)
            for c in cs:
                y = ch["_cp:" + c][i0:]
                cum = _cum_trapz(y, GRID_S) / 3600.0
                np.minimum(cum, totals[(dev, c)], out=cum)
                b.cum[(dev, c)] = cum
                comps[f"_cpgrid:{dev}:{c}"] = y
            if self.devices[dev].kind == "meter":
                net = ch["_cp:energy_import"] - ch["_cp:energy_export"]
                cn = _cum_trapz(net, GRID_S)
                lag = int(DEMAND_S / GRID_S)
                dem = (cn[i0:] - cn[i0 - lag:len(cn) - lag]) / DEMAND_S
                b.demand_runmax[dev] = np.maximum.accumulate(dem)
                comps[f"load_s:{dev}"] = np.hypot(ch["active_power"], ch["reactive_power"])
        for dev, tr in self.tr.items():
            self._thermal(dev, tr, comps, b)
        self._blocks[day] = b
        while len(self._blocks) > 72:      # a month plus the days before it in the month (max demand)
            self._blocks.popitem(last=False)
        return b

    def _thermal(self, dev: str, tr: _Tr, comps: dict[str, np.ndarray], b: _Block) -> None:
        n = tr.nameplate
        if tr.meter is not None:
            s = comps[f"load_s:{tr.meter}"]
        else:
            s = np.abs(comps["load"]) / comps["pf"] * tr.share
        beta = s / (n.rated_kva * 1000.0)
        tau = 45 * 60.0
        taps = int(PRE_S / GRID_S)
        w = np.exp(-np.arange(taps) * GRID_S / tau)
        w /= w.sum()
        hot = []
        for ph in (1, 2, 3):
            bp = beta * 3 * self.phase_share[dev][ph - 1]
            rise = 100.0 * ((n.p0_kw + bp ** 2 * n.pk_kw) / (n.p0_kw + n.pk_kw)) ** 0.8
            lagged = np.convolve(rise, w, mode="full")[:len(rise)]
            lagged[:taps] = rise[:taps]  # only the day part is used; it sees a full 6 h history
            temp = comps["amb"] + 8.0 + lagged
            comps[f"tw{ph}:{dev}"] = temp
            hot.append(temp)
        hmax = np.max(hot, axis=0)
        known = np.where(hmax >= 110.0, 1.0, np.where(hmax <= 90.0, 0.0, np.nan))
        if np.isnan(known[0]):
            known[0] = 1.0 if hmax[0] > 100.0 else 0.0
        idx = np.where(~np.isnan(known), np.arange(len(known)), 0)
        np.maximum.accumulate(idx, out=idx)
        comps[f"fan:{dev}"] = known[idx]

    def totals(self, day: int) -> dict[tuple[str, str], float]:
        """Base daily integrals [Wh] of every counter, computed in bulk 32-day chunks (no pre-window)."""
        if day in self._totals:
            return self._totals[day]
        # chunks aligned on fixed 32-day periods: a day's total never depends on the query history
        d0 = ORIGIN_DAY + (day - ORIGIN_DAY) // 32 * 32
        d1 = d0 + 32
        starts = [self.day_start(d) for d in range(d0, d1 + 1)]
        grid = np.arange(starts[0], starts[-1] + GRID_S / 2, GRID_S)
        comps = self.grid_components(grid, integrands_only=True)
        b = _Block(d0, starts[0], starts[-1], starts[0], 0, grid, comps, {}, {})
        lazy = _Lazy(b, grid)
        per_dev = {dev: self.integrands(dev, lazy, len(grid)) for dev in self.devices if self.counters(dev)}
        for j, d in enumerate(range(d0, d1)):
            a = int(round((starts[j] - starts[0]) / GRID_S))
            e = int(round((starts[j + 1] - starts[0]) / GRID_S))
            tot = {}
            for dev, ch in per_dev.items():
                for c in self.counters(dev):
                    y = ch["_cp:" + c][a:e + 1]
                    tot[(dev, c)] = float(_cum_trapz(y, GRID_S)[-1] / 3600.0)
            self._totals[d] = tot
        return self._totals[day]

    def cum_start(self, day: int) -> dict[tuple[str, str], float]:
        """Base counter values [Wh] at the local midnight starting ``day``."""
        if day in self._cum_start:
            return self._cum_start[day]
        if day < EARLIEST_DAY - 1:     # one day of margin: an overnight EV session plugged in the day before
            raise ValueError(f"time before {EARLIEST.isoformat()} (local) is outside the simulated period")
        if not self._cum_start:
            self._cum_start[ORIGIN_DAY] = dict(self.e0)
        if day == ORIGIN_DAY:          # the first question may be the origin day itself
            return self._cum_start[day]
        if day > ORIGIN_DAY:
            d = max(k for k in self._cum_start if k < day)
            while d < day:
                tot = self.totals(d)
                prev = self._cum_start[d]
                self._cum_start[d + 1] = {k: v + tot[k] for k, v in prev.items()}
                d += 1
        else:
            d = min(k for k in self._cum_start if k > day)
            while d > day:
                tot = self.totals(d - 1)
                nxt = self._cum_start[d]
                self._cum_start[d - 1] = {k: v - tot[k] for k, v in nxt.items()}
                d -= 1
        return self._cum_start[day]

    def day_max_demand(self, day: int) -> dict[str, float]:
        if day not in self._day_max_demand:
            b = self.block(day)
            self._day_max_demand[day] = {m: float(v[-1]) for m, v in b.demand_runmax.items()}
        return self._day_max_demand[day]

    # ------------------------------------------------------------------ device channels
    def channels(self, dev: str, c: Mapping[str, np.ndarray], t: np.ndarray,
                 faults: dict[str, list[tuple[np.ndarray, dict]]] | None) -> dict[str, np.ndarray]:
        """Channels (without counters/demand) plus ``_cp:<counter>`` integrand powers [W or var]."""
        kind = self.devices[dev].kind
        f = faults or {}
        return getattr(self, f"_ch_{kind}")(dev, c, t, f)

    @staticmethod
    def _fmask(f: dict, dev: str, name: str, n: int) -> list[tuple[np.ndarray, dict]]:
        return [(m, p) for m, p in f.get(f"{dev}:{name}", []) if m.any()]

    def _pv_ac_faulted(self, dev: str, c: Mapping[str, np.ndarray], f: dict, n: int) -> tuple[np.ndarray, ...]:
        ac = c[f"pv_ac:{dev}"].copy()
        dc = c[f"pv_dc:{dev}"].copy()
        lost = np.zeros(n)
        sh = self.pv[dev].shares
        for m, p in self._fmask(f, dev, "string_loss", n):
            lost = np.where(m, np.maximum(lost, 0) + sh[p["mppt"] - 1], lost)
        if lost.any():
            keep = 1.0 - lost
            ac = np.minimum(ac, c[f"pv_uncl:{dev}"] * keep)
            dc = dc * keep
        trip = np.zeros(n, dtype=bool)
        for m, _p in self._fmask(f, dev, "inverter_trip", n):
            trip |= m
        ac = np.where(trip, 0.0, ac)
        dc = np.where(trip, 0.0, dc)
        return ac, dc, trip

    def _ev_faulted(self, dev: str, c: Mapping[str, np.ndarray], f: dict, n: int) -> tuple[np.ndarray, ...]:
        p = c[f"ev_p:{dev}"].copy()
        fault = np.zeros(n, dtype=bool)
        code = np.zeros(n)
        for m, prm in self._fmask(f, dev, "ev_fault", n):
            fault |= m
            code = np.where(m, prm["code"], code)
        stuck = np.zeros(n, dtype=bool)
        for m, _prm in self._fmask(f, dev, "ev_stuck", n):
            stuck |= m
        p = np.where(fault | stuck, 0.0, p)
        return p, fault, stuck, code

    def _voltages(self, dev: str, c: Mapping[str, np.ndarray], f: dict, n: int, shares: np.ndarray | None = None):
        vn = self.site.nominal_voltage_v
        v = [c[f"v{ph}"] * vn for ph in (1, 2, 3)]
        if shares is not None:
            v = [v[i] * (1 - 0.04 * (3 * shares[i] - 1)) for i in range(3)]
        for m, p in self._fmask(f, dev, "voltage_sag", n):
            v = [np.where(m, v[i] * (1 - p["depth"]), v[i]) if (i + 1) in p["phases"] else v[i] for i in range(3)]
        return v

    @staticmethod
    def _line(v: list[np.ndarray], t: np.ndarray, key: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        d2 = 0.2 * _smooth(key, t, 3600.0)
        d3 = 0.2 * _smooth(key + 7, t, 3600.0)
        ang = [np.zeros_like(d2), np.radians(-120.0 + d2), np.radians(120.0 + d3)]
        ph = [v[i] * np.exp(1j * ang[i]) for i in range(3)]
        line = [np.abs(ph[0] - ph[1]), np.abs(ph[1] - ph[2]), np.abs(ph[2] - ph[0])]
        return line, [np.mod(np.degrees(a), 360.0) for a in ang]

    def _meter_pq(self, dev: str, c, f, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        role, share = self.meter_role[dev]
        if role == "main":
            pv = sum((self._pv_ac_faulted(d, c, f, n)[0] for d in self.pv), np.zeros(n))
            ev = sum((self._ev_faulted(d, c, f, n)[0] for d in self.ev), np.zeros(n))
            p = share * (c["load"] - pv + ev)
        else:
            p = share * c["load"]
        pf = c["pf"]
        for m, prm in self._fmask(f, dev, "low_power_factor", n):
            pf = np.where(m, prm["pf"], pf)
        q = np.abs(p) * np.tan(np.arccos(pf))
        return p, q, pf

    def integrands(self, dev: str, c: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Fault-free counter integrands (same numbers as :meth:`channels` gives as ``_cp:*``)."""
        kind = self.devices[dev].kind
        if kind == "meter":
            p, q, _pf = self._meter_pq(dev, c, {}, n)
            return {"_cp:energy_import": np.maximum(p, 0.0), "_cp:energy_export": np.maximum(-p, 0.0),
                    "_cp:reactive_energy_import": np.maximum(q, 0.0),
                    "_cp:reactive_energy_export": np.maximum(-q, 0.0)}
        if kind == "pv_inverter":
            return {"_cp:energy_export": self._pv_ac_faulted(dev, c, {}, n)[0]}
        if kind == "ev_charger":
            return {"_cp:energy_import": self._ev_faulted(dev, c, {}, n)[0]}
        return {}

    def _ch_meter(self, dev: str, c, t, f) -> dict[str, np.ndarray]:
        n = len(t)
        p, q, pf = self._meter_pq(dev, c, f, n)
        shares = np.tile(self.phase_share[dev][:, None], (1, n))
        unb = np.zeros(n, dtype=bool)
        for m, prm in self._fmask(f, dev, "phase_unbalance", n):
            r = prm["ratio"]
            s = np.array([1.0, 1.0 - r / 2, 1.0 - r])
            shares = np.where(m, (s / s.sum())[:, None], shares)
            unb |= m
        v = self._voltages(dev, c, f, n, shares if unb.any() else None)
        if unb.any() and not unb.all():
            v0 = self._voltages(dev, c, f, n)
            v = [np.where(unb, v[i], v0[i]) for i in range(3)]
        out: dict[str, np.ndarray] = {}
        s_tot = np.hypot(p, q)
        phi = np.arctan2(q, p)
        line, ang = self._line(v, t, self.k["volt"] + 11)
        i_ph = []
        for i in range(3):
            pl, ql = p * shares[i], q * shares[i]
            sl = np.hypot(pl, ql)
            il = sl / v[i]
            out[f"voltage_l{i + 1}"] = v[i]
            out[f"current_l{i + 1}"] = il
            out[f"active_power_l{i + 1}"] = pl
            out[f"reactive_power_l{i + 1}"] = ql
            out[f"apparent_power_l{i + 1}"] = sl
            out[f"power_factor_l{i + 1}"] = np.where(sl > 0, pl / np.where(sl > 0, sl, 1.0), 1.0)
            i_ph.append(il * np.exp(1j * (np.radians(ang[i]) - phi)))
        out["current_n"] = np.abs(i_ph[0] + i_ph[1] + i_ph[2])
        out["voltage_l12"], out["voltage_l23"], out["voltage_l31"] = line
        out["voltage_angle_l2"], out["voltage_angle_l3"] = ang[1], ang[2]
        out["active_power"], out["reactive_power"], out["apparent_power"] = p, q, s_tot
        out["power_factor"] = np.where(s_tot > 0, p / np.where(s_tot > 0, s_tot, 1.0), 1.0)
        out["frequency"] = c["freq"]
        thdv, thdi = c["thdv"], c["thdi"]
        hd = self._fmask(f, dev, "harmonic_distortion", n)
        for i in range(3):
            tv = thdv * (1 + 0.04 * (i - 1))
            ti = thdi * (1 + 0.06 * (1 - i))
            for m, prm in hd:
                tv = np.where(m, prm["thd_voltage"] * (1 + 0.03 * (i - 1)), tv)
                ti = np.where(m, prm["thd_current"] * (1 + 0.05 * (1 - i)), ti)
            out[f"thd_voltage_l{i + 1}"], out[f"thd_current_l{i + 1}"] = tv, ti
        out["_cp:energy_import"] = np.maximum(p, 0.0)
        out["_cp:energy_export"] = np.maximum(-p, 0.0)
        out["_cp:reactive_energy_import"] = np.maximum(q, 0.0)
        out["_cp:reactive_energy_export"] = np.maximum(-q, 0.0)
        return out

    def _ch_pv_inverter(self, dev: str, c, t, f) -> dict[str, np.ndarray]:
        n = len(t)
        pv = self.pv[dev]
        ac, dc, trip = self._pv_ac_faulted(dev, c, f, n)
        vmp, voc = c[f"pv_vmp:{dev}"], c[f"pv_voc:{dev}"]
        base_dc = c[f"pv_dc:{dev}"]
        out: dict[str, np.ndarray] = {}
        lost = np.zeros((len(pv.shares), n), dtype=bool)
        for m, p in self._fmask(f, dev, "string_loss", n):
            lost[p["mppt"] - 1] |= m
        vs, ps = [], []
        wts = [sh * (1.0 + 0.01 * _smooth(pv.key + 100 + k, t, 1800.0)) for k, sh in enumerate(pv.shares)]
        norm = np.sum(wts, axis=0)
        for k in range(len(pv.shares)):
            vk = vmp * (1 + 0.005 * (k - 1.5) / 1.5)
            dead = lost[k] | trip
            pk = np.where(dead, 0.0, base_dc * wts[k] / norm)
            vk = np.where(dead, voc, vk)
            ik = np.where(vk > 0, pk / np.where(vk > 0, vk, 1.0), 0.0)
            out[f"mppt{k + 1}_dc_power"], out[f"mppt{k + 1}_dc_voltage"], out[f"mppt{k + 1}_dc_current"] = pk, vk, ik
            vs.append(vk)
            ps.append(pk)
        dcp = np.sum(ps, axis=0)
        dcv = np.mean(vs, axis=0)
        out["dc_power"], out["dc_voltage"] = dcp, dcv
        out["dc_current"] = np.where(dcv > 0, dcp / np.where(dcv > 0, dcv, 1.0), 0.0)
        v = self._voltages(dev, c, f, n)
        line, _ang = self._line(v, t, self.k["volt"] + 11)
        for i in range(3):
            out[f"voltage_l{i + 1}"] = v[i]
            out[f"current_l{i + 1}"] = ac / 3.0 / v[i]
            out[f"active_power_l{i + 1}"] = ac / 3.0
        out["voltage_l12"], out["voltage_l23"], out["voltage_l31"] = line
        out["active_power"] = ac
        out["reactive_power"] = np.zeros(n)
        out["apparent_power"] = ac.copy()
        out["power_factor"] = np.ones(n)
        out["frequency"] = c["freq"]
        amb = c["amb"]
        load = ac / pv.ac_w
        out["temperature_heatsink"] = amb + 3.0 + 28.0 * load
        out["temperature_cabinet"] = amb + 2.0 + 9.0 * load
        out["irradiance_poa"] = c[f"pv_poa:{dev}"]
        out["temperature_module"] = c[f"pv_tmod:{dev}"]
        state = np.where(c[f"pv_poa:{dev}"] <= 5.0, 2.0, np.where(ac >= pv.ac_w * 0.999, 5.0, 4.0))
        state = np.where((c[f"pv_poa:{dev}"] > 5.0) & (ac <= 0), 8.0, state)
        events = np.zeros(n)
        for m, p in self._fmask(f, dev, "inverter_trip", n):
            events = np.where(m, float(1 << SUNSPEC_EVENTS.index(p["event"])), events)
        out["inverter_state"] = np.where(trip, 7.0, state)
        out["inverter_events"] = events
        out["_cp:energy_export"] = ac
        return out

    def _ch_ev_charger(self, dev: str, c, t, f) -> dict[str, np.ndarray]:
        n = len(t)
        ev = self.ev[dev]
        p, fault, stuck, code = self._ev_faulted(dev, c, f, n)
        state = np.ones(n)
        ocpp = np.zeros(n)
        plug_at = np.full(n, np.nan)
        days = self.day_of(t) if n else np.zeros(0, dtype=np.int64)
        if n:
            for day in range(int(days.min()) - 1, int(days.max()) + 1):
                for plug, cend, unplug, _pw in self.sessions(dev, day):
                    m = (t >= plug) & (t < unplug)
                    if not m.any():
                        continue
                    tm = t[m]
                    st = np.where(tm < plug + GRID_S, 2.0, np.where(tm < cend, 3.0, 2.0))
                    oc = np.where(tm < plug + GRID_S, 1.0, np.where(tm < cend, 2.0,
                                  np.where(tm >= unplug - GRID_S, 5.0, 4.0)))
                    state[m], ocpp[m], plug_at[m] = st, oc, plug
        state = np.where(stuck, 3.0, state)
        ocpp = np.where(stuck, 2.0, ocpp)
        state = np.where(fault, 6.0, state)
        ocpp = np.where(fault, 8.0, ocpp)
        v = self._voltages(dev, c, f, n)
        out: dict[str, np.ndarray] = {}
        for i in range(3):
            out[f"voltage_l{i + 1}"] = v[i]
            if ev.phases == 1:
                out[f"current_l{i + 1}"] = p / (v[0] * 0.99) if i == 0 else np.zeros(n)
            else:
                out[f"current_l{i + 1}"] = p / 3.0 / (v[i] * 0.99)
        out["active_power"] = p
        out["power_factor"] = np.where(p > 0, 0.99, 1.0)
        out["frequency"] = c["freq"]
        out["charger_state"], out["ocpp_status"] = state, ocpp
        out["fault_code"] = code
        out["max_current_offered"] = np.where((state == 1.0) | fault, 0.0, round(ev.rated_a, 1))
        out["_plug_at"] = plug_at
        out["_cp:energy_import"] = p
        return out

    def _ch_transformer(self, dev: str, c, t, f) -> dict[str, np.ndarray]:
        n = len(t)
        out: dict[str, np.ndarray] = {}
        extra = np.zeros(n)
        base_max = np.max([c[f"tw{ph}:{dev}"] for ph in (1, 2, 3)], axis=0)
        for m, p in self._fmask(f, dev, "transformer_overtemp", n):
            ramp = np.clip((t - p["_start"]) / 1800.0, 0, 1)
            extra = np.where(m, ramp * np.maximum(p["target_c"] - base_max, 0.0), extra)
        temps = [c[f"tw{ph}:{dev}"] + extra for ph in (1, 2, 3)]
        for ph in (1, 2, 3):
            out[f"winding_temperature_l{ph}"] = temps[ph - 1]
        hmax = np.max(temps, axis=0)
        out["fan_running"] = np.where(hmax >= 110.0, 1.0, np.where(hmax <= 90.0, 0.0, c[f"fan:{dev}"]))
        out["temperature_alarm"] = (hmax > 130.0).astype(np.float64)
        out["temperature_trip"] = (hmax > 150.0).astype(np.float64)
        return out


# ----------------------------------------------------------------------------------------- fleet API
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
        self._sites = {sid: _SiteModel(s, seed, n_mppt) for sid, s in fleet.sites.items()}
        self._faults: list[FaultWindow] = []
        self._schedule: list[FaultWindow] = []
        self._lock = threading.RLock()     # caches and computation
        # counter value after each completed fault window, keyed by the window and every power
        # fault up to its end (windows are replaced, never mutated, so the key is the content)
        self._window_memo: dict[tuple, dict[str, float]] = {}
        self._counter_memo: dict[tuple, dict[str, np.ndarray]] = {}
        self._flock = threading.Lock()     # the fault lists (never held during a computation)

    # ------------------------------------------------------------------ public API
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
            sm = self._sites[site_id]
        except KeyError:
            raise KeyError(f"unknown site {site_id!r}: not in the fleet") from None
        t = np.asarray(times, dtype=np.float64)
        if t.ndim != 1 or not np.all(np.isfinite(t)):
            raise ValueError("times must be a 1-D array of finite unix seconds")
        day, hour, _, doy = sm.local(t)
        return {"outdoor_temperature": sm._ambient(t, hour, doy, day)}

    def warm(self, t: float | None = None) -> float:
        """Fill the caches every later call near ``t`` (default now) needs; returns the seconds taken.

        The first call for a site integrates the counters from :data:`ORIGIN` and the month's
        maximum demand (a few seconds per site); a live simulator can call this before serving.
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

    # ------------------------------------------------------------------ internals
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
        p = _check_params(fault, defaults, params, self.n_mppt)
        p["_start"] = start
        return FaultWindow(dev.id, fault, start, end, p)

    def _site_windows(self, site_id: str) -> list[FaultWindow]:
        with self._flock:
            ws = self._faults + self._schedule
        return [w for w in ws if self.fleet.devices[w.device_id].site_id == site_id]

    @staticmethod
    def _masks(ws: list[FaultWindow], t: np.ndarray) -> dict[str, list[tuple[np.ndarray, dict]]]:
        out: dict[str, list[tuple[np.ndarray, dict]]] = {}
        for w in ws:
            m = w.mask(t)
            if m.any():
                out.setdefault(f"{w.device_id}:{w.fault}", []).append((m, w.params))
        return out

    def _eval(self, sm: _SiteModel, dev: str, times: np.ndarray, ws: list[FaultWindow] | None
              ) -> dict[str, np.ndarray]:
        """Gauge channels and ``_cp`` integrands at ``times`` (with the windows ``ws`` applied)."""
        days = sm.day_of(times)
        out: dict[str, np.ndarray] = {}
        for day in np.unique(days):
            sel = np.nonzero(days == day)[0]
            tt = times[sel]
            b = sm.block(int(day))
            lazy = _Lazy(b, tt)
            faults = self._masks(ws, tt) if ws else None
            ch = sm.channels(dev, lazy, tt, faults)
            for k, v in ch.items():
                if k not in out:
                    out[k] = np.empty(len(times))
                out[k][sel] = v
        return out

    def _base_counters(self, sm: _SiteModel, dev: str, times: np.ndarray, days: np.ndarray
                       ) -> dict[str, np.ndarray]:
        """Fault-free counters [Wh]: start of day + exact integral of the grid integrand up to t."""
        out = {c: np.empty(len(times)) for c in sm.counters(dev)}
        for day in np.unique(days):
            sel = np.nonzero(days == day)[0]
            tt = times[sel]
            b = sm.block(int(day))
            start = sm.cum_start(int(day))
            g = b.grid[b.i0:]
            k = np.clip(((tt - b.day_start) // GRID_S).astype(np.int64), 0, len(g) - 2)
            frac = (tt - g[k]) / GRID_S
            for c in out:
                y = b.comps[f"_cpgrid:{dev}:{c}"]
                yt = y[k] + (y[k + 1] - y[k]) * frac
                part = (tt - g[k]) * 0.5 * (y[k] + yt) / 3600.0
                cum = b.cum[(dev, c)]
                out[c][sel] = start[(dev, c)] + np.minimum(cum[k] + part, cum[k + 1])
        return out

    def _counters(self, sm: _SiteModel, dev: str, times: np.ndarray, ws: list[FaultWindow],
                  days: np.ndarray | None = None, *, resets: bool = True) -> dict[str, np.ndarray]:
        """:meth:`_counters_at`, memoised for the few fixed instants asked again and again (meter
        reset times, EV plug-in times, the previous demand interval): the result depends only on the
        instants, the device and the fault windows, which the key holds."""
        if len(times) > 64:
            return self._counters_at(sm, dev, times, ws, days, resets=resets)
        sig = tuple((w.device_id, w.fault, w.start, w.end) for w in ws
                    if w.fault in _POWER_FAULTS or (w.fault == "meter_reset" and w.device_id == dev))
        key = (dev, resets, np.asarray(times, dtype=np.float64).tobytes(), sig)
        hit = self._counter_memo.get(key)
        if hit is None:
            hit = self._counters_at(sm, dev, times, ws, days, resets=resets)
            if len(self._counter_memo) > 20_000:
                self._counter_memo.clear()
            self._counter_memo[key] = {c: v.copy() for c, v in hit.items()}
            return hit
        return {c: v.copy() for c, v in hit.items()}

    def _counters_at(self, sm: _SiteModel, dev: str, times: np.ndarray, ws: list[FaultWindow],
                     days: np.ndarray | None = None, *, resets: bool = True) -> dict[str, np.ndarray]:
        """Counters [Wh, varh] at ``times`` with faults, restarted at meter resets.

        Outside fault windows a counter is the base counter plus a constant; inside a (merged) window
        of power-changing faults it is its value at the window start plus the exact integral of the
        faulted integrand.  Each piece is monotonic in floating point, so the counter never goes back.
        """
        days = sm.day_of(times) if days is None else days
        out = self._base_counters(sm, dev, times, days)
        pw = [w for w in ws if w.fault in _POWER_FAULTS]
        if pw and len(times):
            tmax = float(times.max())
            spans = sorted((w.start, w.end) for w in pw if w.start <= tmax)
            merged: list[list[float]] = []
            for a, e in spans:
                if merged and a <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([a, e])
            if merged:
                bps = sorted({x for w in pw for x in (w.start, w.end) if x <= tmax})
                edges = np.array([x for a, e in merged for x in (a, e if e <= tmax else a)])
                base_at = self._base_counters(sm, dev, edges, sm.day_of(edges))
                base = dict(out)
                k_prev: dict[str, float] = {}
                by_start = sorted(pw, key=lambda w: w.start)
                starts = [w.start for w in by_start]
                sig = tuple((w.device_id, w.fault, w.start, w.end) for w in by_start)
                for j, (a, e) in enumerate(merged):
                    end = min(e, tmax)
                    key = None
                    if e <= tmax:
                        # a completed window: its integral is the same for every later query, so a
                        # live simulator does not re-integrate months of history at every update
                        key = (dev, a, e, sig[:bisect.bisect_left(starts, e)])
                        hit = self._window_memo.get(key)
                        if hit is not None and not ((times >= a) & (times < e)).any():
                            k_prev = dict(hit)
                            after = times >= e
                            for c in out:
                                out[c] = np.where(after, k_prev[c] + (base[c] - base_at[c][2 * j + 1]), out[c])
                            continue
                    grid = np.arange(math.ceil(a / GRID_S) * GRID_S, end, GRID_S)
                    inner = [x for x in bps if a < x <= end]
                    pts = np.concatenate([grid, [a, end], inner, [x - _EPS_S for x in inner]])
                    s_ = np.unique(pts[pts >= a])
                    if len(s_) < 2:
                        s_ = np.array([a, a + _EPS_S])
                    f = self._eval(sm, dev, s_, pw)
                    inside = (times >= a) & (times < e)
                    after = times >= e
                    for c in out:
                        ba = base_at[c][2 * j]
                        c_a = ba if j == 0 else k_prev[c] + (ba - base_at[c][2 * j - 1])
                        y = f["_cp:" + c] / 3600.0
                        cum = _cum_trapz_var(s_, y)
                        out[c] = np.where(inside, c_a + _integral_at(s_, y, cum, times), out[c])
                        if e <= tmax:
                            k_prev[c] = c_a + float(cum[-1])
                            out[c] = np.where(after, k_prev[c] + (base[c] - base_at[c][2 * j + 1]), out[c])
                    if key is not None:
                        if len(self._window_memo) > 100_000:
                            self._window_memo.clear()
                        self._window_memo[key] = dict(k_prev)
        if resets:
            rs = sorted(w.start for w in ws if w.fault == "meter_reset" and w.device_id == dev)
            if rs:
                at = np.array(rs)
                before = self._counters(sm, dev, at, ws, resets=False)
                k = np.searchsorted(at, times, side="right") - 1
                for c in out:
                    out[c] = np.where(k >= 0, out[c] - before[c][np.maximum(k, 0)], out[c])
        return out

    def _values(self, dev: Device, times: np.ndarray) -> dict[str, np.ndarray]:
        sm = self._sites[dev.site_id]
        if not len(times):
            return {}
        days = sm.day_of(times)
        if days.min() < EARLIEST_DAY:
            raise ValueError(f"time {times.min()} is before {EARLIEST.isoformat()} (local), outside the simulated period")
        ws = self._site_windows(dev.site_id)
        ch = self._eval(sm, dev.id, times, ws)
        out = {k: v for k, v in ch.items() if not k.startswith("_")}
        if sm.counters(dev.id):
            out.update(self._counters(sm, dev.id, times, ws, days))
        if dev.kind == "ev_charger":
            plug = ch["_plug_at"]
            have = ~np.isnan(plug)
            se = np.zeros(len(times))
            if have.any():
                raw = self._counters(sm, dev.id, times[have], ws, days[have], resets=False)["energy_import"]
                up = np.unique(plug[have])
                at = self._counters(sm, dev.id, up, ws, resets=False)["energy_import"]
                se[have] = np.maximum(raw - at[np.searchsorted(up, plug[have])], 0.0)
            out["session_energy"] = se
        if dev.kind == "meter":
            out.update(self._demand(sm, dev.id, times, ws, ch, days))
        return out

    def _demand(self, sm: _SiteModel, dev: str, times: np.ndarray, ws: list[FaultWindow],
                ch: dict[str, np.ndarray], days: np.ndarray) -> dict[str, np.ndarray]:
        def net(tt: np.ndarray, dd: np.ndarray | None = None) -> np.ndarray:
            c = self._counters(sm, dev, tt, ws, dd, resets=False)
            return c["energy_import"] - c["energy_export"]

        present = (net(times, days) - net(times - DEMAND_S)) * 3600.0 / DEMAND_S
        # maximum demand: largest grid-point demand since the local month start, up to floor(t)
        mx = np.empty(len(times))
        pw = [w for w in ws if w.fault in _POWER_FAULTS]
        for day in np.unique(days):
            sel = np.nonzero(days == day)[0]
            tt = times[sel]
            d0 = date.fromordinal(_EPOCH_DATE.toordinal() + int(day))
            month_day = int(day) - (d0.day - 1)
            prev = max((sm.day_max_demand(d)[dev] for d in range(month_day, int(day))), default=-math.inf)
            b = sm.block(int(day))
            k = np.clip(((tt - b.day_start) // GRID_S).astype(np.int64), 0, len(b.demand_runmax[dev]) - 1)
            mx[sel] = np.maximum(prev, b.demand_runmax[dev][k])
            # faulted demand at grid points inside fault windows (+ demand window) of this month.
            # The running maximum over a set of points is the maximum of the running maxima over any
            # split of it, so the windows already over (with their demand interval) are evaluated
            # once and memoised; only the windows still running are evaluated at every call.
            ms = sm.day_start(month_day)
            tmax = float(tt.max())
            done, active = [], []
            for w in pw:
                a = max(w.start, ms)
                if w.end + DEMAND_S <= tmax:
                    if w.end + DEMAND_S > a:
                        done.append((a, w.end + DEMAND_S))
                else:
                    e = min(w.end + DEMAND_S, tmax + 1)
                    if e > a:
                        active.append((a, e))
            parts = [self._window_demand(sm, dev, ms, done, pw, net)] if done else []
            if active:
                parts.append(_running_demand(active, net))
            for g, run in parts:
                if not len(g):
                    continue
                j = np.searchsorted(g, tt, side="right") - 1
                mx[sel] = np.where(j >= 0, np.maximum(mx[sel], run[np.maximum(j, 0)]), mx[sel])
        return {"demand_active_power": present, "demand_active_power_max": mx}

    def _window_demand(self, sm: _SiteModel, dev: str, ms: float, spans: list[tuple[float, float]],
                       pw: list[FaultWindow], net) -> tuple[np.ndarray, np.ndarray]:
        """(grid points, running max demand) over completed fault windows of the month, memoised on
        the device, the month and every power fault that starts before the last of those points."""
        last = max(e for _, e in spans)
        key = ("demand", dev, ms, tuple(sorted(spans)),
               tuple(sorted((w.device_id, w.fault, w.start, w.end) for w in pw if w.start < last)))
        hit = self._window_memo.get(key)
        if hit is None:
            hit = _running_demand(spans, net)
            if len(self._window_memo) > 100_000:
                self._window_memo.clear()
            self._window_memo[key] = hit
        return hit


def _running_demand(spans: list[tuple[float, float]], net) -> tuple[np.ndarray, np.ndarray]:
    """Grid points of ``spans`` [s] and the running maximum of the demand there [W]."""
    g = np.unique(np.concatenate([np.arange(math.ceil(a / GRID_S) * GRID_S, e, GRID_S) for a, e in spans]))
    if not len(g):
        return g, g
    dg = (net(g) - net(g - DEMAND_S)) * 3600.0 / DEMAND_S
    return g, np.maximum.accumulate(dg)


def _cum_trapz_var(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral of (s, y) with uneven steps, starting at 0."""
    out = np.zeros(len(s))
    if len(s) > 1:
        np.cumsum((y[:-1] + y[1:]) * 0.5 * np.diff(s), out=out[1:])
    return out


__all__ = ["FAULT_TYPES", "FaultWindow", "FleetSignals", "SUNSPEC_EVENTS", "CHANNELS"]

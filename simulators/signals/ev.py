"""EV chargers: seeded charging sessions, charging power, IEC 61851 / OCPP states."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core import workdays

from .clock import GRID_S, day_types
from .faults import ActiveFaults, occurrences
from .noise import stable_key
from .supply import phase_voltages

#: one charging session: (plug-in, end of charging, unplug [unix s], power [W])
Session = tuple[float, float, float, float]
_VEHICLE_LIMITS_W = (6600.0, 7000.0, 11000.0, 11000.0, 22000.0)


@dataclass
class EvCharger:
    rated_w: float
    phases: int
    key: int

    @property
    def rated_a(self) -> float:
        return self.rated_w / (self.phases * 230.0)


def ev_charger(device_id: str, rated_power_kw: float | None, seed: int) -> EvCharger:
    """A charger of ``rated_power_kw`` (default 7 kW); up to 7.4 kW single phase (L1), else three-phase."""
    rated = (rated_power_kw or 7.0) * 1000.0
    return EvCharger(rated, 1 if rated <= 7400 else 3, stable_key(seed, device_id, "ev"))


def _arrival_hour(draw: random.Random, first: bool) -> float:
    u = draw.random()
    if first and u < 0.8:
        return draw.uniform(7.75, 10.5)
    if u < 0.85:
        return draw.uniform(11.0, 15.5)
    return draw.uniform(17.5, 21.0)


def sessions_of_day(ev: EvCharger, seed: int, device: str, day: int, day_start: Callable[[int], float]
                    ) -> list[Session]:
    """Sessions arriving on local ``day``: working days 1-4, other days 0-2, some staying overnight."""
    draw = random.Random(stable_key(seed, device, "sessions", day))
    day_off = int(day_types(np.array([day]))[0]) != workdays.WORKING
    count = draw.choice((0, 0, 1, 1, 2)) if day_off else draw.choice((1, 2, 2, 3, 3, 4))
    start = day_start(day)
    out: list[Session] = []
    free_from = start + 7.75 * 3600
    for i in range(count):
        arrival_h = _arrival_hour(draw, i == 0)
        plug = max(start + arrival_h * 3600, free_from)
        plug = math.ceil(plug / GRID_S) * GRID_S
        if plug > start + 21.5 * 3600:
            break
        power = min(ev.rated_w, draw.choice(_VEHICLE_LIMITS_W)) * draw.uniform(0.95, 0.99)
        need_wh = draw.uniform(8000, 45000)
        charge_s = math.ceil((need_wh / power * 3600 + 300) / GRID_S) * GRID_S
        overnight = arrival_h >= 17.5
        stay = (day_start(day + 1) + draw.uniform(7.0, 7.6) * 3600 - plug) if overnight \
            else draw.uniform(2.5, 9.0) * 3600
        stay = max(stay, charge_s + 2 * GRID_S + GRID_S * 10)
        unplug = math.floor((plug + stay) / GRID_S) * GRID_S
        unplug = min(unplug, math.floor((day_start(day + 1) + 7.6 * 3600) / GRID_S) * GRID_S)
        charge_end = min(plug + GRID_S + charge_s, unplug - GRID_S)
        out.append((plug, charge_end, unplug, power))
        free_from = unplug + 10 * 60
    return out


def charging_power(sessions: Callable[[int], list[Session]], t: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Charging power [W] on sorted grid times: soft start after a minute, 10-min taper to 30 %."""
    p = np.zeros(len(t))
    for day in range(int(days.min()) - 1, int(days.max()) + 1):
        for plug, charge_end, _unplug, power in sessions(day):
            i0, i1 = np.searchsorted(t, [plug + GRID_S, charge_end], side="right")   # grid t is sorted
            i1 = i1 - 1 if i1 > 0 and t[i1 - 1] == charge_end else i1
            if i1 <= i0:
                continue
            taper = np.clip((charge_end - t[i0:i1]) / 600.0, 0.0, 1.0)
            p[i0:i1] = power * (0.3 + 0.7 * taper)
    return p


def faulted_power(device: str, comps, faults: ActiveFaults, n: int) -> tuple[np.ndarray, ...]:
    """Charging power [W] with ``ev_fault`` / ``ev_stuck`` applied, their masks and the fault code."""
    p = comps[f"ev_p:{device}"].copy()
    fault = np.zeros(n, dtype=bool)
    code = np.zeros(n)
    for mask, params in occurrences(faults, device, "ev_fault"):
        fault |= mask
        code = np.where(mask, params["code"], code)
    stuck = np.zeros(n, dtype=bool)
    for mask, _params in occurrences(faults, device, "ev_stuck"):
        stuck |= mask
    p = np.where(fault | stuck, 0.0, p)
    return p, fault, stuck, code


def _session_states(sessions: Callable[[int], list[Session]], t: np.ndarray, days: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IEC 61851 state, OCPP status and plug-in time (NaN: no car) from the sessions."""
    n = len(t)
    state = np.ones(n)
    ocpp = np.zeros(n)
    plug_at = np.full(n, np.nan)
    if not n:
        return state, ocpp, plug_at
    for day in range(int(days.min()) - 1, int(days.max()) + 1):
        for plug, charge_end, unplug, _power in sessions(day):
            m = (t >= plug) & (t < unplug)
            if not m.any():
                continue
            tm = t[m]
            st = np.where(tm < plug + GRID_S, 2.0, np.where(tm < charge_end, 3.0, 2.0))
            oc = np.where(tm < plug + GRID_S, 1.0, np.where(tm < charge_end, 2.0,
                          np.where(tm >= unplug - GRID_S, 5.0, 4.0)))
            state[m], ocpp[m], plug_at[m] = st, oc, plug
    return state, ocpp, plug_at


def charger_channels(ev: EvCharger, sessions: Callable[[int], list[Session]], days: np.ndarray,
                     nominal_v: float, device: str, comps, t: np.ndarray, faults: ActiveFaults
                     ) -> dict[str, np.ndarray]:
    """Channels of a charger, plus ``_plug_at`` (for ``session_energy``) and ``_cp:energy_import``."""
    n = len(t)
    p, fault, stuck, code = faulted_power(device, comps, faults, n)
    state, ocpp, plug_at = _session_states(sessions, t, days)
    state = np.where(stuck, 3.0, state)
    ocpp = np.where(stuck, 2.0, ocpp)
    state = np.where(fault, 6.0, state)
    ocpp = np.where(fault, 8.0, ocpp)
    v = phase_voltages(nominal_v, device, comps, faults)
    out: dict[str, np.ndarray] = {}
    for i in range(3):
        out[f"voltage_l{i + 1}"] = v[i]
        if ev.phases == 1:
            out[f"current_l{i + 1}"] = p / (v[0] * 0.99) if i == 0 else np.zeros(n)
        else:
            out[f"current_l{i + 1}"] = p / 3.0 / (v[i] * 0.99)
    out["active_power"] = p
    out["power_factor"] = np.where(p > 0, 0.99, 1.0)
    out["frequency"] = comps["freq"]
    out["charger_state"], out["ocpp_status"] = state, ocpp
    out["fault_code"] = code
    out["max_current_offered"] = np.where((state == 1.0) | fault, 0.0, round(ev.rated_a, 1))
    out["_plug_at"] = plug_at
    out["_cp:energy_import"] = p
    return out

"""Meters: which load each meter carries, P/Q/S per phase, currents, power factor, harmonics."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from core.config import Device, Site

from .faults import ActiveFaults, occurrences
from .noise import stable_key
from .supply import line_voltages, phase_voltages

#: meter -> ("main", kVA share of the metered transformers) or ("feeder", seeded share of the load)
MeterRoles = dict[str, tuple[str, float]]
COUNTERS = ("energy_import", "energy_export", "reactive_energy_import", "reactive_energy_export")


def meter_roles(site: Site, meters: list[Device], seed: int) -> MeterRoles:
    """Transformer meters are main meters by kVA (else the first meter is); the others are feeders."""
    roles: MeterRoles = {}
    if any(t.meter for t in site.transformers):
        total_kva = sum(t.rated_kva for t in site.transformers if t.meter)
        for t in site.transformers:
            if t.meter:
                roles[t.meter] = ("main", t.rated_kva / total_kva)
    elif meters:
        roles[meters[0].id] = ("main", 1.0)
    for d in meters:
        if d.id not in roles:
            roles[d.id] = ("feeder", random.Random(stable_key(seed, d.id, "feeder")).uniform(0.10, 0.35))
    return roles


def phase_shares(device_id: str, seed: int) -> np.ndarray:
    """Seeded shares of the three phases within ±2 %, summing to 1."""
    draw = random.Random(stable_key(seed, device_id, "phases"))
    shares = np.array([1 + draw.uniform(-0.02, 0.02) for _ in range(3)])
    return shares / shares.sum()


def meter_power(role: tuple[str, float], device: str, comps, faults: ActiveFaults, n: int,
                pv_power: Callable[[], np.ndarray], ev_power: Callable[[], np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P [W] (> 0 import), Q [var] and PF of a meter: a main meter carries load − PV + EV, a feeder
    its share of the load; ``low_power_factor`` sets the PF."""
    kind, share = role
    if kind == "main":
        p = share * (comps["load"] - pv_power() + ev_power())
    else:
        p = share * comps["load"]
    pf = comps["pf"]
    for mask, params in occurrences(faults, device, "low_power_factor"):
        pf = np.where(mask, params["pf"], pf)
    q = np.abs(p) * np.tan(np.arccos(pf))
    return p, q, pf


def counter_integrands(p: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """What the meter's counters integrate: import/export of active and reactive power."""
    return {"_cp:energy_import": np.maximum(p, 0.0), "_cp:energy_export": np.maximum(-p, 0.0),
            "_cp:reactive_energy_import": np.maximum(q, 0.0),
            "_cp:reactive_energy_export": np.maximum(-q, 0.0)}


def _unbalanced(shares0: np.ndarray, device: str, faults: ActiveFaults, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Phase shares over time: ``phase_unbalance`` sets them ∝ (1, 1 − ratio/2, 1 − ratio)."""
    shares = np.tile(shares0[:, None], (1, n))
    unbalanced = np.zeros(n, dtype=bool)
    for mask, params in occurrences(faults, device, "phase_unbalance"):
        r = params["ratio"]
        s = np.array([1.0, 1.0 - r / 2, 1.0 - r])
        shares = np.where(mask, (s / s.sum())[:, None], shares)
        unbalanced |= mask
    return shares, unbalanced


def _harmonics(comps, device: str, faults: ActiveFaults, out: dict[str, np.ndarray]) -> None:
    thd_v, thd_i = comps["thdv"], comps["thdi"]
    distorted = occurrences(faults, device, "harmonic_distortion")
    for i in range(3):
        tv = thd_v * (1 + 0.04 * (i - 1))
        ti = thd_i * (1 + 0.06 * (1 - i))
        for mask, params in distorted:
            tv = np.where(mask, params["thd_voltage"] * (1 + 0.03 * (i - 1)), tv)
            ti = np.where(mask, params["thd_current"] * (1 + 0.05 * (1 - i)), ti)
        out[f"thd_voltage_l{i + 1}"], out[f"thd_current_l{i + 1}"] = tv, ti


def meter_channels(pq: tuple[np.ndarray, np.ndarray, np.ndarray], shares0: np.ndarray, nominal_v: float,
                   line_key: int, device: str, comps, t: np.ndarray, faults: ActiveFaults) -> dict[str, np.ndarray]:
    """Channels of a meter (without counters and demand), plus the ``_cp:*`` integrands."""
    n = len(t)
    p, q, _pf = pq
    shares, unbalanced = _unbalanced(shares0, device, faults, n)
    v = phase_voltages(nominal_v, device, comps, faults, shares if unbalanced.any() else None)
    if unbalanced.any() and not unbalanced.all():
        v_balanced = phase_voltages(nominal_v, device, comps, faults)
        v = [np.where(unbalanced, v[i], v_balanced[i]) for i in range(3)]
    out: dict[str, np.ndarray] = {}
    s_total = np.hypot(p, q)
    phi = np.arctan2(q, p)
    line, angles = line_voltages(v, t, line_key)
    phase_currents = []
    for i in range(3):
        p_l, q_l = p * shares[i], q * shares[i]
        s_l = np.hypot(p_l, q_l)
        i_l = s_l / v[i]
        out[f"voltage_l{i + 1}"] = v[i]
        out[f"current_l{i + 1}"] = i_l
        out[f"active_power_l{i + 1}"] = p_l
        out[f"reactive_power_l{i + 1}"] = q_l
        out[f"apparent_power_l{i + 1}"] = s_l
        out[f"power_factor_l{i + 1}"] = np.where(s_l > 0, p_l / np.where(s_l > 0, s_l, 1.0), 1.0)
        phase_currents.append(i_l * np.exp(1j * (np.radians(angles[i]) - phi)))
    out["current_n"] = np.abs(phase_currents[0] + phase_currents[1] + phase_currents[2])
    out["voltage_l12"], out["voltage_l23"], out["voltage_l31"] = line
    out["voltage_angle_l2"], out["voltage_angle_l3"] = angles[1], angles[2]
    out["active_power"], out["reactive_power"], out["apparent_power"] = p, q, s_total
    out["power_factor"] = np.where(s_total > 0, p / np.where(s_total > 0, s_total, 1.0), 1.0)
    out["frequency"] = comps["freq"]
    _harmonics(comps, device, faults, out)
    out.update(counter_integrands(p, q))
    return out

"""Supply quality at the site's busbar: phase voltages, line voltages, frequency, harmonic distortion."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .faults import ActiveFaults, occurrences
from .noise import smooth_noise


def supply_components(keys: Mapping[str, int], t: np.ndarray, load_pu: np.ndarray) -> dict[str, np.ndarray]:
    """Per-unit phase voltages ``v1..v3`` (sagging with load), ``freq`` [Hz], ``thdv``/``thdi`` [%]."""
    out = {}
    for phase in (1, 2, 3):
        out[f"v{phase}"] = (1.03 + 0.008 * smooth_noise(keys["volt"] + phase, t, 1800.0)) - 0.035 * load_pu
    out["freq"] = (50.0 + 0.035 * smooth_noise(keys["freq"], t, 120.0)
                   + 0.01 * smooth_noise(keys["freq"] + 1, t, 60.0))
    out["thdv"] = 1.9 + 0.6 * smooth_noise(keys["thdv"], t, 1800.0)
    out["thdi"] = np.clip(4.0 + 8.0 * (1.0 - load_pu / 0.55) + 1.5 * smooth_noise(keys["thdi"], t, 900.0),
                          3.0, 14.0)
    return out


def phase_voltages(nominal_v: float, device: str, comps: Mapping[str, np.ndarray], faults: ActiveFaults,
                   shares: np.ndarray | None = None) -> list[np.ndarray]:
    """Phase voltages [V] a device sees: unbalanced by its phase ``shares`` if given, sagging in a
    ``voltage_sag`` window."""
    v = [comps[f"v{phase}"] * nominal_v for phase in (1, 2, 3)]
    if shares is not None:
        v = [v[i] * (1 - 0.04 * (3 * shares[i] - 1)) for i in range(3)]
    for mask, params in occurrences(faults, device, "voltage_sag"):
        v = [np.where(mask, v[i] * (1 - params["depth"]), v[i]) if (i + 1) in params["phases"] else v[i]
             for i in range(3)]
    return v


def line_voltages(v: list[np.ndarray], t: np.ndarray, key: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Line voltages L1-L2, L2-L3, L3-L1 [V] from the phasors, and the phase angles [°] (L2 ≈ 240, L3 ≈ 120)."""
    drift2 = 0.2 * smooth_noise(key, t, 3600.0)
    drift3 = 0.2 * smooth_noise(key + 7, t, 3600.0)
    angles = [np.zeros_like(drift2), np.radians(-120.0 + drift2), np.radians(120.0 + drift3)]
    phasors = [v[i] * np.exp(1j * angles[i]) for i in range(3)]
    line = [np.abs(phasors[0] - phasors[1]), np.abs(phasors[1] - phasors[2]), np.abs(phasors[2] - phasors[0])]
    return line, [np.mod(np.degrees(a), 360.0) for a in angles]

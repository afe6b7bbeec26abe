"""Fault windows: which faults exist, what they apply to, their parameters and where they are active.

The effect of each fault on the signals lives with the physics it changes (pv, ev, meters,
supply, transformer, counters); docs/simulators.md has the table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.channels import DEVICE_KINDS

SUNSPEC_EVENTS = ("GROUND_FAULT", "DC_OVER_VOLT", "AC_DISCONNECT", "DC_DISCONNECT", "GRID_DISCONNECT",
                  "CABINET_OPEN", "MANUAL_SHUTDOWN", "OVER_TEMP", "OVER_FREQUENCY", "UNDER_FREQUENCY",
                  "AC_OVER_VOLT", "AC_UNDER_VOLT", "BLOWN_STRING_FUSE", "UNDER_TEMP", "MEMORY_LOSS",
                  "HW_TEST_FAILED")

COUNTER_KINDS = ("meter", "pv_inverter", "ev_charger")
ALL_KINDS = DEVICE_KINDS

#: fault name -> (device kinds it applies to, default parameters)
FAULT_TYPES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "inverter_trip": (("pv_inverter",), {"event": "GROUND_FAULT"}),
    "string_loss": (("pv_inverter",), {"mppt": 1}),
    "transformer_overtemp": (("transformer",), {"target_c": 140.0}),
    "low_power_factor": (("meter",), {"pf": 0.78}),
    "harmonic_distortion": (("meter",), {"thd_voltage": 6.5, "thd_current": 35.0}),
    "phase_unbalance": (("meter",), {"ratio": 0.35}),
    "voltage_sag": (("meter", "pv_inverter", "ev_charger"), {"depth": 0.3, "phases": (1, 2, 3)}),
    "device_silent": (ALL_KINDS, {}),
    "device_exceptions": (ALL_KINDS, {"code": 4}),
    "ev_fault": (("ev_charger",), {"code": 1}),
    "ev_stuck": (("ev_charger",), {}),
    "meter_reset": (COUNTER_KINDS, {}),
}
#: faults that change a power that some counter integrates
POWER_FAULTS = frozenset({"inverter_trip", "string_loss", "low_power_factor", "ev_fault", "ev_stuck"})

#: numeric parameters: (lowest, highest, integer)
_RANGES = {"mppt": (1, None, True), "target_c": (20.0, 250.0, False), "pf": (0.05, 1.0, False),
           "thd_voltage": (0.0, 100.0, False), "thd_current": (0.0, 300.0, False),
           "ratio": (0.0, 0.95, False), "depth": (0.0, 1.0, False), "code": (1, 65535, True)}

#: masks of the active faults of one evaluation: "<device>:<fault>" -> [(mask over the times, params)]
ActiveFaults = dict[str, list[tuple[np.ndarray, dict]]]


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


def _check_number(fault: str, params: dict, name: str, low: float, high: float, integer: bool) -> None:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and int(value) != value):
        raise ValueError(f"fault {fault!r}: parameter {name!r} must be a{'n integer' if integer else ' number'}"
                         f", got {value!r}")
    if not low <= value <= high or not math.isfinite(value):
        raise ValueError(f"fault {fault!r}: parameter {name!r} must be in {low}..{high}, got {value!r}")
    params[name] = int(value) if integer else float(value)


def _check_phases(fault: str, params: dict) -> None:
    phases = params["phases"]
    if isinstance(phases, int):
        phases = (phases,)
    if (not isinstance(phases, list | tuple) or not phases
            or any(isinstance(x, bool) or x not in (1, 2, 3) for x in phases)):
        raise ValueError(f"fault {fault!r}: parameter 'phases' must be a list of 1, 2, 3, got {params['phases']!r}")
    params["phases"] = tuple(sorted(set(phases)))


def check_params(fault: str, defaults: dict[str, Any], params: Mapping[str, Any], n_mppt: int) -> dict:
    """``params`` over the fault's ``defaults``, checked: a ``ValueError`` names the parameter."""
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"fault {fault!r}: unknown parameter {sorted(unknown)[0]!r}; "
                         f"allowed: {sorted(defaults) or 'none'}")
    checked = {**defaults, **params}
    if fault == "inverter_trip" and checked["event"] not in SUNSPEC_EVENTS:
        raise ValueError(f"fault 'inverter_trip': parameter 'event' must be one of {SUNSPEC_EVENTS}, "
                         f"got {checked['event']!r}")
    for name, (low, high, integer) in _RANGES.items():
        if name in checked:
            _check_number(fault, checked, name, low, n_mppt if high is None else high, integer)
    if fault == "device_exceptions" and not 1 <= checked["code"] <= 255:
        raise ValueError(f"fault 'device_exceptions': parameter 'code' must be a Modbus exception code 1..255, "
                         f"got {checked['code']!r}")
    if "phases" in checked:
        _check_phases(fault, checked)
    return checked


def active_faults(windows: Iterable[FaultWindow], t: np.ndarray) -> ActiveFaults:
    """The windows active somewhere in ``t``, as masks by "<device>:<fault>"."""
    out: ActiveFaults = {}
    for w in windows:
        mask = w.mask(t)
        if mask.any():
            out.setdefault(f"{w.device_id}:{w.fault}", []).append((mask, w.params))
    return out


def occurrences(faults: ActiveFaults, device: str, fault: str) -> list[tuple[np.ndarray, dict]]:
    """(mask, params) of every active window of ``fault`` on ``device``."""
    return [(mask, params) for mask, params in faults.get(f"{device}:{fault}", []) if mask.any()]

"""Dry-type transformer temperature controller: winding temperatures, fan, alarm and trip contacts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import Device, Site, Transformer

from .clock import GRID_S, PRE_S
from .faults import ActiveFaults, occurrences

TIME_CONSTANT_S = 45 * 60.0        # winding temperature lag
FAN_ON_C, FAN_OFF_C, ALARM_C, TRIP_C = 110.0, 90.0, 130.0, 150.0


@dataclass
class TransformerUnit:
    nameplate: Transformer
    meter: str | None           # meter whose load the transformer carries (None: the site share)
    share: float                # kVA share of the site when there is no meter


def transformer_units(site: Site, controllers: list[Device], metered: dict, site_va: float
                      ) -> dict[str, TransformerUnit]:
    """Each temperature controller's transformer: the one naming it, else the unnamed ones in order,
    else a 1000 kVA default; its load comes from its meter if that meter is simulated."""
    named = {t.temperature_controller: t for t in site.transformers if t.temperature_controller}
    unnamed = [t for t in site.transformers if not t.temperature_controller]
    default = Transformer(id=f"{site.id}-default", rated_kva=1000.0, p0_kw=1.415, pk_kw=8.13)
    out = {}
    for i, d in enumerate(controllers):
        t = named.get(d.id) or (unnamed[i] if i < len(unnamed) else default)
        share = t.rated_kva * 1000.0 / site_va if t is not default else 1.0
        out[d.id] = TransformerUnit(t, t.meter if t.meter in metered else None, min(share, 1.0))
    return out


def winding_temperatures(device: str, unit: TransformerUnit, phase_shares: np.ndarray, comps: dict[str, np.ndarray]
                         ) -> None:
    """Winding temperatures ``tw1..3:<device>`` and fan state ``fan:<device>`` on a day block's grid.

    Rise 100 K × ((P0 + β²·Pk)/(P0 + Pk))^0.8 per phase, lagged (first order, 45 min) over the
    block's 6 h history, above a room at ambient + 8 K; fan with hysteresis 90/110 °C.
    """
    nameplate = unit.nameplate
    if unit.meter is not None:
        s = comps[f"load_s:{unit.meter}"]
    else:
        s = np.abs(comps["load"]) / comps["pf"] * unit.share
    beta = s / (nameplate.rated_kva * 1000.0)
    taps = int(PRE_S / GRID_S)
    weights = np.exp(-np.arange(taps) * GRID_S / TIME_CONSTANT_S)
    weights /= weights.sum()
    hot = []
    for phase in (1, 2, 3):
        beta_phase = beta * 3 * phase_shares[phase - 1]
        rise = 100.0 * ((nameplate.p0_kw + beta_phase ** 2 * nameplate.pk_kw)
                        / (nameplate.p0_kw + nameplate.pk_kw)) ** 0.8
        lagged = np.convolve(rise, weights, mode="full")[:len(rise)]
        lagged[:taps] = rise[:taps]  # only the day part is used; it sees a full 6 h history
        temp = comps["amb"] + 8.0 + lagged
        comps[f"tw{phase}:{device}"] = temp
        hot.append(temp)
    hottest = np.max(hot, axis=0)
    known = np.where(hottest >= FAN_ON_C, 1.0, np.where(hottest <= FAN_OFF_C, 0.0, np.nan))
    if np.isnan(known[0]):
        known[0] = 1.0 if hottest[0] > 100.0 else 0.0
    idx = np.where(~np.isnan(known), np.arange(len(known)), 0)
    np.maximum.accumulate(idx, out=idx)
    comps[f"fan:{device}"] = known[idx]


def controller_channels(device: str, comps, t: np.ndarray, faults: ActiveFaults) -> dict[str, np.ndarray]:
    """Channels of the temperature controller; ``transformer_overtemp`` ramps the hottest winding up."""
    n = len(t)
    out: dict[str, np.ndarray] = {}
    extra = np.zeros(n)
    base_max = np.max([comps[f"tw{phase}:{device}"] for phase in (1, 2, 3)], axis=0)
    for mask, params in occurrences(faults, device, "transformer_overtemp"):
        ramp = np.clip((t - params["_start"]) / 1800.0, 0, 1)
        extra = np.where(mask, ramp * np.maximum(params["target_c"] - base_max, 0.0), extra)
    temps = [comps[f"tw{phase}:{device}"] + extra for phase in (1, 2, 3)]
    for phase in (1, 2, 3):
        out[f"winding_temperature_l{phase}"] = temps[phase - 1]
    hottest = np.max(temps, axis=0)
    out["fan_running"] = np.where(hottest >= FAN_ON_C, 1.0, np.where(hottest <= FAN_OFF_C, 0.0, comps[f"fan:{device}"]))
    out["temperature_alarm"] = (hottest > ALARM_C).astype(np.float64)
    out["temperature_trip"] = (hottest > TRIP_C).astype(np.float64)
    return out

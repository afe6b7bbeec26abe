"""PV: solar position and irradiance (pvlib), module temperature, DC and AC power, inverter channels."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pvlib

from core.config import Device, Site

from .faults import SUNSPEC_EVENTS, ActiveFaults, occurrences
from .noise import smooth_noise, stable_key
from .supply import line_voltages, phase_voltages
from .weather import clear_sky_index


@dataclass
class PvArray:
    """One inverter and the modules behind it."""

    dc_w: float                 # DC rating [W]
    ac_w: float                 # AC rating [W]
    tilt: float
    azimuth: float
    mppt_shares: np.ndarray     # MPPT shares of the DC power (sum 1)
    v_mp: float                 # MPPT voltage at STC [V]
    key: int


def pv_arrays(site: Site, inverters: list[Device], seed: int, n_mppt: int) -> dict[str, PvArray]:
    """The site's PV capacity split over its inverters by AC rating, each with seeded orientation."""
    ac = {d.id: (d.rated_power_kw or (site.pv_capacity_kwp / max(len(inverters), 1) / 1.15) or 100.0) * 1000.0
          for d in inverters}
    total_ac = sum(ac.values())
    out = {}
    for d in inverters:
        draw = random.Random(stable_key(seed, d.id, "pv"))
        dc = site.pv_capacity_kwp * 1000.0 * ac[d.id] / total_ac if site.pv_capacity_kwp else 1.15 * ac[d.id]
        shares = np.array([1 + draw.uniform(-0.01, 0.01) for _ in range(n_mppt)])
        azimuth = (180.0 if site.latitude >= 0 else 0.0) + draw.uniform(-10, 10)
        out[d.id] = PvArray(dc, ac[d.id], draw.uniform(15, 25), azimuth, shares / shares.sum(), draw.uniform(580, 620),
                            stable_key(seed, d.id, "pvnoise"))
    return out


def solar(site: Site, keys: Mapping[str, int], t: np.ndarray, day: np.ndarray, day_of_year: np.ndarray,
          ambient: np.ndarray) -> dict[str, np.ndarray]:
    """Sun position and horizontal irradiance (Ineichen clear sky × the clear-sky index) at the site."""
    # analytical solar position (Spencer 1971 declination and equation of time, pvlib): ~0.5 deg,
    # pure numpy -- the counters integrate PV from ORIGIN, so this runs on ~10^6 instants per site
    declination = pvlib.solarposition.declination_spencer71(day_of_year)
    time_equation = pvlib.solarposition.equation_of_time_spencer71(day_of_year)
    hour_angle = np.radians((np.mod(t, 86400.0) / 3600.0 - 12.0) * 15.0 + site.longitude + time_equation / 4.0)
    latitude = np.radians(site.latitude)
    zenith_rad = pvlib.solarposition.solar_zenith_analytical(latitude, hour_angle, declination)
    zenith = np.degrees(zenith_rad)
    azimuth = np.degrees(pvlib.solarposition.solar_azimuth_analytical(latitude, hour_angle, declination, zenith_rad))
    airmass = pvlib.atmosphere.get_relative_airmass(zenith)
    airmass_abs = pvlib.atmosphere.get_absolute_airmass(airmass)
    dni_extra = pvlib.irradiance.get_extra_radiation(day_of_year)
    clear = pvlib.clearsky.ineichen(zenith, airmass_abs, 3.5, altitude=0.0, dni_extra=dni_extra)
    index = clear_sky_index(keys, t, day)
    ghi = np.nan_to_num(clear["ghi"]) * index
    dni = np.nan_to_num(clear["dni"]) * np.clip((index - 0.25) / 0.75, 0, 1) ** 1.5
    cos_zenith = np.clip(np.cos(np.radians(zenith)), 0, 1)
    dhi = np.clip(ghi - dni * cos_zenith, 0, None)
    return {"zen": zenith, "azi": azimuth, "ghi": ghi, "dni": dni, "dhi": dhi, "dni_extra": dni_extra,
            "amb": ambient}


def pv_components(pv: PvArray, sun: dict[str, np.ndarray], t: np.ndarray, out: dict[str, np.ndarray],
                  device: str) -> None:
    """Plane-of-array irradiance, module temperature (Faiman), DC (PVWatts) and clipped AC power, MPP
    and open-circuit voltage of one inverter, into ``out`` as ``pv_*:<device>``."""
    irradiance = pvlib.irradiance.get_total_irradiance(pv.tilt, pv.azimuth, sun["zen"], sun["azi"], sun["dni"],
                                                       sun["ghi"], sun["dhi"], albedo=0.2, model="isotropic")
    poa = np.clip(np.nan_to_num(np.asarray(irradiance["poa_global"], dtype=np.float64)), 0, None)
    poa = poa * (1.0 + 0.01 * smooth_noise(pv.key, t, 600.0))
    module_temp = np.asarray(pvlib.temperature.faiman(poa, sun["amb"], wind_speed=1.5), dtype=np.float64)
    dc = np.asarray(pvlib.pvsystem.pvwatts_dc(poa, module_temp, pv.dc_w, -0.0037), dtype=np.float64) * 0.95
    dc = np.clip(dc, 0, None)
    dc_rating = pv.ac_w / 0.96
    zeta = np.maximum(dc / dc_rating, 1e-9)
    efficiency = 0.96 / 0.9637 * (-0.0162 * zeta - 0.0059 / zeta + 0.9858)
    ac_unclipped = np.clip(efficiency * dc, 0, None)
    ac = np.minimum(ac_unclipped, pv.ac_w)
    daylight = poa > 5.0
    v_mp = np.where(daylight, pv.v_mp * (1 - 0.0035 * (module_temp - 25))
                    * (1 + 0.03 * np.log(np.maximum(poa, 5.0) / 1000)), 0)
    v_oc = np.where(daylight, 1.22 * pv.v_mp * (1 - 0.0029 * (module_temp - 25)), 0)
    out[f"pv_ac:{device}"] = ac
    out[f"pv_uncl:{device}"] = ac_unclipped
    out[f"pv_dc:{device}"] = dc
    out[f"pv_vmp:{device}"] = v_mp
    out[f"pv_voc:{device}"] = v_oc
    out[f"pv_poa:{device}"] = poa
    out[f"pv_tmod:{device}"] = module_temp


def faulted_power(pv: PvArray, device: str, comps: Mapping[str, np.ndarray], faults: ActiveFaults, n: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AC and DC power [W] with ``string_loss`` and ``inverter_trip`` applied, and the trip mask."""
    ac = comps[f"pv_ac:{device}"].copy()
    dc = comps[f"pv_dc:{device}"].copy()
    lost = np.zeros(n)
    for mask, params in occurrences(faults, device, "string_loss"):
        lost = np.where(mask, np.maximum(lost, 0) + pv.mppt_shares[params["mppt"] - 1], lost)
    if lost.any():
        keep = 1.0 - lost
        ac = np.minimum(ac, comps[f"pv_uncl:{device}"] * keep)
        dc = dc * keep
    trip = np.zeros(n, dtype=bool)
    for mask, _params in occurrences(faults, device, "inverter_trip"):
        trip |= mask
    ac = np.where(trip, 0.0, ac)
    dc = np.where(trip, 0.0, dc)
    return ac, dc, trip


def _mppt_channels(pv: PvArray, device: str, comps, t: np.ndarray, faults: ActiveFaults, trip: np.ndarray,
                   out: dict[str, np.ndarray]) -> None:
    """Per-MPPT and total DC current, voltage and power; a lost string or a trip shows open circuit."""
    n = len(t)
    v_mp, v_oc = comps[f"pv_vmp:{device}"], comps[f"pv_voc:{device}"]
    base_dc = comps[f"pv_dc:{device}"]
    lost = np.zeros((len(pv.mppt_shares), n), dtype=bool)
    for mask, params in occurrences(faults, device, "string_loss"):
        lost[params["mppt"] - 1] |= mask
    voltages, powers = [], []
    weights = [share * (1.0 + 0.01 * smooth_noise(pv.key + 100 + k, t, 1800.0))
               for k, share in enumerate(pv.mppt_shares)]
    norm = np.sum(weights, axis=0)
    for k in range(len(pv.mppt_shares)):
        v_k = v_mp * (1 + 0.005 * (k - 1.5) / 1.5)
        dead = lost[k] | trip
        p_k = np.where(dead, 0.0, base_dc * weights[k] / norm)
        v_k = np.where(dead, v_oc, v_k)
        i_k = np.where(v_k > 0, p_k / np.where(v_k > 0, v_k, 1.0), 0.0)
        out[f"mppt{k + 1}_dc_power"], out[f"mppt{k + 1}_dc_voltage"], out[f"mppt{k + 1}_dc_current"] = p_k, v_k, i_k
        voltages.append(v_k)
        powers.append(p_k)
    dc_power = np.sum(powers, axis=0)
    dc_voltage = np.mean(voltages, axis=0)
    out["dc_power"], out["dc_voltage"] = dc_power, dc_voltage
    out["dc_current"] = np.where(dc_voltage > 0, dc_power / np.where(dc_voltage > 0, dc_voltage, 1.0), 0.0)


def _state_and_events(pv: PvArray, device: str, comps, ac: np.ndarray, trip: np.ndarray, faults: ActiveFaults,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
    """SunSpec state (2 sleeping, 4 MPPT, 5 throttled, 7 fault, 8 standby) and Evt1 bits."""
    poa = comps[f"pv_poa:{device}"]
    state = np.where(poa <= 5.0, 2.0, np.where(ac >= pv.ac_w * 0.999, 5.0, 4.0))
    state = np.where((poa > 5.0) & (ac <= 0), 8.0, state)
    events = np.zeros(n)
    for mask, params in occurrences(faults, device, "inverter_trip"):
        events = np.where(mask, float(1 << SUNSPEC_EVENTS.index(params["event"])), events)
    return np.where(trip, 7.0, state), events


def inverter_channels(pv: PvArray, nominal_v: float, line_key: int, device: str, comps, t: np.ndarray,
                      faults: ActiveFaults) -> dict[str, np.ndarray]:
    """Channels of a PV inverter, plus the integrand ``_cp:energy_export``."""
    n = len(t)
    ac, _dc, trip = faulted_power(pv, device, comps, faults, n)
    out: dict[str, np.ndarray] = {}
    _mppt_channels(pv, device, comps, t, faults, trip, out)
    v = phase_voltages(nominal_v, device, comps, faults)
    line, _angles = line_voltages(v, t, line_key)
    for i in range(3):
        out[f"voltage_l{i + 1}"] = v[i]
        out[f"current_l{i + 1}"] = ac / 3.0 / v[i]
        out[f"active_power_l{i + 1}"] = ac / 3.0
    out["voltage_l12"], out["voltage_l23"], out["voltage_l31"] = line
    out["active_power"] = ac
    out["reactive_power"] = np.zeros(n)
    out["apparent_power"] = ac.copy()
    out["power_factor"] = np.ones(n)
    out["frequency"] = comps["freq"]
    ambient = comps["amb"]
    loading = ac / pv.ac_w
    out["temperature_heatsink"] = ambient + 3.0 + 28.0 * loading
    out["temperature_cabinet"] = ambient + 2.0 + 9.0 * loading
    out["irradiance_poa"] = comps[f"pv_poa:{device}"]
    out["temperature_module"] = comps[f"pv_tmod:{device}"]
    out["inverter_state"], out["inverter_events"] = _state_and_events(pv, device, comps, ac, trip, faults, n)
    out["_cp:energy_export"] = ac
    return out

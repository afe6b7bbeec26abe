"""The channel glossary: the one vocabulary of energyhost.

Every profile row, MQTT payload key, InfluxDB field, analytics argument and report
line names its quantity with a channel from :data:`CHANNELS`.  Units are fixed per
channel (SI, never in the name); counters are cumulative and never reset on purpose.

Sign rules, one per device kind (OpenEMS "nature" style):

* ``meter`` (grid / feeder meter): ``active_power`` > 0 = power imported from the
  grid (consumed by the site); < 0 = exported.  ``energy_import`` counts imported Wh,
  ``energy_export`` exported Wh, both increasing.
* ``transformer``: temperatures in °C; states are 0/1 (1 = on / active).
* ``pv_inverter``: ``active_power`` > 0 = AC production; ``energy_export`` = lifetime
  AC energy produced [Wh].
* ``ev_charger``: ``active_power`` > 0 = power drawn by the vehicle;
  ``energy_import`` = lifetime energy delivered to vehicles [Wh].
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEVICE_KINDS: tuple[str, ...] = ("meter", "transformer", "pv_inverter", "ev_charger", "weather_station")

#: Site-level measurements (not a device): tags ``customer, site``.  ``weather`` holds the site's
#: outdoor conditions (``outdoor_temperature``), from a weather station or feed (the simulators'
#: backfill writes it); the monthly report's baseline model reads its daily mean.
SITE_MEASUREMENTS: dict[str, tuple[str, ...]] = {"weather": ("outdoor_temperature",)}

SIGN_RULES: dict[str, str] = {
    "meter": "active/reactive power > 0 = import from the grid (consumption); < 0 = export",
    "transformer": "temperatures in degC; states 0/1 with 1 = on/active",
    "pv_inverter": "active power > 0 = AC production",
    "ev_charger": "active power > 0 = power delivered to the vehicle",
    "weather_station": "temperatures in degC, irradiance in W/m2 (never negative), wind in m/s",
}


@dataclass(frozen=True)
class Channel:
    """One quantity: canonical name, unit, description and nature.

    ``nature`` is ``gauge`` (instantaneous), ``counter`` (cumulative, non-decreasing
    except at meter reset/replacement) or ``state`` (an enumerated or 0/1 code).
    """

    name: str
    unit: str
    description: str
    nature: str = "gauge"


def _phases(stem: str, unit: str, text: str, nature: str = "gauge") -> list[Channel]:
    return [Channel(f"{stem}_l{p}", unit, f"{text}, phase L{p}", nature) for p in (1, 2, 3)]


_LIST: list[Channel] = [
    # --- voltages and currents
    *_phases("voltage", "V", "phase-to-neutral voltage (RMS)"),
    Channel("voltage_l12", "V", "line-to-line voltage L1-L2 (RMS)"),
    Channel("voltage_l23", "V", "line-to-line voltage L2-L3 (RMS)"),
    Channel("voltage_l31", "V", "line-to-line voltage L3-L1 (RMS)"),
    *_phases("current", "A", "phase current (RMS)"),
    Channel("current_n", "A", "neutral current (RMS)"),
    Channel("voltage_angle_l2", "deg", "phase angle of U2 relative to U1"),
    Channel("voltage_angle_l3", "deg", "phase angle of U3 relative to U1"),
    # --- power
    *_phases("active_power", "W", "active power"),
    Channel("active_power", "W", "total active power (sign rule of the device kind)"),
    *_phases("reactive_power", "var", "reactive power"),
    Channel("reactive_power", "var", "total reactive power (+ = inductive / lagging)"),
    *_phases("apparent_power", "VA", "apparent power"),
    Channel("apparent_power", "VA", "total apparent power"),
    *_phases("power_factor", "1", "power factor (signed, IEC convention)"),
    Channel("power_factor", "1", "total power factor (signed, IEC convention)"),
    Channel("frequency", "Hz", "supply frequency"),
    # --- energy counters
    Channel("energy_import", "Wh", "cumulative active energy imported / consumed / delivered", "counter"),
    Channel("energy_export", "Wh", "cumulative active energy exported / produced", "counter"),
    Channel("reactive_energy_import", "varh", "cumulative reactive energy, inductive (Q1+Q2)", "counter"),
    Channel("reactive_energy_export", "varh", "cumulative reactive energy, capacitive (Q3+Q4)", "counter"),
    # the meter's own time-of-use registers (DL/T 645 forward active energy, tariffs T1..T4 = the meter's
    # tariff table, in China usually 尖 critical / 峰 peak / 平 flat / 谷 valley)
    *[Channel(f"energy_import_t{k}", "Wh", f"cumulative active energy imported in the meter's tariff T{k}",
              "counter") for k in (1, 2, 3, 4)],
    # --- harmonics
    *_phases("thd_voltage", "%", "total harmonic distortion of voltage"),
    *_phases("thd_current", "%", "total harmonic distortion of current"),
    # --- demand
    Channel("demand_active_power", "W", "present demand (sliding-window average, usually 15 min)"),
    Channel("demand_active_power_max", "W", "maximum demand of the current billing period"),
    Channel("demand_active_power_max_time", "s", "when the maximum demand occurred (unix time; 0 = none yet)"),
    Channel("meter_clock_offset", "s", "meter clock minus collector clock (drift; + = meter ahead)"),
    Channel("device_clock_offset", "s", "a message's own timestamp minus its arrival at the collector (MQTT; "
            "stored when ≥ 90 s off; + = device ahead)"),
    # --- transformer temperature controller
    *_phases("winding_temperature", "degC", "winding temperature"),
    Channel("fan_running", "1", "cooling fan running (1) or stopped (0)", "state"),
    Channel("temperature_alarm", "1", "over-temperature alarm contact active (1)", "state"),
    Channel("temperature_trip", "1", "over-temperature trip contact active (1)", "state"),
    # --- PV inverter
    Channel("dc_voltage", "V", "DC input voltage"),
    Channel("dc_current", "A", "DC input current"),
    Channel("dc_power", "W", "DC input power"),
    Channel("temperature_cabinet", "degC", "inverter cabinet temperature"),
    Channel("temperature_heatsink", "degC", "inverter heat-sink temperature"),
    Channel("inverter_state", "1", "SunSpec operating state (1 off ... 4 MPPT ... 7 fault)", "state"),
    Channel("inverter_events", "1", "SunSpec event bit field (Evt1)", "state"),
    Channel("irradiance_poa", "W/m2", "plane-of-array irradiance"),
    Channel("temperature_module", "degC", "PV module back-surface temperature"),
    # --- EV charger
    Channel("charger_state", "1", "IEC 61851-1 control pilot state: 1=A 2=B 3=C 4=D 5=E 6=F", "state"),
    Channel("ocpp_status", "1",
            "OCPP 1.6 status: 0 Available 1 Preparing 2 Charging 3 SuspendedEVSE 4 SuspendedEV "
            "5 Finishing 6 Reserved 7 Unavailable 8 Faulted", "state"),
    Channel("session_energy", "Wh", "energy delivered in the current session", "counter"),
    Channel("state_of_charge", "%", "vehicle battery state of charge (OCPP SoC)"),
    Channel("session_duration", "s", "charging session: plug-in (start) to stop"),
    Channel("session_idle_time", "s", "charging session: time still plugged in after the energy stopped rising"),
    Channel("fault_code", "1", "vendor fault code, 0 = no fault", "state"),
    Channel("max_current_offered", "A", "current limit offered to the vehicle (PWM duty)"),
    # --- weather station (a device of kind weather_station; the report's outdoor temperature, docs/reports.md)
    Channel("ambient_temperature", "degC", "ambient air temperature measured by a device at the site"),
    Channel("irradiance_ghi", "W/m2", "global horizontal irradiance"),
    Channel("relative_humidity", "%", "relative humidity of the ambient air"),
    Channel("wind_speed", "m/s", "wind speed"),
    # --- site weather (measurement "weather", see SITE_MEASUREMENTS)
    Channel("outdoor_temperature", "degC", "outdoor dry-bulb air temperature at the site"),
    # --- device health
    Channel("online", "1", "device reachable (1) or not (0), written by the collector", "state"),
]

# MPPT / string inputs (SunSpec model 160 repeating blocks): mppt1..mppt8
for _n in range(1, 9):
    _LIST += [
        Channel(f"mppt{_n}_dc_current", "A", f"DC current of MPPT input {_n}"),
        Channel(f"mppt{_n}_dc_voltage", "V", f"DC voltage of MPPT input {_n}"),
        Channel(f"mppt{_n}_dc_power", "W", f"DC power of MPPT input {_n}"),
    ]

CHANNELS: dict[str, Channel] = {c.name: c for c in _LIST}

OCPP_STATUS = ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV",
               "Finishing", "Reserved", "Unavailable", "Faulted")
IEC61851_STATES = ("A", "B", "C", "D", "E", "F")


def channel(name: str) -> Channel:
    """Return the :class:`Channel` called ``name``; ``KeyError`` names the glossary if unknown."""
    try:
        return CHANNELS[name]
    except KeyError:
        raise KeyError(f"unknown channel {name!r}: channels are listed in core/channels.py") from None


#: units that instrument transformers scale: voltage by the VT (PT) ratio, current by the CT ratio,
#: power and energy by both
_RATIO_BY_UNIT = {"V": "pt", "A": "ct", "W": "both", "var": "both", "VA": "both", "Wh": "both", "varh": "both"}


def primary_factor(name: str, ct_ratio: float = 1.0, pt_ratio: float = 1.0) -> float:
    """Factor from a meter's secondary-side value of channel ``name`` to the primary side.

    A meter wired through current transformers (CT, e.g. 200/5 A: ratio 40) and, on a 10 kV
    feeder, voltage transformers (PT/VT, 10 kV/100 V: ratio 100) measures secondary
    quantities; unless it is set up to apply the ratios itself, the collector multiplies
    voltages by the PT ratio, currents by the CT ratio, and powers and energies by both
    (P_primary = P_secondary × CT × PT).  Power factor, frequency, THD and states are
    ratio-free.  Only AC meter channels are meant; DC channels are the caller's to exclude.
    """
    which = _RATIO_BY_UNIT.get(channel(name).unit)
    if which == "pt":
        return pt_ratio
    if which == "ct":
        return ct_ratio
    if which == "both":
        return ct_ratio * pt_ratio
    return 1.0


def primary_factors(names: Iterable[str], ct_ratio: float = 1.0, pt_ratio: float = 1.0) -> dict[str, float]:
    """:func:`primary_factor` of each channel in ``names`` whose factor is not 1; ``{}`` without ratios
    (then ``names`` is not looked at, so templated SunSpec names such as ``mppt{n}_...`` pass)."""
    if ct_ratio == 1.0 and pt_ratio == 1.0:
        return {}
    return {n: f for n in names if (f := primary_factor(n, ct_ratio, pt_ratio)) != 1.0}

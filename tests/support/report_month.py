"""A synthetic, deterministic month of one customer's site, written to a real influxd.

Shared by the report, report-API and web tests (no test functions of its own).
February 2026 in Asia/Shanghai (28 days, 40 320 one-minute samples per device):

* load: 180 kW base + 320 kW on weekday working hours (08-18), a 250 kW spike on
  day 17 10:00-10:20 (sets the maximum demand), reactive power 0.62 x load (PF ~ 0.85);
* PV: 300 kW half-sine 06-18 scaled by a daily cloud factor (exports on weekends);
* EV charger: 7 kW 01:00-03:00 daily (valley) and 18:00-21:00 on weekdays (peak);
* meter: load + EV - PV; voltages 230 V, +20 V on day 10 11:00-14:00 (outside GB/T 12325);
* data gap: the meter is silent on day 5 00:00-06:00 (360 samples);
* import register (``energy_import``): counts every minute's import; the meter is replaced on
  day 20 (register restarts from 0).
"""

from __future__ import annotations

import numpy as np

from core.config import parse_fleet
from core.units import NS
from workflow import month_bounds_ns

MONTH = "2026-02"
TZ = "Asia/Shanghai"
CUSTOMER, SITE = "acme", "acme-site"
METER, PV, EV = "acme-site-m1", "acme-site-pv1", "acme-site-ev1"
OTHER_CUSTOMER, OTHER_SITE, OTHER_METER = "beta", "beta-site", "beta-site-m1"
MIN = 60 * NS

FLEET_RAW = {
    "customer": [
        {"id": CUSTOMER, "name": "ACME 精密机械", "manager": "li.wei", "email": "energy@acme.example",
         "site": [{
             "id": SITE, "name": "ACME 一厂", "timezone": TZ, "tariff": "jiangsu_large_industry",
             "tariff_example_ok": True,
             "voltage_level_kv": 10, "nominal_voltage_v": 230, "pv_capacity_kwp": 400,
             "contract_demand_kw": 600, "pf_standard": 0.90,
             "transformer": [{"id": "acme-site-t1", "rated_kva": 1000, "p0_kw": 1.415, "pk_kw": 8.13,
                              "meter": METER}],
             "device": [
                 {"id": METER, "kind": "meter", "transport": "mqtt", "poll_interval_s": 60},
                 {"id": PV, "kind": "pv_inverter", "transport": "mqtt", "poll_interval_s": 60},
                 {"id": EV, "kind": "ev_charger", "transport": "mqtt", "poll_interval_s": 60},
             ]}]},
        {"id": OTHER_CUSTOMER, "name": "Beta Logistics", "email": "ops@beta.example",
         "site": [{"id": OTHER_SITE, "name": "Beta depot", "timezone": TZ, "tariff": "jiangsu_large_industry",
                   "tariff_example_ok": True,
                   "device": [{"id": OTHER_METER, "kind": "meter", "transport": "mqtt",
                               "poll_interval_s": 60}]}]},
    ]
}


def fleet():
    return parse_fleet(FLEET_RAW, "<test fleet>")


def synthetic_month() -> dict:
    """The month's arrays: ``time_ns`` grid and per-device channel arrays, with ``present`` masks."""
    start, end = month_bounds_ns(MONTH, TZ)
    t = np.arange(start, end, MIN, dtype=np.int64)
    local_min = (t - start) // MIN                       # month starts at local midnight
    day = local_min // 1440                              # 0-based day of month
    md = local_min % 1440                                # minute of day
    weekday = (day + 6) % 7                              # 2026-02-01 is a Sunday -> 6
    rng = np.random.default_rng(20260201)
    hour = md / 60.0
    work = (weekday < 5) & (hour >= 8) & (hour < 18)
    load = 180.0 + 320.0 * work + 15.0 * np.sin(2 * np.pi * md / 97.0)
    spike = (day == 16) & (md >= 600) & (md < 620)
    load = load + 250.0 * spike
    cloud = rng.uniform(0.4, 1.0, 28)[day]
    pv = np.where((hour >= 6) & (hour < 18), 300.0 * np.sin(np.pi * (hour - 6) / 12.0), 0.0) * cloud
    ev = np.where((md >= 60) & (md < 180), 7.0, 0.0) + np.where((weekday < 5) & (md >= 1080) & (md < 1260), 7.0, 0.0)
    p_meter = load + ev - pv
    q_meter = 0.62 * load
    u = 230.0 + 2.0 * np.sin(2 * np.pi * md / 1440.0) + 20.0 * ((day == 9) & (md >= 660) & (md < 840))
    meter_present = ~((day == 4) & (md < 360))
    # import register [Wh]: +1 min of import per sample; the meter is replaced on day 20 (register from 0)
    wh = np.clip(p_meter, 0, None) * 1000.0 / 60.0
    swap = day >= 19
    register = np.where(swap, np.cumsum(np.where(swap, wh, 0.0)), 5.0e6 + np.cumsum(np.where(swap, 0.0, wh)))
    meter = {
        "active_power": p_meter * 1000.0, "reactive_power": q_meter * 1000.0,
        "voltage_l1": u, "voltage_l2": u * 1.002, "voltage_l3": u * 0.998,
        "voltage_l12": u * np.sqrt(3), "voltage_l23": u * np.sqrt(3) * 1.001, "voltage_l31": u * np.sqrt(3) * 0.999,
        "frequency": 50.0 + 0.01 * np.sin(2 * np.pi * md / 300.0),
        "thd_voltage_l1": np.full(t.size, 2.5), "thd_voltage_l2": np.full(t.size, 2.6),
        "thd_voltage_l3": np.full(t.size, 2.4),
        "energy_import": register,
    }
    return {"time_ns": t, "start_ns": start, "end_ns": end,
            METER: (meter, meter_present), PV: ({"active_power": pv * 1000.0}, np.ones(t.size, bool)),
            EV: ({"active_power": ev * 1000.0}, np.ones(t.size, bool))}


_KIND = {METER: "meter", PV: "pv_inverter", EV: "ev_charger", OTHER_METER: "meter"}


def _lines(device: str, site: str, customer: str, t: np.ndarray, fields: dict[str, np.ndarray]) -> list[str]:
    names = list(fields)
    cols = [np.char.mod("%.6f", fields[n]) for n in names]
    prefix = f"{_KIND[device]},customer={customer},device={device},site={site} "
    return [prefix + ",".join(f"{n}={c[i]}" for n, c in zip(names, cols, strict=True)) + f" {t[i]}"
            for i in range(t.size)]


def write_month(client, data: dict) -> None:
    """Write the synthetic month (and a few points of the other customer) through core.influx."""
    t = data["time_ns"]
    for dev in (METER, PV, EV):
        fields, present = data[dev]
        lines = _lines(dev, SITE, CUSTOMER, t[present], {k: v[present] for k, v in fields.items()})
        for i in range(0, len(lines), 20000):
            client.write_lines("\n".join(lines[i:i + 20000]))
    other_t = t[:: 24 * 60][:5]
    client.write_lines("\n".join(_lines(OTHER_METER, OTHER_SITE, OTHER_CUSTOMER, other_t,
                                        {"active_power": np.full(other_t.size, 12345.0),
                                         "voltage_l1": np.full(other_t.size, 231.0)})))


def grid_arrays(data: dict) -> dict[str, np.ndarray]:
    """What the report must see on its 1-min grid: NaN where a device sent nothing."""
    meter, present = data[METER]
    nan = np.where(present, 1.0, np.nan)
    return {"time_ns": data["time_ns"], "p_w": meter["active_power"] * nan, "q_var": meter["reactive_power"] * nan,
            "pv_w": data[PV][0]["active_power"], "ev_w": data[EV][0]["active_power"]}


FEB10 = 1_770_652_800 * NS           # 2026-02-09T16:00:00Z = 2026-02-10 00:00 Asia/Shanghai
MAR2 = 1_772_409_600 * NS            # 2026-03-02 08:00 Asia/Shanghai (report due)

"""The test fleet of the signal-model tests (one site with every device kind) and its fault schedule."""

from __future__ import annotations

import pandas as pd

FLEET_RAW = {
    "customer": [{
        "id": "c1",
        "site": [{
            "id": "s1", "timezone": "Asia/Shanghai", "pv_capacity_kwp": 300, "latitude": 31.3, "longitude": 120.6,
            "contract_demand_kw": 800,
            "transformer": [{"id": "s1-t1", "rated_kva": 1000, "p0_kw": 1.415, "pk_kw": 8.13,
                             "meter": "s1-main", "temperature_controller": "s1-temp"}],
            "device": [
                {"id": "s1-main", "kind": "meter", "transport": "mqtt"},
                {"id": "s1-feeder", "kind": "meter", "transport": "mqtt"},
                {"id": "s1-temp", "kind": "transformer", "transport": "mqtt"},
                {"id": "s1-pv1", "kind": "pv_inverter", "transport": "mqtt", "rated_power_kw": 110},
                {"id": "s1-pv2", "kind": "pv_inverter", "transport": "mqtt", "rated_power_kw": 150},
                {"id": "s1-ev1", "kind": "ev_charger", "transport": "mqtt", "rated_power_kw": 7},
                {"id": "s1-ev2", "kind": "ev_charger", "transport": "mqtt", "rated_power_kw": 22},
            ],
        }],
    }],
}
TZ = "Asia/Shanghai"
MON = pd.Timestamp("2026-01-12", tz=TZ).timestamp()        # Monday 2026-01-12 00:00 local
DAY = 86400.0
H = 3600.0


def local(day: int, hour: float) -> float:
    return MON + day * DAY + hour * H


# ----------------------------------------------------------------------------------------- faults
# Faulted instance: each fault on its own window of Tuesday 2026-01-13 (day 1) or Wednesday (day 2).
SCHEDULE = [
    ("s1-pv1", "inverter_trip", local(1, 10), local(1, 11), {}),
    ("s1-pv2", "string_loss", local(1, 11), local(1, 12), {"mppt": 2}),
    ("s1-temp", "transformer_overtemp", local(1, 13), local(1, 16), {}),
    ("s1-main", "low_power_factor", local(1, 14), local(1, 15), {"pf": 0.75}),
    ("s1-feeder", "harmonic_distortion", local(1, 15), local(1, 16), {}),
    ("s1-feeder", "phase_unbalance", local(1, 16), local(1, 17), {"ratio": 0.4}),
    ("s1-feeder", "voltage_sag", local(1, 9), local(1, 9.1), {"depth": 0.3}),
    ("s1-feeder", "device_silent", local(2, 9), local(2, 10), {}),
    ("s1-pv1", "device_exceptions", local(2, 11), local(2, 12), {"code": 2}),
    ("s1-feeder", "meter_reset", local(2, 14), local(2, 14.01), {}),
]



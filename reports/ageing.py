"""Transformer ageing of one site over a period: life consumed per transformer (monthly report, customer page).

Winding temperatures of the temperature controllers are read as 1-min means; transformers
without a controller use their meter's apparent power (from the month already fetched for the
report, :class:`reports.fetch.SiteArrays`, or read here) and the site's outdoor temperature.
The arithmetic is :mod:`analytics.transformer_ageing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from analytics.transformer_ageing import WINDINGS, ageing_series, transformer_ageing
from core.config import Site
from reports.fetch import SiteArrays, _means, fetch_weather
from reports.model import TransformerMonth


def _site_data(influx: Any, site: Site, a: int, b: int,
               series: Mapping[str, Mapping[str, np.ndarray]] | None) -> dict[str, dict[str, np.ndarray]]:
    data: dict[str, dict[str, np.ndarray]] = {k: dict(v) for k, v in (series or {}).items()}
    for tr in site.transformers:
        if tr.temperature_controller:
            cols = _means(influx, "transformer", tr.temperature_controller, site.id, list(WINDINGS), a, b)
            if cols["time"].size:
                data[tr.temperature_controller] = {"time_ns": cols["time"],
                                                   **{w: cols[w] for w in WINDINGS if w in cols}}
        elif tr.meter and tr.meter not in data:
            power = ["apparent_power", "active_power", "reactive_power", "power_factor"]
            cols = _means(influx, "meter", tr.meter, site.id, power, a, b)
            if cols["time"].size:
                data[tr.meter] = {"time_ns": cols["time"], **{c: cols[c] for c in power if c in cols}}
    return data


def site_ageing(influx: Any, site: Site, start_ns: int, end_ns: int,
                series: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> list[TransformerMonth]:
    """Life consumed in ``[start_ns, end_ns)`` by each transformer of ``site`` that has data."""
    data = _site_data(influx, site, start_ns, end_ns, series)
    ambient = None
    if any(not t.temperature_controller for t in site.transformers):
        t_amb, v_amb = fetch_weather(influx, site, start_ns, end_ns)
        ambient = (t_amb, v_amb) if t_amb.size else None
    _, life = transformer_ageing(site, data, start_ns, end_ns, ambient=ambient)
    out = []
    for tr in site.transformers:
        lol = life.get(tr.id)
        if lol is None or lol.covered_days <= 0:
            continue
        s = ageing_series(site, tr, data, ambient=ambient)
        inside = (s.time_ns >= start_ns) & (s.time_ns < end_ns) & np.isfinite(s.hot_spot_c)
        peak = float(np.max(s.hot_spot_c[inside])) if inside.any() else None
        out.append(TransformerMonth(
            transformer=tr.id, basis=s.basis, insulation=tr.insulation, covered_days=round(lol.covered_days, 4),
            days_consumed=round(lol.days_consumed, 4),
            mean_rate=round(lol.mean_rate, 4) if np.isfinite(lol.mean_rate) else None,
            peak_hot_spot_c=None if peak is None else round(peak, 1), design_life_days=tr.design_life_days,
            share_of_life_pct=round(100.0 * lol.days_consumed / tr.design_life_days, 5)))
    return out


def ageing_month(influx: Any, arrays: SiteArrays) -> list[TransformerMonth]:
    """The report's figures: :func:`site_ageing` over the fetched month, reusing its meter series."""
    return site_ageing(influx, arrays.site, arrays.start_ns, arrays.end_ns, arrays.series)

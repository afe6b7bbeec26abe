"""The transformer-ageing figures of the monthly report: life consumed per transformer in the month.

Winding temperatures of the temperature controllers are read as 1-min means; transformers
without a controller use their meter's apparent power already fetched for the month
(:class:`reports.fetch.SiteArrays`) and the site's outdoor temperature.  The arithmetic is
:mod:`analytics.transformer_ageing`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analytics.transformer_ageing import WINDINGS, ageing_series, transformer_ageing
from reports.fetch import SiteArrays, _means, fetch_weather
from reports.model import TransformerMonth


def ageing_month(influx: Any, arrays: SiteArrays) -> list[TransformerMonth]:
    """Life consumed in ``[arrays.start_ns, arrays.end_ns)`` by each transformer of the site that has data."""
    site, a, b = arrays.site, arrays.start_ns, arrays.end_ns
    data: dict[str, dict[str, np.ndarray]] = dict(arrays.series)
    for tr in site.transformers:
        if tr.temperature_controller:
            cols = _means(influx, "transformer", tr.temperature_controller, site.id, list(WINDINGS), a, b)
            if cols["time"].size:
                data[tr.temperature_controller] = {"time_ns": cols["time"],
                                                   **{w: cols[w] for w in WINDINGS if w in cols}}
    ambient = fetch_weather(influx, site, a, b) if any(not t.temperature_controller for t in site.transformers) \
        else None
    _, life = transformer_ageing(site, data, a, b, ambient=ambient if ambient and len(ambient[0]) else None)
    out = []
    for tr in site.transformers:
        lol = life.get(tr.id)
        if lol is None or lol.covered_days <= 0:
            continue
        s = ageing_series(site, tr, data)
        inside = (s.time_ns >= a) & (s.time_ns < b) & np.isfinite(s.hot_spot_c)
        peak = float(np.max(s.hot_spot_c[inside])) if inside.any() else None
        out.append(TransformerMonth(
            transformer=tr.id, basis=s.basis, insulation=tr.insulation, covered_days=round(lol.covered_days, 4),
            days_consumed=round(lol.days_consumed, 4),
            mean_rate=round(lol.mean_rate, 4) if np.isfinite(lol.mean_rate) else None,
            peak_hot_spot_c=None if peak is None else round(peak, 1), design_life_days=tr.design_life_days,
            share_of_life_pct=round(100.0 * lol.days_consumed / tr.design_life_days, 5)))
    return out

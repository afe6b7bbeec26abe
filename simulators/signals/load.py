"""The site's commercial/industrial load and its power factor."""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np

from core import workdays
from core.config import Site

from .clock import GRID_S, day_types
from .noise import smooth_noise, uniform01
from .weather import seasonal_temperature

BALANCE_C = 18.0                   # balance point of the load's heating / cooling part [°C]
COOLING_PER_K = 0.0115             # load increase per K of outdoor temperature above BALANCE_C [1/K]
HEATING_PER_K = 0.0037             # load increase per K below BALANCE_C [1/K]
DAY_FACTOR = {workdays.WORKING: 1.0, workdays.SATURDAY: 0.45, workdays.REST: 0.20}   # day-time swing by day type
_SHAPE_HOURS = [0, 6, 7, 8, 9, 11.5, 12, 13, 13.5, 17, 18, 19, 21, 22, 23, 24]
_SHAPE_VALUES = [0, 0, 0.15, 0.75, 1.0, 1.0, 0.72, 0.72, 0.98, 0.95, 0.6, 0.4, 0.3, 0.1, 0, 0]


class SiteLoad:
    """Size and character of a site's load, drawn once from the site's seed."""

    def __init__(self, site: Site, draw: random.Random):
        kva = sum(t.rated_kva for t in site.transformers)
        if kva:
            peak = 0.55 * kva
            if site.contract_demand_kw:
                peak = min(peak, 0.85 * site.contract_demand_kw)
        elif site.contract_demand_kw:
            peak = 0.8 * site.contract_demand_kw
        elif site.pv_capacity_kwp:
            peak = 1.2 * site.pv_capacity_kwp
        else:
            peak = 300.0
        self.latitude = site.latitude
        self.peak_w = peak * 1000.0 * draw.uniform(0.92, 1.08)
        self.base_fraction = draw.uniform(0.22, 0.32)
        self.pf_mid = draw.uniform(0.945, 0.955)
        self.transformer_va = (kva or peak / 0.55) * 1000.0

    def power(self, keys: Mapping[str, int], t: np.ndarray, hour: np.ndarray, day_of_year: np.ndarray,
              day: np.ndarray) -> np.ndarray:
        """Active power of the load [W]: daily shape by day type, air conditioning, noise."""
        shape = np.interp(hour, _SHAPE_HOURS, _SHAPE_VALUES)
        kind = day_types(day)
        day_factor = np.where(kind == workdays.REST, DAY_FACTOR[workdays.REST],
                              np.where(kind == workdays.SATURDAY, DAY_FACTOR[workdays.SATURDAY], 1.0))
        day_factor = day_factor * (1.0 + 0.08 * (2 * uniform01(keys["day"], day) - 1))
        # air conditioning follows the weather: +1.15 %/K above and +0.37 %/K below 18 °C of the slow
        # outdoor temperature (≈ +12 % on a 28.5 °C July day, +5 % on a 4.5 °C January day)
        temp = seasonal_temperature(self.latitude, keys, t, day_of_year)
        season = (1.0 + COOLING_PER_K * np.maximum(0.0, temp - BALANCE_C)
                  + HEATING_PER_K * np.maximum(0.0, BALANCE_C - temp))
        fraction = self.base_fraction + (1 - self.base_fraction) * shape * day_factor
        noise = (1.0 + 0.05 * smooth_noise(keys["l15"], t, 900.0)
                 + 0.015 * (2 * uniform01(keys["l1"], np.floor(t / GRID_S)) - 1))
        return self.peak_w * fraction * season * noise

    def power_factor(self, keys: Mapping[str, int], t: np.ndarray) -> np.ndarray:
        """Site power factor with its automatic capacitor bank: 0.93..0.97, slowly varying."""
        return np.clip(self.pf_mid + 0.012 * smooth_noise(keys["pf"], t, 5400.0), 0.93, 0.97)

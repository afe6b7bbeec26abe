"""Outdoor temperature and sky (clear-sky index) of a site."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .noise import smooth_noise, uniform01


def seasonal_temperature(latitude: float, keys: Mapping[str, int], t: np.ndarray, day_of_year: np.ndarray
                         ) -> np.ndarray:
    """The slow (day-to-day) part of the outdoor temperature [°C]: season + weather systems."""
    north = 1.0 if latitude >= 0 else -1.0
    return (16.5 + north * 12.0 * np.cos(2 * np.pi * (day_of_year - 200) / 365.0)
            + 2.5 * smooth_noise(keys["ambd"], t, 86400.0) + 1.5 * smooth_noise(keys["ambd"] + 1, t, 5 * 86400.0))


def outdoor_temperature(latitude: float, keys: Mapping[str, int], t: np.ndarray, hour: np.ndarray,
                        day_of_year: np.ndarray) -> np.ndarray:
    """Outdoor temperature [°C]: the seasonal part, the daily swing (warmest 14:30) and hourly noise."""
    return (seasonal_temperature(latitude, keys, t, day_of_year) + 4.0 * np.cos(2 * np.pi * (hour - 14.5) / 24.0)
            + 0.5 * smooth_noise(keys["amb"], t, 3600.0))


def clear_sky_index(keys: Mapping[str, int], t: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Clear-sky index [0..1] of the site: daily sky class (clear / broken / overcast) and cloud dips."""
    u = uniform01(keys["sky"], day)
    u2 = uniform01(keys["sky"] + 1, day)
    index_of_day = np.where(u < 0.4, 0.95 + 0.05 * u2, np.where(u < 0.75, 0.75 + 0.2 * u2, 0.2 + 0.25 * u2))
    cloudy = np.where(u < 0.4, 0.05, np.where(u < 0.75, 1.0, 0.3))
    dip = np.clip(smooth_noise(keys["dip1"], t, 420.0), 0, 1) * np.clip(
        smooth_noise(keys["dip2"], t, 2400.0) + 0.3, 0, 1)
    return np.clip(index_of_day * (1.0 - 0.75 * cloudy * dip), 0.05, 1.0)

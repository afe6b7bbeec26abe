"""A site's weather station: ambient temperature, humidity, wind, horizontal and plane-of-array irradiance.

The station reads the same weather the rest of the site model sees: ``ambient_temperature`` is the
site's outdoor temperature (:func:`.weather.outdoor_temperature`, what the load and the PV modules
see), ``irradiance_ghi`` the horizontal irradiance of :func:`.pv.solar`, ``irradiance_poa`` that sky
on a reference module tilted at the site's latitude facing the equator, ``temperature_module`` that
module's Faiman temperature.  Humidity follows from a dew point 6 K under the day's slow temperature;
wind is a light breeze that picks up in the afternoon.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pvlib

from .weather import seasonal_temperature

WIND_NIGHT_MS = 1.2                 # calm night breeze [m/s]
WIND_DAY_MS = 2.3                   # added at the warmest hour [m/s]
DEW_POINT_DEPRESSION_K = 6.0        # dew point below the day's slow temperature [K]
CHANNELS = ("ambient_temperature", "relative_humidity", "wind_speed", "irradiance_ghi", "irradiance_poa",
            "temperature_module")


def _magnus(t_c: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure factor (Magnus formula, Alduchov & Eskridge coefficients)."""
    return np.exp(17.625 * t_c / (243.04 + t_c))


def station_channels(latitude: float, keys: Mapping[str, int], t: np.ndarray, hour: np.ndarray,
                     day_of_year: np.ndarray, sun: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every channel of a weather station at instants ``t`` from the site's ``sun`` (:func:`.pv.solar`)."""
    ambient = np.asarray(sun["amb"], dtype=np.float64)
    dew = seasonal_temperature(latitude, keys, t, day_of_year) - DEW_POINT_DEPRESSION_K
    rh = np.clip(100.0 * _magnus(np.minimum(dew, ambient)) / _magnus(ambient), 5.0, 100.0)
    tilt, azimuth = abs(latitude), 180.0 if latitude >= 0 else 0.0
    irr = pvlib.irradiance.get_total_irradiance(tilt, azimuth, sun["zen"], sun["azi"], sun["dni"], sun["ghi"],
                                                sun["dhi"], albedo=0.2, model="isotropic")
    poa = np.clip(np.nan_to_num(np.asarray(irr["poa_global"], dtype=np.float64)), 0, None)
    wind = WIND_NIGHT_MS + WIND_DAY_MS * np.clip(np.cos(2 * np.pi * (hour - 15.0) / 24.0), 0, None)
    module = np.asarray(pvlib.temperature.faiman(poa, ambient, wind_speed=wind), dtype=np.float64)
    return {"ambient_temperature": ambient, "relative_humidity": rh, "wind_speed": wind,
            "irradiance_ghi": np.clip(np.asarray(sun["ghi"], dtype=np.float64), 0, None),
            "irradiance_poa": poa, "temperature_module": module}

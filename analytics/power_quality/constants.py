"""Constants shared by the power-quality modules."""

from __future__ import annotations

import numpy as np

A = np.exp(2j * np.pi / 3)
TEN_MIN_NS = 600 * 10**9
_EPS = 1e-9          # tolerance for inclusive limits on float percentages

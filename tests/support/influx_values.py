"""Float values at the edges of IEEE 754 doubles, for the line-protocol and client tests."""

from __future__ import annotations

EXTREME_FLOATS = [0.0, -0.0, 0.1, -230.25, 1e16, 1.5e-5, 5e-324, 2.2250738585072014e-308,
                  1.7976931348623157e308, -1.7976931348623157e308, 123456789.123456789, 1 / 3]

"""DL/T 645 test pieces shared by the codec and the collector tests: the shipped profiles, the
Shanghai zone and hex frames written with spaces.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from core.dlt645 import (
    load_dlt645_profiles,
)

PROFILES = load_dlt645_profiles()


PROFILE = PROFILES["meter_dlt645_2007"]


SH = ZoneInfo("Asia/Shanghai")


def hx(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))

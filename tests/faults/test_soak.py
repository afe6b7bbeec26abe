"""The 10-minute soak: ``energyhost collect`` with a fault every minute (bench/soak.py does the work).

Duration from ``EH_SOAK_SECONDS`` (default 600; the faults come every min(60 s, duration / 10)).
Marked ``slow``: ``scripts/test.sh`` runs it beside the rest (``-m slow``) and the rest with ``-m "not slow"``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from soak import FAULTS, run_soak  # noqa: E402

SECONDS = float(os.environ.get("EH_SOAK_SECONDS", "600"))

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(SECONDS + 420)
def test_soak_fault_every_minute_memory_fds_flat_accounting_exact(tmp_path):
    if SECONDS < 60:
        pytest.fail(f"EH_SOAK_SECONDS={SECONDS:g}: a soak needs at least 60 s (10 faults' worth)")
    res = run_soak(SECONDS, tmp_path)
    kinds = {f for _, f in res["faults"]}
    assert kinds == set(FAULTS), res["faults"]              # every fault kind was injected
    assert all(res["checks"].values()), res["checks"]
    assert res["mqtt"]["lost"] == 0 and res["mqtt"]["published"] > 0
    assert res["modbus_last_run"]["polls"] > 0
    print(f"SOAK {res['elapsed_s']} s, {len(res['faults'])} faults, {res['runs']} collector runs: "
          f"mqtt {res['mqtt']}, modbus last run {res['modbus_last_run']}, per run {res['per_run']}")

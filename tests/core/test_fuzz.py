"""Property tests: ``decode(encode(x)) == x`` over every register of every profile and
every wire type, and the atheris harness run for a bounded number of iterations.

What tests/core/test_profiles.py already covers (integer types and float32 on a synthetic row, the
decoder on random words per block) is not repeated; here the values are drawn per register of
the real profiles (with their scale, offset, word order, sentinel and SunSpec scale factors),
and the types not covered there (enum16, bitfield32, sunssf) get their own property.
"""

from __future__ import annotations

import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.profiles import TYPES, Register, encode, load_profiles, plan_blocks, precision, sunspec_layout

PROFILES = load_profiles()
ROOT = Path(__file__).resolve().parents[2]


def _registers(pid: str) -> tuple[tuple[Register, ...], list]:
    p = PROFILES[pid]
    chain = sunspec_layout(p)[0] if p.protocol == "sunspec" else None
    return p.resolve(chain), list(p.plan(chain))


def _raw_strategy(r: Register):
    """A raw register value of ``r``'s type that is not its sentinel."""
    t = TYPES[r.type]
    if r.type == "sunssf":
        return st.integers(-4, 4)               # SunSpec scale factors used in practice (valid: -10..10)
    if not t.integer:
        return st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-2.0**100, max_value=2.0**100)
    lo, hi = t.range()
    lo, hi = max(lo, -(2**53)), min(hi, 2**53)  # channel values are floats: exact up to 2**53
    sent = r.sentinel
    mask = (1 << 16 * t.words) - 1
    return st.integers(lo, hi).filter(lambda n: sent is None or n & mask != sent)


def _decode_all(blocks, words: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in blocks:
        out.update(b.decode([words.get((b.table, b.start + k), 0) for k in range(b.count)], helpers=True))
    return out


@pytest.mark.parametrize("pid", sorted(PROFILES))
def test_every_profile_register_round_trips(pid):
    regs, blocks = _registers(pid)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        raws = {r.key: data.draw(_raw_strategy(r), label=r.key) for r in regs}
        sfs = {r.key: raws[r.key] for r in regs if r.type == "sunssf"}
        values = {}
        for r in regs:
            if r.type == "sunssf":
                values[r.key] = float(raws[r.key])
            else:
                mult = r.scale * (10.0 ** sfs[r.scale_factor] if r.scale_factor else 1.0)
                values[r.key] = raws[r.key] * mult + r.offset
        decoded = _decode_all(blocks, encode(regs, values))
        for r in regs:
            if r.type == "sunssf":
                continue                          # scale-factor rows: they scale the others, checked through them
            assert r.key in decoded, f"{pid}: {r.key} lost"
            sf = sfs.get(r.scale_factor, 0) if r.scale_factor else 0
            tol = precision(r, sf) + 1e-6 * abs(values[r.key]) + 1e-9
            assert math.isclose(decoded[r.key], values[r.key], abs_tol=tol), (pid, r.key, values[r.key],
                                                                              decoded[r.key])

    check()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(TYPES)), st.sampled_from(["big", "little"]), st.data())
def test_every_wire_type_round_trips_and_sentinel_is_never_produced(type_, order, data):
    r = Register(key="active_power" if type_ != "sunssf" else "W_SF", is_channel=type_ != "sunssf",
                 address=0, table="holding", type=type_, word_order=order)
    raw = data.draw(_raw_strategy(r))
    v = float(raw)
    words = encode([r], {r.key: v})
    (b,) = plan_blocks([r])
    got = b.decode([words[("holding", k)] for k in range(r.words)], helpers=True)
    expect = struct.unpack(">f", struct.pack(">f", v))[0] if type_ == "float32" else v
    assert got[r.key] == expect
    # a missing value is served as the sentinel (if the type has one) and decodes to "left out"
    empty = encode([r], {})
    if r.sentinel is not None:
        assert r.key not in b.decode([empty[("holding", k)] for k in range(r.words)], helpers=True)
    else:
        assert empty == {}


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import atheris"], capture_output=True).returncode != 0,
    reason="atheris not installed (pip install atheris)")
@pytest.mark.parametrize("target", ["parse_payload", "decoder"])
def test_atheris_harness_bounded_run(target, tmp_path):
    runs = int(os.environ.get("EH_FUZZ_RUNS", "20000"))
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "fuzz_atheris.py"), target, f"-atheris_runs={runs}",
                        f"-artifact_prefix={tmp_path}/"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]            # no uncaught exception, no contract violation
    done = re.search(r"^Done (\d+) in (\d+) second", out, re.M)
    assert done, out[-2000:]
    print(f"atheris {target}: {done.group(1)} executions in {done.group(2)} s, no crash")
    assert int(done.group(1)) == runs


@pytest.mark.parametrize("ts,reason", [(1e308, "timestamp_future"), (-1e308, "timestamp_past"),
                                       (10**400, "timestamp_future"), (-(10**400), "timestamp_past")])
def test_parser_huge_timestamps_are_rejected_not_raised(ts, reason):
    """Regression found by the atheris harness: a finite float ts of 1e308 overflowed ts * 1000."""
    from collector.mqtt import parse_payload
    from core.config import load_fleet

    fleet = load_fleet(ROOT / "sites.example.toml")
    dev = next(d for d in fleet.devices.values() if d.transport == "mqtt")
    body = ('{"ts": %s, "values": {"active_power": 1.0}}' % (repr(ts) if isinstance(ts, float) else ts)).encode()
    points, rejects = parse_payload(f"eh/v1/{dev.site_id}/{dev.id}/telemetry", body, fleet, 1_750_000_000 * 10**9)
    assert points == [] and [r.reason for r in rejects] == [reason]

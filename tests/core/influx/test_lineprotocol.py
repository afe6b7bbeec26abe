"""core.influx.lineprotocol: escaping, the line format, NaN/Inf handling, the FloatFields fast path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.influx_values import EXTREME_FLOATS

from core.influx import (
    LineProtocolError,
    encode_points,
    escape_key,
    escape_measurement,
    escape_string,
    point_to_line,
    points_to_lines,
)
from core.model import Point

T0 = 1_700_000_000_000_000_000


@pytest.mark.parametrize(("text", "expected"), [
    ("meter", "meter"), ("a b", "a\\ b"), ("a,b", "a\\,b"), ("a=b", "a=b"),
])
def test_escape_measurement(text, expected):
    assert escape_measurement(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("site", "site"), ("a b", "a\\ b"), ("a,b", "a\\,b"), ("a=b", "a\\=b"), ('a"b', 'a"b'),
])
def test_escape_key(text, expected):
    assert escape_key(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("ok", '"ok"'), ('say "hi"', '"say \\"hi\\""'), ("back\\slash", '"back\\\\slash"'),
    ("two\nlines", '"two\nlines"'),
])
def test_escape_string(text, expected):
    assert escape_string(text) == expected


@pytest.mark.parametrize("bad", ["new\nline", "carriage\rreturn", "back\\slash", "trailing\\", ""])
def test_unrepresentable_tag_values_are_refused(bad):
    with pytest.raises(LineProtocolError, match="tag 'device' value|is empty"):
        point_to_line(Point("meter", {"device": bad}, {"v": 1.0}, T0))


def test_measurement_comment_refused():
    with pytest.raises(LineProtocolError, match="comment"):
        point_to_line(Point("#meter", {}, {"v": 1.0}, T0))


def test_line_format_table():
    p = Point("meter", {"site": "s 1", "device": "d,1", "customer": "c=1"},
              {"active_power": 1.0, "n": 3, "ok": True, "status": 'ti"me\\out', "big": 1e20,
               "np": np.float64(0.1), "npi": np.int32(-7)}, T0)
    assert point_to_line(p) == (
        'meter,customer=c\\=1,device=d\\,1,site=s\\ 1 active_power=1.0,n=3i,ok=true,'
        'status="ti\\"me\\\\out",big=1e+20,np=0.1,npi=-7i 1700000000000000000')


def test_nonfinite_dropped_and_counted():
    pts = [Point("m", {"d": "a"}, {"x": math.nan, "y": 2.0, "z": math.inf}, T0),
           Point("m", {"d": "b"}, {"x": -math.inf}, T0),
           Point("m", {"d": "c"}, {"x": [1]}, T0),
           Point("m", {"d": "d"}, {"x": 1.5}, True)]
    enc = encode_points(pts)
    assert enc.lines == [b"m,d=a y=2.0 1700000000000000000"]
    assert enc.nonfinite_dropped == 3
    reasons = [why for _, why in enc.rejected]
    assert "NaN/Inf" in reasons[0] and "unsupported field type list" in reasons[1] and "time_ns" in reasons[2]
    with pytest.raises(LineProtocolError, match="NaN/Inf"):
        points_to_lines(pts[:2])


# ---------------------------------------------------------------- FloatFields fast path


def _field_values(line: bytes) -> dict[str, float]:
    fields = line.rsplit(b" ", 2)[1]          # the tag part may hold escaped spaces
    return {k.decode(): float(v) for k, v in (kv.split(b"=") for kv in fields.split(b","))}


def test_float_fields_line_matches_the_general_encoder():
    from core.model import FloatFields
    fields = {f"ch_{i}": v for i, v in enumerate(EXTREME_FLOATS)}
    fast = encode_points([Point("meter", {"site": "a b", "device": "d,1"}, FloatFields(fields), T0)]).lines[0]
    slow = encode_points([Point("meter", {"site": "a b", "device": "d,1"}, dict(fields), T0)]).lines[0]
    assert fast.rsplit(b" ", 2)[0::2] == slow.rsplit(b" ", 2)[0::2]         # same series key and time
    assert fast.startswith(b"meter,device=d\\,1,site=a\\ b ")
    got = _field_values(fast)
    assert list(got) == list(fields)
    assert all(got[k] == v and math.copysign(1, got[k]) == math.copysign(1, v) for k, v in fields.items())


def test_float_fields_fall_back_when_keys_need_escaping_or_types_do_not_fit():
    from core.model import FloatFields
    # a key with a space cannot take the fast path; a numpy scalar neither: both still encode right
    enc = encode_points([Point("m", {"d": "x"}, FloatFields({"a b": 1.0}), T0),
                         Point("m", {"d": "x"}, FloatFields({"v": np.float64(2.5)}), T0),
                         Point("m", {"d": "x"}, FloatFields({"v": 1.0}), 1.5)])      # bad time: rejected
    assert enc.lines == [b"m,d=x a\\ b=1.0 %d" % T0, b"m,d=x v=2.5 %d" % T0]
    assert len(enc.rejected) == 1 and "time_ns" in enc.rejected[0][1]

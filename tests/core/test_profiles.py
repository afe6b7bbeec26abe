"""Profile engine: every profile file, decoder tables, encode→decode, SunSpec chain, error messages."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.channels import CHANNELS, primary_factor
from core.profiles import (
    PROFILES_DIR,
    TYPES,
    Block,
    ChainIncomplete,
    ProfileError,
    Register,
    check_example,
    encode,
    load_profile,
    load_profiles,
    parse_model_chain,
    plan_blocks,
    precision,
    resolve_sunspec,
    sunspec_layout,
)

PROFILES = load_profiles()


def test_profiles_dir_holds_every_device_kind():
    assert PROFILES_DIR.name == "profiles"
    assert {p.kind for p in PROFILES.values()} == {"meter", "transformer", "pv_inverter", "ev_charger",
                                                    "weather_station"}


def _absolute(p):
    return p.resolve(sunspec_layout(p)[0] if p.protocol == "sunspec" else None)


def _sample(r: Register, i: int) -> float:
    """A value inside the row's range, different per row."""
    t = TYPES[r.type]
    if not t.integer:
        return 100.0 + 7.25 * i
    lo, hi = t.range()
    raw = min(hi - 1, max(lo + 1, 1000 + 37 * i)) if lo >= 0 else -(500 + 11 * i)
    return raw * r.scale + r.offset


@pytest.mark.parametrize("pid", sorted(PROFILES))
def test_profile_sweep_loads_no_overlap_and_round_trips(pid):
    p = PROFILES[pid]
    regs = _absolute(p)
    assert all(r.key in CHANNELS for r in regs if r.is_channel)
    for table in ("holding", "input"):
        rows = sorted((r for r in regs if r.table == table), key=lambda r: r.address)
        for a, b in zip(rows, rows[1:], strict=False):
            assert b.address >= a.end, f"{pid}: {a.key} overlaps {b.key}"
    blocks = p.plan(sunspec_layout(p)[0] if p.protocol == "sunspec" else None)
    assert all(b.count <= 125 for b in blocks)
    assert sum(len(b.registers) for b in blocks) == len(regs)
    sfs = {r.key: int(r.default or 0) for r in regs if r.type == "sunssf"}
    values = {r.key: _sample(r, i) * (10.0 ** sfs.get(r.scale_factor, 0) if r.scale_factor else 1)
              for i, r in enumerate(regs) if r.is_channel}
    words = encode(regs, values)
    decoded = {}
    for b in blocks:
        decoded.update(b.decode([words.get((b.table, b.start + k), 0) for k in range(b.count)]))
    assert set(decoded) == set(values)
    for r in regs:
        if r.is_channel:
            tol = precision(r, sfs.get(r.scale_factor, 0)) + 1e-6 * abs(values[r.key])
            assert math.isclose(decoded[r.key], values[r.key], abs_tol=tol), r.key


@pytest.mark.parametrize("pid", sorted(PROFILES))
def test_profile_examples(pid):
    p = PROFILES[pid]
    for ex in p.examples:
        got = check_example(p, ex)
        if ex.value is None:
            assert got is None, f"{pid} example {ex.key}: expected left out, got {got}"
        else:
            assert got == pytest.approx(ex.value, rel=1e-6), f"{pid} example {ex.key}"


def _reg(type_, address=0, **kw) -> Register:
    return Register(key=kw.pop("key", "active_power"), is_channel=True, address=address, table="holding",
                    type=type_, **kw)


DECODE_TABLE = [
    # type, word order, words, scale, sentinel, expected (None = left out)
    ("int16", "big", [0xFFFF], 1.0, None, -1.0),
    ("int16", "big", [0x7FFF], 0.1, None, 3276.7),
    ("uint16", "big", [0xFFFF], 1.0, None, 65535.0),
    ("uint16", "big", [0xFFFF], 1.0, 0xFFFF, None),
    ("int32", "big", [0xFFFF, 0xFB2E], 1.0, None, -1234.0),
    ("int32", "little", [0xFB2E, 0xFFFF], 1.0, None, -1234.0),
    ("uint32", "big", [0x0001, 0x0000], 1.0, None, 65536.0),
    ("uint32", "little", [0x0000, 0x0001], 1.0, None, 65536.0),
    ("uint32", "big", [0xFFFF, 0xFFFF], 1.0, 0xFFFFFFFF, None),
    ("float32", "big", [0x42F6, 0xCCCD], 1.0, None, 123.4),
    ("float32", "little", [0xCCCD, 0x42F6], 1000.0, None, 123400.0),
    ("float32", "big", [0x7FC0, 0x0000], 1.0, None, None),          # NaN left out
    ("float32", "big", [0x7F80, 0x0000], 1.0, None, None),          # +Inf left out
    ("int64", "big", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], 1.0, None, -2.0),
    ("int64", "little", [0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF], 1.0, None, -2.0),
    ("int64", "big", [0x8000, 0, 0, 0], 1.0, 0x8000000000000000, None),
    ("uint64", "big", [0x0000, 0x0002, 0xDFDC, 0x1C35], 1.0, None, 12345678901.0),
    ("uint64", "little", [0x1C35, 0xDFDC, 0x0002, 0x0000], 1.0, None, 12345678901.0),
    ("enum16", "big", [4], 1.0, None, 4.0),
    ("enum16", "big", [0xFFFF], 1.0, None, None),                   # implied SunSpec sentinel
    ("bitfield32", "big", [0x0000, 0x0041], 1.0, None, 65.0),
    ("bitfield32", "big", [0xFFFF, 0xFFFF], 1.0, None, None),
    ("acc32", "big", [0x0010, 0x0000], 1.0, None, 1048576.0),
]


@pytest.mark.parametrize("type_,order,words,scale,nan,expected", DECODE_TABLE)
def test_decoder_table(type_, order, words, scale, nan, expected):
    b = Block("holding", 0, len(words), [_reg(type_, word_order=order, scale=scale, nan=nan)])
    got = b.decode(words).get("active_power")
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, rel=1e-6)


def test_offset_gap_and_several_rows_in_one_block():
    rows = [_reg("int16", 0, key="winding_temperature_l1", scale=0.1, offset=-40.0),
            _reg("uint32", 3, key="energy_import", word_order="little")]
    b = plan_blocks(rows, max_gap=4)
    assert len(b) == 1 and b[0].count == 5
    assert b[0].decode([650, 0xAAAA, 0xBBBB, 0x0002, 0x0001]) == {
        "winding_temperature_l1": pytest.approx(25.0), "energy_import": 65538.0}


def test_typed_values_stand_in_for_raw_patterns_only_where_they_are_equal():
    """A block decodes sentinels from the typed tuple when every guarded row is unsigned; a
    signed, float or named row beside them must still be compared on its raw pattern, so a
    value of -1 (the "no sentinel" marker) or -1.0 is kept, and 0xFFFF/0x8000 left out."""
    only_unsigned = Block("holding", 0, 2, [_reg("uint16", 0, key="thd_voltage_l1", nan=0xFFFF),
                                            _reg("uint16", 1, key="thd_voltage_l2", nan=0xFFFF)])
    assert not only_unsigned._needs_unsigned
    assert only_unsigned.decode([0xFFFF, 31]) == {"thd_voltage_l2": 31.0}
    mixed = Block("holding", 0, 4, [_reg("uint16", 0, key="thd_voltage_l1", nan=0xFFFF),
                                    _reg("int16", 1, key="winding_temperature_l1", nan=0x8000),
                                    _reg("float32", 2, key="active_power")])
    assert mixed._needs_unsigned
    minus_one = list(struct.unpack(">2H", struct.pack(">f", -1.0)))
    assert mixed.decode([7, 0xFFFF, *minus_one]) == {"thd_voltage_l1": 7.0, "winding_temperature_l1": -1.0,
                                                     "active_power": -1.0}
    assert mixed.decode([0xFFFF, 0x8000, *minus_one]) == {"active_power": -1.0}
    into = {"x": 1.0}
    assert mixed.decode([7, 0xFFFF, *minus_one], into=into) is into and into["x"] == 1.0 and len(into) == 4


@pytest.mark.parametrize("sf_word,expected", [(0xFFFE, 45.67), (0x0001, 45670.0), (0x0000, 4567.0), (0x7FFF, None),
                                              (0x8000, None)])
def test_scale_factor_register(sf_word, expected):
    rows = [Register("W_SF", False, 10, "holding", "sunssf"),
            _reg("int16", 9, scale_factor="W_SF")]
    (b,) = plan_blocks(rows)
    got = b.decode([4567, sf_word]).get("active_power")
    assert (got is None) if expected is None else got == pytest.approx(expected)
    assert "W_SF" not in b.decode([4567, sf_word])


def test_plan_blocks_splits_at_125_and_at_gaps():
    rows = [_reg("uint16", a, key=f"r{a}") for a in range(0, 300, 2)]
    blocks = plan_blocks(rows, max_gap=4)
    assert all(b.count <= 125 for b in blocks) and len(blocks) == 3
    assert [len(x) for x in (plan_blocks(rows[:3], max_gap=0),)] == [3]
    rows2 = [_reg("uint16", 0, key="a"), _reg("uint16", 10, key="b"), _reg("uint16", 0, key="c")]
    rows2[2] = Register("c", True, 0, "input", "uint16")
    assert sorted((b.table, b.start, b.count) for b in plan_blocks(rows2, max_gap=4)) == [
        ("holding", 0, 1), ("holding", 10, 1), ("input", 0, 1)]


def test_plan_blocks_rejects_overlap():
    with pytest.raises(ProfileError, match="'a'.*'b'.*overlap"):
        plan_blocks([_reg("uint32", 0, key="a"), _reg("uint16", 1, key="b")])


def test_decode_rejects_wrong_word_count_and_range():
    (b,) = plan_blocks([_reg("uint32", 0)])
    with pytest.raises(ValueError, match="expected 2 words, got 1"):
        b.decode([1])
    with pytest.raises(ValueError, match="out of range"):
        b.decode([1, 70000])


def test_encode_rejects_out_of_range_and_serves_sentinel():
    r = _reg("uint16", 0, scale=0.1, nan=0xFFFF)
    with pytest.raises(ValueError, match="'active_power'.*outside uint16"):
        encode([r], {"active_power": -5.0})
    assert encode([r], {}) == {("holding", 0): 0xFFFF}
    assert encode([r], {"active_power": float("nan")}) == {("holding", 0): 0xFFFF}
    assert encode([_reg("uint16", 0)], {}) == {}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["int16", "uint16", "int32", "uint32", "int64", "uint64", "acc32"]),
       st.sampled_from(["big", "little"]), st.integers(), st.sampled_from([1.0, 0.1, 0.01, 10.0, -1.0]))
def test_integer_round_trip_property(type_, order, n, scale):
    lo, hi = TYPES[type_].range()
    lo, hi = max(lo, -(2**53)), min(hi, 2**53)      # channel values are floats: exact up to 2**53
    n = lo + n % (hi - lo + 1)
    r = _reg(type_, 0, word_order=order, scale=scale)
    v = n * scale
    w = encode([r], {"active_power": v})
    (b,) = plan_blocks([r])
    assert b.decode([w[("holding", k)] for k in range(r.words)])["active_power"] == pytest.approx(v, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(["big", "little"]))
def test_float_round_trip_property(x, order):
    r = _reg("float32", 0, word_order=order)
    w = encode([r], {"active_power": x})
    (b,) = plan_blocks([r])
    assert b.decode([w[("holding", 0)], w[("holding", 1)]])["active_power"] == struct.unpack(
        ">f", struct.pack(">f", x))[0]


ALL_BLOCKS = [(pid, b) for pid, p in sorted(PROFILES.items())
              for b in p.plan(sunspec_layout(p)[0] if p.protocol == "sunspec" else None)]


@pytest.mark.parametrize("pid,block", ALL_BLOCKS, ids=[f"{pid}-{b.table}{b.start}" for pid, b in ALL_BLOCKS])
def test_decoder_never_raises_on_any_words(pid, block):
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.integers(0, 0xFFFF), min_size=block.count, max_size=block.count))
    def check(words):
        out = block.decode(words)
        assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
        assert set(out) <= {r.key for r in block.registers if r.is_channel}

    check()


# ------------------------------------------------------------------ SunSpec


def test_sunspec_chain_contiguous_and_hop_by_hop():
    p = PROFILES["pv_inverter_sunspec"]
    chain, header = sunspec_layout(p, base=40000, modules={160: 3})
    assert [(m.id, m.start, m.length) for m in chain] == [(1, 40002, 66), (103, 40070, 50), (160, 40122, 68)]
    end = max(header)
    words = [header.get(a, 0) for a in range(40000, end + 1)]
    assert parse_model_chain(40000, words) == chain
    seen: dict[int, int] = {}
    hops = 0
    while True:
        try:
            got = parse_model_chain(40000, seen)
            break
        except ChainIncomplete as need:
            hops += 1
            seen[need.address], seen[need.address + 1] = header[need.address], header.get(need.address + 1, 0)
    assert got == chain and hops == 5          # marker, 3 models, end
    regs = resolve_sunspec(p, chain)
    names = {r.key for r in regs}
    assert {"mppt1_dc_power", "mppt3_dc_power"} <= names and "mppt4_dc_power" not in names
    w103 = next(r for r in regs if r.key == "active_power")
    assert w103.address == 40070 + 14 and w103.scale_factor == "103.W_SF"
    dca3 = next(r for r in regs if r.key == "mppt3_dc_current")
    assert dca3.address == 40122 + 2 + 8 + 2 * 20 + 9 and dca3.scale_factor == "160.DCA_SF"


def test_sunspec_chain_errors():
    with pytest.raises(ProfileError, match="no SunSpec marker"):
        parse_model_chain(0, [0x1234, 0x5678])
    with pytest.raises(ChainIncomplete) as e:
        parse_model_chain(0, [0x5375, 0x6E53, 1, 66])
    assert e.value.address == 70
    p = PROFILES["pv_inverter_sunspec"]
    with pytest.raises(ProfileError, match="no SunSpec model 160"):
        resolve_sunspec(p, parse_model_chain(0, [0x5375, 0x6E53, 103, 50] + [0] * 50 + [0xFFFF, 0]))
    with pytest.raises(ProfileError, match="lies outside model 103 of length 10"):
        resolve_sunspec(p, parse_model_chain(0, [0x5375, 0x6E53, 103, 10] + [0] * 10 + [0xFFFF, 0]))


# ------------------------------------------------------------------ error messages name file, row, key

BAD_ROWS = [
    ('channel = "volts"\naddress = 1\ntype = "uint16"', "register #1 (volts): key 'channel': unknown channel"),
    ('channel = "frequency"\naddress = 1\ntype = "int33"', "key 'type': unknown type 'int33'"),
    ('channel = "frequency"\naddress = 1\ntype = "uint16"\nscale = 0', "key 'scale': must be finite and non-zero"),
    ('channel = "frequency"\naddress = 1\ntype = "uint16"\ntable = "coil"', "key 'table'"),
    ('channel = "frequency"\naddress = 1\ntype = "uint16"\nword_order = "middle"', "key 'word_order'"),
    ('channel = "frequency"\naddress = 1\ntype = "uint16"\nnan = 0x10000', "key 'nan'"),
    ('channel = "frequency"\naddress = 1\ntype = "uint16"\nscael = 2', "key 'scael': unknown key"),
    ('channel = "frequency"\ntype = "uint16"', "key 'address': is required"),
    ('channel = "frequency"\naddress = 1\ntype = "uint16"\nscale_factor = "X_SF"', "key 'scale_factor': no sunssf"),
    ('channel = "frequency"\nname = "x"\naddress = 1\ntype = "uint16"', "exactly one of 'channel' or 'name'"),
]


@pytest.mark.parametrize("row,message", BAD_ROWS)
def test_bad_row_is_named(tmp_path, row, message):
    f = tmp_path / "meter_bad.toml"
    f.write_text(f'kind = "meter"\n[[register]]\n{row}\n', encoding="utf-8")
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    assert str(f) in str(e.value) and message in str(e.value)


def test_overlap_and_header_errors_are_named(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('kind = "meter"\n[[register]]\nchannel = "frequency"\naddress = 1\ntype = "uint32"\n'
                 '[[register]]\nchannel = "voltage_l1"\naddress = 2\ntype = "uint16"\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"m\.toml.*'frequency'.*'voltage_l1'.*overlap"):
        load_profile(f)
    f.write_text('kind = "boiler"\n', encoding="utf-8")
    with pytest.raises(ProfileError, match="key 'kind'"):
        load_profile(f)
    f.write_text('kind = "meter"\nword_ordr = "big"\n', encoding="utf-8")
    with pytest.raises(ProfileError, match="'word_ordr': unknown header key"):
        load_profile(f)
    f.write_text("kind = [", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(f)
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.toml")


def test_encode_clamp_saturates_like_a_device_and_reports_it():
    r = _reg("uint16", 0, scale=0.1, nan=0xFFFF)
    clamped: list[str] = []
    assert encode([r], {"active_power": 1e9}, clamp=True, clamped=clamped) == {("holding", 0): 0xFFFE}
    assert encode([r], {"active_power": -3.0}, clamp=True, clamped=clamped) == {("holding", 0): 0}
    assert encode([_reg("int16", 0)], {"active_power": float("inf")}, clamp=True, clamped=clamped) == {
        ("holding", 0): 0x7FFF}
    assert clamped == ["active_power"] * 3
    with pytest.raises(ValueError, match="does not fit float32"):
        encode([_reg("float32", 0)], {"active_power": 1e300})


@pytest.mark.parametrize(("name", "expected"), [
    ("voltage_l1", 100.0), ("voltage_l31", 100.0), ("current_l2", 40.0), ("current_n", 40.0),
    ("active_power", 4000.0), ("reactive_power_l3", 4000.0), ("apparent_power", 4000.0),
    ("energy_import", 4000.0), ("reactive_energy_export", 4000.0), ("demand_active_power_max", 4000.0),
    ("power_factor", 1.0), ("frequency", 1.0), ("thd_current_l1", 1.0),
])
def test_primary_factor_by_unit(name, expected):
    """200/5 A CTs (40) and 10 kV/100 V PTs (100): P = P_secondary x CT x PT, U x PT, I x CT."""
    assert primary_factor(name, ct_ratio=40.0, pt_ratio=100.0) == expected
    assert primary_factor(name) == 1.0

"""DL/T 645-2007 and -1997 codec (core/dlt645.py) against hand-made frames; the deframer under any bytes;
profile errors naming file, row and key.

Known frames are worked out by hand from the standard's rules (A0 first, +33H, CS = sum mod 256,
DI low byte first, BCD low byte first, sign in bit 7 of the highest byte).
"""

from __future__ import annotations

import datetime as dt

import pytest
from support.dlt645 import PROFILE, SH, hx

from core.dlt645 import (
    Frame,
    FrameError,
    Item,
    bcd_decode,
    bcd_encode,
    build_frame,
    decode_item,
    encode_item,
    parse_frame,
    read_address_request,
    read_request,
    take_frame,
)
from core.profiles import load_profiles

# ---------------------------------------------------------------- codec, known values

def test_broadcast_read_address_frame_is_the_textbook_one():
    assert read_address_request() == hx("FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16")


def test_read_request_puts_a0_first_di_low_first_and_adds_33h():
    # address 123456789012: A0 = 12 ... A5 = 12 ; DI 00010000 -> 00 00 01 00 -> +33H 33 33 34 33
    # CS = 68+12+90+78+56+34+12+68+11+04+33+33+34+33 = 0x368 -> 68
    assert read_request("123456789012", 0x00010000) == hx("FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16")


def test_answer_frame_parses_to_the_energy_it_carries():
    # 91H answer, DI 00010000, 123456.78 kWh -> BCD 78 56 34 12 -> +33H AB 89 67 45
    body = hx("68 01 00 00 00 00 00 68 91 08 33 33 34 33 AB 89 67 45")
    raw = b"\xfe\xfe" + body + bytes((sum(body) & 0xFF, 0x16))
    f = parse_frame(raw)
    assert f == Frame("000000000001", 0x91, hx("00 00 01 00 78 56 34 12"))
    assert decode_item(PROFILE.items[0], f.data[4:], SH) == {"energy_import": 123456780.0}


@pytest.mark.parametrize(("value", "fmt", "signed", "wire"), [
    (123456.78, "XXXXXX.XX", False, "78 56 34 12"),
    (850000.00, "XXXXXX.XX", False, "00 00 00 85"),      # >= 800000 kWh: unsigned, no range trap
    (1.000, "X.XXX", True, "00 10"),                    # PF 1.000 is valid
    (-0.987, "X.XXX", True, "87 89"),
    (-1.234, "XXX.XXX", True, "34 12 80"),
    (229.8, "XXX.X", False, "98 22"),
    (-12.3456, "XX.XXXX", True, "56 34 92"),
    (50.02, "XX.XX", False, "02 50"),
])
def test_bcd_known_values_both_ways(value, fmt, signed, wire):
    assert bcd_encode(value, fmt, signed) == hx(wire)
    assert bcd_decode(hx(wire), fmt, signed) == pytest.approx(value)


def test_max_demand_time_is_decoded_minute_first_on_the_wire():
    item = next(i for i in PROFILE.items if i.type == "demand")
    # 12.3456 kW at 2026-03-15 14:30 local: 56 34 12 | mm hh DD MM YY = 30 14 15 03 26
    data = hx("56 34 12 30 14 15 03 26")
    got = decode_item(item, data, SH)
    assert got["demand_active_power_max"] == pytest.approx(12345.6)
    assert got["demand_active_power_max_time"] == dt.datetime(2026, 3, 15, 14, 30, tzinfo=SH).timestamp()
    values = {"demand_active_power_max": 12345.6, "demand_active_power_max_time": got["demand_active_power_max_time"]}
    assert encode_item(item, values, dt.datetime(2026, 3, 20, tzinfo=SH)) == data


def test_meter_clock_items_are_bcd_date_with_weekday_and_time():
    date, tim = Item("meter_date", 0x04000101, "date"), Item("meter_time", 0x04000102, "time")
    t = dt.datetime(2026, 12, 4, 23, 59, 58, tzinfo=SH)       # a Friday: weekday 5
    assert encode_item(date, {}, t) == hx("05 04 12 26")
    assert encode_item(tim, {}, t) == hx("58 59 23")
    assert decode_item(date, hx("05 04 12 26"), SH) == {"_date": (26, 12, 4)}


def test_bad_frames_are_refused_with_the_reason():
    good = read_request("000000000001", 0x02010100)
    with pytest.raises(FrameError, match="checksum"):
        parse_frame(good[:-2] + bytes(((good[-2] + 1) & 0xFF, 0x16)))
    with pytest.raises(FrameError, match="end byte"):
        parse_frame(good[:-1] + b"\x17")
    with pytest.raises(FrameError, match="not BCD"):
        bcd_decode(hx("7A 56 34 12"), "XXXXXX.XX")


def test_deframer_skips_noise_and_broken_frames_and_waits_for_the_rest():
    good = build_frame("000000000001", 0x91, hx("00 01 01 02 98 22"), preamble=False)
    broken = bytearray(good)
    broken[-2] ^= 0xFF
    buf = bytearray(b"\x00\x68\x99garbage" + bytes(broken) + b"\xfe\xfe" + good + good[:5])
    frame, used = take_frame(buf)
    assert frame is not None and frame.data == hx("00 01 01 02 98 22")
    del buf[:used]
    assert take_frame(buf) == (None, 0)             # the second frame is incomplete: keep it


def test_clock_offset_rounds_the_truncated_second_and_survives_midnight_between_date_and_time():
    from collector.dlt645 import clock_offset

    at = dt.datetime(2026, 12, 4, 10, 0, 0, 300_000, tzinfo=SH).timestamp()
    assert clock_offset((26, 12, 4), (10, 0, 0), at, SH) == pytest.approx(0.2)
    assert clock_offset((26, 12, 4), (9, 58, 30), at, SH) == pytest.approx(-89.8)
    # date read at 23:59:59.9 on the 4th, time read after midnight: 00:00:00 of the 5th
    at = dt.datetime(2026, 12, 5, 0, 0, 0, 100_000, tzinfo=SH).timestamp()
    assert clock_offset((26, 12, 4), (0, 0, 0), at, SH) == pytest.approx(0.4)


def test_profiles_dir_keeps_modbus_and_dlt645_apart():
    assert "meter_dlt645_2007" not in load_profiles()
    assert set(PROFILE.channels) >= {"energy_import_t1", "energy_import_t4", "meter_clock_offset",
                                     "demand_active_power_max_time", "power_factor", "frequency"}


# ---------------------------------------------------------------- fuzz: the deframer never wedges

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_GOOD = build_frame("000000000001", 0x91, hx("00 01 01 02 98 22"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=40))
def test_deframer_survives_any_bytes_and_still_finds_a_following_frame(noise, tail):
    buf = bytearray(noise + _GOOD + tail)
    found = []
    for _ in range(len(buf) + 2):                      # bounded: every round consumes or stops
        frame, used = take_frame(buf)
        if frame is None and used == 0:
            break
        del buf[:used]
        if frame is not None:
            found.append(frame)
    assert any(f.data == hx("00 01 01 02 98 22") and f.address == "000000000001" for f in found)


# ---------------------------------------------------------------- DL/T 645-1997

def test_1997_read_request_uses_c01_and_a_two_byte_di():
    # 9010 -> 10 90 -> +33H 43 C3 ; CS = 68+01+68+01+02+43+C3 = 0x1DA -> DA
    assert read_request("000000000001", 0x9010, "1997") == hx("FE FE FE FE 68 01 00 00 00 00 00 68 01 02 43 C3 DA 16")


@pytest.mark.parametrize(("header", "row", "message"), [
    ('standard = "1997"', 'di = "00010000"', "item #1: key 'di': 4 hex digits"),
    ('standard = "2013"', 'di = "00010000"', "key 'standard': must be one of"),
    ("", 'di = "00010000"\ntype = "minute"', "item #1: key 'type'"),
    ("", 'di = "00010000"\nchannel = "energy_imported"', "item #1: key 'channel': unknown channel"),
    ("", 'di = "00010000"\nformat = "XX.X"', "item #1: format 'XX.X'"),
])
def test_bad_dlt645_profile_names_file_row_and_key(tmp_path, header, row, message):
    from core.dlt645 import Dlt645ProfileError, load_dlt645_profile

    p = tmp_path / "meter_dlt645_x.toml"
    p.write_text(f'kind = "meter"\nprotocol = "dlt645"\n{header}\n[[item]]\nchannel = "energy_import"\n{row}\n'
                 if "channel" not in row else f'kind = "meter"\nprotocol = "dlt645"\n{header}\n[[item]]\n{row}\n')
    with pytest.raises(Dlt645ProfileError, match=message) as err:
        load_dlt645_profile(p)
    assert str(err.value).startswith(str(p))

"""core.influx.arrays: MessagePack answers (the msgpack package + the numpy table path) into columns."""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest

from core.influx import InfluxQueryError, Table, decode_msgpack, series_of, series_to_arrays
from core.influx.arrays import msgpack_error

T0 = 1_700_000_000_000_000_000


def _row(t: int, *values: float) -> bytes:
    """A row as influxd packs it: int64 time (0xd3) and float64 fields (0xcb)."""
    return bytes([0x90 | (1 + len(values))]) + b"\xd3" + struct.pack(">q", t) + \
        b"".join(b"\xcb" + struct.pack(">d", v) for v in values)


def _answer(rows: list[bytes], columns=("time", "a", "b"), tags=None) -> bytes:
    p = msgpack.Packer()
    series = p.pack_map_header(4) + p.pack("name") + p.pack("meter") + p.pack("tags") + p.pack(tags or {}) + \
        p.pack("columns") + p.pack(list(columns)) + p.pack("values") + p.pack_array_header(len(rows)) + b"".join(rows)
    return p.pack({"results": [{"statement_id": 0, "series": []}]})[:-1] + b"\x91" + series


def test_number_table_is_read_into_columns():
    buf = _answer([_row(T0 + i, 1.5 * i, -2.0) for i in range(3)])
    body = decode_msgpack(buf)
    values = body["results"][0]["series"][0]["values"]
    assert isinstance(values, Table) and values.n == 3
    assert values.columns[0].dtype == np.int64 and values.columns[0].tolist() == [T0, T0 + 1, T0 + 2]
    arrays = series_to_arrays(series_of(body))
    assert arrays["a"].tolist() == [0.0, 1.5, 3.0] and arrays["b"].tolist() == [-2.0] * 3


def test_nulls_strings_and_time_extension_take_the_object_path():
    """A null or a string cell is not a 9-byte number: the table is decoded by msgpack cell by cell;
    InfluxDB's time extension (type 5: int64 s + int32 ns) becomes ns."""
    when = msgpack.ExtType(5, struct.pack(">qi", 1_700_000_000, 7))
    buf = msgpack.packb({"results": [{"statement_id": 0, "series": [
        {"name": "m", "columns": ["time", "v", "s"], "values": [[when, None, "on"], [T0, 2.5, "off"]]}]}]})
    arrays = series_to_arrays(series_of(decode_msgpack(buf)))
    assert arrays["time"].tolist() == [1_700_000_000 * 10**9 + 7, T0]
    assert np.isnan(arrays["v"][0]) and arrays["v"][1] == 2.5
    assert arrays["s"].tolist() == ["on", "off"]


def test_chunked_answer_is_merged():
    one = _answer([_row(T0, 1.0, 2.0)], tags={"device": "d1"})
    two = _answer([_row(T0, 3.0, 4.0)], tags={"device": "d2"})
    arrays = series_to_arrays(series_of(decode_msgpack(one + two)))
    assert arrays["device"].tolist() == ["d1", "d2"] and arrays["a"].tolist() == [1.0, 3.0]


def test_truncated_answer_raises_query_error():
    buf = _answer([_row(T0 + i, 1.0, 2.0) for i in range(4)])
    with pytest.raises(InfluxQueryError, match="malformed MessagePack"):
        decode_msgpack(buf[:-5])


def test_statement_error_and_error_answer():
    with pytest.raises(InfluxQueryError, match="statement 0: boom"):
        series_of(decode_msgpack(msgpack.packb({"results": [{"statement_id": 0, "error": "boom"}]})))
    assert msgpack_error(msgpack.packb({"error": "unauthorized"})) == "unauthorized"
    assert msgpack_error(b"not msgpack \xc1") .startswith("not msgpack")

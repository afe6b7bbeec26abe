"""MessagePack query answers into numpy columns: ours (core.influx.arrays) beside bare ``msgpack``.

The input is what influxd 1.x sends for ``query_arrays`` (``Accept: application/x-msgpack``,
``epoch=ns``): one statement, ``--series`` series (``GROUP BY "device"``) of ``--rows`` rows,
each a time (int64) and ``--cols`` float64 fields.  Ours decodes it into one array per column
(``decode_msgpack`` + ``series_to_arrays``); the bare component is ``msgpack.unpackb`` alone,
which only builds the Python objects (a list per row, a float per cell) and no arrays.

Usage: ``.venv/bin/python bench/bench_msgpack.py [--rows 43200 --cols 20 --series 4 --repeat 5]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgpack
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.influx.arrays import _ext, decode_msgpack, series_of, series_to_arrays  # noqa: E402


def influx_answer(rows: int, cols: int, nseries: int) -> tuple[bytes, np.ndarray]:
    """An influxd-shaped MessagePack answer: time as int64 (0xd3), fields as float64 (0xcb)."""
    rng = np.random.default_rng(1)
    t = 1_700_000_000_000_000_000 + np.arange(rows, dtype=np.int64) * 60_000_000_000
    vals = rng.normal(230.0, 5.0, (nseries, rows, cols))
    packer = msgpack.Packer(use_bin_type=True)
    columns = ["time"] + [f"f{j}" for j in range(cols)]
    series = []
    for s in range(nseries):
        body = b"".join(_row(packer, int(t[i]), vals[s, i]) for i in range(rows))
        head = packer.pack_map_header(4) + packer.pack("name") + packer.pack("meter") + packer.pack("tags") + \
            packer.pack({"device": f"d{s}"}) + packer.pack("columns") + packer.pack(columns) + packer.pack("values")
        series.append(head + packer.pack_array_header(rows) + body)
    result = packer.pack_map_header(2) + packer.pack("statement_id") + packer.pack(0) + packer.pack("series") + \
        packer.pack_array_header(nseries) + b"".join(series)
    return packer.pack_map_header(1) + packer.pack("results") + packer.pack_array_header(1) + result, vals


def _row(packer: msgpack.Packer, t: int, values: np.ndarray) -> bytes:
    k = 1 + len(values)
    hdr = bytes([0x90 | k]) if k < 16 else b"\xdc" + k.to_bytes(2, "big")
    raw = values.astype(">f8").tobytes()
    return hdr + b"\xd3" + t.to_bytes(8, "big", signed=True) + \
        b"".join(b"\xcb" + raw[i:i + 8] for i in range(0, len(raw), 8))


def ours(buf: bytes) -> dict[str, np.ndarray]:
    return series_to_arrays(series_of(decode_msgpack(buf)))


def bare(buf: bytes) -> dict:
    return msgpack.unpackb(buf, raw=False, ext_hook=_ext, strict_map_key=False)


def best_of(fn, buf: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(buf)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=43_200)       # a month of 1-min readings
    ap.add_argument("--cols", type=int, default=20)
    ap.add_argument("--series", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    buf, vals = influx_answer(a.rows, a.cols, a.series)
    got = ours(buf)
    assert got["time"].size == a.rows * a.series
    assert np.array_equal(got["f3"], vals[:, :, 3].ravel()), "decoded values differ from the packed ones"
    assert bare(buf)["results"][0]["series"][1]["values"][7][4] == vals[1, 7, 3]
    o, b = best_of(ours, buf, a.repeat), best_of(bare, buf, a.repeat)
    cells = a.rows * a.series * (a.cols + 1)
    print(f"answer: {a.series} series x {a.rows:,} rows x {a.cols + 1} columns, {len(buf) / 1e6:.1f} MB")
    print(f"  ours  decode_msgpack + series_to_arrays : {o * 1e3:8.1f} ms  ({cells / o / 1e6:.0f} M cells/s)")
    print(f"  bare  msgpack.unpackb (objects only)    : {b * 1e3:8.1f} ms  ({cells / b / 1e6:.0f} M cells/s)")
    print(f"  ratio ours / bare time                  : {o / b:8.2f}")


if __name__ == "__main__":
    main()

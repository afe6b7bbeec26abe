"""Query answers into numpy columns: JSON series and InfluxDB's MessagePack answers.

MessagePack is decoded by the ``msgpack`` package; only the ``values`` table of a series is
read by numpy straight from the buffer when every cell is a 9-byte number (float64, or int64
with ``epoch=ns``), which is the common case: 4 series x 43,200 rows x 21 columns (33 MB)
decode in ~70 ms that way against ~270 ms for ``msgpack.unpackb`` alone, which builds one
Python object per cell (``bench/bench_msgpack.py``, docs/benchmarks.md).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import msgpack
import numpy as np

from core.influx.errors import InfluxQueryError
from core.units import NS


def series_of(body: dict) -> list[dict]:
    if "error" in body:
        raise InfluxQueryError(200, str(body["error"]))
    out: list[dict] = []
    for res in body.get("results", []):
        if "error" in res:
            raise InfluxQueryError(200, f"statement {res.get('statement_id', '?')}: {res['error']}")
        for s in res.get("series", []) or []:
            s = dict(s)
            s["statement_id"] = res.get("statement_id", 0)
            out.append(s)
    return out


def _column_array(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    try:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(values, dtype=object)


def series_to_arrays(series: list[dict]) -> dict[str, np.ndarray]:
    if not series:
        return {"time": np.empty(0, dtype=np.int64)}
    columns: list[str] = list(series[0]["columns"])
    tag_keys = sorted({k for s in series for k in (s.get("tags") or {})})
    names = {s.get("name") for s in series}
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for k in tag_keys:
        parts.setdefault(k, [])
    if len(names) > 1:
        parts["_measurement"] = []
    for s in series:
        vals = s.get("values") or []
        cols = s.get("columns", columns)
        n = len(vals) if not isinstance(vals, Table) else vals.n
        if isinstance(vals, Table):
            by_col = dict(zip(cols, vals.columns, strict=True))
        else:
            by_col = {c: [row[i] for row in vals] for i, c in enumerate(cols)}
        for c in columns:
            if c == "time" and c in by_col:       # int64 ns: a float64 detour would round them to 2^-52
                parts[c].append(np.asarray(by_col[c], dtype=np.int64))
            else:
                parts[c].append(_column_array(by_col[c]) if c in by_col else np.full(n, np.nan))
        for k in tag_keys:
            parts[k].append(np.full(n, (s.get("tags") or {}).get(k, ""), dtype=object))
        if len(names) > 1:
            parts["_measurement"].append(np.full(n, s.get("name"), dtype=object))
    out = {}
    for c, arrs in parts.items():
        if c == "time":
            out[c] = np.concatenate(arrs).astype(np.int64)
        elif all(a.dtype.kind in "fiu" for a in arrs):
            out[c] = np.concatenate(arrs).astype(np.float64)
        else:
            out[c] = np.concatenate([a.astype(object) for a in arrs])
    return out


# ---------------------------------------------------------------------- MessagePack
class Table(NamedTuple):
    """A ``values`` table read column-wise: ``n`` rows, one array per column."""

    n: int
    columns: list[np.ndarray]


_FIXED9 = {0xCB: ">f8", 0xD3: ">i8", 0xCF: ">u8"}
_INFLUX_TIME_EXT = 5          # InfluxDB's time extension: int64 seconds + int32 nanoseconds


def _ext(code: int, data: bytes) -> Any:
    if code == _INFLUX_TIME_EXT and len(data) == 12:
        sec, nsec = struct.unpack(">qi", data)
        return sec * NS + nsec
    return msgpack.ExtType(code, data)


def _header(buf: bytes, pos: int, small: int, big16: int, big32: int) -> tuple[int, int] | None:
    """(length, bytes of the header) of a map/array header at ``pos``, None for another type."""
    t = buf[pos]
    if small <= t <= small + 0x0F:
        return t & 0x0F, 1
    if t == big16:
        return struct.unpack_from(">H", buf, pos + 1)[0], 3
    if t == big32:
        return struct.unpack_from(">I", buf, pos + 1)[0], 5
    return None


def _fast_table(buf: bytes, pos: int, k: int) -> Table | None:
    """The ``values`` array at ``pos`` as columns when it is ``n`` rows of ``k`` 9-byte numbers."""
    head = _header(buf, pos, 0x90, 0xDC, 0xDD)
    if head is None or not head[0] or not k:
        return None
    n, p0 = head[0], pos + head[1]
    hdr = bytes([0x90 | k]) if k < 16 else b"\xdc" + struct.pack(">H", k)
    row = len(hdr) + 9 * k
    if p0 + n * row > len(buf) or buf[p0:p0 + len(hdr)] != hdr:
        return None
    view = np.frombuffer(buf, dtype=np.uint8, count=n * row, offset=p0).reshape(n, row)
    for i, b in enumerate(hdr):
        if not np.all(view[:, i] == b):
            return None
    cols = []
    for j in range(k):
        off = len(hdr) + 9 * j
        tcol = view[:, off]
        t0 = int(tcol[0])
        if t0 not in _FIXED9 or not np.all(tcol == t0):
            return None
        raw = np.ascontiguousarray(view[:, off + 1:off + 9]).view(_FIXED9[t0]).ravel()
        cols.append(raw.astype(np.int64 if t0 != 0xCB else np.float64))
    return Table(n, cols)


def _obj(up: msgpack.Unpacker, buf: bytes) -> Any:
    """One object; maps and arrays are walked so that a series' ``values`` can go to numpy."""
    pos = up.tell()
    if _header(buf, pos, 0x90, 0xDC, 0xDD) is not None:
        return [_obj(up, buf) for _ in range(up.read_array_header())]
    if _header(buf, pos, 0x80, 0xDE, 0xDF) is None:
        return up.unpack()
    out: dict = {}
    for _ in range(up.read_map_header()):
        key = up.unpack()
        if key == "values":
            table = _fast_table(buf, up.tell(), len(out.get("columns") or ()))
            if table is not None:
                up.skip()
                out[key] = table
                continue
            out[key] = up.unpack()
        else:
            out[key] = _obj(up, buf)
    return out


def decode_msgpack(buf: bytes) -> dict:
    """A MessagePack query answer (``Accept: application/x-msgpack``) as the JSON answer's dict.

    A chunked answer (several objects back to back) is merged into one ``results`` list.
    Raises :class:`InfluxQueryError` for a truncated or malformed answer.
    """
    up = msgpack.Unpacker(raw=False, ext_hook=_ext, strict_map_key=False, max_buffer_size=max(len(buf), 1))
    up.feed(buf)
    objs = []
    try:
        while up.tell() < len(buf):
            objs.append(_obj(up, buf))
    except (msgpack.OutOfData, msgpack.UnpackException, ValueError, IndexError, struct.error) as exc:
        raise InfluxQueryError(200, f"malformed MessagePack answer at byte {up.tell()}: "
                                    f"{type(exc).__name__} {exc}") from None
    if len(objs) == 1:
        return objs[0]
    merged: dict = {"results": []}
    for o in objs:
        merged["results"].extend(o.get("results", []) if isinstance(o, dict) else [])
    return merged


def msgpack_error(buf: bytes) -> str:
    """The server's error message from a MessagePack error answer (its raw bytes if it is not one)."""
    try:
        obj = msgpack.unpackb(buf, raw=False, ext_hook=_ext, strict_map_key=False)
        return str(obj.get("error", obj)) if isinstance(obj, dict) else str(obj)
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData):
        return buf[:500].decode(errors="replace")

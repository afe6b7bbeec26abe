"""Encoding values into register words (the simulator side) and a row's precision.

Conventions in :mod:`core.profiles`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

from core.profiles.rows import TYPES, Register

# --------------------------------------------------------------------------------------- encoding

def encode(registers: Iterable[Register], values: Mapping[str, float], *,
           clamp: bool = False, clamped: list[str] | None = None) -> dict[tuple[str, int], int]:
    """Encode channel (and named-row) values into register words: ``{(table, address): word}``.

    Named rows take ``values[name]`` or their ``default``; a channel missing from
    ``values`` (or NaN) is served as its sentinel, or skipped if it has none.  A value that
    does not fit its type (or would read as the sentinel) raises ``ValueError`` naming the
    row — or, with ``clamp=True`` (the simulator), saturates as a real device does and its
    key is appended to ``clamped``.  ±Inf in a float32 row is encoded as is.
    """
    regs = list(registers)
    exps: dict[str, int] = {}
    for r in regs:
        if r.type == "sunssf":
            v = values.get(r.key, r.default)
            exps[r.key] = 0 if v is None else int(v)
    out: dict[tuple[str, int], int] = {}
    for r in regs:
        t = TYPES[r.type]
        v = values.get(r.key, r.default)
        sent = r.sentinel
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if sent is None:
                continue
            raw = sent
        elif r.type == "sunssf":
            raw = int(v) & 0xFFFF
        else:
            mult = r.scale * (10.0 ** exps.get(r.scale_factor, 0) if r.scale_factor else 1.0)
            x = (float(v) - r.offset) / mult
            if not t.integer:
                try:
                    raw = struct.unpack(">I", struct.pack(">f", x))[0]
                except OverflowError:
                    if not clamp:
                        raise ValueError(f"register {r.key!r}: value {v!r} does not fit float32") from None
                    raw = struct.unpack(">I", struct.pack(">f", math.copysign(3.4e38, x)))[0]
                    if clamped is not None:
                        clamped.append(r.key)
            else:
                lo, hi = t.range()
                n = round(x) if math.isfinite(x) else (hi + 1 if x > 0 else lo - 1)
                mask = (1 << 16 * t.words) - 1
                if not lo <= n <= hi or (sent is not None and n & mask == sent):
                    if not clamp:
                        raise ValueError(f"register {r.key!r}: value {v!r} gives raw {n}, outside {r.type} "
                                         f"{lo}..{hi} or equal to the sentinel")
                    n = min(max(n, lo), hi)
                    if sent is not None and n & mask == sent:
                        n = n - 1 if n > lo else n + 1
                    if clamped is not None:
                        clamped.append(r.key)
                raw = n & mask
        words = [(raw >> (16 * (t.words - 1 - k))) & 0xFFFF for k in range(t.words)]
        if r.word_order == "little":
            words.reverse()
        for k, w in enumerate(words):
            out[(r.table, r.address + k)] = w
    return out


def precision(register: Register, sf: int = 0) -> float:
    """Half a least-significant step of a row in channel units (0 for float32: relative 1e-7)."""
    if not TYPES[register.type].integer:
        return 0.0
    return 0.5 * abs(register.scale) * 10.0 ** sf

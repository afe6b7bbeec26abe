"""Wire types, register rows, SunSpec model records and blocks with their struct-based decoding.

Conventions in :mod:`core.profiles`.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
MAX_BLOCK = 125            # FC03/FC04 quantity limit (Modbus Application Protocol V1.1b3 §6.3, §6.4)
TABLES = ("holding", "input")
SUNSPEC_MARKER = (0x5375, 0x6E53)            # "SunS"
SUNSPEC_BASES = (40000, 0, 50000)            # SunSpec Information Model Reference §3 (base addresses)
SUNSPEC_END = 0xFFFF


class ProfileError(ValueError):
    """A profile file (or a device's answer to it) is invalid; the message names file, row and key."""


class ChainIncomplete(LookupError):  # noqa: N818 - a control-flow signal, not an error
    """:func:`parse_model_chain` needs the two header words at :attr:`address` to go on."""

    def __init__(self, address: int):
        super().__init__(f"SunSpec model header at register {address} not read yet")
        self.address = address


@dataclass(frozen=True)
class WireType:
    name: str
    typed: str          # struct code of the value
    unsigned: str       # struct code of the raw pattern (sentinel comparison)
    words: int
    implied_nan: int | None = None
    integer: bool = True

    def range(self) -> tuple[int, int]:
        bits = 16 * self.words
        if self.typed.islower():
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1


TYPES: dict[str, WireType] = {t.name: t for t in (
    WireType("int16", "h", "H", 1),
    WireType("uint16", "H", "H", 1),
    WireType("int32", "i", "I", 2),
    WireType("uint32", "I", "I", 2),
    WireType("float32", "f", "I", 2, integer=False),
    WireType("int64", "q", "Q", 4),
    WireType("uint64", "Q", "Q", 4),
    WireType("sunssf", "h", "H", 1, 0x8000),
    WireType("enum16", "H", "H", 1, 0xFFFF),
    WireType("bitfield32", "I", "I", 2, 0xFFFFFFFF),
    WireType("acc32", "I", "I", 2),
)}

# SunSpec "not implemented" values of the plain types (SunSpec Information Model Reference, table 3)
SUNSPEC_NAN = {"int16": 0x8000, "uint16": 0xFFFF, "int32": 0x80000000, "uint32": 0xFFFFFFFF}


@dataclass(frozen=True)
class Register:
    """One profile row, resolved to an absolute address (SunSpec rows: once the layout is known)."""

    key: str                       # channel name, or the row's name
    is_channel: bool
    address: int
    table: str
    type: str
    scale: float = 1.0
    offset: float = 0.0
    word_order: str = "big"
    nan: int | None = None
    scale_factor: str | None = None
    default: float | None = None
    note: str = ""
    model: int | None = None       # SunSpec model id (relative rows)
    repeat: bool = False

    @property
    def words(self) -> int:
        return TYPES[self.type].words

    @property
    def end(self) -> int:
        return self.address + self.words

    @property
    def sentinel(self) -> int | None:
        return self.nan if self.nan is not None else TYPES[self.type].implied_nan


@dataclass(frozen=True)
class Example:
    key: str
    words: tuple[int, ...]
    value: float | None            # None: the words are the sentinel, the channel is left out
    sf: int | None = None


@dataclass(frozen=True)
class SunSpecModelDef:
    id: int
    length: int                    # L of the fixed part (registers after ID and L)
    module_length: int = 0         # repeating module size (0 = none)
    modules: int = 0               # modules the simulator serves


@dataclass(frozen=True)
class SunSpecModel:
    """One model found on a device: id, absolute address of its ID register, length L."""

    id: int
    start: int
    length: int


class Block:
    """One contiguous read (≤ 125 registers of one table) and its precomputed decoder."""

    def __init__(self, table: str, start: int, count: int, registers: Sequence[Register]):
        if not 1 <= count <= MAX_BLOCK:
            raise ProfileError(f"block {table}@{start}: {count} registers, must be 1..{MAX_BLOCK}")
        self.table, self.start, self.count = table, start, count
        self.registers = tuple(sorted(registers, key=lambda r: r.address))
        perm = list(range(count))
        typed, unsigned = [">"], [">"]
        pos = 0
        index = {r.key: i for i, r in enumerate(self.registers)}
        fields = []
        for r in self.registers:
            rel = r.address - start
            if rel < pos or r.end - start > count:
                raise ProfileError(f"block {table}@{start}+{count}: register {r.key!r} at {r.address} "
                                   "overlaps or lies outside the block")
            if rel > pos:
                typed.append(f"{2 * (rel - pos)}x")
                unsigned.append(f"{2 * (rel - pos)}x")
            if r.word_order == "little" and r.words > 1:
                perm[rel:rel + r.words] = list(range(rel + r.words - 1, rel - 1, -1))
            t = TYPES[r.type]
            typed.append(t.typed)
            unsigned.append(t.unsigned)
            pos = rel + r.words
            sfi = -1
            if r.scale_factor is not None:
                if r.scale_factor not in index:
                    raise ProfileError(f"block {table}@{start}: scale factor {r.scale_factor!r} of "
                                       f"{r.key!r} is not in the same block")
                sfi = index[r.scale_factor]
            sent = r.sentinel
            fields.append((r.key, r.is_channel, float(r.scale), float(r.offset),
                           -1 if sent is None else sent, sfi))
        self._fields = tuple(fields)
        identity = perm == list(range(count))
        self._perm = None if identity else operator.itemgetter(*perm) if count > 1 else (lambda w: (w[0],))
        self._pack = struct.Struct(f">{count}H").pack
        self._typed = struct.Struct("".join(typed)).unpack
        self._unsigned = struct.Struct("".join(unsigned)).unpack
        self._sf_sentinel = {i: self.registers[i].sentinel for i in {f[5] for f in fields if f[5] >= 0}}
        # fast paths, precomputed: integer channel rows without scale factor, with or without sentinel
        plain, guarded, general = [], [], []
        for i, (f, r) in enumerate(zip(fields, self.registers, strict=True)):
            key, is_channel, scale, offset, sent, sfi = f
            if is_channel and sfi < 0 and TYPES[r.type].integer:
                (plain if sent < 0 else guarded).append((i, key, scale, offset, sent))
            else:
                general.append((i, f))
        self._plain = tuple(x[:4] for x in plain)
        self._guarded = tuple(guarded)
        self._general = tuple(general)
        # the raw unsigned patterns are needed only where one may differ from the typed value
        # (a signed or float row among the guarded or general ones, or a scale factor); else
        # the typed tuple stands in for them (the general loop compares u[i] with -1 too)
        self._needs_unsigned = bool(self._sf_sentinel) or any(
            TYPES[self.registers[i].type].typed != TYPES[self.registers[i].type].unsigned
            for i in [g[0] for g in guarded] + [g[0] for g in general])

    def __repr__(self) -> str:
        return f"Block({self.table}@{self.start}+{self.count}, {len(self.registers)} registers)"

    def decode(self, words: Sequence[int], *, helpers: bool = False,
               into: dict[str, float] | None = None) -> dict[str, float]:
        """Decode the words of one read into channel values in canonical units.

        A value equal to its sentinel, a NaN, or a value whose scale factor is "not
        implemented" is left out.  ``helpers=True`` also returns the named rows.
        ``into``: a dict to add the values to (and return) instead of a new one.
        Raises ``ValueError`` if the word count is wrong or a word is not 0..65535.
        """
        if len(words) != self.count:
            raise ValueError(f"block {self.table}@{self.start}: expected {self.count} words, got {len(words)}")
        try:
            raw = self._pack(*words) if self._perm is None else self._pack(*self._perm(words))
        except struct.error as exc:
            raise ValueError(f"block {self.table}@{self.start}: word out of range 0..65535 ({exc})") from None
        t = self._typed(raw)
        out: dict[str, float] = {} if into is None else into
        for i, k, sc, o in self._plain:          # a plain loop: fewer instructions than map/zip here
            out[k] = t[i] * sc + o
        if not (self._guarded or self._general):
            return out
        u = self._unsigned(raw) if self._needs_unsigned else t
        for i, k, sc, o, sent in self._guarded:
            if u[i] != sent:
                out[k] = t[i] * sc + o
        # a scale factor "not implemented" or outside SunSpec's -10..10 leaves its values out
        sf_bad = {i for i, s in self._sf_sentinel.items() if u[i] == s or not -10 <= t[i] <= 10} \
            if self._sf_sentinel else ()
        for i, (key, is_channel, scale, offset, sent, sfi) in self._general:
            if not (is_channel or helpers) or u[i] == sent:
                continue
            v = t[i]
            if sfi >= 0:
                if sfi in sf_bad:
                    continue
                v = v * 10.0 ** t[sfi]
            v = v * scale + offset
            if v != v or v in (math.inf, -math.inf):
                continue
            out[key] = float(v)
        return out

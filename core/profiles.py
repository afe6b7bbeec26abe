"""Device profiles: data-only register maps in ``profiles/*.toml`` and the engine that reads them.

A profile names, for one device model, which Modbus registers hold which channel of
:mod:`core.channels`, with their wire type, word order, fixed scale, additive offset,
"not available" sentinel and (SunSpec style) a register holding a power-of-ten scale
factor.  The collector plans its block reads from the rows and decodes them; the
simulator encodes values into the same rows — one file serves both.

Wire types (all big-endian within a 16-bit word, Modbus Application Protocol V1.1b3 §4.2)::

    int16 uint16 int32 uint32 float32 int64 uint64        plain types
    sunssf   int16 power-of-ten exponent, 0x8000 = not implemented   (SunSpec)
    enum16   uint16, 0xFFFF = not implemented                        (SunSpec)
    bitfield32 uint32, 0xFFFFFFFF = not implemented                  (SunSpec)
    acc32    uint32 accumulator                                      (SunSpec)

Multi-word values are "big" word order (most significant word first, Modbus/SunSpec
convention) or "little" (least significant first, e.g. many Chinese meters' float32).

Header keys: ``kind``, ``vendor``, ``model``, ``manual`` (document and table the map
comes from), ``protocol`` (``modbus`` or ``sunspec``), ``word_order`` (default for rows),
``max_gap`` (registers a block read may skip, default 4), ``[[model]]`` (SunSpec models: ``id``,
``length`` of the fixed part, ``module_length`` and simulated ``modules`` of a repeating part;
a SunSpec profile names the device in ``description`` since ``model`` lists the models),
``[[register]]`` rows and optional ``[[example]]`` rows (raw words → expected value).

Row keys: ``channel`` (a glossary channel) or ``name`` (a named row such as a scale
factor), ``address``, ``table`` (``holding``/``input``), ``type``, ``scale``, ``offset``,
``word_order``, ``nan`` (raw unsigned pattern meaning "not available"), ``scale_factor``
(name of a row holding a power-of-ten exponent), ``default`` (value the simulator serves
when it is given none: constant scale factors), ``note``; SunSpec rows add ``model`` (the
address is then relative to the model's ID register) and ``repeat = true`` (the address
is relative to each repeating module; ``{n}`` in the channel is the module number).

Decoding is struct-based: one ``itemgetter`` (word-order permutation, skipped when every
value is big-endian), one ``pack`` and two ``unpack`` calls per block, then one pass to scale; no
per-register converter call.
"""

from __future__ import annotations

import math
import operator
import struct
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.channels import CHANNELS, DEVICE_KINDS

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
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


@dataclass(frozen=True)
class Profile:
    id: str
    path: Path
    kind: str
    vendor: str
    model: str
    manual: str
    protocol: str                          # "modbus" | "sunspec"
    word_order: str
    max_gap: int
    registers: tuple[Register, ...]
    examples: tuple[Example, ...] = ()
    sunspec_models: tuple[SunSpecModelDef, ...] = ()
    blocks: tuple[Block, ...] = field(default=(), compare=False, repr=False)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.registers if r.is_channel)

    def resolve(self, chain: Sequence[SunSpecModel] | None = None) -> tuple[Register, ...]:
        """Absolute registers: the rows themselves, or for SunSpec the rows placed on ``chain``."""
        if self.protocol != "sunspec":
            return self.registers
        if chain is None:
            raise ProfileError(f"{self.path}: SunSpec profile needs the discovered model chain")
        return resolve_sunspec(self, chain)

    def plan(self, chain: Sequence[SunSpecModel] | None = None) -> tuple[Block, ...]:
        if self.protocol != "sunspec":
            return self.blocks
        return tuple(plan_blocks(self.resolve(chain), max_gap=self.max_gap))


# ---------------------------------------------------------------------------------------- planning

def plan_blocks(registers: Iterable[Register], *, max_gap: int = 4, max_count: int = MAX_BLOCK) -> list[Block]:
    """Group rows into contiguous reads of ≤ ``max_count`` registers per table.

    Rows more than ``max_gap`` registers apart start a new block.  A row and the
    scale-factor row it refers to always share one block (they form one unit).
    Raises :class:`ProfileError` on overlapping rows or a unit longer than ``max_count``.
    """
    regs = sorted(registers, key=lambda r: (r.table, r.address))
    blocks: list[Block] = []
    for table in TABLES:
        rows = [r for r in regs if r.table == table]
        if not rows:
            continue
        for a, b in zip(rows, rows[1:], strict=False):
            if b.address < a.end:
                raise ProfileError(f"registers {a.key!r} ({table} {a.address}..{a.end - 1}) and {b.key!r} "
                                   f"({table} {b.address}) overlap")
        by_key = {r.key: r for r in rows}
        # units: spans joined by scale-factor references, then overlapping spans merged
        spans = []
        for r in rows:
            lo, hi = r.address, r.end
            if r.scale_factor is not None:
                sf = by_key.get(r.scale_factor)
                if sf is None:
                    raise ProfileError(f"register {r.key!r}: scale factor {r.scale_factor!r} is not a "
                                       f"{table} row")
                lo, hi = min(lo, sf.address), max(hi, sf.end)
            spans.append((lo, hi))
        spans.sort()
        units: list[list[int]] = []
        for lo, hi in spans:
            if units and lo < units[-1][1]:
                units[-1][1] = max(units[-1][1], hi)
            else:
                units.append([lo, hi])
        groups: list[list[int]] = []
        for lo, hi in units:
            if hi - lo > max_count:
                raise ProfileError(f"{table} {lo}..{hi - 1}: a value and its scale factor span {hi - lo} "
                                   f"registers, more than one read of {max_count}")
            if groups and lo - groups[-1][1] <= max_gap and hi - groups[-1][0] <= max_count:
                groups[-1][1] = hi
            else:
                groups.append([lo, hi])
        for lo, hi in groups:
            members = [r for r in rows if lo <= r.address < hi]
            blocks.append(Block(table, lo, hi - lo, members))
    return blocks


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


# ---------------------------------------------------------------------------------------- SunSpec

def parse_model_chain(base: int, words: Mapping[int, int] | Sequence[int]) -> list[SunSpecModel]:
    """Walk the SunSpec model chain from ``base`` ("SunS" at base, base+1).

    ``words`` is either a contiguous read starting at ``base`` or a mapping
    ``{address: word}`` of the registers read so far.  Following SunSpec Information
    Model Reference §3, models follow one another as (ID, L, L registers) until ID 0xFFFF.
    Raises :class:`ChainIncomplete` naming the next header address when it is not in
    ``words`` (read two registers there and call again), and :class:`ProfileError` when
    there is no marker or the chain is malformed.
    """
    get: Callable[[int], int | None]
    if isinstance(words, Mapping):
        get = words.get
    else:
        seq = words

        def get(a: int) -> int | None:
            i = a - base
            return seq[i] if 0 <= i < len(seq) else None
    if get(base) is None or get(base + 1) is None:
        raise ChainIncomplete(base)
    if (get(base), get(base + 1)) != SUNSPEC_MARKER:
        raise ProfileError(f"no SunSpec marker 'SunS' at register {base}")
    models: list[SunSpecModel] = []
    addr = base + 2
    while True:
        mid, length = get(addr), get(addr + 1)
        if mid is None or (mid != SUNSPEC_END and length is None):
            raise ChainIncomplete(addr)
        if mid == SUNSPEC_END:
            return models
        if len(models) >= 64 or addr + 2 + length > 0x10000:
            raise ProfileError(f"SunSpec chain from {base} does not end (model {mid} at {addr}, L={length})")
        models.append(SunSpecModel(mid, addr, length))
        addr += 2 + length


def resolve_sunspec(profile: Profile, chain: Sequence[SunSpecModel]) -> tuple[Register, ...]:
    """Place a SunSpec profile's relative rows on a discovered chain (first model of each id).

    Row names are qualified by model (``103.W_SF``) so equal names in two models
    do not clash.  Repeating rows are expanded for each module present (channel
    ``{n}`` = module number 1..); modules whose channel is not in the glossary are skipped.
    """
    found = {}
    for m in chain:
        found.setdefault(m.id, m)
    defs = {d.id: d for d in profile.sunspec_models}
    out: list[Register] = []
    for r in profile.registers:
        m = found.get(r.model)
        if m is None:
            raise ProfileError(f"{profile.path}: device has no SunSpec model {r.model} "
                               f"(found {[x.id for x in chain]})")
        d = defs[r.model]
        sf = f"{r.model}.{r.scale_factor}" if r.scale_factor else None
        if not r.repeat:
            if r.address + r.words > 2 + m.length:
                raise ProfileError(f"{profile.path}: row {r.key!r} at offset {r.address} lies outside "
                                   f"model {r.model} of length {m.length}")
            key = r.key if r.is_channel else f"{r.model}.{r.key}"
            out.append(replace(r, key=key, address=m.start + r.address, scale_factor=sf))
            continue
        modules = (m.length - d.length) // d.module_length if d.module_length else 0
        for n in range(1, modules + 1):
            key = r.key.replace("{n}", str(n))
            if key not in CHANNELS:
                continue
            start = m.start + 2 + d.length + (n - 1) * d.module_length
            out.append(replace(r, key=key, address=start + r.address, scale_factor=sf))
    return tuple(out)


def sunspec_layout(profile: Profile, base: int = 40000,
                   modules: Mapping[int, int] | None = None) -> tuple[list[SunSpecModel], dict[int, int]]:
    """The reverse of discovery, for the simulator: chain and header words of ``profile``.

    Returns the models placed from ``base`` and the words ``{address: word}`` of the
    "SunS" marker, every (ID, L) header and the 0xFFFF end model.
    """
    words = {base: SUNSPEC_MARKER[0], base + 1: SUNSPEC_MARKER[1]}
    chain = []
    addr = base + 2
    for d in profile.sunspec_models:
        n = (modules or {}).get(d.id, d.modules)
        length = d.length + n * d.module_length
        chain.append(SunSpecModel(d.id, addr, length))
        words[addr], words[addr + 1] = d.id, length
        addr += 2 + length
    words[addr], words[addr + 1] = SUNSPEC_END, 0
    return chain, words


# ----------------------------------------------------------------------------------------- loading

_HEADER = {"kind", "vendor", "model", "manual", "protocol", "word_order", "max_gap", "description",
           "register", "example"}
_ROW = {"channel", "name", "address", "table", "type", "scale", "offset", "word_order", "nan",
        "scale_factor", "default", "note", "model", "repeat"}


def _want(where: str, key: str, value, kind, why: str = ""):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProfileError(f"{where}: key {key!r}: expected {name}, got {type(value).__name__} {value!r}"
                           + (f" ({why})" if why else ""))
    return value


def _row(path: Path, i: int, raw: dict, default_order: str, protocol: str, models: dict[int, SunSpecModelDef]
         ) -> Register:
    label = raw.get("channel") or raw.get("name") or "?"
    where = f"{path}: register #{i + 1} ({label})"
    unknown = set(raw) - _ROW
    if unknown:
        raise ProfileError(f"{where}: key {sorted(unknown)[0]!r}: unknown key (typo?)")
    if ("channel" in raw) == ("name" in raw):
        raise ProfileError(f"{where}: key 'channel': give exactly one of 'channel' or 'name'")
    repeat = _want(where, "repeat", raw.get("repeat", False), bool)
    if "channel" in raw:
        key = _want(where, "channel", raw["channel"], str)
        check = key.replace("{n}", "1") if repeat else key
        if check not in CHANNELS:
            raise ProfileError(f"{where}: key 'channel': unknown channel {key!r} (see core/channels.py)")
    else:
        key = _want(where, "name", raw["name"], str)
    if "address" not in raw:
        raise ProfileError(f"{where}: key 'address': is required")
    address = _want(where, "address", raw["address"], int)
    if not 0 <= address <= 0xFFFF:
        raise ProfileError(f"{where}: key 'address': {address} is not a register address 0..65535")
    table = _want(where, "table", raw.get("table", "holding"), str)
    if table not in TABLES:
        raise ProfileError(f"{where}: key 'table': {table!r} must be one of {TABLES}")
    if "type" not in raw:
        raise ProfileError(f"{where}: key 'type': is required")
    typ = _want(where, "type", raw["type"], str)
    if typ not in TYPES:
        raise ProfileError(f"{where}: key 'type': unknown type {typ!r}; known: {sorted(TYPES)}")
    scale = _want(where, "scale", raw.get("scale", 1.0), float)
    if scale == 0 or not math.isfinite(scale):
        raise ProfileError(f"{where}: key 'scale': must be finite and non-zero (got {scale})")
    offset = _want(where, "offset", raw.get("offset", 0.0), float)
    order = _want(where, "word_order", raw.get("word_order", default_order), str)
    if order not in ("big", "little"):
        raise ProfileError(f"{where}: key 'word_order': {order!r} must be 'big' or 'little'")
    t = TYPES[typ]
    nan = raw.get("nan")
    if nan is None and protocol == "sunspec":
        nan = SUNSPEC_NAN.get(typ)
    if nan is not None:
        nan = _want(where, "nan", nan, int)
        if not 0 <= nan < 1 << (16 * t.words):
            raise ProfileError(f"{where}: key 'nan': {nan:#x} is not a raw {typ} pattern "
                               f"(0..{(1 << 16 * t.words) - 1:#x})")
    sf = raw.get("scale_factor")
    if sf is not None:
        sf = _want(where, "scale_factor", sf, str)
        if not t.integer:
            raise ProfileError(f"{where}: key 'scale_factor': not allowed on {typ}")
    default = raw.get("default")
    if default is not None:
        default = _want(where, "default", default, float)
    model = raw.get("model")
    if protocol == "sunspec":
        if model is None:
            raise ProfileError(f"{where}: key 'model': is required in a SunSpec profile")
        model = _want(where, "model", model, int)
        if model not in models:
            raise ProfileError(f"{where}: key 'model': {model} is not a [[model]] of this profile")
        d = models[model]
        if repeat:
            if not d.module_length:
                raise ProfileError(f"{where}: key 'repeat': model {model} has no repeating modules")
            if address + t.words > d.module_length:
                raise ProfileError(f"{where}: key 'address': offset {address} outside the "
                                   f"{d.module_length}-register module")
        elif not 2 <= address or address + t.words > 2 + d.length:
            raise ProfileError(f"{where}: key 'address': offset {address} outside model {model} "
                               f"(points are at 2..{d.length + 1})")
    elif model is not None or repeat:
        raise ProfileError(f"{where}: key 'model': only SunSpec profiles have models")
    return Register(key=key, is_channel="channel" in raw, address=address, table=table, type=typ,
                    scale=scale, offset=offset, word_order=order, nan=nan, scale_factor=sf,
                    default=default, note=_want(where, "note", raw.get("note", ""), str),
                    model=model, repeat=repeat)


def load_profile(path: str | Path) -> Profile:
    """Read and validate one profile file; :class:`ProfileError` names file, row and key."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{p}: profile file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{p}: not valid TOML: {exc}") from None
    protocol = _want(f"{p}", "protocol", raw.get("protocol", "modbus"), str)
    if protocol not in ("modbus", "sunspec"):
        raise ProfileError(f"{p}: key 'protocol': {protocol!r} must be 'modbus' or 'sunspec'")
    unknown = set(raw) - _HEADER - ({"model"} if protocol == "sunspec" else set())
    if unknown:
        raise ProfileError(f"{p}: key {sorted(unknown)[0]!r}: unknown header key (typo?)")
    kind = _want(f"{p}", "kind", raw.get("kind"), str, "required")
    if kind not in DEVICE_KINDS:
        raise ProfileError(f"{p}: key 'kind': {kind!r} must be one of {DEVICE_KINDS}")
    order = _want(f"{p}", "word_order", raw.get("word_order", "big"), str)
    if order not in ("big", "little"):
        raise ProfileError(f"{p}: key 'word_order': {order!r} must be 'big' or 'little'")
    max_gap = _want(f"{p}", "max_gap", raw.get("max_gap", 4), int)
    if not 0 <= max_gap <= 64:
        raise ProfileError(f"{p}: key 'max_gap': must be 0..64 (got {max_gap})")
    models: dict[int, SunSpecModelDef] = {}
    if protocol == "sunspec":
        model_rows = raw.get("model")
        if not isinstance(model_rows, list) or not model_rows:
            raise ProfileError(f"{p}: key 'model': a SunSpec profile lists its models as [[model]] tables")
        for j, m in enumerate(model_rows):
            w = f"{p}: model #{j + 1}"
            if not isinstance(m, dict) or set(m) - {"id", "length", "module_length", "modules", "note"}:
                raise ProfileError(f"{w}: keys are id, length, module_length, modules, note")
            d = SunSpecModelDef(_want(w, "id", m.get("id"), int), _want(w, "length", m.get("length"), int),
                                _want(w, "module_length", m.get("module_length", 0), int),
                                _want(w, "modules", m.get("modules", 0), int))
            if d.id in models or not 1 <= d.id < SUNSPEC_END or d.length < 0:
                raise ProfileError(f"{w}: key 'id': model {d.id} duplicate or invalid")
            models[d.id] = d
    rows = raw.get("register")
    if not isinstance(rows, list) or not rows:
        raise ProfileError(f"{p}: key 'register': no [[register]] rows")
    regs = tuple(_row(p, i, r, order, protocol, models) for i, r in enumerate(rows))
    seen: dict[tuple, int] = {}
    for i, r in enumerate(regs):
        k = (r.model, r.key)
        if k in seen:
            raise ProfileError(f"{p}: register #{i + 1} ({r.key}): key 'channel': already given by "
                               f"register #{seen[k] + 1}")
        seen[k] = i
    for i, r in enumerate(regs):
        if r.scale_factor is not None:
            target = next((s for s in regs if s.key == r.scale_factor and s.model == r.model), None)
            if target is None or target.type != "sunssf":
                raise ProfileError(f"{p}: register #{i + 1} ({r.key}): key 'scale_factor': no sunssf row "
                                   f"named {r.scale_factor!r}" + (f" in model {r.model}" if r.model else ""))
    profile = Profile(
        id=p.stem, path=p, kind=kind, vendor=str(raw.get("vendor", "")), model=str(raw.get("model", ""))
        if protocol != "sunspec" else str(raw.get("description", "")),
        manual=str(raw.get("manual", "")), protocol=protocol, word_order=order, max_gap=max_gap,
        registers=regs, sunspec_models=tuple(models.values()),
    )
    try:
        if protocol == "sunspec":
            _check_overlaps_relative(profile)
            chain, _ = sunspec_layout(profile)
            blocks = ()
            plan_blocks(resolve_sunspec(profile, chain), max_gap=max_gap)
        else:
            blocks = tuple(plan_blocks(regs, max_gap=max_gap))
    except ProfileError as exc:
        raise ProfileError(f"{p}: {exc}") from None
    examples = tuple(_example(p, j, e, profile) for j, e in enumerate(raw.get("example", [])))
    return replace(profile, blocks=blocks, examples=examples)


def _check_overlaps_relative(profile: Profile) -> None:
    groups: dict[tuple, list[Register]] = {}
    for r in profile.registers:
        groups.setdefault((r.model, r.repeat), []).append(r)
    for (model, repeat), rows in groups.items():
        rows.sort(key=lambda r: r.address)
        for a, b in zip(rows, rows[1:], strict=False):
            if b.address < a.end:
                where = f"model {model}" + (" module" if repeat else "")
                raise ProfileError(f"registers {a.key!r} and {b.key!r} overlap in {where} "
                                   f"(offsets {a.address} and {b.address})")


def _example(p: Path, j: int, raw: dict, profile: Profile) -> Example:
    where = f"{p}: example #{j + 1}"
    if not isinstance(raw, dict) or set(raw) - {"channel", "name", "words", "value", "sf", "note"}:
        raise ProfileError(f"{where}: keys are channel|name, words, value, sf, note")
    key = raw.get("channel") or raw.get("name")
    if not any(r.key == key for r in profile.registers):
        raise ProfileError(f"{where}: key 'channel': no register row {key!r} in this profile")
    words = _want(where, "words", raw.get("words"), list)
    if not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in words):
        raise ProfileError(f"{where}: key 'words': must be a list of 16-bit words")
    value = raw.get("value")
    if value is not None:
        value = _want(where, "value", value, float)
    sf = raw.get("sf")
    return Example(key, tuple(words), value, None if sf is None else _want(where, "sf", sf, int))


def check_example(profile: Profile, ex: Example) -> float | None:
    """Decode an example's raw words with its row; returns the value (None = left out)."""
    r = next(r for r in profile.registers if r.key == ex.key)
    if len(ex.words) != r.words:
        raise ProfileError(f"{profile.path}: example {ex.key!r}: {len(ex.words)} words for a {r.type}")
    rows = [replace(r, address=1, model=None, repeat=False)]
    words = list(ex.words)
    if r.scale_factor is not None:
        rows.append(Register(key=r.scale_factor, is_channel=False, address=0, table=r.table, type="sunssf"))
        rows[0] = replace(rows[0], is_channel=True)
        words = [(ex.sf or 0) & 0xFFFF, *words]
        block = Block(r.table, 0, len(words), rows)
    else:
        rows[0] = replace(rows[0], is_channel=True, address=0)
        block = Block(r.table, 0, len(words), rows)
    return block.decode(words).get(r.key)


def load_profiles(dir: str | Path | None = None) -> dict[str, Profile]:  # noqa: A002 - the agreed signature
    """Load every Modbus/SunSpec ``*.toml`` in ``dir`` (default :data:`PROFILES_DIR`); id = file stem.

    DL/T 645 profiles (``*_dlt645_*.toml``) are data-identifier lists, loaded by :mod:`core.dlt645`."""
    d = Path(dir) if dir is not None else PROFILES_DIR
    if not d.is_dir():
        raise ProfileError(f"{d}: profile directory not found")
    return {f.stem: load_profile(f) for f in sorted(d.glob("*.toml")) if "_dlt645_" not in f.stem}

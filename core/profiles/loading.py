"""Reading and validating profile files; a ProfileError names file, row and key.

Conventions in :mod:`core.profiles`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from pathlib import Path

from core.channels import CHANNELS, DEVICE_KINDS
from core.profiles.planning import plan_blocks
from core.profiles.profile import Profile
from core.profiles.rows import (
    PROFILES_DIR,
    SUNSPEC_END,
    SUNSPEC_NAN,
    TABLES,
    TYPES,
    Block,
    Example,
    ProfileError,
    Register,
    SunSpecModelDef,
)
from core.profiles.sunspec import resolve_sunspec, sunspec_layout

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
    key = _row_key(where, raw, repeat)
    address = _row_address(where, raw)
    table = _want(where, "table", raw.get("table", "holding"), str)
    if table not in TABLES:
        raise ProfileError(f"{where}: key 'table': {table!r} must be one of {TABLES}")
    typ = _row_type(where, raw)
    scale = _want(where, "scale", raw.get("scale", 1.0), float)
    if scale == 0 or not math.isfinite(scale):
        raise ProfileError(f"{where}: key 'scale': must be finite and non-zero (got {scale})")
    offset = _want(where, "offset", raw.get("offset", 0.0), float)
    order = _word_order(where, raw.get("word_order", default_order))
    nan = _row_nan(where, raw, typ, protocol)
    sf = raw.get("scale_factor")
    if sf is not None:
        sf = _want(where, "scale_factor", sf, str)
        if not TYPES[typ].integer:
            raise ProfileError(f"{where}: key 'scale_factor': not allowed on {typ}")
    default = raw.get("default")
    if default is not None:
        default = _want(where, "default", default, float)
    model = _row_model(where, raw, protocol, models, repeat, address, TYPES[typ].words)
    return Register(key=key, is_channel="channel" in raw, address=address, table=table, type=typ,
                    scale=scale, offset=offset, word_order=order, nan=nan, scale_factor=sf,
                    default=default, note=_want(where, "note", raw.get("note", ""), str),
                    model=model, repeat=repeat)


def _row_key(where: str, raw: dict, repeat: bool) -> str:
    """The row's glossary channel (``{n}`` standing for the module number) or its name."""
    if "channel" not in raw:
        return _want(where, "name", raw["name"], str)
    key = _want(where, "channel", raw["channel"], str)
    check = key.replace("{n}", "1") if repeat else key
    if check not in CHANNELS:
        raise ProfileError(f"{where}: key 'channel': unknown channel {key!r} (see core/channels.py)")
    return key


def _row_address(where: str, raw: dict) -> int:
    if "address" not in raw:
        raise ProfileError(f"{where}: key 'address': is required")
    address = _want(where, "address", raw["address"], int)
    if not 0 <= address <= 0xFFFF:
        raise ProfileError(f"{where}: key 'address': {address} is not a register address 0..65535")
    return address


def _row_type(where: str, raw: dict) -> str:
    if "type" not in raw:
        raise ProfileError(f"{where}: key 'type': is required")
    typ = _want(where, "type", raw["type"], str)
    if typ not in TYPES:
        raise ProfileError(f"{where}: key 'type': unknown type {typ!r}; known: {sorted(TYPES)}")
    return typ


def _word_order(where: str, value) -> str:
    order = _want(where, "word_order", value, str)
    if order not in ("big", "little"):
        raise ProfileError(f"{where}: key 'word_order': {order!r} must be 'big' or 'little'")
    return order


def _row_nan(where: str, raw: dict, typ: str, protocol: str) -> int | None:
    """The raw "not available" pattern: given, or SunSpec's for the type, or none."""
    nan = raw.get("nan")
    if nan is None and protocol == "sunspec":
        nan = SUNSPEC_NAN.get(typ)
    if nan is not None:
        words = TYPES[typ].words
        nan = _want(where, "nan", nan, int)
        if not 0 <= nan < 1 << (16 * words):
            raise ProfileError(f"{where}: key 'nan': {nan:#x} is not a raw {typ} pattern "
                               f"(0..{(1 << 16 * words) - 1:#x})")
    return nan


def _row_model(where: str, raw: dict, protocol: str, models: dict[int, SunSpecModelDef], repeat: bool,
               address: int, words: int) -> int | None:
    """The SunSpec model of a row, its offset checked against the model (or module) length."""
    model = raw.get("model")
    if protocol != "sunspec":
        if model is not None or repeat:
            raise ProfileError(f"{where}: key 'model': only SunSpec profiles have models")
        return model
    if model is None:
        raise ProfileError(f"{where}: key 'model': is required in a SunSpec profile")
    model = _want(where, "model", model, int)
    if model not in models:
        raise ProfileError(f"{where}: key 'model': {model} is not a [[model]] of this profile")
    d = models[model]
    if repeat:
        if not d.module_length:
            raise ProfileError(f"{where}: key 'repeat': model {model} has no repeating modules")
        if address + words > d.module_length:
            raise ProfileError(f"{where}: key 'address': offset {address} outside the "
                               f"{d.module_length}-register module")
    elif not 2 <= address or address + words > 2 + d.length:
        raise ProfileError(f"{where}: key 'address': offset {address} outside model {model} "
                           f"(points are at 2..{d.length + 1})")
    return model


def load_profile(path: str | Path) -> Profile:
    """Read and validate one profile file; :class:`ProfileError` names file, row and key."""
    p = Path(path)
    raw = _read_toml(p)
    protocol, kind, order, max_gap = _header(p, raw)
    models = _sunspec_models(p, raw) if protocol == "sunspec" else {}
    rows = raw.get("register")
    if not isinstance(rows, list) or not rows:
        raise ProfileError(f"{p}: key 'register': no [[register]] rows")
    regs = tuple(_row(p, i, r, order, protocol, models) for i, r in enumerate(rows))
    _check_rows(p, regs)
    profile = Profile(
        id=p.stem, path=p, kind=kind, vendor=str(raw.get("vendor", "")), model=str(raw.get("model", ""))
        if protocol != "sunspec" else str(raw.get("description", "")),
        manual=str(raw.get("manual", "")), protocol=protocol, word_order=order, max_gap=max_gap,
        registers=regs, sunspec_models=tuple(models.values()),
    )
    blocks = _planned_blocks(p, profile)
    examples = tuple(_example(p, j, e, profile) for j, e in enumerate(raw.get("example", [])))
    return replace(profile, blocks=blocks, examples=examples)


def _read_toml(p: Path) -> dict:
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{p}: profile file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{p}: not valid TOML: {exc}") from None


def _header(p: Path, raw: dict) -> tuple[str, str, str, int]:
    """Protocol, device kind, default word order and block-read gap from the header keys."""
    protocol = _want(f"{p}", "protocol", raw.get("protocol", "modbus"), str)
    if protocol not in ("modbus", "sunspec"):
        raise ProfileError(f"{p}: key 'protocol': {protocol!r} must be 'modbus' or 'sunspec'")
    unknown = set(raw) - _HEADER - ({"model"} if protocol == "sunspec" else set())
    if unknown:
        raise ProfileError(f"{p}: key {sorted(unknown)[0]!r}: unknown header key (typo?)")
    kind = _want(f"{p}", "kind", raw.get("kind"), str, "required")
    if kind not in DEVICE_KINDS:
        raise ProfileError(f"{p}: key 'kind': {kind!r} must be one of {DEVICE_KINDS}")
    order = _word_order(f"{p}", raw.get("word_order", "big"))
    max_gap = _want(f"{p}", "max_gap", raw.get("max_gap", 4), int)
    if not 0 <= max_gap <= 64:
        raise ProfileError(f"{p}: key 'max_gap': must be 0..64 (got {max_gap})")
    return protocol, kind, order, max_gap


def _sunspec_models(p: Path, raw: dict) -> dict[int, SunSpecModelDef]:
    """The ``[[model]]`` tables of a SunSpec profile by model id."""
    model_rows = raw.get("model")
    if not isinstance(model_rows, list) or not model_rows:
        raise ProfileError(f"{p}: key 'model': a SunSpec profile lists its models as [[model]] tables")
    models: dict[int, SunSpecModelDef] = {}
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
    return models


def _check_rows(p: Path, regs: tuple[Register, ...]) -> None:
    """No channel given twice (per model), and every scale factor names a sunssf row."""
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


def _planned_blocks(p: Path, profile: Profile) -> tuple[Block, ...]:
    """The block reads of a Modbus profile (none for SunSpec, planned per device), checked either way."""
    try:
        if profile.protocol == "sunspec":
            _check_overlaps_relative(profile)
            chain, _ = sunspec_layout(profile)
            plan_blocks(resolve_sunspec(profile, chain), max_gap=profile.max_gap)
            return ()
        return tuple(plan_blocks(profile.registers, max_gap=profile.max_gap))
    except ProfileError as exc:
        raise ProfileError(f"{p}: {exc}") from None


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

"""SunSpec: walking the model chain and placing a profile's rows on it.

Conventions in :mod:`core.profiles`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from core.channels import CHANNELS
from core.profiles.rows import (
    SUNSPEC_END,
    SUNSPEC_MARKER,
    ChainIncomplete,
    ProfileError,
    Register,
    SunSpecModel,
)

if TYPE_CHECKING:
    from core.profiles.profile import Profile

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

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

The package is split by topic: ``rows`` (wire types, register rows, blocks and their decoding),
``planning`` (block reads), ``encoding``, ``sunspec`` (model chain), ``profile`` (the
:class:`Profile`) and ``loading`` (reading and validating the files); every name is re-exported here.
"""

from __future__ import annotations

from core.profiles.encoding import (  # noqa: F401
    encode,
    precision,
)
from core.profiles.loading import (  # noqa: F401
    _HEADER,
    _ROW,
    _check_overlaps_relative,
    _example,
    _row,
    _want,
    check_example,
    load_profile,
    load_profiles,
)
from core.profiles.planning import (  # noqa: F401
    plan_blocks,
)
from core.profiles.profile import (  # noqa: F401
    Profile,
)
from core.profiles.rows import (  # noqa: F401
    MAX_BLOCK,
    PROFILES_DIR,
    SUNSPEC_BASES,
    SUNSPEC_END,
    SUNSPEC_MARKER,
    SUNSPEC_NAN,
    TABLES,
    TYPES,
    Block,
    ChainIncomplete,
    Example,
    ProfileError,
    Register,
    SunSpecModel,
    SunSpecModelDef,
    WireType,
)
from core.profiles.sunspec import (  # noqa: F401
    parse_model_chain,
    resolve_sunspec,
    sunspec_layout,
)

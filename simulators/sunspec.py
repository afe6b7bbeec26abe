"""What a SunSpec inverter serves beyond the points a profile maps: identity, counts, "not implemented".

A profile (``profiles/pv_inverter_sunspec.toml``) names only the points the collector reads.  A real
SunSpec device fills every other register of its models too, and an independent SunSpec client reads
all of them, so the simulator serves, per model (SunSpec Information Model Reference, models 1, 103
and 160; point order and types as in the SunSpec model definitions):

* every point the device does not implement as that type's "not implemented" value (0xFFFF for
  uint16 and enum16, 0x8000 for int16, sunssf and pad, 0xFFFFFFFF for uint32 and bitfield32, 0 for
  acc32 and string registers), never as a plausible 0;
* model 1 (common): manufacturer, model, version, serial number (the device id) and the Modbus
  device address;
* model 103: the total AC current ``A``, the sum of the phase currents as served (same ``A_SF``);
  ``Evt2`` (mandatory) as 0, no event;
* model 160: ``N``, the number of modules in the model, and each module's ``ID`` (1..N) and
  ``IDStr`` ("MPPT k").

The profile's rows are encoded over this image on every update; :func:`derived_words` then adds
the points that follow from them (the total current).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.config import Device
from core.profiles import SunSpecModel

MANUFACTURER = "energyhost"
MODEL = "EH-PV-SIM three-phase"
VERSION = "1.0"

# "not implemented" word(s) of each SunSpec point type
NOT_IMPLEMENTED: dict[str, tuple[int, ...]] = {
    "uint16": (0xFFFF,), "enum16": (0xFFFF,), "count": (0xFFFF,),
    "int16": (0x8000,), "sunssf": (0x8000,), "pad": (0x8000,),
    "uint32": (0xFFFF, 0xFFFF), "bitfield32": (0xFFFF, 0xFFFF), "acc32": (0, 0),
}

# (name, type, registers) of each model's points after ID and L, in register order
_COMMON = (("Mn", "string", 16), ("Md", "string", 16), ("Opt", "string", 8), ("Vr", "string", 8),
           ("SN", "string", 16), ("DA", "uint16", 1), ("Pad", "pad", 1))
_INVERTER_3PH = (
    ("A", "uint16", 1), ("AphA", "uint16", 1), ("AphB", "uint16", 1), ("AphC", "uint16", 1),
    ("A_SF", "sunssf", 1), ("PPVphAB", "uint16", 1), ("PPVphBC", "uint16", 1), ("PPVphCA", "uint16", 1),
    ("PhVphA", "uint16", 1), ("PhVphB", "uint16", 1), ("PhVphC", "uint16", 1), ("V_SF", "sunssf", 1),
    ("W", "int16", 1), ("W_SF", "sunssf", 1), ("Hz", "uint16", 1), ("Hz_SF", "sunssf", 1),
    ("VA", "int16", 1), ("VA_SF", "sunssf", 1), ("VAr", "int16", 1), ("VAr_SF", "sunssf", 1),
    ("PF", "int16", 1), ("PF_SF", "sunssf", 1), ("WH", "acc32", 2), ("WH_SF", "sunssf", 1),
    ("DCA", "uint16", 1), ("DCA_SF", "sunssf", 1), ("DCV", "uint16", 1), ("DCV_SF", "sunssf", 1),
    ("DCW", "int16", 1), ("DCW_SF", "sunssf", 1), ("TmpCab", "int16", 1), ("TmpSnk", "int16", 1),
    ("TmpTrns", "int16", 1), ("TmpOt", "int16", 1), ("Tmp_SF", "sunssf", 1), ("St", "enum16", 1),
    ("StVnd", "enum16", 1), ("Evt1", "bitfield32", 2), ("Evt2", "bitfield32", 2),
    ("EvtVnd1", "bitfield32", 2), ("EvtVnd2", "bitfield32", 2), ("EvtVnd3", "bitfield32", 2),
    ("EvtVnd4", "bitfield32", 2))
_MPPT = (("DCA_SF", "sunssf", 1), ("DCV_SF", "sunssf", 1), ("DCW_SF", "sunssf", 1), ("DCWH_SF", "sunssf", 1),
         ("Evt", "bitfield32", 2), ("N", "count", 1), ("TmsPer", "uint16", 1))
_MPPT_MODULE = (("ID", "uint16", 1), ("IDStr", "string", 8), ("DCA", "uint16", 1), ("DCV", "uint16", 1),
                ("DCW", "uint16", 1), ("DCWH", "acc32", 2), ("Tms", "uint32", 2), ("Tmp", "int16", 1),
                ("DCSt", "enum16", 1), ("DCEvt", "bitfield32", 2))
POINTS = {1: _COMMON, 103: _INVERTER_3PH, 160: _MPPT}
MODULE_POINTS = {160: _MPPT_MODULE}


def offsets(points: Sequence[tuple[str, str, int]], first: int = 2) -> dict[str, tuple[int, str, int]]:
    """``{name: (offset, type, registers)}`` of points laid out one after the other from ``first``."""
    out, at = {}, first
    for name, kind, size in points:
        out[name] = (at, kind, size)
        at += size
    return out


def string_words(text: str, registers: int) -> list[int]:
    """ASCII ``text`` as SunSpec string registers: two characters a register, NUL-padded, cut to fit."""
    raw = text.encode("ascii", "replace")[: 2 * registers].ljust(2 * registers, b"\0")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


def _blank(points: Mapping[str, tuple[int, str, int]], start: int) -> dict[int, int]:
    words = {}
    for at, kind, size in points.values():
        fill = NOT_IMPLEMENTED.get(kind, (0,) * size)        # string: all registers 0
        for k in range(size):
            words[start + at + k] = fill[k] if k < len(fill) else 0
    return words


def _put(words: dict[int, int], address: int, values: Sequence[int]) -> None:
    for k, w in enumerate(values):
        words[address + k] = w


def _modules(model: SunSpecModel) -> int:
    fixed = sum(size for _, _, size in POINTS[model.id])
    return (model.length - fixed) // sum(size for _, _, size in MODULE_POINTS[model.id])


def base_words(chain: Sequence[SunSpecModel], device: Device) -> dict[int, int]:
    """The image under the profile's rows: "not implemented" everywhere, then identity and counts."""
    words: dict[int, int] = {}
    for model in chain:
        points = offsets(POINTS.get(model.id, ()))
        words.update(_blank(points, model.start))
        if model.id == 1:
            for name, text in (("Mn", MANUFACTURER), ("Md", MODEL), ("Vr", VERSION), ("SN", device.id)):
                at, _, size = points[name]
                _put(words, model.start + at, string_words(text, size))
            words[model.start + points["DA"][0]] = device.unit_id
        elif model.id == 103:
            _put(words, model.start + points["Evt2"][0], (0, 0))
        elif model.id in MODULE_POINTS:
            module = offsets(MODULE_POINTS[model.id], first=0)
            module_len = sum(size for _, _, size in MODULE_POINTS[model.id])
            n = _modules(model)
            words[model.start + points["N"][0]] = n
            first = model.start + 2 + sum(size for _, _, size in POINTS[model.id])
            for k in range(n):
                start = first + k * module_len
                words.update(_blank(module, start))
                words[start + module["ID"][0]] = k + 1
                _put(words, start + module["IDStr"][0], string_words(f"MPPT {k + 1}", module["IDStr"][2]))
    return words


def derived_words(chain: Sequence[SunSpecModel], words: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Points that follow from the encoded rows: model 103's total current, the sum of the phases.

    A phase "not implemented" makes the total not implemented; a sum beyond uint16 saturates.
    """
    out = {}
    points = offsets(_INVERTER_3PH)
    for model in chain:
        if model.id != 103:
            continue
        phases = [words.get(("holding", model.start + points[p][0])) for p in ("AphA", "AphB", "AphC")]
        if any(w is None for w in phases):
            continue                                        # no phase encoded in this update
        total = 0xFFFF if 0xFFFF in phases else min(sum(phases), 0xFFFE)
        out[("holding", model.start + points["A"][0])] = total
    return out

"""DL/T 645-2007 codec and data-identifier profiles, shared by the collector and the simulator.

Frame (DL/T 645-2007 §7)::

    [FE FE FE FE]  68  A0 A1 A2 A3 A4 A5  68  C  L  DATA…  CS  16

* address: 12 BCD digits of the nameplate, the lowest two digits (A0) first on the wire;
  ``AAAAAAAAAAAA`` is the broadcast address (read-address request);
* C: ``11`` read data, ``91`` normal answer, ``B1`` answer with more to follow, ``D1`` error answer
  (one error byte), ``13`` read address, ``93`` its answer;
* every DATA byte travels +33H; CS = sum of the bytes from the first ``68`` to the end of DATA, mod 256;
* the 4-byte data identifier (DI) goes low byte first; values are BCD, low byte first, a signed
  item carries its sign in bit 7 of the highest byte.

The ``dlt645`` package on PyPI was not used: its server takes the address A5-first, answers foreign
addresses with an error frame, refuses PF 1.000 and energies >= 800000 kWh, and its client decodes
the max-demand time in the wrong byte order.  This codec is checked against hand-made frames in
``tests/core/test_dlt645.py``.

A DL/T 645 profile (``profiles/meter_dlt645_*.toml``) lists ``[[item]]`` rows: ``channel``, ``di``
(8 hex digits, high byte first as in the standard's tables), ``format`` (``XXXXXX.XX``: digits and
decimals), ``signed``, ``scale`` (to the channel's SI unit, e.g. 1000 for kWh → Wh) and ``type``:
``number``, ``demand`` (value + ``YYMMDDhhmm`` time of the maximum, the time stored in
``time_channel``), ``date`` (``YYMMDDWW``) or ``time`` (``hhmmss``) of the meter clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.channels import CHANNELS, DEVICE_KINDS

PREAMBLE = b"\xfe\xfe\xfe\xfe"
BROADCAST = "AAAAAAAAAAAA"
C_READ, C_READ_OK, C_READ_MORE, C_READ_ERR = 0x11, 0x91, 0xB1, 0xD1
C_READ_ADDR, C_READ_ADDR_OK = 0x13, 0x93


@dataclass(frozen=True)
class Standard:
    """Control codes and DI width of one edition: 2007 (4-byte DI) or 1997 (2-byte DI, C = 01H/81H/C1H)."""

    name: str
    read: int
    ok: int
    more: int
    error: int
    di_len: int


STANDARDS = {"2007": Standard("2007", C_READ, C_READ_OK, C_READ_MORE, C_READ_ERR, 4),
             "1997": Standard("1997", 0x01, 0x81, 0xA1, 0xC1, 2)}
MAX_DATA = 200                    # DL/T 645-2007 §7.1: L <= 200 for a read answer
ITEM_TYPES = ("number", "demand", "date", "time")
PROFILE_GLOB = "*_dlt645_*.toml"
#: TOU period name (analytics.tariffs) -> the meter's tariff register 1..4 (尖 critical, 峰 peak, 平 flat, 谷 valley)
TOU_REGISTER = {"critical": 1, "peak": 2, "flat": 3, "valley": 4, "deep_valley": 4}
ERROR_BITS = {0x02: "no_data", 0x04: "password", 0x08: "baud", 0x10: "year_zones",
              0x20: "day_periods", 0x40: "tariffs", 0x01: "other"}


class FrameError(ValueError):
    """Bytes that are not a valid DL/T 645 frame (checksum, end byte, length, BCD)."""


@dataclass(frozen=True)
class Frame:
    address: str            # 12 digits, as on the nameplate (A5 … A0)
    control: int
    data: bytes             # with the 33H offset removed


def encode_address(address: str) -> bytes:
    """Nameplate address (12 digits, or ``AAAAAAAAAAAA``) → 6 wire bytes, A0 (lowest digits) first."""
    if address.upper() == BROADCAST:
        return b"\xaa" * 6
    if len(address) != 12 or not address.isdigit():
        raise ValueError(f"DL/T 645 address must be 12 decimal digits, got {address!r}")
    return bytes(int(address[i:i + 2], 16) for i in range(10, -1, -2))


def decode_address(raw: bytes) -> str:
    if raw == b"\xaa" * 6:
        return BROADCAST
    return "".join(f"{b:02X}" for b in reversed(raw))


@functools.lru_cache(maxsize=8192)
def build_frame(address: str, control: int, data: bytes = b"", *, preamble: bool = True) -> bytes:
    """One frame (``data`` given without the 33H offset); cached: a poller sends the same few dozen
    request frames over and over."""
    if len(data) > 255:
        raise ValueError(f"DL/T 645 data field of {len(data)} bytes > 255")
    body = b"\x68" + encode_address(address) + b"\x68" + bytes((control, len(data)))
    body += bytes((b + 0x33) & 0xFF for b in data)
    return (PREAMBLE if preamble else b"") + body + bytes((sum(body) & 0xFF, 0x16))


def di_bytes(di: int, width: int = 4) -> bytes:
    return di.to_bytes(width, "little")


def read_request(address: str, di: int, standard: str = "2007") -> bytes:
    """Read-data request (2007: C = 11H, 4-byte DI e.g. ``0x00010000``; 1997: C = 01H, 2-byte DI e.g. ``0x9010``)."""
    std = STANDARDS[standard]
    return build_frame(address, std.read, di_bytes(di, std.di_len))


def read_address_request() -> bytes:
    """Read-address request (C = 13H) to the broadcast address."""
    return build_frame(BROADCAST, C_READ_ADDR)


def parse_frame(raw: bytes) -> Frame:
    """One complete frame, preamble allowed; :class:`FrameError` says what is wrong."""
    start = raw.find(b"\x68")
    if start < 0 or any(b != 0xFE for b in raw[:start]):
        raise FrameError("no 68H start byte after the FEH preamble")
    frame, end = _parse_at(raw, start)
    if frame is None:
        raise FrameError(f"frame incomplete: {len(raw) - start} bytes")
    if end != len(raw):
        raise FrameError(f"{len(raw) - end} bytes after the 16H end byte")
    return frame


def _parse_at(buf: bytes | bytearray, i: int) -> tuple[Frame | None, int]:
    """Frame starting at ``buf[i] == 0x68``: (frame, end index), (None, i) if incomplete."""
    if len(buf) - i < 12:
        return None, i
    if buf[i + 7] != 0x68:
        raise FrameError("second 68H missing after the address")
    n = buf[i + 9]
    end = i + 12 + n
    if len(buf) < end:
        return None, i
    if sum(buf[i:end - 2]) & 0xFF != buf[end - 2]:
        raise FrameError(f"checksum {buf[end - 2]:02X}H, expected {sum(buf[i:end - 2]) & 0xFF:02X}H")
    if buf[end - 1] != 0x16:
        raise FrameError(f"end byte {buf[end - 1]:02X}H instead of 16H")
    data = bytes((b - 0x33) & 0xFF for b in buf[i + 10:end - 2])
    return Frame(decode_address(bytes(buf[i + 1:i + 7])), buf[i + 8], data), end


def take_frame(buf: bytearray) -> tuple[Frame | None, int]:
    """Deframe a byte stream: the first valid frame in ``buf`` and how many bytes it consumed.

    Garbage and FEH before a 68H are skipped; a 68H that does not start a valid frame is skipped
    too (the next one is tried), so line noise never wedges the stream.  ``(None, n)``: no complete
    frame yet, ``n`` leading bytes can be dropped.
    """
    i = 0
    while True:
        i = buf.find(b"\x68", i)
        if i < 0:
            return None, len(buf)
        try:
            frame, end = _parse_at(buf, i)
        except FrameError:
            i += 1
            continue
        if frame is None:
            return None, i
        return frame, end


# ---------------------------------------------------------------- BCD values

def _fmt(fmt: str) -> tuple[int, int]:
    """``XXXXXX.XX`` → (8 digits, 2 decimals)."""
    whole, _, frac = fmt.partition(".")
    if set(whole + frac) - {"X"} or not whole or (len(whole) + len(frac)) % 2:
        raise ValueError(f"format {fmt!r}: X digits, one optional point, an even digit count")
    return len(whole) + len(frac), len(frac)


def bcd_decode(raw: bytes, fmt: str, signed: bool = False) -> float:
    """Little-endian BCD → number; sign in bit 7 of the highest byte when ``signed``."""
    digits, decimals = _fmt(fmt)
    if len(raw) != digits // 2:
        raise FrameError(f"{fmt}: {len(raw)} bytes, expected {digits // 2}")
    b = bytearray(raw)
    negative = signed and bool(b[-1] & 0x80)
    if signed:
        b[-1] &= 0x7F
    text = "".join(f"{x:02X}" for x in reversed(b))
    if not text.isdigit():
        raise FrameError(f"{fmt}: not BCD: {raw.hex()}")
    value = int(text) / 10 ** decimals
    return -value if negative else value


def bcd_encode(value: float, fmt: str, signed: bool = False) -> bytes:
    """Number → little-endian BCD; saturates at the format's range (sign bit 7 when ``signed``)."""
    digits, decimals = _fmt(fmt)
    limit = 10 ** digits - 1 if not signed else 10 ** (digits - 1) * 8 - 1
    n = min(limit, round(abs(value) * 10 ** decimals))
    raw = bytearray(int(f"{n:0{digits}d}"[i:i + 2], 16) for i in range(digits - 2, -2, -2))
    if signed and value < 0 and n:
        raw[-1] |= 0x80
    return bytes(raw)


def _bcd_int(b: int) -> int:
    if b >> 4 > 9 or b & 0xF > 9:
        raise FrameError(f"not BCD: {b:02X}H")
    return (b >> 4) * 10 + (b & 0xF)


def decode_stamp(raw: bytes) -> tuple[int, ...]:
    """Little-endian BCD fields, returned most significant first (``YYMMDDhhmm`` → (YY, MM, DD, hh, mm))."""
    return tuple(_bcd_int(b) for b in reversed(raw))


def encode_stamp(fields: tuple[int, ...]) -> bytes:
    return bytes(int(f"{v:02d}", 16) for v in reversed(fields))


def demand_time(fields: tuple[int, ...], tz: dt.tzinfo) -> float:
    """``(YY, MM, DD, hh, mm)`` in the meter's local time → unix seconds."""
    yy, mo, dd, hh, mi = fields
    return dt.datetime(2000 + yy, mo, dd, hh, mi, tzinfo=tz).timestamp()


# ---------------------------------------------------------------- profiles

@dataclass(frozen=True)
class Item:
    channel: str
    di: int
    type: str = "number"
    format: str = "XXXXXX.XX"
    signed: bool = False
    scale: float = 1.0
    time_channel: str | None = None

    @property
    def size(self) -> int:
        if self.type == "date":
            return 4
        if self.type == "time":
            return 3
        return _fmt(self.format)[0] // 2 + (5 if self.type == "demand" else 0)


@dataclass(frozen=True)
class Dlt645Profile:
    id: str
    path: Path
    kind: str
    vendor: str
    model: str
    manual: str
    items: tuple[Item, ...]
    protocol: str = "dlt645"
    standard: str = "2007"

    @property
    def std(self) -> Standard:
        return STANDARDS[self.standard]

    @property
    def channels(self) -> tuple[str, ...]:
        out = [i.channel for i in self.items if i.type in ("number", "demand")]
        out += [i.time_channel for i in self.items if i.time_channel]
        if any(i.type == "time" for i in self.items):
            out.append("meter_clock_offset")
        return tuple(out)


class Dlt645ProfileError(ValueError):
    """A DL/T 645 profile is invalid; the message names file, row and key."""


def _item(where: str, raw: dict, di_len: int = 4) -> Item:
    allowed = {"channel", "di", "type", "format", "signed", "scale", "time_channel", "note"}
    if not isinstance(raw, dict) or set(raw) - allowed:
        bad = sorted(set(raw) - allowed)[0] if isinstance(raw, dict) else "item"
        raise Dlt645ProfileError(f"{where}: key {bad!r}: unknown (keys: {sorted(allowed)})")
    di = raw.get("di")
    if not isinstance(di, str) or len(di) != 2 * di_len:
        raise Dlt645ProfileError(f"{where}: key 'di': {2 * di_len} hex digits, got {di!r}")
    try:
        item = Item(channel=raw.get("channel", ""), di=int(di, 16), type=raw.get("type", "number"),
                    format=raw.get("format", "XXXXXX.XX"), signed=bool(raw.get("signed", False)),
                    scale=float(raw.get("scale", 1.0)), time_channel=raw.get("time_channel"))
        item.size  # noqa: B018 - validates the format
    except ValueError as exc:
        raise Dlt645ProfileError(f"{where}: {exc}") from None
    if item.type not in ITEM_TYPES:
        raise Dlt645ProfileError(f"{where}: key 'type': {item.type!r} must be one of {ITEM_TYPES}")
    for key in ("channel", "time_channel"):
        name = getattr(item, key)
        if (name is not None or key == "channel") and name not in CHANNELS and item.type in ("number", "demand"):
            raise Dlt645ProfileError(f"{where}: key {key!r}: unknown channel {name!r} (core/channels.py)")
    return item


def load_dlt645_profile(path: str | Path) -> Dlt645Profile:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise Dlt645ProfileError(f"{p}: cannot read: {exc}") from None
    if raw.get("protocol") != "dlt645":
        raise Dlt645ProfileError(f"{p}: key 'protocol': must be 'dlt645'")
    if raw.get("kind") not in DEVICE_KINDS:
        raise Dlt645ProfileError(f"{p}: key 'kind': must be one of {DEVICE_KINDS}")
    standard = raw.get("standard", "2007")
    if standard not in STANDARDS:
        raise Dlt645ProfileError(f"{p}: key 'standard': must be one of {sorted(STANDARDS)}")
    rows = raw.get("item")
    if not isinstance(rows, list) or not rows:
        raise Dlt645ProfileError(f"{p}: key 'item': no [[item]] rows")
    items = tuple(_item(f"{p}: item #{i + 1}", r, STANDARDS[standard].di_len) for i, r in enumerate(rows))
    dis = [i.di for i in items]
    if len(set(dis)) != len(dis):
        raise Dlt645ProfileError(f"{p}: key 'di': a data identifier is listed twice")
    return Dlt645Profile(id=p.stem, path=p, kind=raw["kind"], vendor=str(raw.get("vendor", "")),
                         model=str(raw.get("model", "")), manual=str(raw.get("manual", "")), items=items,
                         standard=standard)


def load_dlt645_profiles(directory: str | Path | None = None) -> dict[str, Dlt645Profile]:
    from core.profiles import PROFILES_DIR

    d = Path(directory) if directory is not None else PROFILES_DIR
    return {f.stem: load_dlt645_profile(f) for f in sorted(d.glob(PROFILE_GLOB))}


def decode_item(item: Item, data: bytes, tz: dt.tzinfo) -> dict[str, float]:
    """The answer DATA of one item (DI stripped) → channel values (SI units).  Date/time items
    return ``{"_date": (YY, MM, DD)}`` / ``{"_time": (hh, mm, ss)}`` for the caller to combine."""
    if len(data) != item.size:
        raise FrameError(f"DI {item.di:08X}: {len(data)} data bytes, expected {item.size}")
    if item.type == "date":
        yy, mo, dd, _wd = decode_stamp(data)
        return {"_date": (yy, mo, dd)}
    if item.type == "time":
        return {"_time": decode_stamp(data)}
    n = _fmt(item.format)[0] // 2
    out = {item.channel: bcd_decode(data[:n], item.format, item.signed) * item.scale}
    if item.type == "demand" and item.time_channel:
        stamp = decode_stamp(data[n:])
        out[item.time_channel] = demand_time(stamp, tz) if any(stamp) else 0.0
    return out


def encode_item(item: Item, values: dict[str, float], meter_time: dt.datetime) -> bytes:
    """Channel values (SI) → the answer DATA of one item; ``meter_time`` = the meter clock (local)."""
    if item.type == "date":
        return encode_stamp((meter_time.year % 100, meter_time.month, meter_time.day, meter_time.isoweekday() % 7))
    if item.type == "time":
        return encode_stamp((meter_time.hour, meter_time.minute, meter_time.second))
    raw = bcd_encode(values.get(item.channel, 0.0) / item.scale, item.format, item.signed)
    if item.type == "demand":
        t = values.get(item.time_channel or "", 0.0)
        if t > 0:
            lt = dt.datetime.fromtimestamp(t, meter_time.tzinfo)
            raw += encode_stamp((lt.year % 100, lt.month, lt.day, lt.hour, lt.minute))
        else:
            raw += bytes(5)
    return raw

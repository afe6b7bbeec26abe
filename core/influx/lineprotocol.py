"""Line protocol: escaping and encoding :class:`~core.model.Point` for ``/write``.

Line protocol facts for InfluxDB 1.6.7 that shape the escaping rules were measured on that
version (reliability.md §9): no escape exists for a newline, a backslash in a tag is stored
verbatim, NaN and Inf cannot be stored (such fields are dropped and counted).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import orjson

from core.influx.errors import LineProtocolError
from core.model import FloatFields, Point

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


_MEAS_ESC = str.maketrans({",": "\\,", " ": "\\ "})
_KEY_ESC = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STR_ESC = str.maketrans({'"': '\\"', "\\": "\\\\"})
_FORBIDDEN = re.compile(r"[\\\n\r]")


def _check_name(kind: str, s: str) -> None:
    # InfluxDB 1.6.7 (measured): no escape exists for a newline; "\\" in a tag is stored verbatim
    # and a trailing "\" escapes the separator after it ("invalid tag format").  So names
    # containing a backslash or a line break are refused rather than silently altered.
    if not isinstance(s, str):
        raise LineProtocolError(f"{kind} must be a string, got {type(s).__name__} {s!r}")
    if not s:
        raise LineProtocolError(f"{kind} is empty")
    if _FORBIDDEN.search(s):
        raise LineProtocolError(f"{kind} {s!r} contains a backslash or line break (not representable)")


def escape_measurement(name: str) -> str:
    """Escape a measurement name (``,`` and space); refuse ``\\``, line breaks and a leading ``#``."""
    _check_name("measurement", name)
    if name.startswith("#"):
        raise LineProtocolError(f"measurement {name!r} starts with '#' (a comment line in line protocol)")
    return name.translate(_MEAS_ESC)


def escape_key(key: str, kind: str = "tag key") -> str:
    """Escape a tag key, tag value or field key (``,``, ``=``, space)."""
    _check_name(kind, key)
    return key.translate(_KEY_ESC)


escape_tag = escape_key


def escape_field_key(key: str) -> str:
    return escape_key(key, "field key")


def escape_string(value: str) -> str:
    """A quoted line-protocol string field value (``"`` and ``\\`` escaped; newlines are kept)."""
    return '"' + value.translate(_STR_ESC) + '"'


def format_field_value(value: Any) -> str | None:
    """Line-protocol text of one field value; None for NaN/±Inf (never sent).

    floats as ``repr`` (shortest round-trip), ints with ``i``, bools ``true``/``false``,
    strings quoted.  numpy scalars are converted first (numpy 2 ``repr`` is ``np.float64(...)``).
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        f = float(value)
        return repr(f) if math.isfinite(f) else None
    if isinstance(value, int | np.integer):
        i = int(value)
        if not INT64_MIN <= i <= INT64_MAX:
            raise LineProtocolError(f"integer {i} outside int64")
        return f"{i}i"
    if isinstance(value, str):
        return escape_string(value)
    raise LineProtocolError(f"unsupported field type {type(value).__name__} ({value!r})")


_prefix_cache: dict[tuple, tuple[str, bytes]] = {}
_fkey_cache: dict[str, str] = {}


def _prefix(measurement: str, tags: dict[str, str]) -> tuple[str, bytes]:
    """The escaped ``measurement,tag=value,...`` of a series, as text and as bytes (cached)."""
    key = (measurement, *tags.items())
    got = _prefix_cache.get(key)
    if got is None:
        parts = [escape_measurement(measurement)]
        for k in sorted(tags):
            parts.append(f"{escape_key(k)}={escape_key(tags[k], f'tag {k!r} value')}")
        text = ",".join(parts)
        got = (text, text.encode())
        if len(_prefix_cache) > 50_000:
            _prefix_cache.clear()
        _prefix_cache[key] = got
    return got


def _encode(p: Point) -> tuple[str | None, int, str | None]:
    """(line or None, non-finite fields dropped, reason when no line)."""
    try:
        prefix = _prefix(p.measurement, p.tags)[0]
        parts = []
        dropped = 0
        for k, v in p.fields.items():
            ek = _fkey_cache.get(k)
            if ek is None:
                ek = escape_field_key(k)
                _fkey_cache[k] = ek
            if type(v) is float:                 # fast path for the common case
                if v - v == 0.0:
                    parts.append(f"{ek}={v!r}")
                else:
                    dropped += 1
                continue
            text = format_field_value(v)
            if text is None:
                dropped += 1
                continue
            parts.append(f"{ek}={text}")
        t = p.time_ns
        if type(t) is not int and (isinstance(t, bool) or not isinstance(t, np.integer)) or \
                not INT64_MIN < int(t) <= INT64_MAX:
            raise LineProtocolError(f"time_ns must be an int64 number of ns, got {t!r}")
    except LineProtocolError as exc:
        return None, 0, str(exc)
    except (AttributeError, TypeError) as exc:
        return None, 0, f"not a Point: {exc}"
    if not parts:
        return None, dropped, "no finite field value (NaN/Inf dropped)" if dropped else "no field"
    return f"{prefix} {','.join(parts)} {int(t)}", dropped, None


def point_to_line(p: Point) -> str:
    """One line of line protocol for ``p`` (tags sorted, NaN/Inf fields dropped).

    Raises :class:`LineProtocolError` naming the point when it cannot be written.
    """
    line, _dropped, why = _encode(p)
    if line is None:
        raise LineProtocolError(f"point {p.measurement!r} {p.tags!r} at {p.time_ns!r}: {why}")
    return line


class Encoded(NamedTuple):
    lines: list[bytes]
    nonfinite_dropped: int                      # NaN/Inf field values left out
    rejected: list[tuple[Point, str]]           # points with no line, and why


_plain_keysets: set[tuple] = set()
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELDSET = bytes.maketrans(b":", b"=")         # with '"{}' deleted: {"a":1.5,"b":2.0} -> a=1.5,b=2.0


def _float_fields_line(p: Point) -> bytes | None:
    """The line for a point whose fields are :class:`~core.model.FloatFields`; None if it is not
    as clean as promised (then the general encoder decides).

    orjson writes ``{"k":v,...}`` with shortest round-trip floats (the same doubles as
    ``repr``); with glossary keys and finite floats, dropping the quotes and braces and turning
    ``:`` into ``=`` gives exactly the field set of line protocol, ~5x faster than per-field
    formatting.
    """
    t, fields = p.time_ns, p.fields
    if type(t) is not int or not INT64_MIN < t <= INT64_MAX or not fields:
        return None
    keys = tuple(fields)
    if keys not in _plain_keysets:          # each key set is checked once: nothing to escape
        if not all(map(_PLAIN_KEY.fullmatch, keys)):
            return None
        if len(_plain_keysets) > 10_000:
            _plain_keysets.clear()
        _plain_keysets.add(keys)
    try:
        body = orjson.dumps(fields)
    except orjson.JSONEncodeError:          # e.g. a numpy scalar
        return None
    # Values are the builder's promise (finite floats) and are not re-checked here: a broken
    # promise (NaN written as null, a str, a bool) makes InfluxDB refuse that one line with a 400,
    # which quarantines it, counted as rejected (never lost silently, never spoils the batch).
    try:
        prefix = _prefix(p.measurement, p.tags)[1]
    except (LineProtocolError, AttributeError, TypeError):      # the general encoder names the fault
        return None
    return b"%s %s %d" % (prefix, body.translate(_FIELDSET, b'"{}'), t)


def encode_points(points: Iterable[Point]) -> Encoded:
    """Encode many points; bad points are returned with their reason, never raised."""
    lines: list[bytes] = []
    rejected: list[tuple[Point, str]] = []
    nonfinite = 0
    for p in points:
        if type(p.fields) is FloatFields:
            fast = _float_fields_line(p)
            if fast is not None:
                lines.append(fast)
                continue
        line, dropped, why = _encode(p)
        nonfinite += dropped
        if line is None:
            rejected.append((p, why or "unknown"))
        else:
            lines.append(line.encode())
    return Encoded(lines, nonfinite, rejected)


def points_to_lines(points: Iterable[Point]) -> bytes:
    """Line-protocol body for ``points`` (newline-separated); raises on the first bad point."""
    enc = encode_points(points)
    if enc.rejected:
        p, why = enc.rejected[0]
        raise LineProtocolError(f"point {p!r}: {why}")
    return b"\n".join(enc.lines)

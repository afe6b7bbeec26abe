"""The only package that talks to InfluxDB: line protocol, ``/write``, ``/query``, and the :class:`Writer`.

Modules: :mod:`~core.influx.lineprotocol` (escaping, encoding), :mod:`~core.influx.client`
(HTTP ``/ping``, ``/write``, ``/query`` with bound params), :mod:`~core.influx.arrays` (answers into
numpy columns, MessagePack decoding), :mod:`~core.influx.writer` (batching, spool, accounting),
:mod:`~core.influx.errors`.

Only the v1 HTTP API is used (``/ping``, ``/write`` with line protocol, ``/query`` with InfluxQL
and bound parameters ``params=``): InfluxDB 1.x serves it natively, 2.x and 3.x through their
v1 compatibility endpoints (auth ``Authorization: Token ...``).  Flux and ``/api/v2`` do not
exist on 1.x, so ``influxdb-client`` is not a dependency: its write/query APIs need them, and its
line-protocol serializer took ~27 µs per 15-field point here (our plain code ~5 µs),
writes a tag value's backslash as ``\\\\``, which InfluxDB 1.6.7 stores verbatim (measured),
and silently returns an empty line for a NaN-only point instead of counting it.

Error policy::

    InfluxError
    ├── InfluxWriteError(status, message)   /write failed; status 0 = transport (refused, timeout,
    │                                       TLS certificate not verified, plain HTTP to an HTTPS server)
    └── InfluxQueryError(status, message)   /query failed or a statement returned an error
        └── StatementRefused(message)       not a read-only statement: never sent (status 0)
    LineProtocolError (ValueError)          a point that line protocol cannot carry

Writer accounting (``Writer.stats()``), true at every instant::

    received = written + pending + rejected + dropped

``pending`` = buffered + in flight + spooled; ``rejected`` = points that cannot be stored
(encoding errors, 400 quarantined; each with a dead-letter line); ``dropped`` = spool byte cap
(oldest first) and spool records found corrupt.  What the cap drops is also counted per site and
device in ``<spool>/dropped.json`` (:class:`core.spool.DropLedger`), logged as an ERROR and
written as ``ingest_health`` points once InfluxDB answers; the analytics raise a critical
``readings_dropped`` alarm from them (reliability.md §1).  Line protocol facts for InfluxDB 1.6.7 that
shape the escaping rules were measured on that version (reliability.md §9).
"""

from core.influx.arrays import Table, decode_msgpack, series_of, series_to_arrays
from core.influx.client import ARRAYS_ACCEPT, InfluxClient, check_read_only, tls_context
from core.influx.errors import (
    InfluxError,
    InfluxQueryError,
    InfluxWriteError,
    LineProtocolError,
    StatementRefused,
)
from core.influx.lineprotocol import (
    INT64_MAX,
    INT64_MIN,
    Encoded,
    encode_points,
    escape_field_key,
    escape_key,
    escape_measurement,
    escape_string,
    format_field_value,
    point_to_line,
    points_to_lines,
)
from core.influx.writer import INGEST_HEALTH, Writer

__all__ = [
    "ARRAYS_ACCEPT", "INGEST_HEALTH", "INT64_MAX", "INT64_MIN", "Encoded", "InfluxClient", "InfluxError",
    "InfluxQueryError", "InfluxWriteError", "LineProtocolError", "StatementRefused", "Table", "Writer", "decode_msgpack",
    "encode_points", "escape_field_key", "escape_key", "escape_measurement", "escape_string",
    "format_field_value", "point_to_line", "points_to_lines", "series_of", "series_to_arrays", "tls_context", "check_read_only",
]

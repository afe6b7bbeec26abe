"""Errors of the InfluxDB client and writer.

Error policy::

    InfluxError
    ├── InfluxWriteError(status, message)   /write failed; status 0 = transport (refused, timeout,
    │                                       TLS certificate not verified, plain HTTP to an HTTPS server)
    └── InfluxQueryError(status, message)   /query failed or a statement returned an error
        └── StatementRefused(message)       not a read-only statement: never sent (status 0)
    LineProtocolError (ValueError)          a point that line protocol cannot carry
"""

from __future__ import annotations


class InfluxError(Exception):
    """Base of every InfluxDB error raised here."""


class InfluxWriteError(InfluxError):
    """``/write`` failed.  ``status`` is the HTTP status, or 0 for a transport error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB write failed ({status or 'no HTTP answer'}): {message}")
        self.status = status
        self.message = message

    @property
    def retryable(self) -> bool:
        """True for transport errors, timeouts and 5xx (the data is fine, the server is not)."""
        return self.status == 0 or self.status >= 500 or self.status == 429


class InfluxQueryError(InfluxError):
    """``/query`` failed, or one of its statements returned an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB query failed ({status or 'no HTTP answer'}): {message}")
        self.status = status
        self.message = message


class StatementRefused(InfluxQueryError):
    """A statement the read path does not send: anything but one ``SELECT`` without ``INTO`` or one ``SHOW``."""

    def __init__(self, message: str) -> None:
        InfluxError.__init__(self, f"InfluxDB query refused before sending: {message}")
        self.status = 0
        self.message = message


class LineProtocolError(ValueError):
    """A point cannot be written as line protocol; the message names the point and the part."""

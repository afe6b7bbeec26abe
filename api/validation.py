"""Validated input types of the API and the handler that reports validation errors.

One home for the checks every route shares, so a bad value answers 422 with a clear message
instead of reaching the store or InfluxDB and answering 500:

* :data:`ApiTime` / :data:`ApiDate` — a time or date inside :data:`TIME_MIN` .. :data:`TIME_MAX`
  (after 1970 and well inside the int64-nanosecond range of the store and of InfluxDB);
  a value without offset is taken as UTC.
* :data:`Month` — ``YYYY-MM`` with the year in the same range.
* :data:`ApiId` — a registry id (``[a-z0-9][a-z0-9_.-]{0,63}``) without ``..``.
* :func:`check_text` — no lone UTF-16 surrogates in request text (``"\\ud800"`` in JSON decodes
  to a Python string that no UTF-8 database, log or response can hold).
* :func:`validation_error_handler` — the 422 body for any input: values that JSON cannot carry
  (NaN, Infinity, lone surrogates, bytes) are shown as escaped text, long ones cut.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, Field

TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)          # exclusive; int64 ns ends in 2262
_RANGE = f"{TIME_MIN:%Y-%m-%d} .. {TIME_MAX:%Y-%m-%d} (UTC, end excluded)"
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_SHOWN = 200                                       # characters of a bad value echoed back


def _in_range(t: datetime) -> datetime:
    """``t`` as an aware datetime (UTC if it had no offset) if inside the range; ValueError otherwise."""
    aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    # a difference of aware datetimes never overflows (astimezone() can, at year 1 or 9999)
    if not timedelta(0) <= aware - TIME_MIN < TIME_MAX - TIME_MIN:
        raise ValueError(f"time must be within {_RANGE}")
    return aware


def _date_in_range(d: date) -> date:
    if not TIME_MIN.date() <= d < TIME_MAX.date():
        raise ValueError(f"date must be within {_RANGE}")
    return d


def check_month(text: str) -> str:
    """``YYYY-MM`` inside the time range; ValueError otherwise."""
    m = _MONTH_RE.match(text)
    if m is None:
        raise ValueError("month must be YYYY-MM")
    if not TIME_MIN.year <= int(m.group(1)) < TIME_MAX.year:
        raise ValueError(f"month must be within {_RANGE}")
    return text


def check_id(text: str) -> str:
    if not _ID_RE.match(text) or ".." in text:
        raise ValueError("id must match [a-z0-9][a-z0-9_.-]{0,63} and not contain '..'")
    return text


def check_text(value: Any) -> Any:
    """Refuse lone surrogates anywhere in ``value`` (str, or dict / list of them); return it unchanged."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                raise ValueError("text must be valid Unicode (a lone UTF-16 surrogate such as \\ud800 is not)")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return value


ApiTime = Annotated[datetime, AfterValidator(_in_range),
                    Field(description=f"ISO 8601 time within {_RANGE}; without offset: UTC")]
ApiDate = Annotated[date, AfterValidator(_date_in_range), Field(description=f"date within {_RANGE}")]
Month = Annotated[str, Field(pattern=_MONTH_RE.pattern, description="month YYYY-MM"), AfterValidator(check_month)]
ApiId = Annotated[str, Field(max_length=64, pattern=ID_PATTERN), AfterValidator(check_id)]


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as something :func:`json.dumps` (``allow_nan=False``) and UTF-8 can always carry."""
    if value is None or isinstance(value, bool | int):
        return value if not isinstance(value, int) or abs(value) < 2**63 else str(value)[:MAX_SHOWN]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = value[:MAX_SHOWN]
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth < 4 and isinstance(value, dict):
        return {str(json_safe(k, depth + 1)): json_safe(v, depth + 1) for k, v in list(value.items())[:20]}
    if depth < 4 and isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in list(value)[:20]]
    return json_safe(repr(value), depth)


def error_list(exc: RequestValidationError) -> list[dict]:
    """The errors of ``exc`` as FastAPI shows them (type, loc, msg, input, ctx), every value JSON-safe."""
    out = []
    for e in exc.errors():
        item = {"type": e.get("type"), "loc": [json_safe(x) for x in e.get("loc", ())], "msg": json_safe(e.get("msg"))}
        if "input" in e:
            item["input"] = json_safe(e["input"])
        if e.get("ctx"):
            item["ctx"] = {k: json_safe(v if isinstance(v, str | int | float) else str(v)) for k, v in e["ctx"].items()}
        out.append(item)
    return out


async def validation_error_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's error list, for any input (the default handler fails on NaN and lone surrogates)."""
    return JSONResponse({"detail": error_list(exc)}, status_code=422)


def document_422(app: FastAPI) -> None:
    """Say in the OpenAPI document what a 422 carries: the validation-error list, or one message
    (a rule checked past the schema: "end must be after start", "device ... is not on site ...")."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = build()
            detail = doc.get("components", {}).get("schemas", {}).get("HTTPValidationError", {}) \
                .get("properties", {}).get("detail")
            if detail is not None and "anyOf" not in detail:
                doc["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"] = {
                    "title": "Detail", "anyOf": [{k: v for k, v in detail.items() if k != "title"},
                                                 {"type": "string", "description": "one message"}]}
        return app.openapi_schema

    app.openapi = openapi

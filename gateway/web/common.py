"""What every resource module of the API shares: the app key of the Gateway, reading query
parameters and bodies (each refusal a BAD_REQUEST naming its parameter), and rendering JSON.

Parsing only: no rule of docgw's lives here (those are in gateway/usecases and gateway/domain).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import IO

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from envelopes.errors import TextInvalid
from envelopes.xmltext import check_text
from gateway.bootstrap import Gateway
from gateway.web.problems import BadRequest, PayloadTooLarge

API = "/api/v1"
GATEWAY = web.AppKey("gateway", Gateway)

#: JSON request bodies (operator actions, status replies, units) are small; this bounds them.
JSON_BODY_LIMIT = 1 << 20
CHUNK = 1 << 16
MAX_PAGE = 200


# ---------------------------------------------------------------------------- query parameters


def reject_unknown_parameters(query: Mapping[str, str], known: frozenset[str]) -> None:
    for name in query:
        if name not in known:
            raise BadRequest(f"unknown parameter (known: {', '.join(sorted(known))})", element=name)


def limit(query: Mapping[str, str], *, default: int) -> int:
    value = query.get("limit")
    if value is None:
        return min(default, MAX_PAGE)
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"must be a whole number from 1 to {MAX_PAGE}", element="limit")
    return int(value)


@web.middleware
async def text_parameters(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Path and query parameters with characters XML cannot carry (NUL, a byte that was not
    UTF-8, …) are refused (400) before a handler looks them up: the database would fail on them.
    They are the request's own form, not text docgw would send: BAD_REQUEST, naming them."""
    try:
        for name, value in request.match_info.items():
            check_text(value, element=name)
        for name, value in request.query.items():
            check_text(name, element="(query)")
            check_text(value, element=name)
    except TextInvalid as exc:
        raise BadRequest(exc.message, element=exc.element) from None
    return await handler(request)


# ------------------------------------------------------------------------------------ bodies


def check_size(request: web.Request, limit: int) -> None:
    """Refuse a body over the limit: at once when its declared length says so, else as soon as
    the bytes received pass it (chunked uploads declare nothing)."""
    declared = request.content_length
    received = request.content.total_bytes
    if (declared is not None and declared > limit) or received > limit:
        raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")


async def spool_body(request: web.Request, out: IO[bytes], limit: int) -> None:
    check_size(request, limit)
    async for chunk in request.content.iter_chunked(CHUNK):
        check_size(request, limit)
        # Writes to a spooled file land in memory or the page cache: not worth a thread.
        out.write(chunk)
    out.seek(0)


@contextlib.contextmanager
def multipart_errors() -> Iterator[None]:
    """aiohttp's multipart reader says "malformed" with ValueError/RuntimeError/BadHttpMessage."""
    try:
        yield
    except (ValueError, RuntimeError, HttpProcessingError) as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from exc


def media_type(request: web.Request) -> str:
    """The request's media type, lower case, without parameters. (aiohttp's content_type parses
    the parameters with the email package: a fifth of a submission's own CPU time.) Without the
    header, application/octet-stream, as aiohttp says (RFC 9110 §8.3)."""
    header = request.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
    return header.partition(";")[0].strip().lower()


# --------------------------------------------------------------------------------- rendering


def _jsonable(value: object) -> object:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_dumps = functools.partial(json.dumps, default=_jsonable, ensure_ascii=False)


def json_response(
    data: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def limit_parameter() -> dict[str, object]:
    """``limit``: a page's size (the document's default is ``[api] page_size``)."""
    return {
        "name": "limit",
        "in": "query",
        "description": f"items per page, 1 to {MAX_PAGE}",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    }


async def send_chunks(
    request: web.Request,
    response: web.StreamResponse,
    chunks: AsyncIterator[bytes],
    *,
    first: bytes = b"",
) -> web.StreamResponse:
    """Headers first, then the chunks as they come (``first``: one already read from them):
    memory holds one chunk at a time. Whatever holds the bytes (a connection, a spool) is
    released when the chunks end or the client goes away."""
    try:
        await response.prepare(request)
        if first:
            await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    return response

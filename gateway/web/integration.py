"""The local document system's side of the API: downloads of what arrived (or was sent).

    method  path                                   roles                      calls
    GET     /api/v1/messages/{id}/package          admin, operator, member*   downloads.package
    GET     /api/v1/messages/{id}/attachments/{n}  admin, operator, member*   downloads.attachment

    * a member sees only its unit's messages (the API's rule, app._visible); a classified
      message's content goes only to a member of its unit, opened only on a secure-profile
      gateway (downloads.py).

Registered by ``app.create_app`` through :func:`add_routes`.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import hdrs, web

from gateway.store import queries
from gateway.store.records import MessageRecord
from gateway.usecases import downloads
from gateway.usecases.errors import NotFound
from gateway.web.app import API, GATEWAY, _visible
from gateway.web.auth import EVERYONE, PRINCIPAL, allow, member_unit
from gateway.web.problems import BadRequest


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(f"{API}/messages/{{id}}/package", download_package, name="package")
    router.add_get(
        f"{API}/messages/{{id}}/attachments/{{n}}", download_attachment, name="attachment"
    )


@allow(EVERYONE)
async def download_package(request: web.Request) -> web.StreamResponse:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    message = await _visible_message(request)
    found = await downloads.package(gateway, message, reader=principal)
    return await _stream(request, found)


@allow(EVERYONE)
async def download_attachment(request: web.Request) -> web.StreamResponse:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    number = _attachment_number(request.match_info["n"])
    message = await _visible_message(request)
    found = await downloads.attachment(gateway, message, number, reader=principal)
    return await _stream(request, found)


async def _visible_message(request: web.Request) -> MessageRecord:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    message_id = request.match_info["id"]
    async with gateway.reader.connect() as conn:
        message = await queries.get_message(conn, message_id)
    if message is None or not _visible(message, member_unit(principal)):
        raise NotFound(f"no message {message_id}", element="id")
    return message


def _attachment_number(value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 6 or int(value) < 1:
        raise BadRequest("the attachment number is 1, 2, … (its place in the package)", element="n")
    return int(value)


async def _stream(request: web.Request, found: downloads.Download) -> web.StreamResponse:
    """Headers first, then the chunks as they come: memory holds one chunk at a time. Whatever
    holds the bytes (a connection, a spool) is released when the chunks end or the client
    goes away."""
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: found.media_type,
            hdrs.CONTENT_DISPOSITION: content_disposition(found.filename),
            "X-Content-Type-Options": "nosniff",
            # As the drop folder's "sealed": true: the bytes are a seal, not edXML.
            "Docgw-Sealed": "true" if found.sealed else "false",
        }
    )
    response.content_length = found.size
    chunks = found.chunks
    try:
        await response.prepare(request)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    return response


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the real one in RFC 8187 form (Vietnamese
    names are the rule, not the exception)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename
    )
    encoded = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"

"""The local document system's side of the API: the feed of what happened, acknowledgements of
what it took, and downloads of what arrived (or was sent).

    method  path                                   roles                      calls
    GET     /api/v1/feed                           admin, operator, member*   events.read_feed
    POST    /api/v1/messages/{id}/ack              admin, operator, member*   events.acknowledge
    GET     /api/v1/handover                       admin, operator, member*   events.handed_over
    POST    /api/v1/webhooks                       admin                      webhooks.add
    GET     /api/v1/webhooks                       admin                      webhooks.listing
    DELETE  /api/v1/webhooks/{wid}                 admin                      webhooks.remove
    POST    /api/v1/webhooks/{wid}/replay          admin                      webhooks.replay
    GET     /api/v1/messages/{id}/package          admin, operator, member*   downloads.package
    GET     /api/v1/messages/{id}/attachments/{n}  admin, operator, member*   downloads.attachment

    * a member sees only its unit's messages (messages.visible_to); a classified
      message's content goes only to a member of its unit, opened only on a secure-profile
      gateway (downloads.py).

Its :data:`ROUTES` are added by ``app.create_app``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import urllib.parse
from typing import Any

from aiohttp import hdrs, web

from envelopes.model import StatusCode
from gateway.store.events import Waiting
from gateway.store.records import MessageRecord
from gateway.store.webhooks import Endpoint
from gateway.usecases import downloads, events, messages, webhooks
from gateway.usecases.errors import Forbidden
from gateway.usecases.statuses import REPLY_CODES
from gateway.web import bodies
from gateway.web.auth import ADMIN, EVERYONE, PRINCIPAL, allow, member_unit
from gateway.web.common import (
    API,
    GATEWAY,
    flag,
    json_response,
    limit,
    reject_unknown_parameters,
)
from gateway.web.problems import BadRequest, StatusCodeInvalid
from gateway.web.routes import Routes

ROUTES = Routes(tag="integration")


# ---------------------------------------------------------------------------------------- feed


@ROUTES.get(f"{API}/feed", name="feed")
@allow(EVERYONE)
async def read_feed(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    query = request.query
    reject_unknown_parameters(query, frozenset({"after", "limit"}))
    page = await events.read_feed(
        gateway,
        after=_feed_cursor(query.get("after")),
        limit=limit(query, default=gateway.settings.api.page_size),
        unit_code=member_unit(principal),
    )
    return json_response(
        {"items": [events.event_document(e) for e in page.items], "next_cursor": str(page.cursor)}
    )


def _feed_cursor(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BadRequest("not a cursor this API returned", element="after")
    return int(value)


@ROUTES.post(f"{API}/messages/{{id}}/ack", name="ack")
@allow(EVERYONE)
async def acknowledge(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    known = ("unit", "reply", "description", "staff_info")
    body = await bodies.read_object(request, known) if request.body_exists else {}
    unit = bodies.text(body, "unit")
    own = member_unit(principal)
    if own is not None and unit not in (None, own):
        raise Forbidden(f"a member token of {own} acknowledges for {own} only", element="unit")
    taken = await events.acknowledge(
        gateway,
        request.match_info["id"],
        actor=principal.name,
        member_unit=own,
        unit=unit,
        reply=_ack_reply(body),
    )
    return json_response(
        {
            "message_id": request.match_info["id"],
            "taken": [{"unit": t.unit_code, "taken_at": t.taken_at, "now": t.now} for t in taken],
        },
        status=201 if any(t.now for t in taken) else 200,
    )


def _ack_reply(body: dict[str, Any]) -> events.Reply | None:
    """The optional status sent with an ack: a receiver's code, as ``POST …/status`` takes."""
    value = body.get("reply")
    if value is None:
        return None
    if not isinstance(value, str) or value not in REPLY_CODES or StatusCode(value).sent_by_sender:
        receiver_codes = [c for c in REPLY_CODES if not StatusCode(c).sent_by_sender]
        raise StatusCodeInvalid(
            f"a receiver's status: one of {', '.join(receiver_codes)}", element="reply"
        )
    return events.Reply(
        code=StatusCode(value),
        description=bodies.text(body, "description"),
        staff=bodies.staff_info(body.get("staff_info")),
    )


@ROUTES.get(f"{API}/handover", name="handover")
@allow(EVERYONE)
async def handover(request: web.Request) -> web.Response:
    """Received documents per local unit: taken (when, by whom) or still waiting."""
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    query = request.query
    reject_unknown_parameters(query, frozenset({"waiting", "limit", "cursor"}))
    page_size = limit(query, default=gateway.settings.api.page_size)
    found = await events.handed_over(
        gateway,
        waiting_only=flag(query, "waiting"),
        unit_code=member_unit(principal),
        after=_handover_cursor(query.get("cursor")),
        limit=page_size + 1,
    )
    page = found[:page_size]
    return json_response(
        {
            "items": [
                {
                    "message_id": w.message_id,
                    "unit": w.unit_code,
                    "document_id": w.document_id,
                    "sender": w.sender,
                    "received_at": w.received_at,
                    "taken_at": w.taken_at,
                    "taken_by": w.taken_by,
                }
                for w in page
            ],
            "next_cursor": _encode_handover(page[-1]) if len(found) > page_size else None,
        }
    )


def _encode_handover(last: Waiting) -> str:
    raw = json.dumps([last.received_at.isoformat(), last.message_id, last.unit_code])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _handover_cursor(value: str | None) -> tuple[dt.datetime, str, str] | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        moment, message_id, unit = json.loads(raw)
        at = dt.datetime.fromisoformat(moment)
        if at.tzinfo is None or not isinstance(message_id, str) or not isinstance(unit, str):
            raise ValueError(value)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("not a cursor this API returned", element="cursor") from None
    return at, message_id, unit


# ------------------------------------------------------------------------------------ webhooks


@ROUTES.post(f"{API}/webhooks", name="add_webhook")
@allow(ADMIN)
async def add_webhook(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await bodies.read_object(request, ("url", "unit"))
    endpoint, secret = await webhooks.add(
        gateway,
        url=bodies.required_text(body, "url"),
        unit_code=bodies.text(body, "unit"),
        actor=principal.name,
    )
    # The secret is shown this once: the list never shows it.
    return json_response({**webhook_view(endpoint), "secret": secret}, status=201)


@ROUTES.get(f"{API}/webhooks", name="webhooks")
@allow(ADMIN)
async def list_webhooks(request: web.Request) -> web.Response:
    reject_unknown_parameters(request.query, frozenset())
    found = await webhooks.listing(request.app[GATEWAY])
    return json_response({"items": [webhook_view(e) for e in found]})


@ROUTES.delete(f"{API}/webhooks/{{wid}}", name="remove_webhook")
@allow(ADMIN)
async def remove_webhook(request: web.Request) -> web.Response:
    await webhooks.remove(request.app[GATEWAY], request.match_info["wid"])
    return web.Response(status=204)


@ROUTES.post(f"{API}/webhooks/{{wid}}/replay", name="replay_webhook")
@allow(ADMIN)
async def replay_webhook(request: web.Request) -> web.Response:
    body = await bodies.read_object(request, ("after",))
    after = body.get("after")
    if not isinstance(after, str):
        raise BadRequest('a feed cursor (a string; "0": from the start)', element="after")
    await webhooks.replay(
        request.app[GATEWAY], request.match_info["wid"], after=_feed_cursor(after)
    )
    return json_response({"id": request.match_info["wid"], "after": after})


def webhook_view(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint and its delivery state; never its secret."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "unit": endpoint.unit_code,
        "cursor": str(endpoint.position),
        "pending": endpoint.pending,
        "failures": endpoint.failures,
        "next_attempt_at": endpoint.next_attempt_at,
        "last_error": endpoint.last_error,
        "last_attempt_at": endpoint.last_attempt_at,
        "last_delivered_at": endpoint.last_delivered_at,
        "created_at": endpoint.created_at,
        "created_by": endpoint.created_by,
    }


# ------------------------------------------------------------------------------------ downloads


@ROUTES.get(f"{API}/messages/{{id}}/package", name="package")
@allow(EVERYONE)
async def download_package(request: web.Request) -> web.StreamResponse:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    message = await _visible_message(request)
    found = await downloads.package(gateway, message, reader=principal)
    return await _stream(request, found)


@ROUTES.get(f"{API}/messages/{{id}}/attachments/{{n}}", name="attachment")
@allow(EVERYONE)
async def download_attachment(request: web.Request) -> web.StreamResponse:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    number = _attachment_number(request.match_info["n"])
    message = await _visible_message(request)
    found = await downloads.attachment(gateway, message, number, reader=principal)
    return await _stream(request, found)


async def _visible_message(request: web.Request) -> MessageRecord:
    return await messages.visible_message(
        request.app[GATEWAY], request.match_info["id"], member_unit=member_unit(request[PRINCIPAL])
    )


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

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

    * a member sees only its unit's messages (the API's rule, store.visibility); a classified
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
from typing import Annotated, Any

from aiohttp import hdrs, web
from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema

from envelopes.model import StatusCode
from gateway.domain.business import RECEIVER_REPLY_CODES, StatusCodeInvalid
from gateway.store.events import Waiting
from gateway.store.records import MessageRecord
from gateway.store.webhooks import Endpoint
from gateway.usecases import downloads, events, messages, webhooks
from gateway.usecases.events import EVENT_TYPES
from gateway.usecases.parameters import flag
from gateway.web.auth import ADMIN, EVERYONE, PRINCIPAL, allow, member_unit
from gateway.web.bodies import (
    Body,
    OptionalText,
    Reply,
    RequiredText,
    read_body,
    refusal,
    render,
)
from gateway.web.common import (
    API,
    GATEWAY,
    limit,
    limit_parameter,
    reject_unknown_parameters,
    send_chunks,
)
from gateway.web.messages import StaffInfoBody
from gateway.web.problems import BadRequest
from gateway.web.routes import (
    CONFLICT,
    NOT_FOUND,
    UNPROCESSABLE,
    Response,
    Routes,
    path_parameter,
    query_names,
    query_parameter,
)

ROUTES = Routes(tag="integration")
MESSAGE_ID = path_parameter("id", "the message's id")
WEBHOOK_ID = path_parameter("wid", "the webhook's id")
_MEMBER = "a member sees its unit's only"


class Event(Reply):
    cursor: str = Field(description="resume after this event: ?after=<cursor>")
    event_id: str = Field(description="stable: the same event is the same id")
    type: str = Field(json_schema_extra={"enum": list(EVENT_TYPES)})
    message_id: str | None
    document_id: str | None
    unit: str | None = Field(description="the local unit concerned")
    peer: str | None = Field(description="sender, reporter or recipient")
    status_code: str | None
    status_message_id: str | None
    reason: str | None
    occurred_at: dt.datetime
    classification: str | None
    subject: str | None = Field(description="null for a classified message")
    links: dict[str, str]


class Feed(Reply):
    """One page; next_cursor is the last item's cursor (or `after` when empty)"""

    items: list[Event]
    next_cursor: str


class TakenBy(Reply):
    unit: str
    taken_at: dt.datetime
    now: bool = Field(description="false: taken before")


class Taken(Reply):
    """Taken now"""

    message_id: str
    taken: list[TakenBy]


class HandedOver(Reply):
    message_id: str
    unit: str
    document_id: str
    sender: str
    received_at: dt.datetime
    taken_at: dt.datetime | None
    taken_by: str | None


class Handover(Reply):
    """One page, oldest first"""

    items: list[HandedOver]
    next_cursor: str | None


class Webhook(Reply):
    id: str
    url: str
    unit: str | None = Field(description="null: every event")
    cursor: str = Field(description="the last event delivered")
    pending: int = Field(description="events waiting for it")
    failures: int = Field(description="consecutive failed attempts")
    next_attempt_at: dt.datetime | None
    last_error: str | None
    last_attempt_at: dt.datetime | None
    last_delivered_at: dt.datetime | None
    created_at: dt.datetime
    created_by: str


class WebhookAdded(Webhook):
    """Registered; events from now on are delivered to it"""

    secret: str = Field(description="shown in this answer only")


class WebhookList(Reply):
    """All of them (never their secrets)"""

    items: list[Webhook]


class Replayed(Reply):
    """Rewound"""

    id: str
    after: str


_status_code_invalid = refusal(StatusCodeInvalid)
_bad_request = refusal(BadRequest)


def _receiver_code(value: object) -> StatusCode | None:
    """The optional status sent with an ack: a receiver's code, as ``POST …/status`` takes."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in RECEIVER_REPLY_CODES:
        raise _status_code_invalid(f"a receiver's status: one of {', '.join(RECEIVER_REPLY_CODES)}")
    return StatusCode(value)


def _cursor_text(value: object) -> str:
    if not isinstance(value, str):
        raise _bad_request('a feed cursor (a string; "0": from the start)')
    return value


class Acknowledgement(Body):
    unit: OptionalText = None
    # Any JSON value is read, so that a number is STATUS_CODE_INVALID too.
    reply: Annotated[
        Any,
        AfterValidator(_receiver_code),
        WithJsonSchema({"type": "string", "enum": RECEIVER_REPLY_CODES}),
    ] = None
    description: OptionalText = None
    staff_info: StaffInfoBody | None = None


class NewWebhook(Body):
    url: RequiredText
    unit: OptionalText = None


class Replay(Body):
    after: Annotated[Any, AfterValidator(_cursor_text), WithJsonSchema({"type": "string"})] = Field(
        None, validate_default=True
    )
    model_config = ConfigDict(json_schema_extra={"required": ["after"]})


# ---------------------------------------------------------------------------------------- feed

FEED_QUERY = [
    query_parameter("after", "a cursor this feed returned; none: the start"),
    limit_parameter(),
]


@ROUTES.get(
    f"{API}/feed",
    name="read_feed",
    summary="Events after a cursor, in the feed's total order",
    notes=_MEMBER,
    ok={200: Feed},
    parameters=FEED_QUERY,
)
@allow(EVERYONE)
async def read_feed(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    query = request.query
    reject_unknown_parameters(query, query_names(FEED_QUERY))
    page = await events.read_feed(
        gateway,
        after=_feed_cursor(query.get("after")),
        limit=limit(query, default=gateway.settings.api.page_size),
        unit_code=member_unit(principal),
    )
    return render(
        Feed(
            items=[Event.model_validate(events.event_document(e)) for e in page.items],
            next_cursor=str(page.cursor),
        )
    )


def _feed_cursor(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BadRequest("not a cursor this API returned", element="after")
    return int(value)


@ROUTES.post(
    f"{API}/messages/{{id}}/ack",
    name="acknowledge_message",
    summary="The local system took this received document (idempotent)",
    notes=f"{_MEMBER}; staff may name the unit",
    ok={201: Taken,
        200: Response(description="Taken before: the first time stands", body=Taken)},
    # 409: a sender's status as the reply; 422: a reply code, its reason or a text refused.
    errors=(NOT_FOUND, CONFLICT, UNPROCESSABLE),
    parameters=[MESSAGE_ID],
    body=Acknowledgement,
    body_required=False,
)  # fmt: skip
@allow(EVERYONE)
async def acknowledge(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await read_body(request, Acknowledgement) if request.body_exists else Acknowledgement()
    reply = None
    if body.reply is not None:
        staff = body.staff_info.staff_info() if body.staff_info is not None else None
        reply = events.Reply(code=body.reply, description=body.description, staff=staff)
    taken = await events.acknowledge(
        gateway,
        request.match_info["id"],
        actor=principal.name,
        member_unit=member_unit(principal),
        unit=body.unit,
        reply=reply,
    )
    answer = Taken(
        message_id=request.match_info["id"],
        taken=[TakenBy(unit=t.unit_code, taken_at=t.taken_at, now=t.now) for t in taken],
    )
    return render(answer, status=201 if any(t.now for t in taken) else 200)


HANDOVER_QUERY = [
    query_parameter("waiting", "true: only those not taken yet", {"type": "boolean"}),
    limit_parameter(),
    query_parameter("cursor", "next_cursor of the previous page (opaque)"),
]


@ROUTES.get(
    f"{API}/handover",
    name="list_handover",
    summary="Received documents per local unit: taken (when, by whom) or waiting",
    notes=_MEMBER,
    ok={200: Handover},
    parameters=HANDOVER_QUERY,
)
@allow(EVERYONE)
async def handover(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    query = request.query
    reject_unknown_parameters(query, query_names(HANDOVER_QUERY))
    page_size = limit(query, default=gateway.settings.api.page_size)
    found = await events.handed_over(
        gateway,
        waiting_only=flag(query, "waiting"),
        unit_code=member_unit(principal),
        after=_handover_cursor(query.get("cursor")),
        limit=page_size + 1,
    )
    page = found[:page_size]
    return render(
        Handover(
            items=[
                HandedOver(
                    message_id=w.message_id,
                    unit=w.unit_code,
                    document_id=w.document_id,
                    sender=w.sender,
                    received_at=w.received_at,
                    taken_at=w.taken_at,
                    taken_by=w.taken_by,
                )
                for w in page
            ],
            next_cursor=_encode_handover(page[-1]) if len(found) > page_size else None,
        )
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


@ROUTES.post(
    f"{API}/webhooks",
    name="add_webhook",
    summary="Register a webhook endpoint; its secret is in this answer only",
    ok={201: WebhookAdded},
    errors=(NOT_FOUND, UNPROCESSABLE),
    body=NewWebhook,
)
@allow(ADMIN)
async def add_webhook(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await read_body(request, NewWebhook)
    endpoint, secret = await webhooks.add(
        gateway, url=body.url, unit_code=body.unit, actor=principal.name
    )
    # The secret is shown this once: the list never shows it.
    return render(WebhookAdded(**webhook_view(endpoint), secret=secret), status=201)


@ROUTES.get(
    f"{API}/webhooks",
    name="list_webhooks",
    summary="Webhook endpoints and their delivery state (never their secrets)",
    ok={200: WebhookList},
)
@allow(ADMIN)
async def list_webhooks(request: web.Request) -> web.Response:
    reject_unknown_parameters(request.query, frozenset())
    found = await webhooks.listing(request.app[GATEWAY])
    return render(WebhookList(items=[Webhook(**webhook_view(e)) for e in found]))


@ROUTES.delete(
    f"{API}/webhooks/{{wid}}",
    name="remove_webhook",
    summary="Remove a webhook endpoint",
    ok={204: Response(description="Removed")},
    errors=(NOT_FOUND,),
    parameters=[WEBHOOK_ID],
)
@allow(ADMIN)
async def remove_webhook(request: web.Request) -> web.Response:
    await webhooks.remove(request.app[GATEWAY], request.match_info["wid"])
    return web.Response(status=204)


@ROUTES.post(
    f"{API}/webhooks/{{wid}}/replay",
    name="replay_webhook",
    summary="Deliver again every event after a feed cursor",
    ok={200: Replayed},
    errors=(NOT_FOUND, UNPROCESSABLE),
    parameters=[WEBHOOK_ID],
    body=Replay,
)
@allow(ADMIN)
async def replay_webhook(request: web.Request) -> web.Response:
    body = await read_body(request, Replay)
    await webhooks.replay(
        request.app[GATEWAY], request.match_info["wid"], after=_feed_cursor(body.after)
    )
    return render(Replayed(id=request.match_info["wid"], after=body.after))


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


_DOWNLOAD_NOTES = (
    "a member sees its unit's messages only; a classified message's content: a member of its "
    "unit only (else 403 CLASSIFIED_READER_REFUSED), and only where this gateway holds the key "
    "its copy is sealed for (else 409 PACKAGE_NOT_OPENABLE)"
)
_DOWNLOAD = {
    "ok": {
        200: Response(
            description="The bytes, streamed, with Content-Length and Content-Disposition "
            "(filename*=UTF-8'' …)",
            body={"*/*": {"schema": {"type": "string", "format": "binary"}}},
        )
    },
    "errors": (NOT_FOUND, CONFLICT),
    "notes": _DOWNLOAD_NOTES,
}


@ROUTES.get(
    f"{API}/messages/{{id}}/package",
    name="download_package",
    summary="The signed package as received or sent (a classified one opened)",
    parameters=[MESSAGE_ID],
    **_DOWNLOAD,
)
@allow(EVERYONE)
async def download_package(request: web.Request) -> web.StreamResponse:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    message = await _visible_message(request)
    found = await downloads.package(gateway, message, reader=principal)
    return await _stream(request, found)


@ROUTES.get(
    f"{API}/messages/{{id}}/attachments/{{n}}",
    name="download_attachment",
    summary="One attachment, decoded, with its signed name and media type",
    parameters=[
        MESSAGE_ID,
        path_parameter(
            "n",
            "1 for the first attachment in the package, 2 for the next …",
            {"type": "integer", "minimum": 1},
        ),
    ],
    **_DOWNLOAD,
)
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
    """The download with its headers, streamed (:func:`~gateway.web.common.send_chunks`)."""
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
    return await send_chunks(request, response, found.chunks)


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the real one in RFC 8187 form (Vietnamese
    names are the rule, not the exception)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename
    )
    encoded = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"

"""Messages: submit, list, show, the operator's actions on them and the local system's status
replies.

    method  path                               roles                      calls
    POST    /api/v1/messages                   admin, operator, member    submit.submit_document
    GET     /api/v1/messages                   admin, operator, member*   messages.list_page
    GET     /api/v1/messages/{id}              admin, operator, member*   messages.detail
    POST    /api/v1/messages/{id}/resend       admin, operator            operations.resend
    POST    /api/v1/messages/{id}/cancel       admin, operator            operations.cancel
    POST    /api/v1/messages/{id}/reroute      admin, operator            operations.reroute
    POST    /api/v1/messages/{id}/status       admin, operator, member*   statuses.reply
    POST    /api/v1/route/explain              admin, operator, member*   submit.explain_routes

    * a member token acts for its one unit: it sees and answers only that unit's messages.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import hdrs, web

from envelopes.metadata import DocumentRequest, parse_metadata
from envelopes.model import Classification
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState, summarize
from gateway.store import queries
from gateway.store.records import MessageRecord, RecipientRecord
from gateway.usecases import messages, operations, statuses, submit
from gateway.usecases.operations import Changed
from gateway.usecases.statuses import VIETNAM
from gateway.usecases.tokens import Principal
from gateway.web import bodies
from gateway.web.auth import EVERYONE, PRINCIPAL, STAFF, allow, member_unit
from gateway.web.common import (
    API,
    GATEWAY,
    choice,
    flag,
    json_response,
    limit,
    moment,
    reject_unknown_parameters,
)
from gateway.web.problems import BadRequest
from gateway.web.routes import Routes
from gateway.web.uploads import idempotency_key, read_submission

ROUTES = Routes(tag="messages")

LIST_PARAMETERS = frozenset(
    ("direction", "state", "recipient", "sender", "classification", "from", "to", "text",
     "breached", "limit", "cursor")
)  # fmt: skip


@ROUTES.post(f"{API}/messages", name="submit")
@allow(EVERYONE)
async def submit_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    key = idempotency_key(request)
    with contextlib.ExitStack() as spools:
        metadata, attachments = await read_submission(
            request, spools, gateway.settings.api.max_upload_bytes
        )
        document = parse_document(metadata, gateway)
        submitted = await submit.submit_document(
            gateway,
            document,
            attachments,
            client=principal.name,
            actor=principal.name,
            idempotency_key=key,
            member_unit=member_unit(principal),
            duplicate_code_intended=request.query.get("duplicate_code") == "intended",
        )
    body = {
        "id": submitted.message_id,
        "document_id": submitted.document_id,
        "state": submitted.state,
        "routes": [
            {"recipient": r.recipient, "channel": r.channel, "reason": r.reason}
            for r in submitted.routes
        ],
        "created": submitted.created,
    }
    location = request.app.router["message"].url_for(id=submitted.message_id)
    return json_response(
        body, status=201 if submitted.created else 200, headers={hdrs.LOCATION: str(location)}
    )


@ROUTES.post(f"{API}/route/explain", name="explain_route")
@allow(EVERYONE)
async def explain_route(request: web.Request) -> web.Response:
    """Where a document would go and why; a member may ask only about its own unit's sends."""
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    document = parse_document(await request.read(), gateway)
    routes = await submit.explain_routes(gateway, document, member_unit=member_unit(principal))
    return json_response(
        {
            "routes": [
                {"recipient": r.recipient, "channel": r.channel, "reason": r.reason} for r in routes
            ]
        }
    )


@ROUTES.get(f"{API}/messages", name="messages")
@allow(EVERYONE)
async def list_messages(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    query = request.query
    reject_unknown_parameters(query, LIST_PARAMETERS)
    page = await messages.list_page(
        gateway,
        _message_filter(query, principal, gateway.clock()),
        after=_decode_cursor(query.get("cursor")),
        limit=limit(query, default=gateway.settings.api.page_size),
    )
    return json_response(
        {
            "items": [_summary(m) for m in page.items],
            "next_cursor": _encode_cursor(page.items[-1]) if page.more else None,
        }
    )


@ROUTES.get(f"{API}/messages/{{id}}", name="message")
@allow(EVERYONE)
async def show_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    found = await messages.detail(
        gateway, request.match_info["id"], member_unit=member_unit(principal)
    )
    return json_response({**_detail(found.message), **found.history})


@ROUTES.post(f"{API}/messages/{{id}}/resend", name="resend")
@allow(STAFF)
async def resend_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await bodies.read_object(request, ("reason", "recipient"))
    changed = await operations.resend(
        gateway,
        request.match_info["id"],
        reason=bodies.text(body, "reason"),
        actor=principal.name,
        recipient=bodies.text(body, "recipient"),
    )
    return json_response(_changed(changed))


@ROUTES.post(f"{API}/messages/{{id}}/cancel", name="cancel")
@allow(STAFF)
async def cancel_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await bodies.read_object(request, ("reason", "recipient"))
    changed = await operations.cancel(
        gateway,
        request.match_info["id"],
        reason=bodies.text(body, "reason"),
        actor=principal.name,
        recipient=bodies.text(body, "recipient"),
    )
    return json_response(_changed(changed))


@ROUTES.post(f"{API}/messages/{{id}}/reroute", name="reroute")
@allow(STAFF)
async def reroute_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await bodies.read_object(request, ("channel", "reason"))
    changed = await operations.reroute(
        gateway,
        request.match_info["id"],
        channel=bodies.required_text(body, "channel"),
        reason=bodies.text(body, "reason"),
        actor=principal.name,
    )
    return json_response(_changed(changed))


@ROUTES.post(f"{API}/messages/{{id}}/status", name="status")
@allow(EVERYONE)
async def reply_status(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await bodies.read_object(request, ("code", "description", "staff_info"))
    ids = await statuses.reply(
        gateway,
        request.match_info["id"],
        code=bodies.reply_code(body.get("code")),
        description=bodies.text(body, "description"),
        staff=bodies.staff_info(body.get("staff_info")),
        actor=principal.name,
        member_unit=member_unit(principal),
    )
    return json_response({"status_messages": ids}, status=201)


# ------------------------------------------------------------------------------------ parsing


def parse_document(metadata: bytes, gateway: Gateway) -> DocumentRequest:
    return parse_metadata(metadata, today=gateway.clock().astimezone(VIETNAM).date())


def _message_filter(
    query: Mapping[str, str], principal: Principal, now: dt.datetime
) -> queries.MessageFilter:
    return queries.MessageFilter(
        direction=choice(query, "direction", ("in", "out")),
        state=choice(query, "state", tuple(TransportState)),
        recipient=query.get("recipient") or None,
        sender=query.get("sender") or None,
        classification=choice(query, "classification", tuple(Classification)),
        created_from=moment(query, "from", end_of_day=False),
        created_to=moment(query, "to", end_of_day=True),
        text=query.get("text") or None,
        breached_before=now if flag(query, "breached") else None,
        visible_to_unit=member_unit(principal),
    )


def _encode_cursor(message: MessageRecord) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(value: str | None) -> tuple[dt.datetime, str] | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created, _, message_id = raw.partition("|")
        at = dt.datetime.fromisoformat(created)
        if not message_id or at.tzinfo is None:
            raise ValueError(raw)
    except (ValueError, binascii.Error):
        raise BadRequest("not a cursor this API returned", element="cursor") from None
    return at, message_id


# ---------------------------------------------------------------------------------- rendering


def _state(message: MessageRecord) -> str | None:
    # A received status message has no recipient rows, hence no transport state to summarize.
    if not message.recipients:
        return None
    return summarize([r.state for r in message.recipients]).value


def _summary(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "kind": message.kind,
        "document_id": message.document_id,
        "sender": message.sender,
        "classification": message.classification,
        "subject": message.subject,
        "state": _state(message),
        "created_at": message.created_at,
        "send_due_at": message.send_due_at,
        "recipients": [
            {"unit_code": r.unit_code, "state": r.state, "business_status": r.business_status}
            for r in message.recipients
        ],
    }


def _recipient(recipient: RecipientRecord) -> dict[str, Any]:
    return {
        "unit_code": recipient.unit_code,
        "channel": recipient.channel,
        "state": recipient.state,
        "attempt_count": recipient.attempt_count,
        "last_error": recipient.last_error,
        "next_attempt_at": recipient.next_attempt_at,
        "sent_at": recipient.sent_at,
        "arrival_due_at": recipient.arrival_due_at,
        "business_status": recipient.business_status,
        "remote_id": recipient.remote_id,
    }


def _detail(message: MessageRecord) -> dict[str, Any]:
    return {
        **_summary(message),
        "code": message.code,
        "priority": message.priority,
        "status_code": message.status_code,
        "related_message_id": message.related_message_id,
        "route": message.route,
        "client": message.client,
        "idempotency_key": message.idempotency_key,
        "notices": message.notices or [],
        "signer_subject": message.signer_subject,
        "package_sha256": message.package_sha256,
        "recipients": [_recipient(r) for r in message.recipients],
    }


def _changed(changed: Changed) -> dict[str, Any]:
    return {
        "message_id": changed.message_id,
        "recipients": list(changed.recipients),
        "new_state": changed.new_state,
    }

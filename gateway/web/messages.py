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
from typing import Annotated, Any, Literal

from aiohttp import hdrs, web
from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema

from envelopes.metadata import DocumentRequest, parse_metadata
from envelopes.model import Classification, StaffInfo, StatusCode
from gateway.bootstrap import Gateway
from gateway.domain import business
from gateway.domain.business import REPLY_CODES, StatusCodeInvalid
from gateway.domain.lifecycle import TransportState
from gateway.store.records import MessageRecord
from gateway.usecases import messages, operations, statuses, submit
from gateway.usecases.operations import Changed
from gateway.usecases.statuses import VIETNAM
from gateway.web.auth import EVERYONE, PRINCIPAL, STAFF, allow, member_unit
from gateway.web.bodies import Body, OptionalText, Reply, RequiredText, read_body, refusal, render
from gateway.web.common import (
    API,
    GATEWAY,
    limit,
    limit_parameter,
    reject_unknown_parameters,
)
from gateway.web.problems import BadRequest
from gateway.web.routes import (
    CONFLICT,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    UNPROCESSABLE,
    UNSUPPORTED_MEDIA_TYPE,
    Response,
    Routes,
    path_parameter,
    query_names,
    query_parameter,
)
from gateway.web.uploads import idempotency_key, read_submission

ROUTES = Routes(tag="messages")
MESSAGE_ID = path_parameter("id", "the message's id")
_STAFF_ONLY = "admin, operator"


# ------------------------------------------------------------------------------------ bodies


class Route(Reply):
    recipient: str
    channel: str | None
    reason: str


class Submitted(Reply):
    """Accepted and durable"""

    id: str
    document_id: str
    state: TransportState
    routes: list[Route]
    created: bool = Field(description="false for a repeated Idempotency-Key")


class RouteExplanation(Reply):
    """Where each recipient's copy would go, and why"""

    routes: list[Route]


class RecipientSummary(Reply):
    unit_code: str
    state: TransportState
    business_status: str | None


class _MessageFields(Reply):
    id: str
    direction: Literal["in", "out"]
    kind: Literal["document", "status"]
    document_id: str
    sender: str
    classification: Classification
    subject: str | None
    state: TransportState | None = Field(
        description="The least advanced recipient state; null without recipients."
    )
    created_at: dt.datetime
    send_due_at: dt.datetime | None


class MessageSummary(_MessageFields):
    recipients: list[RecipientSummary]


class MessageList(Reply):
    """One page, newest first"""

    items: list[MessageSummary]
    next_cursor: str | None


class RecipientDetail(Reply):
    unit_code: str
    channel: str | None
    state: TransportState
    attempt_count: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    arrival_due_at: dt.datetime | None
    business_status: str | None
    remote_id: str | None


Verdict = Literal["valid", "unsigned", "failing"]


class SignatureReason(Reply):
    code: str = Field(description="PDF_… (docs/reference/document-signatures.md).")
    message: str


class PdfSignature(Reply):
    """One signature of a PDF"""

    field: str = Field(description="The signature field's name.")
    signer: str | None = Field(description="The signing certificate's common name.")
    organisation: str | None
    subject: str | None
    signed_at: str | None = Field(
        description="The timestamp's time when timestamped, else the time the signer's software "
        "claims."
    )
    timestamped: bool
    modifications: Literal["none", "lta_updates", "form_filling", "annotations", "other"] = Field(
        description="What was changed in the file after this signature."
    )
    covers_whole_file: bool
    verdict: Verdict
    reasons: list[SignatureReason]


class DocumentSignatures(Reply):
    """One PDF attachment's own signatures and their verdict"""

    position: int = Field(description="The attachment's place in the package (1-based).")
    attachment: str
    signed: bool
    verdict: Verdict = Field(
        description="valid: signed and every signature is; unsigned; failing: a signature "
        "fails, or the PDF could not be verified (reason)."
    )
    reason: str | None = Field(description="Why the whole PDF could not be verified.")
    detail: str | None
    signatures: list[PdfSignature]
    checked_at: dt.datetime


class MessageDetail(_MessageFields):
    """The message, its recipients and its timelines"""

    recipients: list[RecipientDetail]
    code: str | None
    priority: int
    status_code: str | None
    related_message_id: str | None
    route: str | None
    client: str
    idempotency_key: str | None
    notices: list[str]
    signer_subject: str | None
    package_sha256: str
    attempts: list[dict[str, Any]] = Field(description="Delivery attempts, oldest first.")
    audit: list[dict[str, Any]] = Field(description="Every state change: who, when, why.")
    status_events: list[dict[str, Any]] = Field(description="Business statuses in and out.")
    documents: list[DocumentSignatures] = Field(
        description="Each PDF attachment's own signatures and their verdict; empty for a "
        "message without a PDF (docs/reference/document-signatures.md)."
    )


class Moved(Reply):
    """Moved"""

    message_id: str
    recipients: list[str]
    new_state: TransportState


class StatusReplied(Reply):
    """Queued"""

    status_messages: list[str]


class OperatorAction(Body):
    reason: OptionalText = Field(None, description="Required (REASON_REQUIRED).")
    recipient: OptionalText = Field(None, description="Only this recipient.")


class Reroute(Body):
    channel: RequiredText
    reason: OptionalText = None


class StaffInfoBody(Body):
    department: OptionalText = None
    staff: OptionalText = None
    mobile: OptionalText = None
    email: OptionalText = None

    def staff_info(self) -> StaffInfo:
        return StaffInfo(
            department=self.department, staff=self.staff, mobile=self.mobile, email=self.email
        )


_status_code_invalid = refusal(StatusCodeInvalid)


def reply_code(value: object) -> StatusCode:
    try:
        return business.reply_code(value)
    except StatusCodeInvalid as exc:
        raise _status_code_invalid(exc.message) from None


class StatusReply(Body):
    # Any JSON value is read, so that a number or a missing code is STATUS_CODE_INVALID too.
    model_config = ConfigDict(json_schema_extra={"required": ["code"]})

    code: Annotated[
        Any,
        AfterValidator(reply_code),
        WithJsonSchema({"type": "string", "enum": list(REPLY_CODES)}),
    ] = Field(None, validate_default=True)
    description: OptionalText = Field(None, description="Required for 02 and 13.")
    staff_info: StaffInfoBody | None = None


# ----------------------------------------------------------------------------------- handlers

SUBMIT_FORM = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["metadata"],
            "properties": {
                "metadata": {
                    "type": "object",
                    "description": "Document metadata; every key in docs/reference/metadata.md. "
                    "Unknown keys are errors (METADATA_INVALID, element = the key's path).",
                },
                "attachment": {"type": "array", "items": {"type": "string", "format": "binary"}},
            },
        },
        "encoding": {
            "metadata": {"contentType": "application/json"},
            "attachment": {"contentType": "*/*"},
        },
    }
}
METADATA_BODY = {
    "application/json": {
        "schema": {"type": "object", "description": "Document metadata (metadata.md)."}
    }
}


@ROUTES.post(
    f"{API}/messages",
    name="submit_message",
    summary="Send a document: one metadata part and attachment parts",
    notes="a member for its own unit",
    ok={201: Submitted, 200: Response(description="A repeated Idempotency-Key: the original "
        "message", body=Submitted)},
    errors=(PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, UNPROCESSABLE),
    parameters=[
        {
            "name": "Idempotency-Key",
            "in": "header",
            "schema": {"type": "string", "maxLength": 200},
            "description": "A repeat of the same request returns the original message (200); "
            "the key with another request is 422 IDEMPOTENCY_KEY_REUSED.",
        },
        query_parameter(
            "duplicate_code",
            "A new document repeating its sender's số/ký hiệu of the year is meant (else 422 "
            "DUPLICATE_DOCUMENT_CODE).",
            {"type": "string", "enum": ["intended"]},
        ),
    ],
    body=SUBMIT_FORM,
    body_description="At most [api] max_upload_bytes in all (413 above).",
)  # fmt: skip
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
    body = Submitted(
        id=submitted.message_id,
        document_id=submitted.document_id,
        state=TransportState(submitted.state),
        routes=[Route.model_validate(r) for r in submitted.routes],
        created=submitted.created,
    )
    location = request.app.router["show_message"].url_for(id=submitted.message_id)
    return render(
        body, status=201 if submitted.created else 200, headers={hdrs.LOCATION: str(location)}
    )


@ROUTES.post(
    f"{API}/route/explain",
    name="explain_route",
    summary="Where a document would go and why (nothing is sent or stored)",
    notes="a member for its own unit's sends",
    ok={200: RouteExplanation},
    errors=(UNPROCESSABLE,),
    body=METADATA_BODY,
)
@allow(EVERYONE)
async def explain_route(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    document = parse_document(await request.read(), gateway)
    routes = await submit.explain_routes(gateway, document, member_unit=member_unit(principal))
    return render(RouteExplanation(routes=[Route.model_validate(r) for r in routes]))


LIST_QUERY = [
    query_parameter("direction", "in or out", messages.choices_schema("direction")),
    query_parameter(
        "state", "a recipient in this transport state", messages.choices_schema("state")
    ),
    query_parameter("kind", "document or status", messages.choices_schema("kind")),
    query_parameter("recipient", "a recipient unit code"),
    query_parameter("sender", "the sender's unit code"),
    query_parameter("classification", "", messages.choices_schema("classification")),
    query_parameter("from", "created at or after: ISO date (Vietnam day) or datetime"),
    query_parameter("to", "created before: ISO datetime, or ISO date (that day included)"),
    query_parameter(
        "text",
        "every word, in any order, in the subject, DocumentId or số/ký hiệu; accents and case "
        "ignored (lien thong finds Liên thông)",
    ),
    query_parameter("breached", "a send or arrival deadline has passed", {"type": "boolean"}),
    limit_parameter(),
    query_parameter("cursor", "next_cursor of the previous page (opaque)"),
]


@ROUTES.get(
    f"{API}/messages",
    name="list_messages",
    summary="List messages, newest first",
    notes="a member sees its unit's messages only",
    ok={200: MessageList},
    parameters=LIST_QUERY,
)
@allow(EVERYONE)
async def list_messages(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    query = request.query
    reject_unknown_parameters(query, query_names(LIST_QUERY))
    page = await messages.list_page(
        gateway,
        messages.message_filter(query, now=gateway.clock(), member_unit=member_unit(principal)),
        after=decode_cursor(query.get("cursor")),
        limit=limit(query, default=gateway.settings.api.page_size),
    )
    return render(
        MessageList(
            items=[_summary(m) for m in page.items],
            next_cursor=encode_cursor(page.items[-1]) if page.more else None,
        )
    )


@ROUTES.get(
    f"{API}/messages/{{id}}",
    name="show_message",
    summary="A message with its recipients and timelines",
    notes="a member sees its unit's messages only",
    ok={200: MessageDetail},
    errors=(NOT_FOUND,),
    parameters=[MESSAGE_ID],
)
@allow(EVERYONE)
async def show_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    found = await messages.detail(
        gateway, request.match_info["id"], member_unit=member_unit(principal)
    )
    return render(_detail(found))


_ACTION = {
    "ok": {200: Moved},
    "errors": (NOT_FOUND, CONFLICT, UNPROCESSABLE),
    "parameters": [MESSAGE_ID],
}


@ROUTES.post(
    f"{API}/messages/{{id}}/resend",
    name="resend_message",
    summary="Queue again failed, sent, unconfirmed or held recipients (same package)",
    body=OperatorAction,
    **_ACTION,
)
@allow(STAFF)
async def resend_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await read_body(request, OperatorAction)
    changed = await operations.resend(
        gateway,
        request.match_info["id"],
        reason=body.reason,
        actor=principal.name,
        recipient=body.recipient,
    )
    return render(_moved(changed))


@ROUTES.post(
    f"{API}/messages/{{id}}/cancel",
    name="cancel_message",
    summary="Cancel recipients not yet sent",
    body=OperatorAction,
    **_ACTION,
)
@allow(STAFF)
async def cancel_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await read_body(request, OperatorAction)
    changed = await operations.cancel(
        gateway,
        request.match_info["id"],
        reason=body.reason,
        actor=principal.name,
        recipient=body.recipient,
    )
    return render(_moved(changed))


@ROUTES.post(
    f"{API}/messages/{{id}}/reroute",
    name="reroute_message",
    summary="Send held or failed recipients through another channel",
    body=Reroute,
    **_ACTION,
)
@allow(STAFF)
async def reroute_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await read_body(request, Reroute)
    changed = await operations.reroute(
        gateway,
        request.match_info["id"],
        channel=body.channel,
        reason=body.reason,
        actor=principal.name,
    )
    return render(_moved(changed))


@ROUTES.post(
    f"{API}/messages/{{id}}/status",
    name="reply_status",
    summary="Send a business status about a message (02–06, 15, 16 received; 13 sent)",
    notes="a member for its unit",
    ok={201: StatusReplied},
    errors=(NOT_FOUND, CONFLICT, UNPROCESSABLE),
    parameters=[MESSAGE_ID],
    body=StatusReply,
)
@allow(EVERYONE)
async def reply_status(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await read_body(request, StatusReply)
    ids = await statuses.reply(
        gateway,
        request.match_info["id"],
        code=body.code,
        description=body.description,
        staff=body.staff_info.staff_info() if body.staff_info is not None else None,
        actor=principal.name,
        member_unit=member_unit(principal),
    )
    return render(StatusReplied(status_messages=ids), status=201)


# ------------------------------------------------------------------------------------ parsing


def parse_document(metadata: bytes, gateway: Gateway) -> DocumentRequest:
    return parse_metadata(metadata, today=gateway.clock().astimezone(VIETNAM).date())


def encode_cursor(message: MessageRecord) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> tuple[dt.datetime, str] | None:
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


def _summary(message: MessageRecord) -> MessageSummary:
    return MessageSummary.model_validate(
        {
            **_fields(message),
            "recipients": [RecipientSummary.model_validate(r) for r in message.recipients],
        }
    )


def _fields(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "kind": message.kind,
        "document_id": message.document_id,
        "sender": message.sender,
        "classification": message.classification,
        "subject": message.subject,
        "state": messages.transport_state(message),
        "created_at": message.created_at,
        "send_due_at": message.send_due_at,
    }


def _detail(found: messages.Detail) -> MessageDetail:
    message = found.message
    return MessageDetail.model_validate(
        {
            **_fields(message),
            "recipients": [RecipientDetail.model_validate(r) for r in message.recipients],
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
            **found.history,
            "documents": found.documents,
        }
    )


def _moved(changed: Changed) -> Moved:
    return Moved(
        message_id=changed.message_id,
        recipients=list(changed.recipients),
        new_state=TransportState(changed.new_state),
    )

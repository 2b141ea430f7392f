"""The HTTP API: ``create_app(gateway)`` and its thin handlers.

    method  path                               roles                      calls
    POST    /api/v1/messages                   admin, operator, member    submit.submit_document
    GET     /api/v1/messages                   admin, operator, member*   queries.list_messages
    GET     /api/v1/messages/{id}              admin, operator, member*   queries.get_message,
                                                                          queries.message_history
    POST    /api/v1/messages/{id}/resend       admin, operator            operations.resend
    POST    /api/v1/messages/{id}/cancel       admin, operator            operations.cancel
    POST    /api/v1/messages/{id}/reroute      admin, operator            operations.reroute
    POST    /api/v1/messages/{id}/status       admin, operator, member*   statuses.reply
    POST    /api/v1/inbox                      admin, operator            intake.receive_package
    GET     /api/v1/units                      admin, operator, member    registry.list_units
    POST    /api/v1/units                      admin, member*             registry.register_unit
    GET     /api/v1/units/{code}               admin, operator, member    registry.get_unit
    GET     /api/v1/reports/{monthly|weekly}   admin, member*             reports.build_report
    GET     /api/v1/openapi.json               (no token)                 openapi.build_document
    GET     /healthz                           (no token)                 queries.live_workers, …
    GET     /metrics                           (no token)                 queries.counts_by_…, …

    * a member token acts for its one unit: it sees and answers only that unit's messages and may
      change only the name and certificates of that unit.

Writes go through use cases; reads are named queries (the store's views), rendered as JSON.
Uploads and received packages stream into spooled temporary files, counted against
``[api] max_upload_bytes`` as they arrive, so memory does not grow with the attachment.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import email.message
import email.utils
import enum
import functools
import json
import logging
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from aiohttp import BodyPartReader, MultipartReader, hdrs, multipart, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from envelopes.attachments import AttachmentSource, check_name, checked_source
from envelopes.errors import AttachmentNameInvalid, TextInvalid
from envelopes.metadata import DocumentRequest, parse_metadata
from envelopes.model import Classification, StaffInfo, StatusCode
from envelopes.xmltext import check_text, first_unsafe
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState, summarize
from gateway.domain.retry import Outcome
from gateway.store import queries
from gateway.store.records import MessageRecord, RecipientRecord, UnitRecord
from gateway.usecases import intake, operations, registry, statuses, submit
from gateway.usecases.errors import Forbidden, NotFound
from gateway.usecases.operations import Changed
from gateway.usecases.packages import opener, spool
from gateway.usecases.registry import UnitDetail
from gateway.usecases.statuses import VIETNAM
from gateway.usecases.tokens import Principal, Role
from gateway.web import openapi
from gateway.web import reports as reports_api
from gateway.web.auth import (
    ADMIN,
    EVERYONE,
    PRINCIPAL,
    STAFF,
    allow,
    authentication,
    member_unit,
    public,
)
from gateway.web.problems import (
    BadRequest,
    PayloadTooLarge,
    StatusCodeInvalid,
    UnsupportedMediaType,
    problem_middleware,
)

log = logging.getLogger("docgw.web")

API = "/api/v1"
GATEWAY = web.AppKey("gateway", Gateway)
OPENAPI_JSON = web.AppKey("openapi_json", bytes)

#: JSON request bodies (operator actions, status replies, units) are small; this bounds them.
JSON_BODY_LIMIT = 1 << 20
METADATA_LIMIT = 1 << 20
CHUNK = 1 << 16
MAX_PAGE = 200
IDEMPOTENCY_KEY_MAX = 200
#: A worker silent for longer than this is presumed dead (it beats every few seconds).
WORKER_SILENCE = dt.timedelta(seconds=30)
HEALTH_TIMEOUT_SECONDS = 5.0
#: 01 (arrived) is sent by docgw itself on intake; the local system sends the others.
REPLY_CODES = tuple(c.value for c in StatusCode if c is not StatusCode.ARRIVED)
PACKAGE_TYPES = ("application/xml", "text/xml", "application/octet-stream")
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LIST_PARAMETERS = frozenset(
    ("direction", "state", "recipient", "sender", "classification", "from", "to", "text",
     "breached", "limit", "cursor")
)  # fmt: skip
#: A unit registration's body: the registry's fields (one definition, registry.UNIT_FIELD_SPECS)
#: with the code and a certificate.
UNIT_FIELDS = ("code", *registry.UNIT_FIELDS, "certificate_pem")
#: How docgw routes to a unit and where it sits: an admin's decision, never a member's.
ROUTING_FIELDS = registry.ROUTING_FIELDS
#: Routing fields that are yes/no (JSON booleans); the others are text.
ROUTING_FLAGS = tuple(spec.name for spec in registry.UNIT_FIELD_SPECS if spec.routing and spec.flag)
#: Column widths of the units table: an over-long value is a 400 here, not a database error.
UNIT_FIELD_LENGTHS = {
    spec.name: spec.max_length for spec in registry.UNIT_FIELD_SPECS if spec.max_length is not None
}


def create_app(gateway: Gateway) -> web.Application:
    api = gateway.settings.api
    app = web.Application(
        middlewares=[problem_middleware, authentication(gateway), text_parameters],
        # Bounds request.read() (the JSON routes); uploads stream and are counted separately.
        client_max_size=min(JSON_BODY_LIMIT, api.max_upload_bytes),
    )
    app[GATEWAY] = gateway
    # aiohttp warns (RuntimeWarning) of a Content-Disposition parameter it cannot decode, then
    # skips it. docgw reads that header itself and refuses such a file name with its own code:
    # the warning is noise in the log, and an error (500) where warnings are errors.
    warnings.filterwarnings("ignore", category=multipart.BadContentDispositionParam)
    warnings.filterwarnings("ignore", category=multipart.BadContentDispositionHeader)
    document = openapi.build_document(
        max_upload_bytes=api.max_upload_bytes, page_size=api.page_size
    )
    app[OPENAPI_JSON] = json.dumps(document, ensure_ascii=False).encode()
    router = app.router
    router.add_post(f"{API}/messages", submit_message, name="submit")
    router.add_get(f"{API}/messages", list_messages, name="messages")
    router.add_get(f"{API}/messages/{{id}}", show_message, name="message")
    router.add_post(f"{API}/messages/{{id}}/resend", resend_message, name="resend")
    router.add_post(f"{API}/messages/{{id}}/cancel", cancel_message, name="cancel")
    router.add_post(f"{API}/messages/{{id}}/reroute", reroute_message, name="reroute")
    router.add_post(f"{API}/messages/{{id}}/status", reply_status, name="status")
    router.add_post(f"{API}/route/explain", explain_route, name="explain_route")
    router.add_post(f"{API}/inbox", receive_package, name="inbox")
    router.add_get(f"{API}/units", list_units, name="units")
    router.add_post(f"{API}/units", register_unit, name="register_unit")
    router.add_get(f"{API}/units/{{code}}", show_unit, name="unit")
    router.add_get(f"{API}/reports/{{kind:monthly|weekly}}", reports_api.report, name="report")
    router.add_get(f"{API}/openapi.json", openapi_document, name="openapi")
    router.add_get("/healthz", health, name="health")
    router.add_get("/metrics", metrics, name="metrics")
    from gateway.web import integration  # its own module; it imports this one's helpers

    integration.add_routes(router)
    from gateway.web import console  # its own package (templates, static); imports this module

    app.add_subapp(console.PREFIX, console.create_console(gateway))
    return app


# ------------------------------------------------------------------------------------ messages


@allow(EVERYONE)
async def submit_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    key = _idempotency_key(request)
    with contextlib.ExitStack() as spools:
        metadata, attachments = await _read_submission(
            request, spools, gateway.settings.api.max_upload_bytes
        )
        document = _parse_document(metadata, gateway)
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
    return _json(
        body, status=201 if submitted.created else 200, headers={hdrs.LOCATION: str(location)}
    )


@allow(EVERYONE)
async def explain_route(request: web.Request) -> web.Response:
    """Where a document would go and why; a member may ask only about its own unit's sends."""
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    document = _parse_document(await request.read(), gateway)
    unit = member_unit(principal)
    if unit is not None and document.header.from_.organ_id != unit:
        raise Forbidden(
            f"a member token of {unit} cannot route for {document.header.from_.organ_id}"
        )
    routes = await submit.explain_routes(gateway, document)
    return _json(
        {
            "routes": [
                {"recipient": r.recipient, "channel": r.channel, "reason": r.reason} for r in routes
            ]
        }
    )


@allow(EVERYONE)
async def list_messages(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    query = request.query
    _reject_unknown_parameters(query, LIST_PARAMETERS)
    selection = _message_filter(query, principal, gateway.clock())
    limit = _limit(query, default=gateway.settings.api.page_size)
    after = _decode_cursor(query.get("cursor"))
    async with gateway.engine.connect() as conn:
        found = await queries.list_messages(conn, selection, after=after, limit=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return _json(
        {
            "items": [_summary(m) for m in page],
            "next_cursor": _encode_cursor(page[-1]) if more else None,
        }
    )


@allow(EVERYONE)
async def show_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    message_id = request.match_info["id"]
    async with gateway.engine.connect() as conn:
        message = await queries.get_message(conn, message_id)
        if message is None or not _visible(message, member_unit(principal)):
            raise NotFound(f"no message {message_id}")
        history = await queries.message_history(conn, message_id)
    return _json({**_detail(message), **history})


@allow(STAFF)
async def resend_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await _read_object(request, ("reason", "recipient"))
    changed = await operations.resend(
        gateway,
        request.match_info["id"],
        reason=_text(body, "reason"),
        actor=principal.name,
        recipient=_text(body, "recipient"),
    )
    return _json(_changed(changed))


@allow(STAFF)
async def cancel_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await _read_object(request, ("reason", "recipient"))
    changed = await operations.cancel(
        gateway,
        request.match_info["id"],
        reason=_text(body, "reason"),
        actor=principal.name,
        recipient=_text(body, "recipient"),
    )
    return _json(_changed(changed))


@allow(STAFF)
async def reroute_message(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await _read_object(request, ("channel", "reason"))
    changed = await operations.reroute(
        gateway,
        request.match_info["id"],
        channel=_required_text(body, "channel"),
        reason=_text(body, "reason"),
        actor=principal.name,
    )
    return _json(_changed(changed))


@allow(EVERYONE)
async def reply_status(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await _read_object(request, ("code", "description", "staff_info"))
    unit = member_unit(principal)
    if unit is not None:
        # 404 before any state check: a 409 naming the message's direction would tell a member
        # that a message it may not see exists.
        async with gateway.engine.connect() as conn:
            message = await queries.get_message(conn, request.match_info["id"])
        if message is None or not _visible(message, unit):
            raise NotFound(f"no document message {request.match_info['id']}")
    ids = await statuses.reply(
        gateway,
        request.match_info["id"],
        code=_reply_code(body.get("code")),
        description=_text(body, "description"),
        staff=_staff_info(body.get("staff_info")),
        actor=principal.name,
        member_unit=unit,
    )
    return _json({"status_messages": ids}, status=201)


# --------------------------------------------------------------------------------------- inbox


@allow(STAFF)
async def receive_package(request: web.Request) -> web.Response:
    """A peer gateway or a connector hands over a package it received (sealed or not)."""
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    if _media_type(request) not in PACKAGE_TYPES:
        raise UnsupportedMediaType(
            f"send the package as {' or '.join(PACKAGE_TYPES)}, not {_media_type(request)}"
        )
    with spool() as package:
        await _spool_body(request, package, gateway.settings.api.max_upload_bytes)
        received = await intake.receive_package(gateway, package, via=principal.name)
    body = {
        "id": received.message_id,
        "kind": received.kind,
        "document_id": received.document_id,
        "sender": received.sender,
        "duplicate": received.duplicate,
        "answers": list(received.answers),
    }
    return _json(body, status=200 if received.duplicate else 201)


# --------------------------------------------------------------------------------------- units


@allow(EVERYONE)
async def list_units(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    query = request.query
    _reject_unknown_parameters(query, frozenset({"q", "after", "limit"}))
    limit = _limit(query, default=gateway.settings.api.page_size)
    found = await registry.list_units(
        gateway, text=query.get("q") or None, after=query.get("after") or None, limit=limit + 1
    )
    page = found[:limit]
    return _json(
        {
            "items": [_unit(u) for u in page],
            "next_after": page[-1].code if len(found) > limit else None,
        }
    )


@allow(EVERYONE)
async def show_unit(request: web.Request) -> web.Response:
    detail = await registry.get_unit(request.app[GATEWAY], request.match_info["code"])
    return _json(_unit_detail(detail))


@allow(ADMIN | {Role.MEMBER})
async def register_unit(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await _read_object(request, UNIT_FIELDS)
    code = _required_text(body, "code")
    existing = await _existing_unit(gateway, code)
    unit = _merged_unit(body, code, existing, is_local=code in gateway.signers)
    if principal.role is Role.MEMBER:
        _check_member_change(principal, existing, unit)
    given = [key for key in registry.UNIT_FIELDS if key in body]
    created = await registry.register_unit(
        gateway,
        unit,
        certificate_pem=_text(body, "certificate_pem"),
        actor=principal.name,
        # A new unit is registered whole (is_local as the gateway knows it); an update writes
        # only what the request names.
        given=given if existing is not None else None,
    )
    detail = await registry.get_unit(gateway, code)
    location = request.app.router["unit"].url_for(code=code)
    return _json(
        _unit_detail(detail),
        status=201 if created else 200,
        headers={hdrs.LOCATION: str(location)},
    )


async def _existing_unit(gateway: Gateway, code: str) -> UnitRecord | None:
    try:
        return (await registry.get_unit(gateway, code)).unit
    except NotFound:
        return None


def _merged_unit(
    body: Mapping[str, Any], code: str, existing: UnitRecord | None, *, is_local: bool
) -> UnitRecord:
    """The unit as it will be: fields the request leaves out keep their current values (an
    update must not reset is_local or active, which the API does not set, nor anything it does
    not name). ``allows_tuyet_mat`` is a JSON boolean, false for a new unit unless given."""
    changes: dict[str, Any] = {
        key: _boolean(body, key)
        if key in ROUTING_FLAGS
        else _text(body, key, limit=UNIT_FIELD_LENGTHS[key])
        for key in ROUTING_FIELDS
        if key in body
    }
    name = _text(body, "name", limit=UNIT_FIELD_LENGTHS["name"])
    if existing is None:
        return UnitRecord(code=code, name=name or "", is_local=is_local, **changes)
    if name is not None:
        changes["name"] = name
    return dataclasses.replace(existing, **changes)


def _check_member_change(
    principal: Principal, before: UnitRecord | None, after: UnitRecord
) -> None:
    if after.code != principal.unit_code:
        raise Forbidden(
            f"a member token of {principal.unit_code} cannot register {after.code}", element="code"
        )
    reference = before or UnitRecord(code=after.code, name="")
    for field in ROUTING_FIELDS:
        if getattr(after, field) != getattr(reference, field):
            raise Forbidden(f"only an admin may set {field}", element=field)


# --------------------------------------------------------------------- public: docs, health


@public
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_JSON], content_type="application/json")


@public
async def health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    now = gateway.clock()
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS), gateway.engine.connect() as conn:
            alive = await queries.live_workers(conn, since=now - WORKER_SILENCE)
            oldest = await queries.oldest_due(conn, now=now)
    except Exception:  # whatever the failure, the answer is "the database is unreachable"
        log.warning(
            "health_database_unreachable",
            extra={"event": "health_database_unreachable"},
            exc_info=True,
        )
        body = {"status": "degraded", "database": False, "workers_alive": 0}
        return _json({**body, "queue_lag_seconds": None}, status=503)
    lag = (now - oldest).total_seconds() if oldest is not None else 0.0
    healthy = alive > 0
    body = {
        "status": "ok" if healthy else "degraded",
        "database": True,
        "workers_alive": alive,
        "queue_lag_seconds": round(max(lag, 0.0), 3),
    }
    return _json(body, status=200 if healthy else 503)


@public
async def metrics(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    now = gateway.clock()
    async with gateway.engine.connect() as conn:
        by_state = await queries.counts_by_state_and_channel(conn)
        oldest = await queries.oldest_due(conn, now=now)
        attempts = await queries.attempt_counts(conn)
        status_events = await queries.status_event_counts(conn)
        alive = await queries.live_workers(conn, since=now - WORKER_SILENCE)
    text = render_metrics(
        channels=sorted(gateway.connectors),
        recipients=by_state,
        oldest_due_age=(now - oldest).total_seconds() if oldest is not None else 0.0,
        attempts=attempts,
        status_events=status_events,
        workers_alive=alive,
    )
    return web.Response(body=text.encode(), headers={hdrs.CONTENT_TYPE: METRICS_TYPE})


def render_metrics(
    *,
    channels: Iterable[str],
    recipients: Iterable[tuple[str, str, int]],
    oldest_due_age: float,
    attempts: Iterable[tuple[str, str, int]],
    status_events: Iterable[tuple[str, str, int]],
    workers_alive: int,
) -> str:
    """Prometheus text format 0.0.4. Every (state, channel) and (channel, outcome) of the
    configured channels is written, with 0 where nothing is counted, so that a series drops to
    zero instead of vanishing (a vanished series silences alerts)."""
    channels = list(channels)
    gauge: dict[tuple[str, str], int] = {(s.value, c): 0 for s in TransportState for c in channels}
    for state, channel, count in recipients:
        gauge[(state, channel)] = count
    tried: dict[tuple[str, str], int] = {(c, o.value): 0 for c in channels for o in Outcome}
    failures: dict[str, int] = dict.fromkeys(channels, 0)
    for channel, outcome, count in attempts:
        tried[(channel, outcome)] = count
        failures.setdefault(channel, 0)
        if outcome in (Outcome.BUSINESS_ERROR, Outcome.TRANSPORT_ERROR):
            failures[channel] += count
    lines = [
        *_family(
            "docgw_recipients",
            "gauge",
            "Recipients by transport state and channel.",
            [({"state": s, "channel": c}, n) for (s, c), n in sorted(gauge.items())],
        ),
        *_family(
            "docgw_oldest_due_age_seconds",
            "gauge",
            "Age of the oldest recipient due for delivery (0 when none is due).",
            [({}, max(oldest_due_age, 0.0))],
        ),
        *_family(
            "docgw_attempts_total",
            "counter",
            "Delivery attempts by channel and outcome.",
            [({"channel": c, "outcome": o}, n) for (c, o), n in sorted(tried.items())],
        ),
        *_family(
            "docgw_failures_total",
            "counter",
            "Delivery attempts that failed (business_error or transport_error).",
            [({"channel": c}, n) for c, n in sorted(failures.items())],
        ),
        *_family(
            "docgw_status_events_total",
            "counter",
            "Business status events by direction and code.",
            [({"direction": d, "code": c}, n) for d, c, n in sorted(status_events)],
        ),
        *_family(
            "docgw_workers_alive",
            "gauge",
            "Delivery workers with a heartbeat in the last 30 seconds.",
            [({}, workers_alive)],
        ),
    ]
    return "\n".join(lines) + "\n"


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in samples:
        yield f"{name}{_labels(labels)} {_number(value)}"


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and line feed (text format 0.0.4)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))


# ------------------------------------------------------------------------- request reading


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


def _check_size(request: web.Request, limit: int) -> None:
    """Refuse a body over the limit: at once when its declared length says so, else as soon as
    the bytes received pass it (chunked uploads declare nothing)."""
    declared = request.content_length
    received = request.content.total_bytes
    if (declared is not None and declared > limit) or received > limit:
        raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")


async def _spool_body(request: web.Request, out: IO[bytes], limit: int) -> None:
    _check_size(request, limit)
    async for chunk in request.content.iter_chunked(CHUNK):
        _check_size(request, limit)
        # Writes to a spooled file land in memory or the page cache: not worth a thread.
        out.write(chunk)
    out.seek(0)


@contextlib.contextmanager
def _multipart_errors() -> Iterator[None]:
    """aiohttp's multipart reader says "malformed" with ValueError/RuntimeError/BadHttpMessage."""
    try:
        yield
    except (ValueError, RuntimeError, HttpProcessingError) as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from exc


def _media_type(request: web.Request) -> str:
    """The request's media type, lower case, without parameters. (aiohttp's content_type parses
    the parameters with the email package: a fifth of a submission's own CPU time.) Without the
    header, application/octet-stream, as aiohttp says (RFC 9110 §8.3)."""
    header = request.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
    return header.partition(";")[0].strip().lower()


async def _read_submission(
    request: web.Request, spools: contextlib.ExitStack, limit: int
) -> tuple[bytes, list[AttachmentSource]]:
    """The ``metadata`` part (bytes) and each ``attachment`` part spooled to a temporary file."""
    if _media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            "send multipart/form-data with a metadata part and attachment parts"
        )
    _check_size(request, limit)
    metadata: bytes | None = None
    attachments: list[AttachmentSource] = []
    with _multipart_errors():
        reader = await request.multipart()
    while (part := await _next_part(reader)) is not None:
        name, filename = _disposition(part)
        if name == "metadata":
            if metadata is not None:
                raise BadRequest("more than one metadata part", element="metadata")
            metadata = await _read_metadata_part(part, request, limit)
        elif name == "attachment":
            attachments.append(await _spool_attachment(part, filename, request, limit, spools))
        else:
            raise BadRequest(
                f"unexpected part {name!r}: send one metadata part and attachment parts",
                element=name,
            )
    if metadata is None:
        raise BadRequest("the metadata part is missing", element="metadata")
    return metadata, attachments


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    with _multipart_errors():
        part = await reader.next()
    if part is not None and not isinstance(part, BodyPartReader):
        raise BadRequest("nested multipart parts are not accepted")
    if part is not None:
        encoding = part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING, "binary").lower()
        if encoding not in ("binary", "8bit", "7bit") or hdrs.CONTENT_ENCODING in part.headers:
            # The bytes are stored as sent; an encoded part would be stored encoded.
            raise BadRequest(
                "parts must be sent as they are, without an encoding", element=part.name
            )
    return part


async def _read_metadata_part(part: BodyPartReader, request: web.Request, limit: int) -> bytes:
    data = bytearray()
    with _multipart_errors():
        while chunk := await part.read_chunk(CHUNK):
            _check_size(request, limit)
            data += chunk
            if len(data) > METADATA_LIMIT:
                raise PayloadTooLarge(
                    f"the metadata part is over {METADATA_LIMIT} bytes", element="metadata"
                )
    return bytes(data)


def _disposition(part: BodyPartReader) -> tuple[str | None, str | None]:
    """A form-data part's (name, filename), RFC 2231 ``filename*`` included. (aiohttp's
    ``part.name`` and ``part.filename`` each parse the header with a function that rebuilds an
    escaped character class on every call: twice the CPU of the email package's parser.)"""
    raw = part.headers.get(hdrs.CONTENT_DISPOSITION, "")
    header = email.message.Message()
    header["Content-Disposition"] = raw
    name = header.get_param("name", header="content-disposition")
    filename = header.get_param("filename", header="content-disposition")
    decoded = None if name is None else email.utils.collapse_rfc2231_value(name)
    # Header bytes that are not UTF-8 arrive as lone surrogates, which the email package would
    # turn into U+FFFD: a name the sender never gave. Refused while they can still be seen.
    if first_unsafe(raw) is not None:
        if decoded == "attachment":
            raise AttachmentNameInvalid(
                "the file name is not UTF-8 text, or holds a control character",
                element="attachment",
            )
        raise BadRequest("the Content-Disposition header is not UTF-8 text", element=decoded)
    return decoded, None if filename is None else _rfc2231_filename(filename)


def _rfc2231_filename(value: str | tuple[str | None, str | None, str]) -> str:
    """A ``filename`` parameter as text. An RFC 2231 ``filename*`` whose bytes are not text in
    its charset is refused: the email package would turn them into U+FFFD, and the package
    would carry a name the sender never gave."""
    if isinstance(value, str):
        return email.utils.unquote(value)
    charset, _, encoded = value
    try:
        return bytes(encoded, "raw-unicode-escape").decode(charset or "us-ascii")
    except (LookupError, UnicodeDecodeError):
        raise AttachmentNameInvalid(
            f"the filename* bytes are not {charset or 'us-ascii'} text", element="attachment"
        ) from None


async def _spool_attachment(
    part: BodyPartReader,
    filename: str | None,
    request: web.Request,
    limit: int,
    spools: contextlib.ExitStack,
) -> AttachmentSource:
    if not (filename or "").strip():
        raise BadRequest("an attachment part needs a filename", element="attachment")
    # A path (browsers on Windows once sent one) is refused, not cut to its last segment; and
    # before the part's bytes are read.
    name = check_name(filename or "")
    content_type = part.headers.get(hdrs.CONTENT_TYPE)
    if content_type is not None:
        check_text(content_type, element="attachment")
    out = spools.enter_context(spool())
    with _multipart_errors():
        while chunk := await part.read_chunk(CHUNK):
            _check_size(request, limit)
            out.write(chunk)
    return checked_source(name, size=out.tell(), content_type=content_type, open=opener(out))


def _parse_document(metadata: bytes, gateway: Gateway) -> DocumentRequest:
    return parse_metadata(metadata, today=gateway.clock().astimezone(VIETNAM).date())


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        raise BadRequest(
            f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters", element="Idempotency-Key"
        )
    return check_text(key, element="Idempotency-Key")


async def _read_object(request: web.Request, known: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object body with only ``known`` keys (a misspelt key is an error, not ignored)."""
    raw = await request.read()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    for key in value:
        if key not in known:
            raise BadRequest(f"unknown field (known: {', '.join(known)})", element=key)
    _check_strings(value, "")
    return value


def _check_strings(value: object, path: str) -> None:
    """Every string in a JSON body (JSON can escape a NUL or a lone surrogate) goes into a
    package or the database: the text rule holds for each, named by its path."""
    if isinstance(value, str):
        check_text(value, element=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}[{index}]")


def _text(
    body: Mapping[str, Any], key: str, *, where: str = "", limit: int | None = None
) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    path = f"{where}.{key}" if where else key
    if not isinstance(value, str):
        raise BadRequest("must be a string", element=path)
    if limit is not None and len(value) > limit:
        raise BadRequest(f"longer than {limit} characters", element=path)
    return value.strip() or None


def _boolean(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise BadRequest("must be true or false (a JSON boolean)", element=key)
    return value


def _required_text(body: Mapping[str, Any], key: str) -> str:
    value = _text(body, key)
    if value is None:
        raise BadRequest("required", element=key)
    return value


def _reply_code(value: Any) -> StatusCode:
    if not isinstance(value, str) or value not in REPLY_CODES:
        raise StatusCodeInvalid(
            f"must be one of {', '.join(REPLY_CODES)} (01 is sent by docgw on arrival)",
            element="code",
        )
    return StatusCode(value)


def _staff_info(value: Any) -> StaffInfo | None:
    if value is None:
        return None
    known = ("department", "staff", "mobile", "email")
    if not isinstance(value, dict):
        raise BadRequest("must be an object", element="staff_info")
    for key in value:
        if key not in known:
            raise BadRequest(
                f"unknown field (known: {', '.join(known)})", element=f"staff_info.{key}"
            )
    return StaffInfo(**{key: _text(value, key, where="staff_info") for key in known})


def _reject_unknown_parameters(query: Mapping[str, str], known: frozenset[str]) -> None:
    for name in query:
        if name not in known:
            raise BadRequest(f"unknown parameter (known: {', '.join(sorted(known))})", element=name)


def _message_filter(
    query: Mapping[str, str], principal: Principal, now: dt.datetime
) -> queries.MessageFilter:
    return queries.MessageFilter(
        direction=_choice(query, "direction", ("in", "out")),
        state=_choice(query, "state", tuple(TransportState)),
        recipient=query.get("recipient") or None,
        sender=query.get("sender") or None,
        classification=_choice(query, "classification", tuple(Classification)),
        created_from=_moment(query, "from", end_of_day=False),
        created_to=_moment(query, "to", end_of_day=True),
        text=query.get("text") or None,
        breached_before=now if _flag(query, "breached") else None,
        visible_to_unit=member_unit(principal),
    )


def _choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(name) or None
    if value is not None and value not in choices:
        raise BadRequest(f"must be one of {', '.join(choices)}", element=name)
    return value


def _moment(query: Mapping[str, str], name: str, *, end_of_day: bool) -> dt.datetime | None:
    """An ISO date (a whole day in Vietnam time: ``to`` includes it) or datetime (UTC when it
    carries no offset; ``to`` excludes it)."""
    value = query.get(name)
    if not value:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value) + dt.timedelta(days=1 if end_of_day else 0)
            return dt.datetime.combine(day, dt.time(), VIETNAM).astimezone(dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            "must be an ISO date (2026-11-23) or datetime (2026-11-23T08:00:00Z)", element=name
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "").lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise BadRequest("must be true or false", element=name)


def _limit(query: Mapping[str, str], *, default: int) -> int:
    value = query.get("limit")
    if value is None:
        return min(default, MAX_PAGE)
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"must be a whole number from 1 to {MAX_PAGE}", element="limit")
    return int(value)


def _encode_cursor(message: MessageRecord) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(value: str | None) -> tuple[dt.datetime, str] | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created, _, message_id = raw.partition("|")
        moment = dt.datetime.fromisoformat(created)
        if not message_id or moment.tzinfo is None:
            raise ValueError(raw)
    except (ValueError, binascii.Error):
        raise BadRequest("not a cursor this API returned", element="cursor") from None
    return moment, message_id


# ------------------------------------------------------------------------------- rendering


def _jsonable(value: object) -> object:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_dumps = functools.partial(json.dumps, default=_jsonable, ensure_ascii=False)


def _json(
    data: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _visible(message: MessageRecord, unit: str | None) -> bool:
    """What MessageFilter.visible_to_unit shows a member: what its unit sent or received."""
    return (
        unit is None
        or message.sender == unit
        or any(r.unit_code == unit for r in message.recipients)
    )


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


def _unit(unit: UnitRecord) -> dict[str, Any]:
    return dataclasses.asdict(unit)


def _unit_detail(detail: UnitDetail) -> dict[str, Any]:
    return {
        **_unit(detail.unit),
        "certificates": [
            {
                "subject": c.subject,
                "fingerprint_sha256": c.fingerprint_sha256,
                "not_after": c.not_after,
                "revoked": c.revoked,
            }
            for c in detail.certificates
        ],
    }

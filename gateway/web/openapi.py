"""The OpenAPI 3.1 document of the HTTP API, built once per app by :func:`build_document` and
served without a token at ``GET /api/v1/openapi.json``. A test checks that it names every route."""

from __future__ import annotations

from typing import Any

from envelopes.model import Classification, StatusCode
from gateway.domain.lifecycle import TransportState
from gateway.usecases.events import EVENT_TYPES
from gateway.usecases.registry import UNIT_FIELD_SPECS

PROBLEM = "application/problem+json"
REPLY_CODES = [c.value for c in StatusCode if c is not StatusCode.ARRIVED]

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STRING: Schema = {"type": "string"}
OPT_STRING = _nullable("string")
DATETIME: Schema = {"type": "string", "format": "date-time"}
OPT_DATETIME = _nullable("string", format="date-time")
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
STATE: Schema = {"type": "string", "enum": [s.value for s in TransportState]}
ROW: Schema = {"type": "object", "additionalProperties": True}


def _schemas() -> dict[str, Schema]:
    summary_fields: dict[str, Schema] = {
        "id": STRING,
        "direction": {"type": "string", "enum": ["in", "out"]},
        "kind": {"type": "string", "enum": ["document", "status"]},
        "document_id": STRING,
        "sender": STRING,
        "classification": {"type": "string", "enum": [c.value for c in Classification]},
        "subject": OPT_STRING,
        "state": {
            "type": ["string", "null"],
            "enum": [*STATE["enum"], None],
            "description": "The least advanced recipient state; null without recipients.",
        },
        "created_at": DATETIME,
        "send_due_at": OPT_DATETIME,
        "recipients": _array(_ref("RecipientSummary")),
    }
    return {
        "Problem": _object(
            {
                "type": {"type": "string", "format": "uri"},
                "title": STRING,
                "status": INTEGER,
                "detail": STRING,
                "code": {"type": "string", "description": "Stable error code (errors.md)."},
                "element": OPT_STRING,
                "rule": {"type": "string", "description": "SCHEMA_INVALID only."},
                "errors": _array(STRING),
            },
            ("type", "title", "status", "detail", "code", "element"),
        ),
        "Metadata": {
            "type": "object",
            "description": "Document metadata; every key in docs/reference/metadata.md. "
            "Unknown keys are errors (METADATA_INVALID, element = the key's path).",
            "required": [
                "classification",
                "from",
                "to",
                "code",
                "promulgation",
                "document_type",
                "subject",
            ],
            "properties": {
                "classification": summary_fields["classification"],
                "from": ROW,
                "to": _array(ROW),
                "code": ROW,
                "promulgation": ROW,
                "document_type": ROW,
                "subject": STRING,
            },
        },
        "Route": _object(
            {"recipient": STRING, "channel": OPT_STRING, "reason": STRING},
            ("recipient", "channel", "reason"),
        ),
        "Submitted": _object(
            {
                "id": STRING,
                "document_id": STRING,
                "state": STATE,
                "routes": _array(_ref("Route")),
                "created": {"type": "boolean", "description": "false for a repeated key"},
            },
            ("id", "document_id", "state", "routes", "created"),
        ),
        "RouteExplanation": _object({"routes": _array(_ref("Route"))}, ("routes",)),
        "RecipientSummary": _object(
            {"unit_code": STRING, "state": STATE, "business_status": OPT_STRING},
            ("unit_code", "state", "business_status"),
        ),
        "MessageSummary": _object(summary_fields, tuple(summary_fields)),
        "MessageList": _object(
            {"items": _array(_ref("MessageSummary")), "next_cursor": OPT_STRING},
            ("items", "next_cursor"),
        ),
        "RecipientDetail": _object(
            {
                "unit_code": STRING,
                "channel": OPT_STRING,
                "state": STATE,
                "attempt_count": INTEGER,
                "last_error": OPT_STRING,
                "next_attempt_at": OPT_DATETIME,
                "sent_at": OPT_DATETIME,
                "arrival_due_at": OPT_DATETIME,
                "business_status": OPT_STRING,
                "remote_id": OPT_STRING,
            }
        ),
        "MessageDetail": _object(
            {
                **summary_fields,
                "recipients": _array(_ref("RecipientDetail")),
                "code": OPT_STRING,
                "priority": INTEGER,
                "status_code": OPT_STRING,
                "related_message_id": OPT_STRING,
                "route": OPT_STRING,
                "client": STRING,
                "idempotency_key": OPT_STRING,
                "notices": _array(STRING),
                "signer_subject": OPT_STRING,
                "package_sha256": STRING,
                "attempts": {**_array(ROW), "description": "Delivery attempts, oldest first."},
                "audit": {**_array(ROW), "description": "Every state change: who, when, why."},
                "status_events": {**_array(ROW), "description": "Business statuses in and out."},
            },
            ("id", "recipients", "attempts", "audit", "status_events"),
        ),
        "OperatorAction": _object(
            {
                "reason": {"type": "string", "description": "Required (REASON_REQUIRED)."},
                "recipient": {"type": "string", "description": "Only this recipient."},
            }
        ),
        "Reroute": _object({"channel": STRING, "reason": STRING}, ("channel",)),
        "Changed": _object(
            {"message_id": STRING, "recipients": _array(STRING), "new_state": STATE},
            ("message_id", "recipients", "new_state"),
        ),
        "StaffInfo": _object(
            {"department": STRING, "staff": STRING, "mobile": STRING, "email": STRING}
        ),
        "StatusReply": _object(
            {
                "code": {"type": "string", "enum": REPLY_CODES},
                "description": {"type": "string", "description": "Required for 02 and 13."},
                "staff_info": _ref("StaffInfo"),
            },
            ("code",),
        ),
        "StatusReplied": _object({"status_messages": _array(STRING)}, ("status_messages",)),
        "Received": _object(
            {
                "id": STRING,
                "kind": {"type": "string", "enum": ["document", "status"]},
                "document_id": STRING,
                "sender": STRING,
                "duplicate": BOOLEAN,
                "answers": {**_array(STRING), "description": "Status 01 messages queued."},
            },
            ("id", "kind", "document_id", "duplicate", "answers"),
        ),
        "Unit": _object(
            {
                "code": STRING,
                "name": STRING,
                "code_qd20": OPT_STRING,
                "parent_code": OPT_STRING,
                "channel": OPT_STRING,
                "secure_endpoint": OPT_STRING,
                "allows_tuyet_mat": BOOLEAN,
                "is_local": BOOLEAN,
                "active": BOOLEAN,
            },
            ("code", "name"),
        ),
        "Certificate": _object(
            {
                "subject": STRING,
                "fingerprint_sha256": STRING,
                "not_after": DATETIME,
                "revoked": BOOLEAN,
            },
            ("subject", "fingerprint_sha256", "not_after", "revoked"),
        ),
        "UnitDetail": {
            "allOf": [
                _ref("Unit"),
                _object({"certificates": _array(_ref("Certificate"))}, ("certificates",)),
            ]
        },
        "UnitList": _object(
            {"items": _array(_ref("Unit")), "next_after": OPT_STRING}, ("items", "next_after")
        ),
        "UnitRegistration": {
            **_object(
                {
                    "code": STRING,
                    # The registration's fields, from their one definition (registry).
                    **{
                        spec.name: BOOLEAN
                        if spec.flag
                        else (STRING if spec.name == "name" else OPT_STRING)
                        for spec in UNIT_FIELD_SPECS
                    },
                    "certificate_pem": STRING,
                },
                ("code",),
            ),
            "description": "Omitted fields keep their current value (allows_tuyet_mat: false "
            "for a new unit). A member token may register only its own unit and change only its "
            "name and certificates.",
        },
        "Health": _object(
            {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "database": BOOLEAN,
                "workers_alive": INTEGER,
                "queue_lag_seconds": _nullable("number"),
                "reasons": _array(
                    _object(
                        {"code": STRING, "subject": STRING, "vi": STRING, "en": STRING},
                        ("code", "subject", "vi", "en"),
                    )
                ),
                "channels": _array({"$ref": "#/components/schemas/Breaker"}),
            },
            ("status", "database", "workers_alive", "queue_lag_seconds", "reasons", "channels"),
        ),
        "Breaker": _object(
            {
                "channel": STRING,
                "unit": _nullable("string"),
                "state": {"enum": ["closed", "open", "recovering", "paused"]},
                "failures": INTEGER,
                "next_at": _nullable("string", format="date-time"),
                "opened_at": _nullable("string", format="date-time"),
                "last_error": _nullable("string"),
                "changed_by": _nullable("string"),
            },
            ("channel", "unit", "state", "failures"),
        ),
        "Alert": _object(
            {
                "id": STRING,
                "rule": STRING,
                "subject": STRING,
                "severity": {"enum": ["warning", "critical"]},
                "state": {"enum": ["open", "resolved"]},
                "vi": STRING,
                "en": STRING,
                "raised_at": DATETIME,
                "last_seen_at": DATETIME,
                "resolved_at": _nullable("string", format="date-time"),
                "acked_at": _nullable("string", format="date-time"),
                "acked_by": _nullable("string"),
                "notify_error": _nullable("string"),
            },
            ("id", "rule", "subject", "severity", "state", "vi", "en", "raised_at"),
        ),
    }


_PROBLEMS = {
    "BadRequest": "Malformed request (BAD_REQUEST): not JSON, wrong type, missing part.",
    "Unauthorized": "Missing, unknown or revoked token (UNAUTHORIZED).",
    "Forbidden": "The token's role or unit may not do this (FORBIDDEN).",
    "NotFound": "No such message or unit, or not visible to this member (NOT_FOUND).",
    "Conflict": "The state does not allow it (CONFLICT, REROUTE_REFUSED, ILLEGAL_TRANSITION).",
    "PayloadTooLarge": "The body is over [api] max_upload_bytes (PAYLOAD_TOO_LARGE).",
    "UnsupportedMediaType": "Wrong Content-Type (UNSUPPORTED_MEDIA_TYPE).",
    "HeadersTooLarge": "A header or the request line over 8190 bytes, or over 128 headers "
    "(HEADERS_TOO_LARGE).",
    "Unprocessable": "Understood but refused: METADATA_INVALID, TEXT_INVALID, UNKNOWN_UNIT, "
    "REASON_REQUIRED, STATUS_CODE_INVALID, CERT_INVALID, ATTACHMENT_NAME_INVALID, "
    "ATTACHMENT_EMPTY, IDEMPOTENCY_KEY_REUSED, XML_*, SIGNATURE_*, SIGNED_*, CERT_*, "
    "UNKNOWN_SENDER …",
    "InternalError": "Unexpected; the body carries an incident id only (INTERNAL_ERROR).",
}
_STATUS_OF = {
    "BadRequest": "400",
    "Unauthorized": "401",
    "Forbidden": "403",
    "NotFound": "404",
    "Conflict": "409",
    "PayloadTooLarge": "413",
    "UnsupportedMediaType": "415",
    "HeadersTooLarge": "431",
    "Unprocessable": "422",
    "InternalError": "500",
}


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {
        name: {"description": text, "content": {PROBLEM: {"schema": _ref("Problem")}}}
        for name, text in _PROBLEMS.items()
    }
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"schema": {"type": "string", "example": 'Bearer realm="docgw"'}}
    }
    return responses


def _json_body(schema: str, description: str = "") -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }


def _ok(schema: str, description: str, status: str = "200") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": _ref(schema)}},
        }
    }


def _errors(*names: str) -> dict[str, Any]:
    """Problem responses of an operation; every authenticated one can be 400 (a malformed
    request, a parameter with a character XML cannot carry), 401, 431 and 500."""
    chosen = ("BadRequest", "Unauthorized", *names, "HeadersTooLarge", "InternalError")
    return {_STATUS_OF[n]: {"$ref": f"#/components/responses/{n}"} for n in chosen}


def _operation(
    operation_id: str,
    summary: str,
    roles: str,
    responses: dict[str, Any],
    *,
    tag: str,
    parameters: list[Any] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": f"Roles: {roles}.",
        "tags": [tag],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    return operation


def _query(name: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema or STRING}


def _paths(max_upload_bytes: int, page_size: int) -> dict[str, Any]:
    message_id = {"$ref": "#/components/parameters/MessageId"}
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": page_size},
    }
    upload = {
        "required": True,
        "description": f"At most {max_upload_bytes} bytes in all (413 above).",
        "content": {
            "multipart/form-data": {
                "schema": _object(
                    {
                        "metadata": _ref("Metadata"),
                        "attachment": _array({"type": "string", "format": "binary"}),
                    },
                    ("metadata",),
                ),
                "encoding": {
                    "metadata": {"contentType": "application/json"},
                    "attachment": {"contentType": "*/*"},
                },
            }
        },
    }
    package = {"type": "string", "format": "binary"}
    action = _errors("BadRequest", "Forbidden", "NotFound", "Conflict", "Unprocessable")
    return {
        "/api/v1/messages": {
            "post": _operation(
                "submitMessage",
                "Send a document: one metadata part and attachment parts",
                "admin, operator, member (for its own unit)",
                {
                    **_ok("Submitted", "Accepted and durable", "201"),
                    **_ok("Submitted", "A repeated Idempotency-Key: the original message"),
                    **_errors(
                        "BadRequest",
                        "Forbidden",
                        "PayloadTooLarge",
                        "UnsupportedMediaType",
                        "Unprocessable",
                    ),
                },
                tag="messages",
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "A repeat of the same request returns the original "
                        "message (200); the key with another request is 422 "
                        "IDEMPOTENCY_KEY_REUSED.",
                    },
                    {
                        "name": "duplicate_code",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["intended"]},
                        "description": "A new document repeating its sender's số/ký hiệu of the "
                        "year is meant (else 422 DUPLICATE_DOCUMENT_CODE).",
                    },
                ],
                body=upload,
            ),
            "get": _operation(
                "listMessages",
                "List messages, newest first",
                "admin, operator, member (its unit's messages only)",
                {**_ok("MessageList", "One page"), **_errors("BadRequest", "Forbidden")},
                tag="messages",
                parameters=[
                    _query("direction", "in or out", {"type": "string", "enum": ["in", "out"]}),
                    _query("state", "a recipient in this transport state", STATE),
                    _query("recipient", "a recipient unit code"),
                    _query("sender", "the sender's unit code"),
                    _query(
                        "classification",
                        "",
                        {"type": "string", "enum": [c.value for c in Classification]},
                    ),
                    _query("from", "created at or after: ISO date (Vietnam day) or datetime"),
                    _query("to", "created before: ISO datetime, or ISO date (that day included)"),
                    _query("text", "in the subject or document id"),
                    _query("breached", "a send or arrival deadline has passed", BOOLEAN),
                    limit,
                    _query("cursor", "next_cursor of the previous page (opaque)"),
                ],
            ),
        },
        "/api/v1/messages/{id}": {
            "get": _operation(
                "showMessage",
                "A message with its recipients and timelines",
                "admin, operator, member (its unit's messages only)",
                {**_ok("MessageDetail", "The message"), **_errors("Forbidden", "NotFound")},
                tag="messages",
                parameters=[message_id],
            )
        },
        "/api/v1/messages/{id}/resend": {
            "post": _operation(
                "resendMessage",
                "Queue again failed, sent, unconfirmed or held recipients (same package)",
                "admin, operator",
                {**_ok("Changed", "Moved"), **action},
                tag="operations",
                parameters=[message_id],
                body=_json_body("OperatorAction"),
            )
        },
        "/api/v1/messages/{id}/cancel": {
            "post": _operation(
                "cancelMessage",
                "Cancel recipients not yet sent",
                "admin, operator",
                {**_ok("Changed", "Moved"), **action},
                tag="operations",
                parameters=[message_id],
                body=_json_body("OperatorAction"),
            )
        },
        "/api/v1/messages/{id}/reroute": {
            "post": _operation(
                "rerouteMessage",
                "Send held or failed recipients through another channel",
                "admin, operator",
                {**_ok("Changed", "Moved"), **action},
                tag="operations",
                parameters=[message_id],
                body=_json_body("Reroute"),
            )
        },
        "/api/v1/messages/{id}/status": {
            "post": _operation(
                "replyStatus",
                "Send a business status about a message (02–06, 15, 16 received; 13 sent)",
                "admin, operator, member (for its unit)",
                {**_ok("StatusReplied", "Queued", "201"), **action},
                tag="statuses",
                parameters=[message_id],
                body=_json_body("StatusReply"),
            )
        },
        "/api/v1/route/explain": {
            "post": _operation(
                "explainRoute",
                "Where a document would go, and why — nothing is sent or stored",
                "admin, operator, member",
                {
                    **_ok("RouteExplanation", "One route per recipient"),
                    **_errors("BadRequest", "Unprocessable"),
                },
                tag="messages",
                body={
                    "required": True,
                    "description": "The document metadata JSON (docs/reference/metadata.md).",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            )
        },
        "/api/v1/inbox": {
            "post": _operation(
                "receivePackage",
                "Hand over a received package (from a peer gateway or a connector)",
                "admin, operator",
                {
                    **_ok("Received", "Stored; status 01 queued", "201"),
                    **_ok("Received", "A duplicate: the original message id"),
                    **_errors(
                        "BadRequest",
                        "Forbidden",
                        "PayloadTooLarge",
                        "UnsupportedMediaType",
                        "Unprocessable",
                    ),
                },
                tag="messages",
                body={
                    "required": True,
                    "description": f"The package as received, at most {max_upload_bytes} bytes.",
                    "content": {
                        "application/xml": {"schema": package},
                        "application/octet-stream": {"schema": package},
                    },
                },
            )
        },
        "/api/v1/units": {
            "get": _operation(
                "listUnits",
                "The unit registry, by code",
                "admin, operator, member",
                {**_ok("UnitList", "One page"), **_errors("BadRequest")},
                tag="units",
                parameters=[
                    _query("q", "in the code or name"),
                    _query("after", "next_after of the previous page"),
                    limit,
                ],
            ),
            "post": _operation(
                "registerUnit",
                "Register or update a unit, and add a certificate",
                "admin; member for its own unit (name and certificates only)",
                {
                    **_ok("UnitDetail", "Registered", "201"),
                    **_ok("UnitDetail", "Updated"),
                    **_errors("BadRequest", "Forbidden", "Unprocessable"),
                },
                tag="units",
                body=_json_body("UnitRegistration"),
            ),
        },
        "/api/v1/units/{code}": {
            "get": _operation(
                "showUnit",
                "A unit and its certificates",
                "admin, operator, member",
                {**_ok("UnitDetail", "The unit"), **_errors("NotFound")},
                tag="units",
                parameters=[{"$ref": "#/components/parameters/UnitCode"}],
            )
        },
        "/api/v1/reports/{kind}": {"get": _report_operation()},
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["service"],
                "security": [],
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "ok, or degraded with its reasons (docs/howto/operate.md); 503 only "
                "when this process cannot serve (DATABASE_UNREACHABLE, NO_WORKER_ALIVE)",
                "tags": ["service"],
                "security": [],
                "responses": {
                    **_ok("Health", "Serving: ok, or degraded with its reasons"),
                    **_ok("Health", "Not serving: the database or every worker is gone", "503"),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text format 0.0.4)",
                "tags": ["service"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "docgw_recipients, docgw_oldest_due_age_seconds, "
                        "docgw_attempts_total, docgw_failures_total, docgw_status_events_total, "
                        "docgw_workers_alive, docgw_channel_breaker, "
                        "docgw_channel_breaker_failures",
                        "content": {"text/plain": {"schema": STRING}},
                    }
                },
            }
        },
    }


def _download(operation_id: str, summary: str, parameters: list[Any]) -> dict[str, Any]:
    return _operation(
        operation_id,
        summary,
        "admin, operator, member (its unit's messages only); a classified message's content: "
        "a member of its unit only (else 403 CLASSIFIED_READER_REFUSED), and only where this "
        "gateway holds the key its copy is sealed for (else 409 PACKAGE_NOT_OPENABLE)",
        {
            "200": {
                "description": "The bytes, streamed, with Content-Length and Content-Disposition "
                "(filename*=UTF-8'' …)",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            **_errors("BadRequest", "Forbidden", "NotFound", "Conflict"),
        },
        tag="integration",
        parameters=parameters,
    )


def _integration_paths(page_size: int) -> dict[str, Any]:
    """The local system's side (gateway/web/integration.py)."""
    message_id = {"$ref": "#/components/parameters/MessageId"}
    number = {
        "name": "n",
        "in": "path",
        "required": True,
        "description": "1 for the first attachment in the package, 2 for the next …",
        "schema": {"type": "integer", "minimum": 1},
    }
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": page_size},
    }
    member = "admin, operator, member (its unit's only)"
    event = _object(
        {
            "cursor": {**STRING, "description": "resume after this event: ?after=<cursor>"},
            "event_id": {**STRING, "description": "stable: the same event is the same id"},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "message_id": _nullable("string"),
            "document_id": _nullable("string"),
            "unit": _nullable("string", description="the local unit concerned"),
            "peer": _nullable("string", description="sender, reporter or recipient"),
            "status_code": _nullable("string"),
            "status_message_id": _nullable("string"),
            "reason": _nullable("string"),
            "occurred_at": {"type": "string", "format": "date-time"},
            "classification": _nullable("string"),
            "subject": _nullable("string", description="null for a classified message"),
            "links": {"type": "object", "additionalProperties": STRING},
        },
        ("cursor", "event_id", "type", "occurred_at", "links"),
    )
    taken = _object(
        {
            "message_id": STRING,
            "taken": _array(
                _object(
                    {
                        "unit": STRING,
                        "taken_at": {"type": "string", "format": "date-time"},
                        "now": {"type": "boolean", "description": "false: taken before"},
                    }
                )
            ),
        }
    )
    handed = _object(
        {
            "items": _array(
                _object(
                    {
                        "message_id": STRING,
                        "unit": STRING,
                        "document_id": STRING,
                        "sender": STRING,
                        "received_at": {"type": "string", "format": "date-time"},
                        "taken_at": _nullable("string", format="date-time"),
                        "taken_by": _nullable("string"),
                    }
                )
            ),
            "next_cursor": _nullable("string"),
        }
    )

    def _json_ok(schema: Schema, description: str, status: str = "200") -> dict[str, Any]:
        return {
            status: {
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }
        }

    webhook = _object(
        {
            "id": STRING,
            "url": STRING,
            "unit": _nullable("string", description="null: every event"),
            "cursor": {**STRING, "description": "the last event delivered"},
            "pending": {**INTEGER, "description": "events waiting for it"},
            "failures": {**INTEGER, "description": "consecutive failed attempts"},
            "next_attempt_at": _nullable("string", format="date-time"),
            "last_error": _nullable("string"),
            "last_attempt_at": _nullable("string", format="date-time"),
            "last_delivered_at": _nullable("string", format="date-time"),
            "created_at": DATETIME,
            "created_by": STRING,
        }
    )
    webhook_id = {"name": "wid", "in": "path", "required": True, "schema": STRING}
    admin_errors = _errors("BadRequest", "Forbidden", "NotFound", "Unprocessable")
    webhooks = {
        "/api/v1/webhooks": {
            "post": _operation(
                "addWebhook",
                "Register a webhook endpoint; its secret is in this answer only",
                "admin",
                {
                    **_json_ok(
                        {
                            **webhook,
                            "properties": {**webhook["properties"], "secret": STRING},
                        },
                        "Registered; events from now on are delivered to it",
                        "201",
                    ),
                    **admin_errors,
                },
                tag="integration",
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _object({"url": STRING, "unit": STRING}, ("url",))
                        }
                    },
                },
            ),
            "get": _operation(
                "listWebhooks",
                "Webhook endpoints and their delivery state (never their secrets)",
                "admin",
                {
                    **_json_ok(_object({"items": _array(webhook)}), "All of them"),
                    **_errors("BadRequest", "Forbidden"),
                },
                tag="integration",
            ),
        },
        "/api/v1/webhooks/{wid}": {
            "delete": _operation(
                "removeWebhook",
                "Remove a webhook endpoint",
                "admin",
                {"204": {"description": "Removed"}, **_errors("Forbidden", "NotFound")},
                tag="integration",
                parameters=[webhook_id],
            )
        },
        "/api/v1/webhooks/{wid}/replay": {
            "post": _operation(
                "replayWebhook",
                "Deliver again every event after a feed cursor",
                "admin",
                {
                    **_json_ok(_object({"id": STRING, "after": STRING}), "Rewound"),
                    **admin_errors,
                },
                tag="integration",
                parameters=[webhook_id],
                body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": _object({"after": STRING}, ("after",))}
                    },
                },
            )
        },
    }
    return {
        **webhooks,
        "/api/v1/feed": {
            "get": _operation(
                "readFeed",
                "Events after a cursor, in the feed's total order",
                member,
                {
                    **_json_ok(
                        _object(
                            {"items": _array(event), "next_cursor": STRING},
                            ("items", "next_cursor"),
                        ),
                        "One page; next_cursor is the last item's cursor (or `after` when empty)",
                    ),
                    **_errors("BadRequest", "Forbidden"),
                },
                tag="integration",
                parameters=[_query("after", "a cursor this feed returned; none: the start"), limit],
            )
        },
        "/api/v1/messages/{id}/ack": {
            "post": _operation(
                "acknowledgeMessage",
                "The local system took this received document (idempotent)",
                f"{member}; staff may name the unit",
                {
                    **_json_ok(taken, "Taken now", "201"),
                    **_json_ok(taken, "Taken before: the first time stands"),
                    # 409: a sender's status as the reply; 422: a reply code, its reason or a
                    # text (TEXT_INVALID) refused.
                    **_errors("BadRequest", "Forbidden", "NotFound", "Conflict", "Unprocessable"),
                },
                tag="integration",
                parameters=[message_id],
                body={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": _object(
                                {
                                    "unit": STRING,
                                    "reply": {
                                        "type": "string",
                                        "enum": [
                                            c.value
                                            for c in StatusCode
                                            if c is not StatusCode.ARRIVED and not c.sent_by_sender
                                        ],
                                    },
                                    "description": STRING,
                                    "staff_info": {"type": "object"},
                                }
                            )
                        }
                    },
                },
            )
        },
        "/api/v1/handover": {
            "get": _operation(
                "listHandover",
                "Received documents per local unit: taken (when, by whom) or waiting",
                member,
                {
                    **_json_ok(handed, "One page, oldest first"),
                    **_errors("BadRequest", "Forbidden"),
                },
                tag="integration",
                parameters=[
                    _query("waiting", "true: only those not taken yet", BOOLEAN),
                    limit,
                    _query("cursor", "next_cursor of the previous page (opaque)"),
                ],
            )
        },
        "/api/v1/messages/{id}/package": {
            "get": _download(
                "downloadPackage",
                "The signed package as received or sent (a classified one opened)",
                [message_id],
            )
        },
        "/api/v1/messages/{id}/attachments/{n}": {
            "get": _download(
                "downloadAttachment",
                "One attachment, decoded, with its signed name and media type",
                [message_id, number],
            )
        },
    }


def _report_operation() -> dict[str, Any]:
    """``GET /api/v1/reports/{monthly|weekly}`` (gateway/web/reports.py)."""

    def query(name: str, description: str, schema: Schema = STRING) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    made = {
        "200": {
            "description": "The report, made now (figures: docs/howto/reports.md)",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
    return _operation(
        "report",
        "A monthly or weekly report of documents sent and received",
        "admin, member (for its own unit, which it must name)",
        {**made, **_errors("BadRequest", "Forbidden", "NotFound", "Unprocessable")},
        tag="reports",
        parameters=[
            {"name": "kind", "in": "path", "required": True,
             "schema": {"enum": ["monthly", "weekly"]}},
            {**query("period", "2026-11 (monthly) or 2026-W48 (weekly)"), "required": True},
            query("unit", "a unit's report (default: the whole gateway)"),
            query("format", "json (default), csv or pdf", {"enum": ["json", "csv", "pdf"]}),
        ],
    )  # fmt: skip


def _alert_paths() -> dict[str, Any]:
    """Alerts and channels (gateway/web/alerts.py)."""
    staff = "admin, operator"

    def ok(schema: Schema, description: str) -> dict[str, Any]:
        return {"200": {"description": description,
                        "content": {"application/json": {"schema": schema}}}}  # fmt: skip

    breaker = {"$ref": "#/components/schemas/Breaker"}
    name = {"name": "name", "in": "path", "required": True, "schema": STRING}
    unit_body = {
        "required": False,
        "content": {"application/json": {"schema": _object({"unit": STRING})}},
    }

    def change(action: str, summary: str) -> dict[str, Any]:
        return {
            "post": _operation(
                f"{action}Channel", summary, staff,
                {**ok(breaker, "The breaker now"), **_errors("Forbidden", "NotFound")},
                tag="operations", parameters=[name], body=unit_body,
            )
        }  # fmt: skip

    return {
        "/api/v1/alerts": {
            "get": _operation(
                "listAlerts", "Alerts, newest first (state: open or resolved)", staff,
                {**ok(_object({"items": _array({"$ref": "#/components/schemas/Alert"})}),
                      "One page"), **_errors("Forbidden")},
                tag="operations",
                parameters=[_query("state", "open or resolved (default: both)",
                                   {"enum": ["open", "resolved"]}),
                            _query("limit", "1-200", INTEGER)],
            )
        },
        "/api/v1/alerts/{aid}/ack": {
            "post": _operation(
                "acknowledgeAlert", "An operator has seen the alert (it stays open while it "
                "holds)", staff,
                {**ok(_object({"id": STRING, "acked_by": STRING}), "Acknowledged"),
                 **_errors("Forbidden", "NotFound")},
                tag="operations",
                parameters=[{"name": "aid", "in": "path", "required": True, "schema": STRING}],
            )
        },
        "/api/v1/channels": {
            "get": _operation(
                "listChannels", "Every channel's circuit breaker (and units' on secure channels)",
                staff, {**ok(_object({"items": _array(breaker)}), "All of them"),
                        **_errors("Forbidden")},
                tag="operations",
            )
        },
        "/api/v1/channels/{name}/pause": change(
            "pause", "Stop sending on a channel (body: unit, on a secure channel)"
        ),
        "/api/v1/channels/{name}/resume": change(
            "resume", "Send again; the backlog drains at the bounded rate"
        ),
    }  # fmt: skip


def build_document(*, max_upload_bytes: int, page_size: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "docgw",
            "version": "1",
            "description": "Inter-agency document gateway (edXML, QCVN 102:2016). Datetimes "
            "are ISO 8601 in UTC. Every error is an RFC 9457 problem with a stable `code`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": "messages"},
            {"name": "operations"},
            {"name": "statuses"},
            {"name": "units"},
            {"name": "reports"},
            {"name": "service"},
            {"name": "integration"},
        ],
        "paths": {
            **_paths(max_upload_bytes, page_size),
            **_integration_paths(page_size),
            **_alert_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `docgw token create` (roles admin, operator, "
                    "member).",
                }
            },
            "parameters": {
                "MessageId": {"name": "id", "in": "path", "required": True, "schema": STRING},
                "UnitCode": {"name": "code", "in": "path", "required": True, "schema": STRING},
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }

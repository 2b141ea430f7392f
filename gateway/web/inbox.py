"""``POST /api/v1/inbox`` (admin, operator; ``intake.receive_package``): a peer gateway or a
connector hands over a package it received (sealed or not), streamed into a spooled file."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from gateway.usecases import intake
from gateway.usecases.packages import spool
from gateway.web.auth import PRINCIPAL, STAFF, allow
from gateway.web.bodies import Reply, render
from gateway.web.common import API, GATEWAY, media_type, spool_body
from gateway.web.problems import UnsupportedMediaType
from gateway.web.routes import (
    PAYLOAD_TOO_LARGE,
    UNPROCESSABLE,
    UNSUPPORTED_MEDIA_TYPE,
    Response,
    Routes,
)

ROUTES = Routes(tag="messages")

PACKAGE_TYPES = ("application/xml", "text/xml", "application/octet-stream")
PACKAGE = {"type": "string", "format": "binary"}


class Received(Reply):
    """Stored; status 01 queued"""

    id: str
    kind: Literal["document", "status"]
    document_id: str
    sender: str | None
    duplicate: bool
    answers: list[str] = Field(description="Status 01 messages queued.")


@ROUTES.post(
    f"{API}/inbox",
    name="receive_package",
    summary="Hand over a received package (from a peer gateway or a connector)",
    ok={201: Received,
        200: Response(description="A duplicate: the original message id", body=Received)},
    errors=(PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, UNPROCESSABLE),
    body={media: {"schema": PACKAGE} for media in PACKAGE_TYPES},
    body_description="The package as received, at most [api] max_upload_bytes.",
)  # fmt: skip
@allow(STAFF)
async def receive_package(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    if media_type(request) not in PACKAGE_TYPES:
        raise UnsupportedMediaType(
            f"send the package as {' or '.join(PACKAGE_TYPES)}, not {media_type(request)}"
        )
    with spool() as package:
        await spool_body(request, package, gateway.settings.api.max_upload_bytes)
        received = await intake.receive_package(gateway, package, via=principal.name)
    body = Received.model_validate(
        {
            "id": received.message_id,
            "kind": received.kind,
            "document_id": received.document_id,
            "sender": received.sender,
            "duplicate": received.duplicate,
            "answers": list(received.answers),
        }
    )
    return render(body, status=200 if received.duplicate else 201)

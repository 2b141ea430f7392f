"""``POST /api/v1/inbox`` (admin, operator; ``intake.receive_package``): a peer gateway or a
connector hands over a package it received (sealed or not), streamed into a spooled file."""

from __future__ import annotations

from aiohttp import web

from gateway.usecases import intake
from gateway.usecases.packages import spool
from gateway.web.auth import PRINCIPAL, STAFF, allow
from gateway.web.common import API, GATEWAY, json_response, media_type, spool_body
from gateway.web.problems import UnsupportedMediaType
from gateway.web.routes import Routes

ROUTES = Routes(tag="messages")

PACKAGE_TYPES = ("application/xml", "text/xml", "application/octet-stream")


@ROUTES.post(f"{API}/inbox", name="inbox")
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
    body = {
        "id": received.message_id,
        "kind": received.kind,
        "document_id": received.document_id,
        "sender": received.sender,
        "duplicate": received.duplicate,
        "answers": list(received.answers),
    }
    return json_response(body, status=200 if received.duplicate else 201)

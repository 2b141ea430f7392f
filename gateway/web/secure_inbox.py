"""The secure inbox: where secure-network peers push packages (sealed for us), over mutual TLS.

Separate from the HTTP API on purpose: its own port, a TLS context that requires a client
certificate signed by the configured CA, and no bearer tokens — the peer is the unit its client
certificate names. That unit must be registered and active, and the package must come from it.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from connectors.secure_endpoint import peer_unit_from_certificate, server_ssl_context
from envelopes.errors import GatewayError
from gateway.bootstrap import Gateway
from gateway.keystore import CA_CERT, unit_paths
from gateway.settings import Settings
from gateway.store import unit_queries
from gateway.usecases.intake import receive_package
from gateway.usecases.packages import spool
from gateway.web.problems import PayloadTooLarge, from_error, problem_middleware

GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
CHUNK = 1 << 20


class PeerNotRegistered(GatewayError):
    code = "PEER_NOT_REGISTERED"


def secure_inbox_ssl_context(settings: Settings) -> ssl.SSLContext:
    inbox = settings.secure_inbox
    keys = settings.resolve(settings.keys.dir)
    own = settings.gateway.local_units[0] if settings.gateway.local_units else ""
    key_path, cert_path = unit_paths(keys, own)
    return server_ssl_context(
        settings.resolve(inbox.cert_file or cert_path),
        settings.resolve(inbox.key_file or key_path),
        settings.resolve(inbox.client_ca_file or keys / CA_CERT),
    )


async def _receive(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    try:
        peer = _peer_unit(request)
        async with gateway.engine.connect() as conn:
            unit = await unit_queries.get_unit(conn, peer)
        if unit is None or not unit.active:
            raise PeerNotRegistered(f"the peer {peer} is not an active registered unit")
        body = spool()
        try:
            size = 0
            limit = gateway.settings.api.max_upload_bytes
            while chunk := await request.content.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the package is larger than {limit} bytes")
                body.write(chunk)
            received = await receive_package(
                gateway, body, via=f"secure:{peer}", expected_sender=peer
            )
        finally:
            body.close()
    except GatewayError as exc:
        return from_error(exc)
    return web.json_response(
        {"id": received.message_id, "duplicate": received.duplicate, "kind": received.kind},
        status=200 if received.duplicate else 201,
    )


def _peer_unit(request: web.Request) -> str:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    unit = peer_unit_from_certificate(der) if der else None
    if unit is None:
        raise PeerNotRegistered("the client certificate names no unit")
    return unit


def create_secure_inbox_app(gateway: Gateway) -> web.Application:
    app = web.Application(
        client_max_size=gateway.settings.api.max_upload_bytes, middlewares=[problem_middleware]
    )
    app[GATEWAY_KEY] = gateway
    app.router.add_post("/inbox", _receive)
    return app

"""Registration with approval and the registry's switches over HTTP (the same use cases as
``docgw units request|approve|…``):

    POST  /api/v1/unit-requests                      admin, member*   registrations.request_unit
    GET   /api/v1/unit-requests                      admin, operator, member*
    GET   /api/v1/unit-requests/{id}                 admin, operator, member*
    POST  /api/v1/unit-requests/{id}/approve|refuse  admin            registrations.decide
    POST  /api/v1/units/{code}/deactivate|activate   admin            registrations.set_active
    GET   /api/v1/units/{code}/history               admin, operator, member*
    POST  /api/v1/certificates/{fingerprint}/revoke  admin       registrations.revoke_certificate

* a member token asks for and sees only its own unit's requests (its unit, or a unit under it)
  and its own unit's history.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from aiohttp import web

from gateway.usecases import registrations
from gateway.usecases.errors import NotFound
from gateway.usecases.tokens import Role
from gateway.web.auth import ADMIN, EVERYONE, PRINCIPAL, allow, member_unit
from gateway.web.problems import BadRequest

REQUEST_BODY = ("code", *registrations.REQUEST_FIELDS, "certificates")
REASON_BODY = ("reason",)
MEMBER_OR_ADMIN = frozenset({Role.ADMIN, Role.MEMBER})


def _helpers() -> Any:
    # app.py imports this module to route to it: its helpers are imported when called.
    from gateway.web import app

    return app


def _request_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadRequest("a unit request's id is a number", element="id")
    return int(value)


def _body(request: registrations.UnitRequest) -> dict[str, Any]:
    return dataclasses.asdict(request)


@allow(MEMBER_OR_ADMIN)
async def create(request: web.Request) -> web.Response:
    app = _helpers()
    body = await app._read_object(request, REQUEST_BODY)
    code = app._required_text(body, "code")
    fields = {name: app._text(body, name) for name in registrations.REQUEST_FIELDS}
    pems = body.get("certificates") or []
    if not isinstance(pems, list) or not all(isinstance(p, str) for p in pems):
        raise BadRequest("a list of PEM certificates", element="certificates")
    principal = request[PRINCIPAL]
    made = await registrations.request_unit(
        request.app[app.GATEWAY],
        code,
        {k: v for k, v in fields.items() if v is not None},
        certificates=pems,
        actor=principal.name,
        member_unit=member_unit(principal),
    )
    return cast(web.Response, app._json(_body(made), status=201))


@allow(EVERYONE)
async def listing(request: web.Request) -> web.Response:
    app = _helpers()
    query = request.query
    app._reject_unknown_parameters(query, frozenset({"state", "limit"}))
    found = await registrations.list_requests(
        request.app[app.GATEWAY],
        state=query.get("state") or None,
        member_unit=member_unit(request[PRINCIPAL]),
        limit=app._limit(query, default=100),
    )
    return cast(web.Response, app._json({"items": [_body(r) for r in found]}))


@allow(EVERYONE)
async def show(request: web.Request) -> web.Response:
    app = _helpers()
    found = await registrations.get_request(
        request.app[app.GATEWAY], _request_id(request), member_unit=member_unit(request[PRINCIPAL])
    )
    return cast(web.Response, app._json(_body(found)))


async def _decide(request: web.Request, *, approve: bool) -> web.Response:
    app = _helpers()
    body = await app._read_object(request, REASON_BODY)
    decided = await registrations.decide(
        request.app[app.GATEWAY],
        _request_id(request),
        approve=approve,
        reason=app._text(body, "reason"),
        actor=request[PRINCIPAL].name,
    )
    return cast(web.Response, app._json(_body(decided)))


@allow(ADMIN)
async def approve(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


@allow(ADMIN)
async def refuse(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


async def _switch(request: web.Request, *, active: bool) -> web.Response:
    app = _helpers()
    body = await app._read_object(request, REASON_BODY)
    unit = await registrations.set_active(
        request.app[app.GATEWAY],
        request.match_info["code"],
        active=active,
        reason=app._text(body, "reason"),
        actor=request[PRINCIPAL].name,
    )
    return cast(web.Response, app._json(dataclasses.asdict(unit)))


@allow(ADMIN)
async def deactivate(request: web.Request) -> web.Response:
    return await _switch(request, active=False)


@allow(ADMIN)
async def activate(request: web.Request) -> web.Response:
    return await _switch(request, active=True)


@allow(EVERYONE)
async def history(request: web.Request) -> web.Response:
    app = _helpers()
    code = request.match_info["code"]
    own = member_unit(request[PRINCIPAL])
    if own is not None and own != code:
        raise NotFound(f"no unit {code}")  # a member sees its own unit's history only
    versions = await registrations.history(request.app[app.GATEWAY], code)
    return cast(web.Response, app._json({"items": versions}))


@allow(ADMIN)
async def revoke_certificate(request: web.Request) -> web.Response:
    app = _helpers()
    body = await app._read_object(request, REASON_BODY)
    fingerprint = request.match_info["fingerprint"]
    code = await registrations.revoke_certificate(
        request.app[app.GATEWAY],
        fingerprint,
        reason=app._text(body, "reason"),
        actor=request[PRINCIPAL].name,
    )
    return cast(
        web.Response,
        app._json({"unit_code": code, "fingerprint_sha256": fingerprint, "revoked": True}),
    )


def add_routes(router: web.UrlDispatcher, api: str) -> None:
    router.add_post(f"{api}/unit-requests", create, name="unit_request_create")
    router.add_get(f"{api}/unit-requests", listing, name="unit_requests")
    router.add_get(f"{api}/unit-requests/{{id}}", show, name="unit_request")
    router.add_post(f"{api}/unit-requests/{{id}}/approve", approve, name="unit_request_approve")
    router.add_post(f"{api}/unit-requests/{{id}}/refuse", refuse, name="unit_request_refuse")
    router.add_post(f"{api}/units/{{code}}/deactivate", deactivate, name="unit_deactivate")
    router.add_post(f"{api}/units/{{code}}/activate", activate, name="unit_activate")
    router.add_get(f"{api}/units/{{code}}/history", history, name="unit_history")
    router.add_post(
        f"{api}/certificates/{{fingerprint}}/revoke",
        revoke_certificate,
        name="certificate_revoke",
    )

"""Registration with approval and the registry's switches (the same use cases as ``docgw units
request|approve|refuse|deactivate|activate|revoke-certificate|history``).

method  path                                       roles                      calls
POST    /api/v1/unit-requests                      admin, member*             registrations.request_unit
GET     /api/v1/unit-requests                      admin, operator, member*   registrations.list_requests
GET     /api/v1/unit-requests/{id}                 admin, operator, member*   registrations.get_request
POST    /api/v1/unit-requests/{id}/approve|refuse  admin                      registrations.decide
POST    /api/v1/units/{code}/deactivate|activate   admin                      registrations.set_active
GET     /api/v1/units/{code}/history               admin, operator, member*   registrations.history
POST    /api/v1/certificates/{fingerprint}/revoke  admin                      registrations.revoke_certificate

* a member token asks for and sees only its own unit's requests (its unit, or a unit under it)
  and its own unit's history.
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import Field, create_model

from gateway.usecases import registrations
from gateway.usecases.errors import NotFound
from gateway.usecases.tokens import Role
from gateway.web.auth import ADMIN, EVERYONE, PRINCIPAL, allow, member_unit
from gateway.web.bodies import Body, OptionalText, Reply, RequiredText, read_body, render
from gateway.web.common import API, GATEWAY, limit, limit_parameter, reject_unknown_parameters
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
from gateway.web.units import Unit

ROUTES = Routes(tag="units")
MEMBER_OR_ADMIN = frozenset({Role.ADMIN, Role.MEMBER})
REQUEST_ID = path_parameter(
    "id", "the request's number", {"type": "string", "pattern": "^[0-9]{1,12}$"}
)
UNIT_CODE = path_parameter("code", "the unit's code")

#: What a request asks for: the registrations use case's one list of fields.
_REQUEST_FIELDS: dict[str, Any] = {
    "code": (RequiredText, ...),
    "certificates": (list[str], Field(default_factory=list, description="PEM certificates")),
    **{name: (OptionalText, None) for name in registrations.REQUEST_FIELDS},
}
UnitRequestBody = create_model(
    "UnitRequestBody",
    __base__=Body,
    __doc__="A unit asked for (new, or a change of one); routing is the approving admin's",
    **_REQUEST_FIELDS,
)


class ReasonBody(Body):
    reason: OptionalText = Field(None, description="required: why")


class CertificateSeen(Reply):
    fingerprint_sha256: str
    subject: str


class UnitRequest(Reply):
    """One unit request"""

    id: int
    code: str
    fields: dict[str, str]
    certificates: list[CertificateSeen]
    requested_by: str
    requested_for: str | None
    requested_at: dt.datetime
    state: str = Field(description="pending, approved or refused")
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None
    axis_outcome: str | None = Field(description="registerAgency after approval, when asked")


class UnitRequests(Reply):
    """Unit requests, newest first"""

    items: list[UnitRequest]


class Version(Reply):
    code: str
    version: int
    action: str
    unit: Unit
    changed_by: str
    changed_at: dt.datetime
    reason: str | None


class UnitHistory(Reply):
    """Every recorded version of the unit, newest first"""

    items: list[Version]


class CertificateRevoked(Reply):
    """The certificate verifies and seals no more"""

    unit_code: str
    fingerprint_sha256: str
    revoked: bool


def _request_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadRequest("a unit request's id is a number", element="id")
    return int(value)


def _reply(found: registrations.UnitRequest) -> UnitRequest:
    return UnitRequest.model_validate(dataclasses.asdict(found))


@ROUTES.post(
    f"{API}/unit-requests",
    name="request_unit",
    summary="Ask for a unit (new, or a change of one); pending until an admin decides",
    notes="a member for its own unit or a unit under it",
    ok={201: Response(description="Pending", body=UnitRequest)},
    errors=(CONFLICT, UNPROCESSABLE),
    body=UnitRequestBody,
)
@allow(MEMBER_OR_ADMIN)
async def create(request: web.Request) -> web.Response:
    body: Any = await read_body(request, UnitRequestBody)
    principal = request[PRINCIPAL]
    fields = {name: getattr(body, name) for name in registrations.REQUEST_FIELDS}
    made = await registrations.request_unit(
        request.app[GATEWAY],
        body.code,
        {k: v for k, v in fields.items() if v is not None},
        certificates=body.certificates,
        actor=principal.name,
        member_unit=member_unit(principal),
    )
    return render(_reply(made), status=201)


LIST_QUERY = [
    query_parameter(
        "state",
        "pending, approved or refused",
        {"type": "string", "enum": list(registrations.STATES)},
    ),
    limit_parameter(),
]


@ROUTES.get(
    f"{API}/unit-requests",
    name="unit_requests",
    summary="Unit requests, newest first",
    notes="a member sees those made for its unit",
    ok={200: UnitRequests},
    errors=(UNPROCESSABLE,),
    parameters=LIST_QUERY,
)
@allow(EVERYONE)
async def listing(request: web.Request) -> web.Response:
    query = request.query
    reject_unknown_parameters(query, query_names(LIST_QUERY))
    found = await registrations.list_requests(
        request.app[GATEWAY],
        state=query.get("state") or None,
        member_unit=member_unit(request[PRINCIPAL]),
        limit=limit(query, default=100),
    )
    return render(UnitRequests(items=[_reply(r) for r in found]))


@ROUTES.get(
    f"{API}/unit-requests/{{id}}",
    name="unit_request",
    summary="One unit request",
    notes="a member sees its unit's",
    ok={200: UnitRequest},
    errors=(NOT_FOUND,),
    parameters=[REQUEST_ID],
)
@allow(EVERYONE)
async def show(request: web.Request) -> web.Response:
    found = await registrations.get_request(
        request.app[GATEWAY], _request_id(request), member_unit=member_unit(request[PRINCIPAL])
    )
    return render(_reply(found))


async def _decide(request: web.Request, body: ReasonBody, *, approve: bool) -> web.Response:
    decided = await registrations.decide(
        request.app[GATEWAY],
        _request_id(request),
        approve=approve,
        reason=body.reason,
        actor=request[PRINCIPAL].name,
    )
    return render(_reply(decided))


_DECISION = {
    "ok": {200: UnitRequest},
    "errors": (NOT_FOUND, CONFLICT, UNPROCESSABLE),
    "parameters": [REQUEST_ID],
    "body": ReasonBody,
}


@ROUTES.post(
    f"{API}/unit-requests/{{id}}/approve",
    name="approve_unit_request",
    summary="Approve a pending unit request, with a reason (the registry takes the unit)",
    **_DECISION,
)
@allow(ADMIN)
async def approve(request: web.Request) -> web.Response:
    return await _decide(request, await read_body(request, ReasonBody), approve=True)


@ROUTES.post(
    f"{API}/unit-requests/{{id}}/refuse",
    name="refuse_unit_request",
    summary="Refuse a pending unit request, with a reason",
    **_DECISION,
)
@allow(ADMIN)
async def refuse(request: web.Request) -> web.Response:
    return await _decide(request, await read_body(request, ReasonBody), approve=False)


async def _switch(request: web.Request, body: ReasonBody, *, active: bool) -> web.Response:
    unit = await registrations.set_active(
        request.app[GATEWAY],
        request.match_info["code"],
        active=active,
        reason=body.reason,
        actor=request[PRINCIPAL].name,
    )
    return render(Unit.model_validate(unit))


_SWITCH = {
    "ok": {200: Unit},
    "errors": (NOT_FOUND, CONFLICT, UNPROCESSABLE),
    "parameters": [UNIT_CODE],
    "body": ReasonBody,
}


@ROUTES.post(
    f"{API}/units/{{code}}/deactivate",
    name="deactivate_unit",
    summary="Deactivate a unit, with a reason (documents to it are held at their next claim)",
    **_SWITCH,
)
@allow(ADMIN)
async def deactivate(request: web.Request) -> web.Response:
    return await _switch(request, await read_body(request, ReasonBody), active=False)


@ROUTES.post(
    f"{API}/units/{{code}}/activate",
    name="activate_unit",
    summary="Activate a unit again, with a reason",
    **_SWITCH,
)
@allow(ADMIN)
async def activate(request: web.Request) -> web.Response:
    return await _switch(request, await read_body(request, ReasonBody), active=True)


@ROUTES.get(
    f"{API}/units/{{code}}/history",
    name="unit_history",
    summary="Every recorded version of a unit, newest first",
    notes="a member for its own unit",
    ok={200: UnitHistory},
    errors=(NOT_FOUND,),
    parameters=[UNIT_CODE],
)
@allow(EVERYONE)
async def history(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    own = member_unit(request[PRINCIPAL])
    if own is not None and own != code:
        raise NotFound(f"no unit {code}")  # a member sees its own unit's history only
    versions = await registrations.history(request.app[GATEWAY], code)
    return render(UnitHistory(items=[Version.model_validate(v) for v in versions]))


@ROUTES.post(
    f"{API}/certificates/{{fingerprint}}/revoke",
    name="revoke_certificate",
    summary="Revoke a unit's certificate, with a reason (it verifies and seals no more)",
    ok={200: CertificateRevoked},
    errors=(NOT_FOUND, UNPROCESSABLE),
    parameters=[path_parameter("fingerprint", "the certificate's SHA-256 fingerprint, hex")],
    body=ReasonBody,
)
@allow(ADMIN)
async def revoke_certificate(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    fingerprint = request.match_info["fingerprint"]
    code = await registrations.revoke_certificate(
        request.app[GATEWAY], fingerprint, reason=body.reason, actor=request[PRINCIPAL].name
    )
    return render(CertificateRevoked(unit_code=code, fingerprint_sha256=fingerprint, revoked=True))

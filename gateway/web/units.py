"""The unit registry.

method  path                    roles                      calls
GET     /api/v1/units           admin, operator, member    registry.list_units
POST    /api/v1/units           admin, member*             registry.register_from_request
GET     /api/v1/units/{code}    admin, operator, member    registry.get_unit

* a member token may register only its own unit, and change only its name and certificates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import hdrs, web

from gateway.store.records import UnitRecord
from gateway.usecases import registry
from gateway.usecases.registry import UnitDetail
from gateway.usecases.tokens import Role
from gateway.web import bodies
from gateway.web.auth import ADMIN, EVERYONE, PRINCIPAL, allow, member_unit
from gateway.web.common import API, GATEWAY, json_response, limit, reject_unknown_parameters
from gateway.web.routes import Routes

ROUTES = Routes(tag="units")

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


@ROUTES.get(f"{API}/units", name="units")
@allow(EVERYONE)
async def list_units(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    query = request.query
    reject_unknown_parameters(query, frozenset({"q", "after", "limit"}))
    page_size = limit(query, default=gateway.settings.api.page_size)
    found = await registry.list_units(
        gateway, text=query.get("q") or None, after=query.get("after") or None, limit=page_size + 1
    )
    page = found[:page_size]
    return json_response(
        {
            "items": [_unit(u) for u in page],
            "next_after": page[-1].code if len(found) > page_size else None,
        }
    )


@ROUTES.get(f"{API}/units/{{code}}", name="unit")
@allow(EVERYONE)
async def show_unit(request: web.Request) -> web.Response:
    detail = await registry.get_unit(request.app[GATEWAY], request.match_info["code"])
    return json_response(_unit_detail(detail))


@ROUTES.post(f"{API}/units", name="register_unit")
@allow(ADMIN | {Role.MEMBER})
async def register_unit(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await bodies.read_object(request, UNIT_FIELDS)
    code = bodies.required_text(body, "code")
    changes: dict[str, Any] = {
        key: bodies.boolean(body, key)
        if key in ROUTING_FLAGS
        else bodies.text(body, key, limit=UNIT_FIELD_LENGTHS[key])
        for key in registry.UNIT_FIELDS
        if key in body
    }
    created, detail = await registry.register_from_request(
        gateway,
        code,
        changes,
        certificate_pem=bodies.text(body, "certificate_pem"),
        actor=principal.name,
        member_unit=member_unit(principal),
    )
    location = request.app.router["unit"].url_for(code=code)
    return json_response(
        _unit_detail(detail),
        status=201 if created else 200,
        headers={hdrs.LOCATION: str(location)},
    )


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

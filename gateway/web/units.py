"""The unit registry.

method  path                    roles                      calls
GET     /api/v1/units           admin, operator, member    registry.list_units
POST    /api/v1/units           admin, member*             registry.register_from_request
GET     /api/v1/units/{code}    admin, operator, member    registry.get_unit

* a member token may register only its own unit, and change only its name and certificates.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import hdrs, web
from pydantic import Field, StrictBool, create_model

from gateway.usecases import registry
from gateway.usecases.tokens import Role
from gateway.web.auth import ADMIN, EVERYONE, PRINCIPAL, allow, member_unit
from gateway.web.bodies import (
    Body,
    OptionalText,
    Reply,
    RequiredText,
    bounded_text,
    read_body,
    render,
)
from gateway.web.common import API, GATEWAY, limit, limit_parameter, reject_unknown_parameters
from gateway.web.routes import (
    NOT_FOUND,
    UNPROCESSABLE,
    Response,
    Routes,
    path_parameter,
    query_names,
    query_parameter,
)

ROUTES = Routes(tag="units")


class Unit(Reply):
    code: str
    name: str
    code_qd20: str | None
    parent_code: str | None
    channel: str | None
    secure_endpoint: str | None
    allows_tuyet_mat: bool
    is_local: bool
    active: bool
    replaced_by: str | None = Field(None, description="closed by a merger into this code")


class Certificate(Reply):
    subject: str
    fingerprint_sha256: str
    not_after: dt.datetime
    revoked: bool
    revoked_reason: str | None = Field(
        None, description="why: an operator's reason, or the CRL that lists it"
    )
    retired: bool = Field(
        False, description="a newer certificate took over past the rollover overlap"
    )


class UnitDetail(Unit):
    """The unit and its certificates"""

    certificates: list[Certificate]


class UnitList(Reply):
    """One page, by code"""

    items: list[Unit]
    next_after: str | None


def _field(spec: registry.UnitField) -> tuple[Any, Any]:
    if spec.flag:
        return StrictBool, Field(None, description=spec.help)
    length = spec.max_length
    kind = bounded_text(length) if length is not None else OptionalText
    return kind, Field(None, description=spec.help)


#: The registration's body, from the registry's one definition of the fields.
_REGISTRATION_FIELDS: dict[str, Any] = {
    "code": (RequiredText, ...),
    **{spec.name: _field(spec) for spec in registry.UNIT_FIELD_SPECS},
    "certificate_pem": (OptionalText, None),
}
UnitRegistration = create_model(
    "UnitRegistration",
    __base__=Body,
    __doc__="Omitted fields keep their current value (allows_tuyet_mat: false for a new unit). "
    "A member token may register only its own unit and change only its name and certificates.",
    **_REGISTRATION_FIELDS,
)

LIST_QUERY = [
    query_parameter(
        "q",
        "a code prefix, or words of the name, accents and case aside (lao cai finds Lào Cai)",
    ),
    query_parameter("parent", "only this unit's children (the registry as a tree)"),
    query_parameter("after", "next_after of the previous page"),
    limit_parameter(),
]


@ROUTES.get(
    f"{API}/units",
    name="list_units",
    summary="The unit registry, by code",
    ok={200: UnitList},
    parameters=LIST_QUERY,
)
@allow(EVERYONE)
async def list_units(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    query = request.query
    reject_unknown_parameters(query, query_names(LIST_QUERY))
    page_size = limit(query, default=gateway.settings.api.page_size)
    found = await registry.list_units(
        gateway,
        text=query.get("q") or None,
        parent=query.get("parent") or None,
        after=query.get("after") or None,
        limit=page_size + 1,
    )
    page = found[:page_size]
    return render(
        UnitList(
            items=[Unit.model_validate(u) for u in page],
            next_after=page[-1].code if len(found) > page_size else None,
        )
    )


@ROUTES.get(
    f"{API}/units/{{code}}",
    name="show_unit",
    summary="A unit and its certificates",
    ok={200: UnitDetail},
    errors=(NOT_FOUND,),
    parameters=[path_parameter("code", "the unit's code")],
)
@allow(EVERYONE)
async def show_unit(request: web.Request) -> web.Response:
    detail = await registry.get_unit(request.app[GATEWAY], request.match_info["code"])
    return render(_unit_detail(detail))


@ROUTES.post(
    f"{API}/units",
    name="register_unit",
    summary="Register or update a unit, and add a certificate",
    notes="a member for its own unit (name and certificates only)",
    ok={201: Response(description="Registered", body=UnitDetail),
        200: Response(description="Updated", body=UnitDetail)},
    errors=(UNPROCESSABLE,),
    body=UnitRegistration,
)  # fmt: skip
@allow(ADMIN | {Role.MEMBER})
async def register_unit(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await read_body(request, UnitRegistration)
    code = body.code  # type: ignore[attr-defined]
    # What the request names, as given: an update changes only those fields.
    changes = {
        key: getattr(body, key) for key in registry.UNIT_FIELDS if key in body.model_fields_set
    }
    created, detail = await registry.register_from_request(
        gateway,
        code,
        changes,
        certificate_pem=body.certificate_pem,  # type: ignore[attr-defined]
        actor=principal.name,
        member_unit=member_unit(principal),
    )
    location = request.app.router["show_unit"].url_for(code=code)
    return render(
        _unit_detail(detail),
        status=201 if created else 200,
        headers={hdrs.LOCATION: str(location)},
    )


def _unit_detail(detail: registry.UnitDetail) -> UnitDetail:
    return UnitDetail.model_validate(
        {
            **Unit.model_validate(detail.unit).model_dump(),
            "certificates": [Certificate.model_validate(c) for c in detail.certificates],
        }
    )

"""Certificates over their life (the same use cases as ``docgw units certificates`` and ``docgw
units crls``).

method  path                                   roles            calls
GET     /api/v1/certificates/expiring?days=N   admin, operator  certificates.expiring
GET     /api/v1/certificates/crls              admin, operator  certificates.held_crls
POST    /api/v1/certificates/crls/refresh      admin            certificates.refresh_crls
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field

from gateway.usecases import certificates
from gateway.web.auth import ADMIN, PRINCIPAL, STAFF, allow
from gateway.web.bodies import Reply, render
from gateway.web.common import API, GATEWAY, reject_unknown_parameters
from gateway.web.problems import BadRequest
from gateway.web.routes import Routes, query_names, query_parameter

ROUTES = Routes(tag="units")
DEFAULT_DAYS = 60
MAX_DAYS = 3650


class ExpiringCertificate(Reply):
    unit_code: str
    is_local: bool
    fingerprint_sha256: str
    subject: str
    not_after: dt.datetime
    days_left: int


class ExpiringCertificates(Reply):
    """Certificates that still verify (unrevoked, unexpired, not retired by a rollover) and
    expire within the days asked, soonest first"""

    items: list[ExpiringCertificate]


class HeldCrl(Reply):
    source: str
    issuer: str
    this_update: dt.datetime
    next_update: dt.datetime | None
    fetched_at: dt.datetime


class HeldCrls(Reply):
    """The latest CRL of each source, as docgw holds it"""

    items: list[HeldCrl]


class CrlFailure(Reply):
    source: str
    reason: str


class RevokedByCrl(Reply):
    fingerprint_sha256: str
    unit_code: str


class CrlRefresh(Reply):
    """What one refresh read, what failed, and the registered certificates it revoked"""

    read: list[str]
    failed: list[CrlFailure]
    revoked: list[RevokedByCrl] = Field(description="newly revoked by a CRL")


EXPIRING_QUERY = [
    query_parameter(
        "days",
        f"within this many days (default {DEFAULT_DAYS})",
        {"type": "integer", "minimum": 0, "maximum": MAX_DAYS},
    )
]


@ROUTES.get(
    f"{API}/certificates/expiring",
    name="expiring_certificates",
    summary="The units' certificates expiring within N days",
    ok={200: ExpiringCertificates},
    parameters=EXPIRING_QUERY,
)
@allow(STAFF)
async def expiring(request: web.Request) -> web.Response:
    query = request.query
    reject_unknown_parameters(query, query_names(EXPIRING_QUERY))
    value = query.get("days", str(DEFAULT_DAYS))
    if not value.isascii() or not value.isdigit() or int(value) > MAX_DAYS:
        raise BadRequest(f"must be a whole number from 0 to {MAX_DAYS}", element="days")
    found = await certificates.expiring(request.app[GATEWAY], days=int(value))
    return render(
        ExpiringCertificates(items=[ExpiringCertificate.model_validate(e) for e in found])
    )


@ROUTES.get(
    f"{API}/certificates/crls",
    name="crls",
    summary="The CRLs docgw holds",
    ok={200: HeldCrls},
)
@allow(STAFF)
async def crls(request: web.Request) -> web.Response:
    found = await certificates.held_crls(request.app[GATEWAY])
    return render(HeldCrls(items=[HeldCrl.model_validate(c) for c in found]))


@ROUTES.post(
    f"{API}/certificates/crls/refresh",
    name="refresh_crls",
    summary="Read the configured CRLs now and revoke the registered certificates they list",
    ok={200: CrlRefresh},
)
@allow(ADMIN)
async def refresh(request: web.Request) -> web.Response:
    done = await certificates.refresh_crls(request.app[GATEWAY], actor=request[PRINCIPAL].name)
    return render(
        CrlRefresh(
            read=list(done.read),
            failed=[CrlFailure(source=s, reason=r) for s, r in done.failed],
            revoked=[RevokedByCrl(fingerprint_sha256=f, unit_code=u) for f, u in done.revoked],
        )
    )

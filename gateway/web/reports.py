"""``GET /api/v1/reports/{monthly|weekly}?period=…&unit=…&format=json|csv|pdf``: a report made
now. Admins ask for any unit or the whole gateway (no ``unit``); a member token only for its own
unit, which it must name. ``period`` is ``2026-11`` (monthly) or ``2026-W48`` (weekly)."""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from gateway.bootstrap import Gateway
from gateway.domain.periods import PeriodKind
from gateway.usecases import report_files, reports
from gateway.usecases.tokens import Role
from gateway.web.auth import PRINCIPAL, allow, member_unit
from gateway.web.common import API, GATEWAY, reject_unknown_parameters
from gateway.web.problems import BadRequest
from gateway.web.routes import (
    NOT_FOUND,
    UNPROCESSABLE,
    Response,
    Routes,
    path_parameter,
    query_names,
    query_parameter,
)

ROUTES = Routes(tag="reports")


PARAMETERS_DOC = [
    path_parameter("kind", "", {"type": "string", "enum": ["monthly", "weekly"]}),
    query_parameter("period", "2026-11 (monthly) or 2026-W48 (weekly)", required=True),
    query_parameter("unit", "a unit's report (default: the whole gateway)"),
    query_parameter("format", "json (default), csv or pdf", {"enum": ["json", "csv", "pdf"]}),
]


@ROUTES.get(
    f"{API}/reports/{{kind:monthly|weekly}}",
    name="report",
    summary="A monthly or weekly report of documents sent and received",
    notes="a member for its own unit, which it must name",
    ok={200: Response(
        description="The report, made now (figures: docs/howto/reports.md)",
        body={
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    )},
    errors=(NOT_FOUND, UNPROCESSABLE),
    parameters=PARAMETERS_DOC,
)  # fmt: skip
@allow(frozenset({Role.ADMIN, Role.MEMBER}))
async def report(request: web.Request) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    query = request.query
    reject_unknown_parameters(query, query_names(PARAMETERS_DOC))
    name = query.get("period", "")
    if not name:
        raise BadRequest("a period is required (e.g. 2026-11, or 2026-W48 for weekly)",
                         element="period")  # fmt: skip
    fmt = query.get("format", "json")
    if fmt not in report_files.FORMATS:
        raise BadRequest("must be json, csv or pdf", element="format")
    made = await reports.report_for(
        gateway,
        PeriodKind(request.match_info["kind"]),
        name,
        query.get("unit") or None,
        member_unit=member_unit(request[PRINCIPAL]),
    )
    body = await asyncio.to_thread(report_files.render, made, fmt)
    headers = {}
    if fmt != "json":
        filename = f"{report_files.file_stem(made)}.{fmt}"
        headers[hdrs.CONTENT_DISPOSITION] = f'attachment; filename="{filename}"'
    return web.Response(
        body=body,
        content_type=report_files.MEDIA_TYPES[fmt],
        charset="utf-8" if fmt != "pdf" else None,
        headers=headers,
    )

"""The HTTP API: ``create_app(gateway)`` builds the app, its middlewares and its routes.

Each resource module declares its own routes (a :class:`~gateway.web.routes.Routes` list beside
its handlers); handlers parse the request, call one use case, and render JSON:

    messages.py     submit, list, show, resend, cancel, reroute, status replies, route explain
    inbox.py        received packages handed over by a peer or a connector
    units.py        the unit registry
    reports.py      monthly and weekly reports
    integration.py  the local system's feed, acknowledgements, handover, webhooks, downloads
    health.py       /healthz, /metrics and the OpenAPI document (no token)
    alerts.py       alerts, the channels' circuit breakers (pause, resume)
    jobs.py         the scheduled jobs: their runs, and running one now
    console/        the operator console for people, a sub-app under /console (not the API)
"""

from __future__ import annotations

import json
import warnings

from aiohttp import multipart, web

from gateway.bootstrap import Gateway
from gateway.web import (
    alerts,
    certificates,
    console,
    directory,
    health,
    inbox,
    integration,
    jobs,
    messages,
    openapi,
    reports,
    unit_requests,
    units,
)
from gateway.web.auth import authentication
from gateway.web.common import GATEWAY, JSON_BODY_LIMIT, text_parameters
from gateway.web.problems import problem_middleware
from gateway.web.routes import Routes

#: Every resource module's routes, in the order the router tries them.
RESOURCES: tuple[Routes, ...] = (
    messages.ROUTES,
    inbox.ROUTES,
    units.ROUTES,
    unit_requests.ROUTES,
    certificates.ROUTES,
    directory.ROUTES,
    reports.ROUTES,
    health.ROUTES,
    integration.ROUTES,
    alerts.ROUTES,
    jobs.ROUTES,
)


def create_app(gateway: Gateway) -> web.Application:
    api = gateway.settings.api
    app = web.Application(
        middlewares=[problem_middleware, authentication(gateway), text_parameters],
        # Bounds request.read() (the JSON routes); uploads stream and are counted separately.
        client_max_size=min(JSON_BODY_LIMIT, api.max_upload_bytes),
    )
    app[GATEWAY] = gateway
    # aiohttp warns (RuntimeWarning) of a Content-Disposition parameter it cannot decode, then
    # skips it. docgw reads that header itself and refuses such a file name with its own code:
    # the warning is noise in the log, and an error (500) where warnings are errors.
    warnings.filterwarnings("ignore", category=multipart.BadContentDispositionParam)
    warnings.filterwarnings("ignore", category=multipart.BadContentDispositionHeader)
    document = openapi.build_document(
        max_upload_bytes=api.max_upload_bytes, page_size=api.page_size
    )
    app[health.OPENAPI_JSON] = json.dumps(document, ensure_ascii=False).encode()
    for routes in RESOURCES:
        routes.add_to(app.router)
    app.add_subapp(console.PREFIX, console.create_console(gateway))  # HTML for people
    return app

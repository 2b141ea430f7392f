"""The operator console: server-rendered pages (Jinja2 through aiohttp-jinja2, autoescaped)
served by ``docgw serve`` under ``/console``, with htmx (vendored, pinned: static/VENDORED.md) for
live updates and actions without reloading. People sign in with named accounts
(gateway/usecases/users.py); security.py guards every route, pages.py holds the handlers.

    path                                         who
    GET  /console/login, POST /console/login     anyone
    POST /console/logout                         signed in
    GET  /console/ (Now), /console/now/panel     everyone
    GET  /console/messages[.csv]                 everyone (a member: its unit's)
    POST /console/messages/bulk                  admin, operator
    GET  /console/messages/{id}[/state]          everyone (a member: its unit's)
    POST /console/messages/{id}/{resend|cancel|reroute}   admin, operator
    POST /console/messages/{id}/reply            everyone (a member: for its unit)
    GET  /console/messages/{id}/package, …/attachments/{n}[/view]  as the API's downloads
    GET  /console/units, /console/units/{code}   everyone (a member: its own units)
    POST /console/units/{code}                   admin, a member of that unit
    GET  /console/requests[/{id}]                everyone (a member: its unit's requests)
    POST /console/requests                       admin, member (for its unit or one under it)
    POST /console/requests/{id}/{approve|refuse}   admin
    GET  /console/certificates?days=N            admin, operator (expiring within N days)
    GET  /console/users, /console/tokens, POST … admin
    GET  /console/jobs, POST /console/jobs/{name}/run          admin (as /api/v1/jobs)
    GET  /console/alerts, POST …/alerts/{aid}/ack              admin, operator
    GET  /console/channels, POST …/channels/{name}/{pause|resume}   admin, operator
    GET  /console/account, POST …                signed in
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import aiohttp_jinja2
import jinja2
from aiohttp import hdrs, web

from gateway.bootstrap import Gateway
from gateway.usecases import users
from gateway.usecases.statuses import VIETNAM
from gateway.web.console import pages
from gateway.web.console.security import (
    CONSOLE_GATEWAY,
    LOGIN_THROTTLE,
    error_middleware,
    headers_middleware,
    open_page,
    session_middleware,
)

PREFIX = "/console"
#: The files under static/ the console serves (nothing else is reachable), with their types.
STATIC_TYPES = {
    "htmx.min.js": "text/javascript",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
STATIC = web.AppKey("console_static", dict)


def create_console(gateway: Gateway) -> web.Application:
    app = web.Application(middlewares=[headers_middleware, error_middleware, session_middleware])
    app[CONSOLE_GATEWAY] = gateway
    app[LOGIN_THROTTLE] = users.AddressThrottle()
    folder = resources.files(__package__)
    app[STATIC] = {name: (folder / "static" / name).read_bytes() for name in STATIC_TYPES}
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["vn"] = _vietnam_time
    add_routes(app.router)
    return app


def add_routes(router: web.UrlDispatcher) -> None:
    p = pages
    router.add_get("/login", p.login_form, name="console_login")
    router.add_post("/login", p.log_in)
    router.add_post("/logout", p.log_out, name="console_logout")
    router.add_get("/", p.now, name="console_now")
    router.add_get("/now/panel", p.now_panel, name="console_now_panel")
    router.add_get("/messages", p.messages, name="console_messages")
    router.add_get("/messages.csv", p.messages_csv, name="console_messages_csv")
    router.add_post("/messages/bulk", p.bulk, name="console_bulk")
    router.add_get("/messages/{id}", p.message, name="console_message")
    router.add_get("/messages/{id}/state", p.message_state, name="console_message_state")
    router.add_post("/messages/{id}/{action:resend|cancel|reroute}", p.act, name="console_act")
    router.add_post("/messages/{id}/reply", p.reply, name="console_reply")
    router.add_get("/messages/{id}/package", p.package, name="console_package")
    router.add_get("/messages/{id}/attachments/{n}", p.attachment, name="console_attachment")
    router.add_get(
        "/messages/{id}/attachments/{n}/view", p.attachment_view, name="console_attachment_view"
    )
    router.add_get("/units", p.units, name="console_units")
    router.add_get("/requests", p.unit_requests, name="console_requests")
    router.add_post("/requests", p.unit_request_add)
    router.add_get("/requests/{id}", p.unit_request, name="console_request")
    router.add_post(
        "/requests/{id}/{action:approve|refuse}",
        p.unit_request_decide,
        name="console_request_decide",
    )
    router.add_get("/certificates", p.expiring_certificates, name="console_certificates")
    router.add_get("/units/{code}", p.unit, name="console_unit")
    router.add_post("/units/{code}", p.unit_save)
    router.add_get("/users", p.people, name="console_users")
    router.add_post("/users", p.person_add)
    router.add_post("/users/{name}/{action:disable|reset}", p.person_change, name="console_user")
    router.add_get("/tokens", p.api_tokens, name="console_tokens")
    router.add_post("/tokens", p.api_token_add)
    router.add_post("/tokens/{name}/revoke", p.api_token_revoke)
    router.add_get("/jobs", p.job_list, name="console_jobs")
    router.add_post("/jobs/{name}/run", p.job_run, name="console_job_run")
    router.add_get("/alerts", p.alert_list, name="console_alerts")
    router.add_post("/alerts/{aid}/ack", p.alert_ack, name="console_alert_ack")
    router.add_get("/channels", p.channel_list, name="console_channels")
    router.add_post(
        "/channels/{name}/{action:pause|resume}", p.channel_change, name="console_channel"
    )
    router.add_get("/account", p.account, name="console_account")
    router.add_post("/account/{what:password|language|unit}", p.account_change)
    router.add_get("/static/{name}", static, name="console_static")


@open_page
async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_TYPES:
        raise web.HTTPNotFound()
    return web.Response(
        body=request.app[STATIC][name],
        headers={
            hdrs.CONTENT_TYPE: f"{STATIC_TYPES[name]}; charset=utf-8",
            hdrs.CACHE_CONTROL: "public, max-age=3600",
        },
    )


def _vietnam_time(value: object) -> str:
    if not isinstance(value, dt.datetime):
        return ""
    return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")

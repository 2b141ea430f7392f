"""The console's guard: who is signed in (a server-side session behind an HttpOnly, SameSite=Strict
cookie, Secure under TLS), whether the person's role may open the page, the CSRF token every form
carries back, and the headers every answer carries (a strict Content-Security-Policy without
'unsafe-inline', no framing, no sniffing, no caching of pages).

The API's bearer-token middleware lets these routes through (they are marked ``public`` for it):
the console authenticates people, not tokens, and applies the same roles and unit rule
(:class:`~gateway.usecases.tokens.Principal`, ``auth.member_unit``) to what they ask.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from envelopes.errors import GatewayError
from gateway.bootstrap import Gateway
from gateway.usecases import users
from gateway.usecases.errors import Forbidden
from gateway.usecases.tokens import Role, Unauthorized
from gateway.web.auth import public
from gateway.web.console.i18n import translator
from gateway.web.problems import status_for

log = logging.getLogger("docgw.console")

SESSION_COOKIE = "docgw_console"
#: Before a session exists the login form is protected by a double-submit cookie.
LOGIN_CSRF_COOKIE = "docgw_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"

SESSION = web.RequestKey("console_session", users.Session)
SESSION_ID = web.RequestKey("console_session_id", str)
CONSOLE_GATEWAY = web.AppKey("console_gateway", Gateway)
#: Failed sign-ins per client address, in this process (users.AddressThrottle).
LOGIN_THROTTLE = web.AppKey("console_login_throttle", users.AddressThrottle)

STAFF = frozenset({Role.ADMIN, Role.OPERATOR})
ADMIN = frozenset({Role.ADMIN})
EVERYONE = frozenset(Role)
_ROLES = "__console_roles__"
_OPEN = "open"
_ACCOUNT = "__console_account__"

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
#: An attachment shown inline (a PDF or an image): nothing runs, nothing is fetched, no framing.
INLINE_CSP = "default-src 'none'; img-src 'self'; object-src 'self'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class CsrfInvalid(GatewayError):
    """A form posted without the token its page carried (or with another's)."""

    code = "CSRF_INVALID"


def page(roles: frozenset[Role]) -> Callable[[Handler], Handler]:
    """Who may open a console route (deny by default, as the API's ``allow``)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, _ROLES, roles)
        return public(handler)  # the API's token check does not apply: see the module doc

    return mark


def account_page(handler: Handler) -> Handler:
    """Open to a person who must change a reset password first (the others redirect here)."""
    setattr(handler, _ACCOUNT, True)
    return handler


def open_page(handler: Handler) -> Handler:
    """A route for everyone, signed in or not (login, static files)."""
    setattr(handler, _ROLES, _OPEN)
    return public(handler)


def is_tls(request: web.Request) -> bool:
    return request.secure


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=is_tls(request),
    )


def client_address(request: web.Request) -> str:
    """The address a sign-in is counted against (``[console] trusted_proxies``)."""
    settings = request.app[CONSOLE_GATEWAY].settings.console
    return users.client_address(request.remote, request.headers.get("X-Forwarded-For"), settings)


def login_csrf(request: web.Request) -> str:
    """The login form's token: the cookie's if the browser has one, else a new one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(
        str(given).encode(), str(expected).encode()
    )


async def check_login_csrf(request: web.Request) -> None:
    form = await request.post()
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str) or not _same(given, request.cookies.get(LOGIN_CSRF_COOKIE)):
        raise CsrfInvalid("biểu mẫu thiếu mã CSRF / the form lacks its CSRF token", element="csrf")


async def _check_csrf(request: web.Request, session: users.Session) -> None:
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not _same(given, session.csrf_token):
        raise CsrfInvalid("biểu mẫu thiếu mã CSRF / the form lacks its CSRF token", element="csrf")


def _to_login(request: web.Request) -> web.StreamResponse:
    login = str(request.app.router["console_login"].url_for())
    if request.headers.get("HX-Request"):
        return web.Response(status=401, headers={"HX-Redirect": login})
    raise web.HTTPSeeOther(login)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    if hdrs.CACHE_CONTROL not in response.headers:
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
    return response


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    if match_info.http_exception is not None:
        return await handler(request)
    roles: frozenset[Role] | str = getattr(match_info.handler, _ROLES, frozenset())
    if roles == _OPEN:
        return await handler(request)
    gateway = request.app[CONSOLE_GATEWAY]
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return _to_login(request)
    try:
        session = await users.session(gateway, session_id)
    except Unauthorized:
        return _to_login(request)
    request[SESSION] = session
    request[SESSION_ID] = session_id
    if request.method not in ("GET", "HEAD"):
        await _check_csrf(request, session)
    if session.principal.role not in roles:
        raise Forbidden(f"a {session.principal.role} may not do this", element="role")
    if session.user.must_change_password and not getattr(match_info.handler, _ACCOUNT, False):
        raise web.HTTPSeeOther(str(request.app.router["console_account"].url_for()))
    return await handler(request)


def base_context(request: web.Request) -> dict[str, Any]:
    """What every template is given: the person's words, the session and its CSRF token."""
    session = request.get(SESSION)
    language = session.user.language if session is not None else "vi"
    return {
        "t": translator(language),
        "language": language,
        "session": session,
        "csrf": session.csrf_token if session is not None else None,
        "csrf_field": CSRF_FIELD,
        "path": request.path,
    }


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refused request is an HTML page (or an htmx fragment) naming the stable error code;
    its status is the API's for the same code (problems.status_for)."""
    try:
        return await handler(request)
    except GatewayError as exc:
        # As the API's api_request_refused: a failure of ours (5xx) is a warning.
        level = logging.WARNING if status_for(exc.code) >= 500 else logging.INFO
        log.log(
            level,
            "console_request_refused",
            extra={
                "event": "console_request_refused",
                "error_code": exc.code,
                "path": request.path,
                "method": request.method,
            },
        )
        context = {
            **base_context(request),
            "code": exc.code,
            "message": exc.message,
            "element": exc.element,
        }
        template = "error_fragment.html" if request.headers.get("HX-Request") else "error.html"
        response = aiohttp_jinja2.render_template(template, request, context)
        response.set_status(status_for(exc.code))
        return response

"""Bearer tokens and roles. Each handler says who may call it with :func:`allow` (or
:func:`public`); the middleware authenticates the token (``tokens.authenticate``) and checks the
role before the handler runs, so a handler never sees a caller it did not allow.

Deny by default: a handler without a mark answers 403 to everyone. Requests that match no route
are answered (404/405) without a token: they reveal nothing the public OpenAPI document does not.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from gateway.bootstrap import Gateway
from gateway.usecases import tokens
from gateway.usecases.errors import Forbidden
from gateway.usecases.tokens import Principal, Role, Unauthorized

PRINCIPAL = web.RequestKey("principal", Principal)

#: Role sets of the routes. admin ⊇ operator; a member acts for its one unit only.
STAFF = frozenset({Role.ADMIN, Role.OPERATOR})
ADMIN = frozenset({Role.ADMIN})
EVERYONE = frozenset(Role)

_ROLES_ATTRIBUTE = "__docgw_roles__"
_PUBLIC = "public"


def allow(roles: frozenset[Role]) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        setattr(handler, _ROLES_ATTRIBUTE, roles)
        return handler

    return mark


def public(handler: Handler) -> Handler:
    setattr(handler, _ROLES_ATTRIBUTE, _PUBLIC)
    return handler


def roles_of(handler: Handler) -> frozenset[Role] | None:
    """The roles a handler allows; None for a public one (no token)."""
    roles: frozenset[Role] | str = getattr(handler, _ROLES_ATTRIBUTE, frozenset())
    return None if isinstance(roles, str) else roles


def member_unit(principal: Principal) -> str | None:
    """The unit a member token is bound to; None for staff, who act for every unit."""
    return principal.unit_code if principal.role is Role.MEMBER else None


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this request needs an Authorization: Bearer <token> header")
    if not token.isascii():
        # docgw's tokens are ASCII. Header bytes that are not UTF-8 arrive as lone surrogates,
        # which could not even be hashed: such a value names no token.
        raise Unauthorized("unknown or revoked token")
    return token.strip()


def authentication(gateway: Gateway) -> Middleware:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        match_info = request.match_info
        if match_info.http_exception is not None:
            return await handler(request)
        roles: frozenset[Role] | str = getattr(match_info.handler, _ROLES_ATTRIBUTE, frozenset())
        if roles == _PUBLIC:
            return await handler(request)
        principal = await tokens.authenticate(gateway, bearer_token(request))
        if principal.role not in roles:
            allowed = ", ".join(sorted(roles)) or "nobody"
            raise Forbidden(f"a {principal.role} token may not do this (allowed: {allowed})")
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate

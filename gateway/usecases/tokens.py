"""API tokens: random, shown once, stored as SHA-256 hashes; roles admin, operator, member."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from gateway.bootstrap import Gateway
from gateway.store import audit_queries, token_queries


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    MEMBER = "member"  # a member organisation: bound to one unit code


class Unauthorized(GatewayError):
    code = "UNAUTHORIZED"


@dataclass(frozen=True, kw_only=True)
class Principal:
    name: str
    role: Role
    unit_code: str | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    gateway: Gateway, *, name: str, role: str, unit_code: str | None = None, actor: str = "cli"
) -> str:
    """Returns the token; only its hash is stored, so it cannot be shown again."""
    try:
        parsed_role = Role(role)
    except ValueError:
        raise GatewayError(f"role must be one of {', '.join(Role)}", element="role") from None
    if parsed_role is Role.MEMBER:
        if not unit_code:
            raise GatewayError("a member token needs --unit CODE", element="unit")
        parse_strict(unit_code, field="unit")
    token = "dgw_" + secrets.token_urlsafe(32)
    now = gateway.clock()
    try:
        async with gateway.engine.begin() as conn:
            await token_queries.insert_token(
                conn,
                name=name,
                role=parsed_role.value,
                unit_code=unit_code if parsed_role is Role.MEMBER else None,
                token_sha256=_hash(token),
                now=now,
            )
            await audit_queries.audit(
                conn, now=now, actor=actor, action="token_created", reason=name
            )
    except sa.exc.IntegrityError:
        raise GatewayError(f"a token named {name!r} exists already", element="name") from None
    return token


async def revoke_token(gateway: Gateway, name: str, *, actor: str = "cli") -> None:
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        if not await token_queries.revoke_token(conn, name, now=now):
            raise GatewayError(f"no active token named {name!r}", element="name")
        await audit_queries.audit(conn, now=now, actor=actor, action="token_revoked", reason=name)


async def authenticate(gateway: Gateway, token: str) -> Principal:
    async with gateway.reader.connect() as conn:
        row = await token_queries.token_by_hash(conn, _hash(token))
    if row is None:
        raise Unauthorized("unknown or revoked token")
    return Principal(name=row.name, role=Role(row.role), unit_code=row.unit_code)


async def list_tokens(gateway: Gateway) -> list[token_queries.TokenRecord]:
    """The API tokens (for machines), never their hashes: the console's admin page."""
    async with gateway.reader.connect() as conn:
        return await token_queries.list_tokens(conn)

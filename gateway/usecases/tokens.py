"""API tokens: random, shown once, stored as SHA-256 hashes; roles admin, operator, member."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from gateway.domain.accounts import Role as Role  # the roles are the domain's; read here too
from gateway.store import audit_queries, token_queries, unit_queries
from gateway.usecases.ports import Store


class MemberUnitInvalid(GatewayError):
    code = "MEMBER_UNIT_INVALID"


class MemberUnitNotHosted(GatewayError):
    code = "MEMBER_UNIT_NOT_HOSTED"


@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    name: str
    role: str
    unit_code: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None = None


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
    gateway: Store,
    *,
    name: str,
    role: str,
    unit_code: str | None = None,
    actor: str = "cli",
    expires_in: dt.timedelta | None = None,
) -> str:
    """Returns the token; only its hash is stored, so it cannot be shown again. ``expires_in``:
    it authenticates no more after that long (None: until revoked)."""
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise GatewayError("an expiry must be in the future", element="expires")
    try:
        parsed_role = Role(role)
    except ValueError:
        raise GatewayError(f"role must be one of {', '.join(Role)}", element="role") from None
    if parsed_role is Role.MEMBER:
        if not unit_code:
            raise GatewayError("a member token needs --unit CODE", element="unit")
        try:
            parse_strict(unit_code, field="unit")
        except GatewayError as exc:
            raise MemberUnitInvalid(exc.message, element="unit") from None
    token = "dgw_" + secrets.token_urlsafe(32)
    now = gateway.clock()
    try:
        async with gateway.engine.begin() as conn:
            if parsed_role is Role.MEMBER:
                await _check_hosted(conn, unit_code or "")
            await token_queries.insert_token(
                conn,
                name=name,
                role=parsed_role.value,
                unit_code=unit_code if parsed_role is Role.MEMBER else None,
                token_sha256=_hash(token),
                now=now,
                expires_at=now + expires_in if expires_in is not None else None,
            )
            await audit_queries.audit(
                conn, now=now, actor=actor, action="token_created", reason=name
            )
    except sa.exc.IntegrityError:
        raise GatewayError(f"a token named {name!r} exists already", element="name") from None
    return token


async def _check_hosted(conn: Any, unit_code: str) -> None:
    """A member token acts for a unit of this gateway's registry, active (one a member of this
    gateway sends or receives for): MEMBER_UNIT_NOT_HOSTED otherwise."""
    unit = await unit_queries.get_unit(conn, unit_code)
    if unit is None or not unit.active:
        raise MemberUnitNotHosted(
            f"{unit_code} không thuộc cổng này — is not an active unit of this gateway's "
            "registry (docgw units add)",
            element="unit",
        )


async def list_tokens(gateway: Store) -> list[TokenInfo]:
    """The API tokens (for machines), never their hashes: ``docgw tokens list`` and the console's
    admin page."""
    async with gateway.engine.connect() as conn:
        rows = await token_queries.list_tokens(conn)
    return [TokenInfo(**row._mapping) for row in rows]


async def revoke_token(gateway: Store, name: str, *, actor: str = "cli") -> None:
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        if not await token_queries.revoke_token(conn, name, now=now):
            raise GatewayError(f"no active token named {name!r}", element="name")
        await audit_queries.audit(conn, now=now, actor=actor, action="token_revoked", reason=name)


async def authenticate(gateway: Store, token: str) -> Principal:
    async with gateway.reader.connect() as conn:
        row = await token_queries.token_by_hash(conn, _hash(token), now=gateway.clock())
    if row is None:
        raise Unauthorized("unknown, revoked or expired token")
    return Principal(name=row.name, role=Role(row.role), unit_code=row.unit_code)

"""The console's people: named accounts with a role (admin, operator, member of one or more
units), argon2id password hashes (argon2-cffi), server-side sessions, login throttling.

A session lives at most :data:`SESSION_LIFETIME` and dies after :data:`SESSION_IDLE` without a
request. :data:`LOCK_AFTER` wrong passwords in a row lock the account for :data:`LOCK_FOR` (the
count is in the database, so every process of a scaled-out gateway shares it). Disabling a person,
resetting or changing a password ends every session of that person. Each change is audited with
who made it (``cli`` or the person's name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import argon2
import sqlalchemy as sa

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from envelopes.xmltext import check_text
from gateway.domain.accounts import Language
from gateway.store import audit_queries
from gateway.store import user_queries as store
from gateway.store.user_queries import SessionRecord, UserRecord
from gateway.usecases.errors import NotFound
from gateway.usecases.ports import Store
from gateway.usecases.tokens import Principal, Role, Unauthorized

SESSION_LIFETIME = dt.timedelta(hours=12)
SESSION_IDLE = dt.timedelta(minutes=30)
#: seen_at is written at most this often (not on every request).
SEEN_EVERY = dt.timedelta(minutes=1)
LOCK_AFTER = 5
LOCK_FOR = dt.timedelta(minutes=15)
PASSWORD_MIN = 12
NAME_MAX = 64
LANGUAGES = tuple(Language)

#: argon2id with argon2-cffi's RFC 9106 low-memory profile defaults.
_hasher = argon2.PasswordHasher()
#: Verified against when the name is unknown, so that an unknown name takes as long as a wrong
#: password (no oracle of which names exist).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class LoginFailed(Unauthorized):
    """Wrong name or password, a disabled account: one answer for all (no oracle)."""

    code = "LOGIN_FAILED"


class LoginThrottled(GatewayError):
    code = "LOGIN_THROTTLED"


class PasswordInvalid(GatewayError):
    code = "PASSWORD_INVALID"


@dataclass(frozen=True, kw_only=True)
class Session:
    """A signed-in person: who, acting as which principal (the API's roles and unit rule)."""

    user: UserRecord
    principal: Principal
    csrf_token: str


def hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def check_password(password: str) -> str:
    check_text(password, element="password")
    if len(password) < PASSWORD_MIN:
        raise PasswordInvalid(
            f"mật khẩu cần ít nhất {PASSWORD_MIN} ký tự / at least {PASSWORD_MIN} characters",
            element="password",
        )
    return password


def _check_account(name: str, role: str, units: Sequence[str], language: str) -> Role:
    check_text(name, element="name")
    if not name or len(name) > NAME_MAX or name != name.strip():
        raise GatewayError(f"a name of 1 to {NAME_MAX} characters", element="name")
    try:
        parsed = Role(role)
    except ValueError:
        raise GatewayError(f"role must be one of {', '.join(Role)}", element="role") from None
    if parsed is Role.MEMBER and not units:
        raise GatewayError("a member needs one or more --unit CODE", element="unit")
    if parsed is not Role.MEMBER and units:
        raise GatewayError("only a member is bound to units", element="unit")
    for code in units:
        parse_strict(code, field="unit")
    if language not in LANGUAGES:
        raise GatewayError(f"language must be one of {', '.join(LANGUAGES)}", element="language")
    return parsed


async def add_user(
    gateway: Store,
    *,
    name: str,
    role: str,
    password: str,
    units: Sequence[str] = (),
    language: str = "vi",
    actor: str,
) -> None:
    parsed = _check_account(name, role, units, language)
    hashed = _hasher.hash(check_password(password))
    now = gateway.clock()
    try:
        async with gateway.engine.begin() as conn:
            await store.insert_user(
                conn,
                name=name,
                role=parsed.value,
                units=list(units) or None,
                password_hash=hashed,
                language=language,
                must_change_password=False,
                created_at=now,
            )
            await audit_queries.audit(
                conn, now=now, actor=actor, action="user_added", reason=f"{name} ({role})"
            )
    except sa.exc.IntegrityError:
        raise GatewayError(f"a person named {name!r} exists already", element="name") from None


async def list_users(gateway: Store) -> list[UserRecord]:
    async with gateway.reader.connect() as conn:
        return await store.list_users(conn)


async def disable_user(gateway: Store, name: str, *, actor: str) -> None:
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        if not await store.update_user(conn, name, disabled_at=now):
            raise NotFound(f"no person named {name!r}", element="name")
        await store.delete_sessions_of(conn, name)
        await audit_queries.audit(conn, now=now, actor=actor, action="user_disabled", reason=name)


async def reset_password(gateway: Store, name: str, password: str, *, actor: str) -> None:
    """A new password set by an admin: to be changed at the next login; the lock is lifted."""
    hashed = _hasher.hash(check_password(password))
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        changed = await store.update_user(
            conn,
            name,
            password_hash=hashed,
            must_change_password=True,
            failed_logins=0,
            locked_until=None,
            disabled_at=None,
        )
        if not changed:
            raise NotFound(f"no person named {name!r}", element="name")
        await store.delete_sessions_of(conn, name)
        await audit_queries.audit(conn, now=now, actor=actor, action="password_reset", reason=name)


async def set_language(gateway: Store, name: str, language: str) -> None:
    if language not in LANGUAGES:
        raise GatewayError(f"language must be one of {', '.join(LANGUAGES)}", element="language")
    async with gateway.engine.begin() as conn:
        await store.update_user(conn, name, language=language)


async def log_in(gateway: Store, name: str, password: str) -> str:
    """A new session's id (for the cookie; only its hash is stored)."""
    now = gateway.clock()
    session_id = secrets.token_urlsafe(32)
    async with gateway.engine.begin() as conn:
        user = await store.get_user(conn, name)
        if user is not None and user.locked_until is not None and user.locked_until > now:
            raise LoginThrottled(
                "quá nhiều lần đăng nhập sai; hãy thử lại sau / too many failed logins; "
                "try again later",
                element="password",
            )
        accepted = (
            user is not None and _verify(user.password_hash, password) and not user.disabled_at
        )
        if user is not None and not accepted:
            # Committed with the block (the refusal is raised after it): the count must stay.
            await store.record_failed_login(
                conn, user.name, lock_after=LOCK_AFTER, locked_until=now + LOCK_FOR
            )
            await audit_queries.audit(
                conn, now=now, actor=user.name, action="login_failed", reason="console"
            )
        elif user is not None:
            await store.update_user(conn, user.name, failed_logins=0, locked_until=None)
            await store.insert_session(
                conn,
                id_sha256=hash_id(session_id),
                user_name=user.name,
                csrf_token=secrets.token_urlsafe(32),
                unit_code=user.units[0] if user.units else None,
                created_at=now,
                seen_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
            await audit_queries.audit(
                conn, now=now, actor=user.name, action="login", reason="console"
            )
    if user is None:
        _verify(_DUMMY_HASH, password)  # as long as a known name's check
    if not accepted:
        raise LoginFailed("sai tên hoặc mật khẩu / wrong name or password")
    return session_id


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


async def session(gateway: Store, session_id: str) -> Session:
    """The signed-in person, or Unauthorized (unknown, expired or idle session, or disabled)."""
    now = gateway.clock()
    key = hash_id(session_id)
    async with gateway.engine.connect() as conn:
        found = await store.get_session(conn, key)
    if found is None:
        raise Unauthorized("phiên đã hết hạn / the session has ended")
    if found.expires_at <= now or found.seen_at + SESSION_IDLE <= now or found.user.disabled_at:
        async with gateway.engine.begin() as conn:
            await store.delete_session(conn, key)
        raise Unauthorized("phiên đã hết hạn / the session has ended")
    if now - found.seen_at >= SEEN_EVERY:
        async with gateway.engine.begin() as conn:
            await store.touch_session(conn, key, seen_at=now)
    return _session(found)


def _session(found: SessionRecord) -> Session:
    user = found.user
    role = Role(user.role)
    unit = found.unit_code if role is Role.MEMBER else None
    return Session(
        user=user,
        principal=Principal(name=user.name, role=role, unit_code=unit),
        csrf_token=found.csrf_token,
    )


async def log_out(gateway: Store, session_id: str) -> None:
    async with gateway.engine.begin() as conn:
        await store.delete_session(conn, hash_id(session_id))


async def switch_unit(gateway: Store, session_id: str, user: UserRecord, unit: str) -> None:
    """A member of several units acts for one of them at a time."""
    if unit not in user.units:
        raise NotFound(f"no unit {unit} of yours", element="unit")
    async with gateway.engine.begin() as conn:
        await store.touch_session(conn, hash_id(session_id), unit_code=unit)


async def change_password(
    gateway: Store, name: str, *, current: str, new: str, keep_session: str
) -> None:
    """The person's own change: the current password is asked again; other sessions end."""
    check_password(new)
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        user = await store.get_user(conn, name)
        if user is None or not _verify(user.password_hash, current):
            raise PasswordInvalid(
                "mật khẩu hiện tại sai / the current password is wrong", element="current"
            )
        await store.update_user(
            conn, name, password_hash=_hasher.hash(new), must_change_password=False
        )
        await store.delete_sessions_of(conn, name, keep=hash_id(keep_session))
        await audit_queries.audit(conn, now=now, actor=name, action="password_changed", reason=name)


async def end_expired(gateway: Store) -> int:
    """Delete the sessions past their lifetime (a scheduled job; an idle one is refused at its
    next request and deleted then)."""
    async with gateway.engine.begin() as conn:
        return await store.delete_expired_sessions(conn, now=gateway.clock())

"""The console's people: named accounts with a role (admin, operator, member of one or more
units), argon2id password hashes (argon2-cffi), server-side sessions, login throttling.

A session lives at most ``[console] session_max_hours`` and dies after ``session_idle_minutes``
without a request. ``lock_after`` wrong passwords in a row lock the account for ``lock_minutes``
(the count is in the database, so every process of a scaled-out gateway shares it); an
:class:`AddressThrottle` refuses an address that failed ``ip_failures`` times within
``ip_window_minutes``, whatever names it tried (counted in the process). Disabling a person,
resetting or changing a password ends every session of that person. Each change is audited with
who made it (``cli`` or the person's name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import secrets
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import argon2
import sqlalchemy as sa

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from envelopes.xmltext import check_text
from gateway.domain.accounts import Language
from gateway.settings import ConsoleSettings
from gateway.store import audit_queries
from gateway.store import user_queries as store
from gateway.store.user_queries import SessionRecord, UserRecord
from gateway.usecases.errors import NotFound
from gateway.usecases.ports import Store, StoreAndConfig
from gateway.usecases.tokens import Principal, Role, Unauthorized

#: seen_at is written at most this often (not on every request).
SEEN_EVERY = dt.timedelta(minutes=1)
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
    """Too many failed sign-ins: of the account (it is locked a while), or from the address."""

    code = "LOGIN_THROTTLED"


log = logging.getLogger("docgw.console")


def session_lifetime(settings: ConsoleSettings) -> dt.timedelta:
    return dt.timedelta(hours=settings.session_max_hours)


def session_idle(settings: ConsoleSettings) -> dt.timedelta:
    return dt.timedelta(minutes=settings.session_idle_minutes)


def lock_for(settings: ConsoleSettings) -> dt.timedelta:
    return dt.timedelta(minutes=settings.lock_minutes)


class AddressThrottle:
    """Failed sign-ins per client address within a sliding window (``[console] ip_failures``
    in ``ip_window_minutes``, read at each call), in this process: past the limit the address is
    refused before any password is checked, whatever name it tries. At most
    :data:`ADDRESSES_MAX` addresses are remembered (the oldest forgotten first), so a flood of
    addresses cannot fill memory."""

    ADDRESSES_MAX = 10_000

    def __init__(self) -> None:
        self._failures: dict[str, deque[dt.datetime]] = {}

    def _recent(
        self, address: str, now: dt.datetime, limits: ConsoleSettings
    ) -> deque[dt.datetime] | None:
        seen = self._failures.get(address)
        window = dt.timedelta(minutes=limits.ip_window_minutes)
        while seen and seen[0] <= now - window:
            seen.popleft()
        if seen is not None and not seen:
            del self._failures[address]
            return None
        return seen

    def check(self, address: str, now: dt.datetime, limits: ConsoleSettings) -> None:
        seen = self._recent(address, now, limits)
        if seen is not None and len(seen) >= limits.ip_failures:
            log.warning(
                "console_login_throttled",
                extra={"event": "console_login_throttled", "address": address},
            )
            raise LoginThrottled(
                "quá nhiều lần đăng nhập sai từ địa chỉ này; hãy thử lại sau / too many failed "
                "logins from this address; try again later",
                element="address",
            )

    def failed(self, address: str, now: dt.datetime, limits: ConsoleSettings) -> None:
        seen = self._recent(address, now, limits)
        if seen is None:
            if len(self._failures) >= self.ADDRESSES_MAX:
                del self._failures[next(iter(self._failures))]
            seen = self._failures[address] = deque(maxlen=limits.ip_failures)
        seen.append(now)


def client_address(peer: str | None, forwarded_for: str | None, settings: ConsoleSettings) -> str:
    """The address a sign-in is counted against: the connection's peer, or — only when the peer
    is one of ``[console] trusted_proxies`` — the last address its ``X-Forwarded-For`` names."""
    peer = peer or "unknown"
    if forwarded_for and peer in settings.trusted_proxies:
        last = forwarded_for.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer
    return peer


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


async def log_in(
    gateway: StoreAndConfig,
    name: str,
    password: str,
    *,
    address: str | None = None,
    throttle: AddressThrottle | None = None,
) -> str:
    """A new session's id (for the cookie; only its hash is stored). ``throttle`` counts the
    failures of ``address`` (the console's sign-in form)."""
    now = gateway.clock()
    limits = gateway.settings.console
    if throttle is not None and address is not None:
        throttle.check(address, now, limits)
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
                conn,
                user.name,
                lock_after=limits.lock_after,
                locked_until=now + lock_for(limits),
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
                expires_at=now + session_lifetime(limits),
            )
            await audit_queries.audit(
                conn, now=now, actor=user.name, action="login", reason="console"
            )
    if user is None:
        _verify(_DUMMY_HASH, password)  # as long as a known name's check
    if not accepted:
        if throttle is not None and address is not None:
            throttle.failed(address, now, limits)
        raise LoginFailed("sai tên hoặc mật khẩu / wrong name or password")
    return session_id


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


async def session(gateway: StoreAndConfig, session_id: str) -> Session:
    """The signed-in person, or Unauthorized (unknown, expired or idle session, or disabled)."""
    now = gateway.clock()
    key = hash_id(session_id)
    async with gateway.engine.connect() as conn:
        found = await store.get_session(conn, key)
    if found is None:
        raise Unauthorized("phiên đã hết hạn / the session has ended")
    idle = session_idle(gateway.settings.console)
    if found.expires_at <= now or found.seen_at + idle <= now or found.user.disabled_at:
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

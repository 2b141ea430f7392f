"""The circuit breaker of each channel — and, on a channel that calls each unit at its own
endpoint (``secure``), of each unit on it — so that an outage does not burn recipients' attempts.

States (one row per breaker in ``channel_breakers``; no row: closed):

* ``closed`` — delivery as usual. A worker's round that got nothing but transport failures on it
  (no connection, a 5xx, no answer) adds them to ``failures``; a round with any answer (sent, or
  refused by the peer) resets it (:func:`_counted`). ``[alerts] breaker_failures`` in a row open
  the breaker (0: never).
* ``open`` — the worker claims nothing for it: its recipients wait as they are, due, their
  attempt counts untouched. At ``next_at`` one recipient goes as a **probe** (one worker takes the
  probe, across processes: :func:`gateway.store.alerts.take_slot`). A failed probe keeps it open
  and doubles the wait (``breaker_probe_seconds``, up to 10 minutes); a probe that got an answer
  moves it to ``recovering``.
* ``recovering`` — the backlog drains at a bounded rate: ``drain_batch`` recipients per
  ``drain_interval_seconds``, so a peer just back is not hit by everything at once; a slice that
  finds fewer than ``drain_batch`` due closes it. A transport failure opens it again.
* ``paused`` — an operator's (``docgw channels pause``, ``POST /api/v1/channels/{name}/pause``):
  nothing is claimed and nothing probes until ``resume``, which drains as ``recovering`` does.

The delivery worker asks :func:`plan` what it may claim, and reports each send's outcome with
:func:`record_outcomes`; the claim itself is :func:`gateway.store.job_queries.claim_due`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.retry import Outcome
from gateway.store import alerts as store
from gateway.store import audit_queries
from gateway.store.alerts import BreakerRecord
from gateway.usecases.errors import NotFound, ParameterInvalid
from gateway.usecases.ports import Channels, Config, Store, Waker

log = logging.getLogger("docgw.breakers")

CLOSED: Final = "closed"
OPEN: Final = "open"
RECOVERING: Final = "recovering"
PAUSED: Final = "paused"
PROBE_MAX: Final = dt.timedelta(minutes=10)
#: Outcomes that say the transport, not the peer, failed.
TRANSPORT_FAILURES: Final = frozenset({Outcome.TRANSPORT_ERROR, Outcome.OUTCOME_UNKNOWN})

#: (channel, unit code or "" for the whole channel)
Scope = tuple[str, str]


class Breakers(Store, Config, Channels, Waker, Protocol):
    """What the breakers use: the store, the settings ([alerts] breaker_*), the channels, and
    the workers' wake-up (a resumed channel's recipients are due at once)."""


@dataclass(frozen=True, kw_only=True)
class Slot:
    """Recipients of one breaker that may go this round: a probe (1) or a drain slice."""

    scope: Scope
    limit: int
    draining: bool


@dataclass(frozen=True, kw_only=True)
class Plan:
    #: Breakers not closed: the round's main claim leaves their recipients alone.
    blocked: tuple[Scope, ...] = ()
    slots: tuple[Slot, ...] = field(default_factory=tuple)
    #: Every breaker with a row (failures counted, or not closed) when the round claimed.
    known: frozenset[Scope] = frozenset()


def scope_of(gateway: Breakers, channel: str | None, unit_code: str) -> Scope:
    """The breaker a recipient's send counts against: its unit's on a channel that calls each
    unit at its own endpoint, else its channel's."""
    info = gateway.channels.get(channel or "")
    return (channel or "", unit_code if info is not None and info.is_secure else "")


async def plan(gateway: Breakers, conn: AsyncConnection, *, now: dt.datetime) -> Plan:
    """What this round may claim, in the claim's transaction (taking probe and drain slots)."""
    rows = await store.breakers(conn)
    known = frozenset((b.channel, b.unit_code) for b in rows)
    blocked = tuple((b.channel, b.unit_code) for b in rows if b.state != CLOSED)
    if not blocked:
        return Plan(known=known)
    settings = gateway.settings.alerts
    slots = []
    for breaker in rows:
        if breaker.state == OPEN:
            limit, draining, wait = 1, False, _probe_wait(gateway, breaker.opened_at, now)
        elif breaker.state == RECOVERING:
            limit, draining = settings.drain_batch, True
            wait = dt.timedelta(seconds=settings.drain_interval_seconds)
        else:
            continue
        if breaker.next_at is not None and breaker.next_at > now:
            continue
        taken = await store.take_slot(
            conn,
            breaker.channel,
            breaker.unit_code,
            states=(breaker.state,),
            now=now,
            next_at=now + wait,
        )
        if taken:
            slots.append(
                Slot(scope=(breaker.channel, breaker.unit_code), limit=limit, draining=draining)
            )
    return Plan(blocked=blocked, slots=tuple(slots), known=known)


async def drained(conn: AsyncConnection, scope: Scope, *, now: dt.datetime) -> None:
    """A drain slice found less than it could take: the backlog is gone, the breaker closes."""
    breaker = await store.breaker_for_update(conn, *scope)
    if breaker is not None and breaker.state == RECOVERING:
        await store.forget_breaker(conn, *scope)  # no row: closed, no failure counted
        log.warning(
            "breaker_closed", extra={"event": "breaker_closed", **_fields(scope, "backlog drained")}
        )


def _probe_wait(gateway: Breakers, opened_at: dt.datetime | None, now: dt.datetime) -> dt.timedelta:
    """How long an open breaker waits before its next probe: ``breaker_probe_seconds``, or as
    long as it has been open — so the wait doubles with each failed probe (up to 10 minutes),
    however many sends the round that opened it had."""
    base = dt.timedelta(seconds=gateway.settings.alerts.breaker_probe_seconds)
    open_for = now - opened_at if opened_at is not None else dt.timedelta(0)
    return min(max(base, open_for), PROBE_MAX)


async def record_outcomes(
    gateway: Breakers,
    outcomes: Iterable[tuple[Scope, Outcome, str]],
    *,
    known: frozenset[Scope],
    now: dt.datetime,
) -> None:
    """Count each send's outcome against its breaker (failures in a row), opening, re-opening or
    recovering it as the module's docstring says. ``known``: the breakers that had a row when
    the round claimed (:attr:`Plan.known`) — a round of successes elsewhere writes nothing."""
    by_scope: dict[Scope, list[tuple[Outcome, str]]] = {}
    for scope, outcome, detail in outcomes:
        by_scope.setdefault(scope, []).append((outcome, detail))
    if not any(
        scope in known or any(o in TRANSPORT_FAILURES for o, _ in seen)
        for scope, seen in by_scope.items()
    ):
        return  # the usual round: every breaker closed and clean, no transport failure
    async with gateway.engine.begin() as conn:
        for scope, seen in sorted(by_scope.items()):
            breaker = await store.breaker_for_update(conn, *scope)
            if breaker is None and all(o not in TRANSPORT_FAILURES for o, _ in seen):
                continue  # closed and fine: no row to write
            values = _counted(gateway, scope, breaker, seen, now)
            if values["state"] == CLOSED and values["failures"] == 0:
                await store.forget_breaker(conn, *scope)
            else:
                await store.save_breaker(conn, *scope, **values)


def _counted(
    gateway: Breakers,
    scope: Scope,
    breaker: BreakerRecord | None,
    seen: list[tuple[Outcome, str]],
    now: dt.datetime,
) -> dict[str, Any]:
    """The breaker's row after one round's outcomes ``seen`` on it. The round's sends ran
    concurrently, so their order means nothing: any answer (a send that went, a peer's refusal)
    shows the transport works and resets the count; a round of nothing but transport failures
    adds them all. A flaky peer does not open the breaker; a peer that is gone does."""
    before = breaker.state if breaker else CLOSED
    state, failures = before, breaker.failures if breaker else 0
    failed = [detail for outcome, detail in seen if outcome in TRANSPORT_FAILURES]
    values: dict[str, Any] = {"updated_at": now}
    if len(failed) < len(seen):
        failures = 0
        if state == OPEN:
            state = RECOVERING
            why = _fields(scope, "a probe got an answer")
            log.warning("breaker_recovering", extra={"event": "breaker_recovering", **why})
    else:
        failures += len(failed)
        state = _after_failure(scope, state, failures, gateway.settings.alerts.breaker_failures)
        values["last_error"] = failed[-1][:500]
    values.update(state=state, failures=failures)
    if state == OPEN:  # opened now, or a failed probe: the next probe waits (longer)
        opened_at = breaker.opened_at if breaker and before == OPEN else now
        values.update(opened_at=opened_at, next_at=now + _probe_wait(gateway, opened_at, now))
    elif state != before:
        values["next_at"] = now  # recovering: the first drain slice may go at once
    return values


def _after_failure(scope: Scope, state: str, failures: int, threshold: int) -> str:
    if state == RECOVERING or (state == CLOSED and threshold and failures >= threshold):
        why = _fields(scope, f"{failures} transport failures in a row")
        log.warning("breaker_opened", extra={"event": "breaker_opened", **why})
        return OPEN
    return state


def _fields(scope: Scope, why: str) -> dict[str, Any]:
    return {"channel": scope[0], "unit": scope[1] or None, "detail": why}


# ------------------------------------------------------------------------- operator's actions


def _check_channel(gateway: Breakers, channel: str, unit: str | None) -> None:
    info = gateway.channels.get(channel)
    if info is None:
        raise NotFound(f"no channel {channel!r} is configured", element="channel")
    if unit is not None and not info.is_secure:
        raise ParameterInvalid(
            "chỉ kênh bảo mật (gọi từng đơn vị ở địa chỉ riêng) mới có bộ ngắt riêng cho từng đơn "
            "vị / a unit has a breaker of its own only on a channel that calls each unit at its "
            "own endpoint (secure)",
            element="unit",
        )


PAUSED_ACTION: Final = "channel_paused"
RESUMED_ACTION: Final = "channel_resumed"


def _why(channel: str, unit: str | None, reason: str | None) -> str:
    """The audit event's reason: which breaker, then the operator's words."""
    where = channel + (f"/{unit}" if unit else "")
    return f"{where}: {reason}" if reason else where


async def pause(
    gateway: Breakers, channel: str, *, unit: str | None, actor: str, reason: str | None = None
) -> BreakerRecord:
    """Stop claiming for the channel (or one unit on it) until :func:`resume`; audited with
    ``actor`` and ``reason``."""
    _check_channel(gateway, channel, unit)
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        breaker = await store.breaker_for_update(conn, channel, unit or "")
        await store.save_breaker(
            conn,
            channel,
            unit or "",
            state=PAUSED,
            failures=breaker.failures if breaker else 0,
            next_at=None,
            changed_by=actor,
            updated_at=now,
        )
        saved = await store.breaker_for_update(conn, channel, unit or "")
        await audit_queries.audit(
            conn, now=now, actor=actor, action=PAUSED_ACTION, reason=_why(channel, unit, reason)
        )
    log.warning(
        "channel_paused",
        extra={"event": "channel_paused", "channel": channel, "unit": unit, "actor": actor},
    )
    assert saved is not None
    return saved


async def resume(
    gateway: Breakers, channel: str, *, unit: str | None, actor: str, reason: str | None = None
) -> BreakerRecord:
    """Claim again for the channel (or unit), draining its backlog at the bounded rate; an open
    breaker resumed skips its wait for the next probe and drains at once. Audited."""
    _check_channel(gateway, channel, unit)
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        breaker = await store.breaker_for_update(conn, channel, unit or "")
        if breaker is not None and breaker.state != CLOSED:
            await store.save_breaker(
                conn,
                channel,
                unit or "",
                state=RECOVERING,
                failures=0,
                next_at=now,
                changed_by=actor,
                updated_at=now,
            )
        saved = await store.breaker_for_update(conn, channel, unit or "")
        await audit_queries.audit(
            conn, now=now, actor=actor, action=RESUMED_ACTION, reason=_why(channel, unit, reason)
        )
    log.info(
        "channel_resumed",
        extra={"event": "channel_resumed", "channel": channel, "unit": unit, "actor": actor},
    )
    gateway.work_available.set()
    return saved or _closed(channel, unit or "", now)


def _closed(channel: str, unit: str, now: dt.datetime) -> BreakerRecord:
    return BreakerRecord(
        channel=channel,
        unit_code=unit,
        state=CLOSED,
        failures=0,
        next_at=None,
        opened_at=None,
        last_error=None,
        changed_by=None,
        updated_at=now,
    )


async def listing(gateway: Breakers) -> list[BreakerRecord]:
    """Every configured channel's breaker (closed when it has no row), then the units' ones."""
    async with gateway.engine.connect() as conn:
        rows = await store.breakers(conn)
    now = gateway.clock()
    known: dict[Scope, BreakerRecord | None] = {(b.channel, b.unit_code): b for b in rows}
    channels = [known.pop((name, ""), None) or _closed(name, "", now) for name in gateway.channels]
    return channels + [b for b in known.values() if b is not None]


def breaker_document(breaker: BreakerRecord) -> dict[str, Any]:
    """A breaker as the API, /healthz and the CLI's --json carry it."""

    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.astimezone(dt.UTC).isoformat()

    return {
        "channel": breaker.channel,
        "unit": breaker.unit_code or None,
        "state": breaker.state,
        "failures": breaker.failures,
        "next_at": iso(breaker.next_at),
        "opened_at": iso(breaker.opened_at),
        "last_error": breaker.last_error,
        "changed_by": breaker.changed_by,
    }

"""The delivery queue and the processes that work it: claims of due recipients, attempts,
expired leases, the channel's own view of sent documents, workers' heartbeats, the scheduled
jobs' tick claims, and the queue's metrics.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so N workers on N hosts share one queue
without taking the same row; on SQLite the single connection serialises writers and the clause is
not rendered. The delivery path batches: a claimed batch is moved, audited and given its attempt
rows in a few statements, not a few per recipient — round trips to the database are most of its
cost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.lifecycle import CLAIMABLE, IllegalTransition, TransportState, check_transition
from gateway.domain.retry import Outcome
from gateway.store import current_certificate
from gateway.store.audit_queries import audit_row, insert_audit_rows
from gateway.store.direct import Statement
from gateway.store.records import (
    Claimed,
    aware,
)
from gateway.store.tables import (
    UtcDateTime,
    attempts,
    blobs,
    messages,
    recipients,
    unit_certificates,
    units,
    workers,
)

# ----------------------------------------------------------------------------------- claims


#: The fingerprint of a recipient unit's current certificate (the one definition: see
#: :mod:`gateway.store.current_certificate`).
_CURRENT_FINGERPRINT = current_certificate.current(
    recipients.c.unit_code, sa.bindparam("now"), unit_certificates.c.fingerprint_sha256
).correlate(recipients)

_DUE = Statement(
    sa.select(
        recipients.c.id,
        recipients.c.state,
        recipients.c.message_id,
        recipients.c.unit_code,
        recipients.c.channel,
        recipients.c.attempt_count,
        sa.func.coalesce(recipients.c.package_sha256, messages.c.package_sha256).label(
            "package_sha256"
        ),
        messages.c.kind,
        messages.c.document_id,
        messages.c.sender,
        messages.c.classification,
        units.c.secure_endpoint,
        # What the classified policy is checked against again at each claim (deliver_due): the
        # unit as registered now (NULL active: no longer registered) …
        units.c.active.label("unit_active"),
        units.c.allows_tuyet_mat,
        # … and, for classified copies only, the unit's current certificate: a correlated
        # subquery the CASE evaluates only for them, so ``thuong`` costs no extra lookup.
        sa.case(
            (
                messages.c.classification != Classification.THUONG.value,
                _CURRENT_FINGERPRINT.scalar_subquery(),
            ),
            else_=None,
        ).label("current_fingerprint"),
    )
    .select_from(
        recipients.join(messages, messages.c.id == recipients.c.message_id).outerjoin(
            units, units.c.code == recipients.c.unit_code
        )
    )
    .where(
        recipients.c.state.in_([s.value for s in CLAIMABLE]),
        recipients.c.next_attempt_at <= sa.bindparam("now"),
    )
    .order_by(recipients.c.next_attempt_at, recipients.c.id)
    .limit(sa.bindparam("limit"))
    # Only the recipient rows are locked (PostgreSQL); a row another worker holds is skipped.
    .with_for_update(skip_locked=True, of=recipients)
)


def _in_scope(channel: str, unit_code: str) -> Any:
    if not unit_code:
        return recipients.c.channel == channel
    return sa.and_(recipients.c.channel == channel, recipients.c.unit_code == unit_code)


def _breaker_scoped(blocked: Sequence[tuple[str, str]], only: tuple[str, str] | None) -> Any:
    """The due-rows statement without the blocked breakers' recipients, or with only one's."""
    statement: Any = _DUE.statement
    if only is not None:
        return statement.where(_in_scope(*only))
    outside = sa.not_(sa.or_(*(_in_scope(*scope) for scope in blocked)))
    return statement.where(sa.or_(recipients.c.channel.is_(None), outside))


async def claim_due(
    conn: AsyncConnection,
    *,
    now: dt.datetime,
    limit: int,
    lease_until: dt.datetime,
    worker: str,
    blocked: Sequence[tuple[str, str]] = (),
    only: tuple[str, str] | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` due recipients: they become ``sending`` under this worker's lease.
    Three statements whatever the batch: the due rows with what their delivery needs, the one
    guarded UPDATE, the audit events. ``blocked``: (channel, unit or "" for all its units) whose
    circuit breaker is not closed, left alone; ``only``: claim for that one (usecases/breakers)."""
    due = _DUE if not blocked and only is None else Statement(_breaker_scoped(blocked, only))
    rows = (await due.execute(conn, {"now": now, "limit": limit})).all()
    if not rows:
        return []
    # One guarded UPDATE for the batch: the rows are ours (locked above on PostgreSQL; SQLite has
    # one writer), so every one of them must move, or nothing does.
    for row in rows:
        check_transition(TransportState(row.state), TransportState.SENDING)
    claimed_ids = [row.id for row in rows]
    result = await conn.execute(
        recipients.update()
        .where(
            recipients.c.id.in_(claimed_ids),
            recipients.c.state.in_([s.value for s in CLAIMABLE]),
        )
        .values(
            state=TransportState.SENDING.value,
            updated_at=now,
            lease_until=lease_until,
            attempt_count=recipients.c.attempt_count + 1,
        )
    )
    if result.rowcount != len(claimed_ids):
        raise IllegalTransition("a recipient being claimed moved concurrently; nothing claimed")
    await insert_audit_rows(
        conn,
        [
            audit_row(
                now=now,
                actor=worker,
                action="claimed",
                message_id=row.message_id,
                recipient_id=row.id,
                from_state=row.state,
                to_state=TransportState.SENDING.value,
            )
            for row in rows
        ],
    )
    return [
        Claimed(
            recipient_id=row.id,
            message_id=row.message_id,
            unit_code=row.unit_code,
            channel=row.channel,
            attempt=row.attempt_count + 1,  # as the UPDATE above counted it
            package_sha256=row.package_sha256,
            kind=PackageKind(row.kind),
            document_id=row.document_id,
            sender=row.sender,
            classification=Classification(row.classification),
            secure_endpoint=row.secure_endpoint,
            earlier_outcome_unknown=row.state == TransportState.UNCONFIRMED.value,
            unit_active=None if row.unit_active is None else bool(row.unit_active),
            allows_tuyet_mat=bool(row.allows_tuyet_mat),
            current_fingerprint=row.current_fingerprint,
        )
        for row in rows
    ]


async def start_attempts(
    conn: AsyncConnection, claimed: Sequence[Claimed], *, worker: str, now: dt.datetime
) -> dict[int, int]:
    """One attempt row per claimed recipient, in one statement; recipient id → attempt id."""
    started = {}
    for c in claimed:  # a batch is a few rows: one direct statement each costs less than one big
        params = {"recipient_id": c.recipient_id, "number": c.attempt, "channel": c.channel}
        result = await _START_ATTEMPT.execute(conn, {**params, "worker": worker, "started_at": now})
        started[c.recipient_id] = int(result.scalar_one())
    return started


_START_ATTEMPT = Statement(attempts.insert().returning(attempts.c.id))


@dataclass(frozen=True, kw_only=True)
class AttemptEnd:
    attempt_id: int
    at: dt.datetime
    outcome: Outcome
    error_code: str | None
    detail: str | None


async def finish_attempts(conn: AsyncConnection, ends: Sequence[AttemptEnd]) -> None:
    if not ends:
        return
    await _FINISH_ATTEMPT.execute(
        conn,
        [
            {
                "attempt_id": end.attempt_id,
                "finished_at": end.at,
                "outcome": end.outcome.value,
                "error_code": end.error_code,
                "detail": end.detail,
            }
            for end in ends
        ],
    )


_FINISH_ATTEMPT = Statement(attempts.update().where(attempts.c.id == sa.bindparam("attempt_id")))


async def inline_packages(conn: AsyncConnection, sha256s: Iterable[str]) -> dict[str, bytes]:
    """The bytes of those packages that are stored inline (small ones: ``[gateway]
    inline_blob_bytes`` at most each); chunked ones are not read here. One direct statement per
    package: a delivery round carries a few."""
    found = {}
    for sha256 in sorted(set(sha256s)):
        data = (await _INLINE_PACKAGE.execute(conn, {"sha256": sha256})).scalar()
        if data is not None:
            found[sha256] = bytes(data)
    return found


_INLINE_PACKAGE = Statement(sa.select(blobs.c.data).where(blobs.c.sha256 == sa.bindparam("sha256")))


async def expired_leases(conn: AsyncConnection, *, now: dt.datetime) -> list[tuple[int, str]]:
    rows = (
        await conn.execute(
            sa.select(recipients.c.id, recipients.c.message_id)
            .where(
                recipients.c.state == TransportState.SENDING.value,
                recipients.c.lease_until < now,
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    return [(row.id, row.message_id) for row in rows]


# --------------------------------------------------------------------------- health, metrics


async def heartbeat(conn: AsyncConnection, worker: str, *, now: dt.datetime) -> None:
    result = await conn.execute(workers.update().where(workers.c.id == worker).values(beat_at=now))
    if not result.rowcount:
        await conn.execute(workers.insert().values(id=worker, started_at=now, beat_at=now))


async def live_workers(conn: AsyncConnection, *, since: dt.datetime) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).where(workers.c.beat_at >= since)) or 0)


async def oldest_due(conn: AsyncConnection, *, now: dt.datetime) -> dt.datetime | None:
    value = await conn.scalar(
        sa.select(sa.func.min(recipients.c.next_attempt_at)).where(
            recipients.c.state.in_([s.value for s in CLAIMABLE]),
            recipients.c.next_attempt_at <= now,
        )
    )
    return aware(value)  # type: ignore[no-any-return]


async def counts_by_state_and_channel(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    rows = (
        await conn.execute(
            sa.select(recipients.c.state, recipients.c.channel, sa.func.count()).group_by(
                recipients.c.state, recipients.c.channel
            )
        )
    ).all()
    return [(row[0], row[1] or "", int(row[2])) for row in rows]


async def attempt_counts(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    rows = (
        await conn.execute(
            sa.select(attempts.c.channel, attempts.c.outcome, sa.func.count()).group_by(
                attempts.c.channel, attempts.c.outcome
            )
        )
    ).all()
    return [(row[0] or "", row[1] or "unfinished", int(row[2])) for row in rows]


# --------------------------------------------------------------------------- channel states


async def sent_to_check(
    conn: AsyncConnection, *, channel: str, since: dt.datetime, limit: int
) -> list[tuple[int, str, str]]:
    """(recipient id, unit code, remote id) of recent sends on a channel, least recently checked
    first, whose recipient has not answered yet with a final business status."""
    rows = (
        await conn.execute(
            sa.select(recipients.c.id, recipients.c.unit_code, recipients.c.remote_id)
            .where(
                recipients.c.channel == channel,
                recipients.c.state == TransportState.SENT.value,
                recipients.c.remote_id.is_not(None),
                recipients.c.sent_at >= since,
                sa.or_(
                    recipients.c.business_status.is_(None),
                    recipients.c.business_status.not_in(["02", "06", "15", "16"]),
                ),
            )
            .order_by(recipients.c.channel_checked_at.asc().nulls_first(), recipients.c.id)
            .limit(limit)
        )
    ).all()
    return [(row.id, row.unit_code, row.remote_id) for row in rows]


async def set_channel_state(
    conn: AsyncConnection,
    recipient_id: int,
    *,
    send_status: str | None,
    receive_status: str | None,
    now: dt.datetime,
) -> None:
    await conn.execute(
        recipients.update()
        .where(recipients.c.id == recipient_id)
        .values(
            channel_send_status=send_status,
            channel_receive_status=receive_status,
            channel_checked_at=now,
        )
    )


# ------------------------------------------------------------------------ scheduled job ticks

#: One round trip: the job's lock (held until this transaction ends); the database's clock; and
#: no idle timeout for this transaction, which stays open and idle while the job runs — a
#: server's ``idle_in_transaction_session_timeout`` would otherwise end it mid-job, freeing the
#: lock for an overlapping run.
_JOB_LOCK = sa.text(
    "SELECT pg_try_advisory_xact_lock(:key), clock_timestamp(),"
    " set_config('idle_in_transaction_session_timeout', '0', true)"
)


async def try_lock_job(lock: AsyncConnection, key: int) -> tuple[bool, dt.datetime]:
    """PostgreSQL: take the job's transaction-level advisory lock ``key`` if it is free; whether
    it was, and the database's clock."""
    got, database_now, _ = (await lock.execute(_JOB_LOCK, {"key": key})).one()
    return bool(got), database_now


_CLAIM_TICK = sa.text(
    """
    INSERT INTO job_ticks (job, tick_at, claimed_by, claimed_at)
    VALUES (:job, :tick_at, :claimed_by, :claimed_at)
    ON CONFLICT (job) DO UPDATE
    SET tick_at = excluded.tick_at, claimed_by = excluded.claimed_by,
        claimed_at = excluded.claimed_at
    WHERE job_ticks.tick_at < excluded.tick_at
       OR job_ticks.tick_at > clock_timestamp() + :tolerance
    RETURNING job
    """
).bindparams(
    sa.bindparam("tick_at", type_=UtcDateTime()),
    sa.bindparam("claimed_at", type_=UtcDateTime()),
    sa.bindparam("tolerance", type_=sa.Interval()),
)


async def claim_job_tick(
    lock: AsyncConnection,
    *,
    job: str,
    tick_at: dt.datetime,
    claimed_by: str,
    now: dt.datetime,
    tolerance: dt.timedelta,
) -> bool:
    """Record ``tick_at`` as ``job``'s last tick, in the caller's transaction, if it is later
    than the one recorded (or that one is beyond ``tolerance`` ahead of the database's clock);
    True if it was."""
    params = {
        "job": job,
        "tick_at": tick_at,
        "claimed_by": claimed_by,
        "claimed_at": now,
        "tolerance": tolerance,
    }
    return (await lock.execute(_CLAIM_TICK, params)).first() is not None

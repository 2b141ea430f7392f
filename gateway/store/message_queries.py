"""Messages and their recipients: idempotency and deduplication look-ups, inserts, the
recipients' guarded state changes, the message list and a message's history, the hand-off of
received messages. Functions take an open connection (the caller owns the transaction) and return
records.

Every state change goes through :func:`transition` (or, for a worker's batch,
:func:`transition_many`), which checks the move against the lifecycle, guards it with the expected
current state (a concurrent move makes it fail), and writes the audit event in the same
transaction. The statements of every document's path are
:class:`~gateway.store.direct.Statement` constants, run on the driver connection
(``store/direct.py`` says why); the rest go through SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import IllegalTransition, TransportState, check_transition
from gateway.domain.text_search import LIKE_ESCAPE, like_patterns, searchable
from gateway.store import audit_chain, visibility
from gateway.store import events as feed_events
from gateway.store.audit_queries import audit, audit_row, insert_audit_rows
from gateway.store.database import insert_or_ignore
from gateway.store.direct import Statement
from gateway.store.records import (
    MessageRecord,
    RecipientRecord,
    aware,
    dicts,
)
from gateway.store.tables import (
    attempts,
    audit_events,
    messages,
    recipients,
    status_events,
)

# --------------------------------------------------------------------------------- messages


async def message_id_for_idempotency_key(
    conn: AsyncConnection, client: str, key: str
) -> str | None:
    return await conn.scalar(
        sa.select(messages.c.id).where(
            messages.c.client == client, messages.c.idempotency_key == key
        )
    )


_BY_DEDUP_KEY = sa.select(messages.c.id).where(
    messages.c.direction == sa.bindparam("direction"), messages.c.dedup_key == sa.bindparam("key")
)


async def message_id_for_dedup_key(
    conn: AsyncConnection, direction: Direction, key: str
) -> str | None:
    return await conn.scalar(_BY_DEDUP_KEY, {"direction": direction, "key": key})


_DOCUMENTS_WITH_ID = Statement(
    sa.select(messages.c.classification).where(
        messages.c.kind == PackageKind.DOCUMENT,
        messages.c.document_id == sa.bindparam("document_id"),
    )
)


async def classifications_of_document(conn: AsyncConnection, document_id: str) -> list[str]:
    """The classification of every stored document (sent or received) with this DocumentId;
    empty when docgw holds none."""
    rows = await _DOCUMENTS_WITH_ID.execute(conn, {"document_id": document_id})
    return [row[0] for row in rows]


_CODE_USED = Statement(
    sa.select(messages.c.id)
    .where(
        messages.c.direction == Direction.OUT,
        messages.c.kind == PackageKind.DOCUMENT,
        messages.c.sender == sa.bindparam("sender"),
        messages.c.code == sa.bindparam("code"),
        messages.c.promulgation_date >= sa.bindparam("year_start"),
        messages.c.promulgation_date < sa.bindparam("year_end"),
    )
    .limit(1)
)


async def code_used(conn: AsyncConnection, *, sender: str, code: str, year: int) -> str | None:
    """A document ``sender`` already sent with this số/ký hiệu promulgated in ``year``: its id."""
    params = {
        "sender": sender,
        "code": code,
        "year_start": dt.date(year, 1, 1),
        "year_end": dt.date(year + 1, 1, 1),
    }
    row = (await _CODE_USED.execute(conn, params)).first()
    return None if row is None else str(row[0])


_INSERT_MESSAGE = Statement(messages.insert())


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    """A ``messages`` row as it is written, whoever inserts it: its subject through
    :func:`visibility.readable_columns` (none for a classified message), then its folded search
    text (:func:`text_search.searchable`) from what is stored — so a classified subject does
    not reach ``search_text`` either."""
    row = visibility.readable_columns(values)
    text = searchable(row.get("subject"), row.get("document_id"), row.get("code"))
    return {**row, "search_text": text}


async def insert_message(conn: AsyncConnection, **values: Any) -> None:
    """A classified message's subject is not stored (:func:`visibility.readable_text`)."""
    await _INSERT_MESSAGE.execute(conn, _stored(values))


async def insert_message_unless_received(conn: AsyncConnection, **values: Any) -> bool:
    """Insert a received message; False (nothing written) when its (direction, dedup_key) is
    already stored. One statement instead of a look-up first, and no constraint error. As
    :func:`insert_message`, no readable subject for a classified one."""
    statement = insert_or_ignore(conn, messages, messages.c.direction, messages.c.dedup_key)
    return bool((await statement.execute(conn, _stored(values))).rowcount)


async def insert_recipient(
    conn: AsyncConnection,
    *,
    message_id: str,
    unit_code: str,
    channel: str | None,
    state: TransportState,
    now: dt.datetime,
    actor: str,
    reason: str,
    package_sha256: str | None = None,
    business_status: str | None = None,
    audit_rows: list[dict[str, Any]] | None = None,
) -> int:
    """Insert a recipient and its "created" audit event. ``audit_rows``: collect the event there
    instead, for the caller to insert with the transaction's others in one statement
    (:func:`insert_audit_rows`)."""
    result = await _INSERT_RECIPIENT.execute(
        conn,
        {
            "message_id": message_id,
            "unit_code": unit_code,
            "channel": channel,
            "state": state.value,
            "attempt_count": 0,
            "next_attempt_at": now if state is TransportState.QUEUED else None,
            "package_sha256": package_sha256,
            "business_status": business_status,
            "business_updated_at": now if business_status is not None else None,
            "updated_at": now,
        },
    )
    recipient_id = int(result.scalar_one())
    row = audit_row(
        now=now,
        actor=actor,
        action="created",
        message_id=message_id,
        recipient_id=recipient_id,
        to_state=state.value,
        reason=reason,
    )
    if audit_rows is not None:
        audit_rows.append(row)
    else:
        await audit_chain.append(conn, [row])
        await feed_events.record_transport_outcomes(conn, [row])
    return recipient_id


_INSERT_RECIPIENT = Statement(recipients.insert().returning(recipients.c.id))


async def transition(
    conn: AsyncConnection,
    recipient_id: int,
    current: TransportState,
    new: TransportState,
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    reason: str | None = None,
    message_id: str | None = None,
    **fields: Any,
) -> None:
    check_transition(current, new)
    if not await _guarded_update(conn, recipient_id, current, new, now, fields):
        raise IllegalTransition(
            f"recipient {recipient_id} is no longer {current.value} (moved concurrently)"
        )
    await audit(
        conn,
        now=now,
        actor=actor,
        action=action,
        message_id=message_id,
        recipient_id=recipient_id,
        from_state=current.value,
        to_state=new.value,
        reason=reason,
    )


#: One recipient's guarded state change; the SET columns come from the parameters' other keys
#: (compiled once per set of columns).
_GUARDED_UPDATE = Statement(
    recipients.update().where(
        recipients.c.id == sa.bindparam("guard_id"),
        recipients.c.state == sa.bindparam("guard_state"),
    )
)


async def _guarded_update(
    conn: AsyncConnection,
    recipient_id: int,
    current: TransportState,
    new: TransportState,
    at: dt.datetime,
    fields: Mapping[str, Any],
) -> bool:
    """One recipient moved from ``current`` to ``new``, with ``fields`` set; False when it is no
    longer in ``current`` (moved concurrently) and nothing was written."""
    params = {"guard_id": recipient_id, "guard_state": current.value, "state": new.value}
    result = await _GUARDED_UPDATE.execute(conn, {**params, "updated_at": at, **fields})
    return result.rowcount == 1


@dataclass(frozen=True, kw_only=True)
class Move:
    """One recipient's state change, for :func:`transition_many`."""

    recipient_id: int
    message_id: str | None
    current: TransportState
    new: TransportState
    at: dt.datetime
    action: str
    reason: str | None = None
    #: Other columns to set, by name; plain values (they travel as parameters).
    fields: Mapping[str, Any] = field(default_factory=dict)


async def transition_many(
    conn: AsyncConnection, moves: Sequence[Move], *, actor: str
) -> list[Move]:
    """Several :func:`transition` moves in the caller's transaction, each checked against the
    lifecycle and guarded by its expected state; their audit events go in one statement. Returns
    the moves NOT applied because the recipient had moved concurrently (the others stand)."""
    for move in moves:
        check_transition(move.current, move.new)
    if conn.dialect.name == "postgresql" and len(moves) > 1:
        moved = await _guarded_update_batched(conn, moves)
    else:
        moved = {
            move.recipient_id
            for move in moves
            if await _guarded_update(
                conn, move.recipient_id, move.current, move.new, move.at, move.fields
            )
        }
    applied = [move for move in moves if move.recipient_id in moved]
    lost = [move for move in moves if move.recipient_id not in moved]
    await insert_audit_rows(
        conn,
        [
            audit_row(
                now=move.at,
                actor=actor,
                action=move.action,
                message_id=move.message_id,
                recipient_id=move.recipient_id,
                from_state=move.current.value,
                to_state=move.new.value,
                reason=move.reason,
            )
            for move in applied
        ],
    )
    return lost


async def _guarded_update_batched(conn: AsyncConnection, moves: Sequence[Move]) -> set[int]:
    """PostgreSQL: the guarded updates of moves that set the same columns as ONE statement,
    ``UPDATE recipients … FROM (VALUES …) WHERE id = … AND state = <guard> RETURNING id``: a
    round trip per group instead of per recipient (a delivery round records a few at a time).
    SQLite is left to the statement per move: there a statement is a function call, and its
    VALUES cannot name columns. Returns the ids that moved."""
    groups: dict[tuple[str, ...], list[Move]] = {}
    for move in moves:
        groups.setdefault(tuple(sorted(move.fields)), []).append(move)
    moved: set[int] = set()
    for keys, group in groups.items():
        rows = sa.values(
            sa.column("guard_id", sa.Integer),
            sa.column("guard_state", recipients.c.state.type),
            sa.column("new_state", recipients.c.state.type),
            sa.column("at", recipients.c.updated_at.type),
            *(sa.column(key, recipients.c[key].type) for key in keys),
            name="moves",
        ).data(
            [
                (m.recipient_id, m.current.value, m.new.value, m.at, *(m.fields[k] for k in keys))
                for m in group
            ]
        )
        statement = (
            recipients.update()
            .where(recipients.c.id == rows.c.guard_id, recipients.c.state == rows.c.guard_state)
            # Cast: a column whose values are all None is rendered as untyped NULLs (text).
            .values(
                state=rows.c.new_state,
                updated_at=rows.c.at,
                **{k: sa.cast(rows.c[k], recipients.c[k].type) for k in keys},
            )
            .returning(recipients.c.id)
        )
        moved.update((await conn.execute(statement)).scalars())
    return moved


def _recipient(row: Any) -> RecipientRecord:
    return RecipientRecord(
        id=row.id,
        message_id=row.message_id,
        unit_code=row.unit_code,
        channel=row.channel,
        state=TransportState(row.state),
        attempt_count=row.attempt_count,
        next_attempt_at=aware(row.next_attempt_at),
        last_error=row.last_error,
        remote_id=row.remote_id,
        business_status=row.business_status,
        sent_at=aware(row.sent_at),
        arrival_due_at=aware(row.arrival_due_at),
        package_sha256=row.package_sha256,
    )


def _message(row: Any, recipient_rows: Sequence[RecipientRecord] = ()) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        direction=Direction(row.direction),
        kind=PackageKind(row.kind),
        document_id=row.document_id,
        sender=row.sender,
        classification=Classification(row.classification),
        subject=row.subject,
        code=row.code,
        priority=row.priority,
        status_code=row.status_code,
        related_message_id=row.related_message_id,
        package_sha256=row.package_sha256,
        client=row.client,
        idempotency_key=row.idempotency_key,
        route=row.route,
        notices=row.notices,
        signer_subject=row.signer_subject,
        send_due_at=aware(row.send_due_at),
        created_at=aware(row.created_at),
        recipients=tuple(recipient_rows),
    )


async def get_message(
    conn: AsyncConnection, message_id: str, *, visible_to_unit: str | None = None
) -> MessageRecord | None:
    """``visible_to_unit``: None as well when a member token of that unit may not see it
    (:func:`visibility.visible_to`)."""
    query = sa.select(messages).where(messages.c.id == message_id)
    if visible_to_unit is not None:
        query = query.where(visibility.visible_to(visible_to_unit))
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return None
    return _message(row, await get_recipients(conn, message_id))


async def get_recipients(conn: AsyncConnection, message_id: str) -> list[RecipientRecord]:
    rows = (
        await conn.execute(
            sa.select(recipients)
            .where(recipients.c.message_id == message_id)
            .order_by(recipients.c.id)
        )
    ).all()
    return [_recipient(r) for r in rows]


@dataclass(frozen=True, kw_only=True)
class MessageFilter:
    direction: Direction | None = None
    kind: PackageKind | None = None
    #: Messages with a recipient in this state.
    state: TransportState | None = None
    recipient: str | None = None
    sender: str | None = None
    classification: Classification | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    text: str | None = None
    #: Only messages with a deadline (send, or arrival notice) passed before this moment.
    breached_before: dt.datetime | None = None
    #: A member unit sees only what it sent or received (:func:`visibility.visible_to`).
    visible_to_unit: str | None = None
    #: Messages with a recipient routed through this channel (the console's filter).
    channel: str | None = None


def _has_recipient(*conditions: Any) -> Any:
    return sa.exists().where(recipients.c.message_id == messages.c.id, *conditions)


def _conditions(f: MessageFilter) -> list[Any]:
    equal = {
        messages.c.direction: f.direction,
        messages.c.kind: f.kind,
        messages.c.sender: f.sender,
        messages.c.classification: f.classification,
    }
    conditions: list[Any] = [column == value for column, value in equal.items() if value]
    if f.created_from:
        conditions.append(messages.c.created_at >= f.created_from)
    if f.created_to:
        conditions.append(messages.c.created_at < f.created_to)
    if f.text:
        # Every word, in any order, accents and case aside (text_search: the words folded as
        # search_text is, LIKE wildcards typed taken literally) — as units are searched.
        conditions.extend(
            messages.c.search_text.like(pattern, escape=LIKE_ESCAPE)
            for pattern in like_patterns(f.text)
        )
    if f.state:
        conditions.append(_has_recipient(recipients.c.state == f.state))
    if f.recipient:
        conditions.append(_has_recipient(recipients.c.unit_code == f.recipient))
    if f.channel:
        conditions.append(_has_recipient(recipients.c.channel == f.channel))
    if f.breached_before is not None:
        unsent = _has_recipient(
            recipients.c.sent_at.is_(None), recipients.c.state != TransportState.CANCELLED.value
        )
        no_arrival_notice = _has_recipient(
            recipients.c.arrival_due_at < f.breached_before, recipients.c.business_status.is_(None)
        )
        conditions.append(
            sa.or_(sa.and_(messages.c.send_due_at < f.breached_before, unsent), no_arrival_notice)
        )
    if f.visible_to_unit:
        conditions.append(visibility.visible_to(f.visible_to_unit))
    return conditions


def message_conditions(f: MessageFilter) -> list[Any]:
    """The WHERE clauses of a filter on ``messages``, for other views of the same selection."""
    return _conditions(f)


async def list_messages(
    conn: AsyncConnection,
    f: MessageFilter,
    *,
    after: tuple[dt.datetime, str] | None = None,
    limit: int = 50,
) -> list[MessageRecord]:
    """Newest first; ``after`` is the (created_at, id) of the last row of the previous page."""
    query = sa.select(messages).where(*_conditions(f))
    if after is not None:
        created, last_id = after
        query = query.where(
            sa.or_(
                messages.c.created_at < created,
                sa.and_(messages.c.created_at == created, messages.c.id < last_id),
            )
        )
    query = query.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(limit)
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    by_message: dict[str, list[RecipientRecord]] = {row.id: [] for row in rows}
    recipient_rows = (
        await conn.execute(
            sa.select(recipients)
            .where(recipients.c.message_id.in_(list(by_message)))
            .order_by(recipients.c.id)
        )
    ).all()
    for r in recipient_rows:
        by_message[r.message_id].append(_recipient(r))
    return [_message(row, by_message[row.id]) for row in rows]


async def message_history(
    conn: AsyncConnection, message_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Attempts, audit events and status events of one message, oldest first."""
    recipient_ids = sa.select(recipients.c.id).where(recipients.c.message_id == message_id)
    return {
        "attempts": await dicts(
            conn,
            sa.select(attempts, recipients.c.unit_code)
            .join(recipients, recipients.c.id == attempts.c.recipient_id)
            .where(attempts.c.recipient_id.in_(recipient_ids))
            .order_by(attempts.c.id),
        ),
        "audit": await dicts(
            conn,
            sa.select(audit_events)
            .where(audit_events.c.message_id == message_id)
            .order_by(audit_events.c.id),
        ),
        "status_events": await dicts(
            conn,
            sa.select(status_events)
            .where(
                sa.or_(
                    status_events.c.message_id == message_id,
                    status_events.c.status_message_id == message_id,
                )
            )
            .order_by(status_events.c.id),
        ),
    }


# ------------------------------------------------------------------------------- hand-off


async def not_handed_off(
    conn: AsyncConnection, *, limit: int, after: tuple[dt.datetime, str] | None = None
) -> list[MessageRecord]:
    """Received messages not yet handed to the local system, oldest first; ``after``: only those
    after this (created_at, id), the last of the previous batch."""
    query = sa.select(messages).where(
        messages.c.direction == Direction.IN, messages.c.handed_off_at.is_(None)
    )
    if after is not None:
        query = query.where(sa.tuple_(messages.c.created_at, messages.c.id) > after)
    rows = (
        await conn.execute(query.order_by(messages.c.created_at, messages.c.id).limit(limit))
    ).all()
    return [_message(row) for row in rows]


async def mark_handed_off(conn: AsyncConnection, message_id: str, *, now: dt.datetime) -> None:
    await conn.execute(
        messages.update().where(messages.c.id == message_id).values(handed_off_at=now)
    )

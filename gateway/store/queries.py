"""Named queries: all SQL of docgw. Functions take an open connection (the caller owns the
transaction) and return records.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so N workers on N hosts share one queue
without taking the same row; on SQLite the single connection serialises writers and the clause is
not rendered. Every state change goes through :func:`transition` (or, for a worker's batch,
:func:`transition_many` and :func:`claim_due`), which checks the move against the lifecycle, guards
it with the expected current state (a concurrent move makes it fail), and writes the audit event in
the same transaction.

The delivery path batches: a claimed batch is moved, audited and given its attempt rows in a few
statements, not a few per recipient — round trips to the database are most of its cost.

The statements of every document's path are :class:`~gateway.store.direct.Statement` constants,
run on the driver connection (``store/direct.py`` says why); the rest go through SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.model import Classification
from gateway.domain.lifecycle import CLAIMABLE, IllegalTransition, TransportState, check_transition
from gateway.domain.text_search import fold, searchable
from gateway.store import audit_chain
from gateway.store import events as feed_events
from gateway.store.database import insert_or_ignore, upsert_insert
from gateway.store.direct import Statement
from gateway.store.records import (
    CertificateRecord,
    Claimed,
    MessageRecord,
    RecipientRecord,
    UnitRecord,
)
from gateway.store.tables import (
    attempts,
    audit_events,
    blobs,
    messages,
    recipients,
    status_events,
    tokens,
    unit_certificates,
    units,
    workers,
)

# ------------------------------------------------------------------------------------ audit


def audit_row(
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    message_id: str | None = None,
    recipient_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """One audit event's columns, for :func:`audit` or :func:`insert_audit_rows`."""
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "message_id": message_id,
        "recipient_id": recipient_id,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
    }


async def audit(
    conn: AsyncConnection,
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    message_id: str | None = None,
    recipient_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
) -> None:
    row = audit_row(
        now=now,
        actor=actor,
        action=action,
        message_id=message_id,
        recipient_id=recipient_id,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
    )
    await audit_chain.append(conn, [row])
    await feed_events.record_transport_outcomes(conn, [row])


# ------------------------------------------------------------------------------------ units


def _unit(row: Any) -> UnitRecord:
    return UnitRecord(
        code=row.code,
        name=row.name,
        code_qd20=row.code_qd20,
        parent_code=row.parent_code,
        channel=row.channel,
        secure_endpoint=row.secure_endpoint,
        allows_tuyet_mat=row.allows_tuyet_mat,
        is_local=row.is_local,
        active=row.active,
    )


async def upsert_unit(
    conn: AsyncConnection,
    unit: UnitRecord,
    *,
    now: dt.datetime,
    only: Iterable[str] | None = None,
) -> bool:
    """Insert or update; True when the unit is new. ``only``: the columns an update writes (None:
    all of them), so that an update leaves what it was not given — and what another transaction
    changed meanwhile — as it is. A new unit is inserted whole."""
    values = {
        "name": unit.name,
        "code_qd20": unit.code_qd20,
        "parent_code": unit.parent_code,
        "channel": unit.channel,
        "secure_endpoint": unit.secure_endpoint,
        "allows_tuyet_mat": unit.allows_tuyet_mat,
        "is_local": unit.is_local,
        "active": unit.active,
        "updated_at": now,
    }
    changes = values
    if only is not None:
        wanted = {*only, "updated_at"}
        if not wanted <= values.keys():
            raise ValueError(f"not unit columns: {sorted(wanted - values.keys())}")
        changes = {name: value for name, value in values.items() if name in wanted}
    result = await conn.execute(units.update().where(units.c.code == unit.code).values(**changes))
    if result.rowcount:
        return False
    await conn.execute(units.insert().values(code=unit.code, created_at=now, **values))
    return True


_UNIT = Statement(sa.select(units).where(units.c.code == sa.bindparam("code")))
_UNITS = sa.select(units).where(units.c.code.in_(sa.bindparam("codes", expanding=True)))
#: Up to this many units are read one statement each (a document's usual recipients, a status's
#: one): a direct statement costs a fraction of SQLAlchemy's one IN-list statement.
_UNITS_ONE_BY_ONE = 4


async def get_unit(conn: AsyncConnection, code: str) -> UnitRecord | None:
    row = (await _UNIT.execute(conn, {"code": code})).one_or_none()
    return _unit(row) if row is not None else None


async def get_units(conn: AsyncConnection, codes: Iterable[str]) -> dict[str, UnitRecord]:
    wanted = set(codes)
    if len(wanted) > _UNITS_ONE_BY_ONE:
        rows = (await conn.execute(_UNITS, {"codes": sorted(wanted)})).all()
        return {row.code: _unit(row) for row in rows}
    found = [await get_unit(conn, code) for code in sorted(wanted)]
    return {unit.code: unit for unit in found if unit is not None}


async def list_units(
    conn: AsyncConnection, *, text: str | None, after: str | None, limit: int
) -> list[UnitRecord]:
    query = sa.select(units).order_by(units.c.code).limit(limit)
    if text:
        like = f"%{text}%"
        query = query.where(sa.or_(units.c.code.ilike(like), units.c.name.ilike(like)))
    if after:
        query = query.where(units.c.code > after)
    return [_unit(row) for row in (await conn.execute(query)).all()]


async def add_certificate(
    conn: AsyncConnection, record: CertificateRecord, *, now: dt.datetime
) -> bool:
    exists = await conn.scalar(
        sa.select(unit_certificates.c.fingerprint_sha256).where(
            unit_certificates.c.fingerprint_sha256 == record.fingerprint_sha256
        )
    )
    if exists:
        return False
    await conn.execute(
        unit_certificates.insert().values(
            fingerprint_sha256=record.fingerprint_sha256,
            unit_code=record.unit_code,
            pem=record.pem,
            subject=record.subject,
            not_after=record.not_after,
            added_at=now,
        )
    )
    return True


async def certificate_owner(conn: AsyncConnection, fingerprint_sha256: str) -> str | None:
    return await conn.scalar(
        sa.select(unit_certificates.c.unit_code).where(
            unit_certificates.c.fingerprint_sha256 == fingerprint_sha256
        )
    )


#: Oldest first, in one total order (the fingerprint breaks a tie of ``added_at``): "the newest
#: certificate" must name the same one here and in the claim's :data:`_CURRENT_FINGERPRINT`, or a
#: copy sealed for one would be held at every claim for not being sealed for the other.
_CERTIFICATES = (
    sa.select(unit_certificates)
    .where(unit_certificates.c.unit_code == sa.bindparam("unit_code"))
    .order_by(unit_certificates.c.added_at, unit_certificates.c.fingerprint_sha256)
)


async def certificates(conn: AsyncConnection, unit_code: str) -> list[CertificateRecord]:
    rows = (await conn.execute(_CERTIFICATES, {"unit_code": unit_code})).all()
    return [_certificate(row) for row in rows]


def _certificate(row: Any) -> CertificateRecord:
    return CertificateRecord(
        fingerprint_sha256=row.fingerprint_sha256,
        unit_code=row.unit_code,
        pem=row.pem,
        subject=row.subject,
        not_after=_aware(row.not_after),
        revoked=row.revoked_at is not None,
    )


_SENDER_CERTIFICATES = Statement(
    sa.select(units.c.active, unit_certificates)
    .select_from(units.outerjoin(unit_certificates, unit_certificates.c.unit_code == units.c.code))
    .where(units.c.code == sa.bindparam("code"))
    .order_by(unit_certificates.c.added_at)
)


@dataclass(frozen=True, kw_only=True)
class SenderCertificates:
    """A sender's registry entry as intake needs it: whether it is a known, active unit, and
    its registered certificates (revoked ones included, marked)."""

    active: bool
    certificates: tuple[CertificateRecord, ...]


async def sender_certificates(conn: AsyncConnection, code: str) -> SenderCertificates | None:
    """None when the unit is not in the registry. One statement: this runs for every package."""
    rows = (await _SENDER_CERTIFICATES.execute(conn, {"code": code})).all()
    if not rows:
        return None
    return SenderCertificates(
        active=bool(rows[0].active),
        certificates=tuple(_certificate(row) for row in rows if row.fingerprint_sha256),
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


async def message_id_for_dedup_key(conn: AsyncConnection, direction: str, key: str) -> str | None:
    return await conn.scalar(_BY_DEDUP_KEY, {"direction": direction, "key": key})


_DOCUMENTS_WITH_ID = Statement(
    sa.select(messages.c.classification).where(
        messages.c.kind == "document", messages.c.document_id == sa.bindparam("document_id")
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
        messages.c.direction == "out",
        messages.c.kind == "document",
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


def _searchable(values: dict[str, Any]) -> dict[str, Any]:
    """The row with its folded search text (text_search.searchable), whoever inserts it."""
    text = searchable(values.get("subject"), values.get("document_id"), values.get("code"))
    return {**values, "search_text": text}


async def insert_message(conn: AsyncConnection, **values: Any) -> None:
    await _INSERT_MESSAGE.execute(conn, _searchable(values))


async def insert_message_unless_received(conn: AsyncConnection, **values: Any) -> bool:
    """Insert a received message; False (nothing written) when its (direction, dedup_key) is
    already stored. One statement instead of a look-up first, and no constraint error."""
    statement = insert_or_ignore(conn, messages, messages.c.direction, messages.c.dedup_key)
    return bool((await statement.execute(conn, _searchable(values))).rowcount)


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


async def insert_audit_rows(conn: AsyncConnection, events: Sequence[Mapping[str, Any]]) -> None:
    # executemany: one statement prepared, the rows sent together, chained in this order.
    if events:
        await audit_chain.append(conn, events)
        await feed_events.record_transport_outcomes(conn, events)


def _recipient(row: Any) -> RecipientRecord:
    return RecipientRecord(
        id=row.id,
        message_id=row.message_id,
        unit_code=row.unit_code,
        channel=row.channel,
        state=TransportState(row.state),
        attempt_count=row.attempt_count,
        next_attempt_at=_aware(row.next_attempt_at),
        last_error=row.last_error,
        remote_id=row.remote_id,
        business_status=row.business_status,
        sent_at=_aware(row.sent_at),
        arrival_due_at=_aware(row.arrival_due_at),
        package_sha256=row.package_sha256,
    )


def _aware(value: dt.datetime | None) -> Any:
    """SQLite returns naive datetimes: docgw stores UTC, so make them aware again."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _message(row: Any, recipient_rows: Sequence[RecipientRecord] = ()) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        direction=row.direction,
        kind=row.kind,
        document_id=row.document_id,
        sender=row.sender,
        classification=row.classification,
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
        send_due_at=_aware(row.send_due_at),
        created_at=_aware(row.created_at),
        recipients=tuple(recipient_rows),
    )


async def get_message(conn: AsyncConnection, message_id: str) -> MessageRecord | None:
    row = (await conn.execute(sa.select(messages).where(messages.c.id == message_id))).one_or_none()
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
    direction: str | None = None
    state: str | None = None
    recipient: str | None = None
    sender: str | None = None
    classification: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    text: str | None = None
    #: Only messages with a deadline (send, or arrival notice) passed before this moment.
    breached_before: dt.datetime | None = None
    #: A member unit sees only what it sent or received.
    visible_to_unit: str | None = None
    #: "document" | "status" (the console's filter).
    kind: str | None = None
    #: Messages with a recipient routed through this channel (the console's filter).
    channel: str | None = None


def _has_recipient(*conditions: Any) -> Any:
    return sa.exists().where(recipients.c.message_id == messages.c.id, *conditions)


def _conditions(f: MessageFilter) -> list[Any]:
    equal = {
        messages.c.direction: f.direction,
        messages.c.sender: f.sender,
        messages.c.classification: f.classification,
        messages.c.kind: f.kind,
    }
    conditions: list[Any] = [column == value for column, value in equal.items() if value]
    if f.created_from:
        conditions.append(messages.c.created_at >= f.created_from)
    if f.created_to:
        conditions.append(messages.c.created_at < f.created_to)
    if f.text:
        # Accents and case do not matter (text_search.fold, applied to both sides); the words
        # are LIKE-escaped so that % and _ are searched for, not wildcards.
        escaped = fold(f.text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(messages.c.search_text.like(f"%{escaped}%", escape="\\"))
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
        conditions.append(
            sa.or_(
                messages.c.sender == f.visible_to_unit,
                _has_recipient(recipients.c.unit_code == f.visible_to_unit),
            )
        )
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


# ----------------------------------------------------------------------------------- claims


#: The fingerprint of a recipient unit's current certificate: the newest registered, unrevoked,
#: unexpired one (as :func:`gateway.usecases.packages.current_certificate` picks it).
_CURRENT_FINGERPRINT = (
    sa.select(unit_certificates.c.fingerprint_sha256)
    .where(
        unit_certificates.c.unit_code == recipients.c.unit_code,
        unit_certificates.c.revoked_at.is_(None),
        unit_certificates.c.not_after > sa.bindparam("now"),
    )
    .order_by(unit_certificates.c.added_at.desc(), unit_certificates.c.fingerprint_sha256.desc())
    .limit(1)
    .correlate(recipients)
)

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


async def claim_due(
    conn: AsyncConnection,
    *,
    now: dt.datetime,
    limit: int,
    lease_until: dt.datetime,
    worker: str,
) -> list[Claimed]:
    """Claim up to ``limit`` due recipients: they become ``sending`` under this worker's lease.
    Three statements whatever the batch: the due rows with what their delivery needs, the one
    guarded UPDATE, the audit events."""
    rows = (await _DUE.execute(conn, {"now": now, "limit": limit})).all()
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
            kind=row.kind,
            document_id=row.document_id,
            sender=row.sender,
            classification=row.classification,
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
    outcome: str
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
                "outcome": end.outcome,
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


# ---------------------------------------------------------------------------- status events


@dataclass(frozen=True, kw_only=True)
class StatusTarget:
    """The outgoing document a received status is about, and the reporting unit's recipient row
    on it (None when that unit is not one of its recipients)."""

    message_id: str
    recipient_id: int | None
    business_status: str | None


_STATUS_TARGET = Statement(
    sa.select(messages.c.id, recipients.c.id, recipients.c.business_status)
    .select_from(
        messages.outerjoin(
            recipients,
            sa.and_(
                recipients.c.message_id == messages.c.id,
                recipients.c.unit_code == sa.bindparam("reporter"),
            ),
        )
    )
    .where(
        messages.c.direction == "out",
        messages.c.kind == "document",
        messages.c.document_id == sa.bindparam("document_id"),
    )
    .order_by(messages.c.created_at.desc())
    .limit(1)
)


async def find_document_recipient(
    conn: AsyncConnection, *, document_id: str, reporter: str
) -> StatusTarget | None:
    """The latest outgoing document with this DocumentId and the reporter's recipient row, in one
    statement (a status arrives for every document: this is on the hot path)."""
    params = {"document_id": document_id, "reporter": reporter}
    row = (await _STATUS_TARGET.execute(conn, params)).first()
    if row is None:
        return None
    return StatusTarget(message_id=row[0], recipient_id=row[1], business_status=row[2])


async def find_received_document(
    conn: AsyncConnection, *, document_id: str, sender: str | None = None
) -> str | None:
    query = sa.select(messages.c.id).where(
        messages.c.direction == "in",
        messages.c.kind == "document",
        messages.c.document_id == document_id,
    )
    if sender:
        query = query.where(messages.c.sender == sender)
    return await conn.scalar(query.limit(1))


_INSERT_STATUS_EVENT = Statement(status_events.insert())


async def insert_status_event(conn: AsyncConnection, **values: Any) -> None:
    await _INSERT_STATUS_EVENT.execute(conn, values)


_SET_BUSINESS_STATUS = Statement(
    recipients.update()
    .where(recipients.c.id == sa.bindparam("recipient_id"))
    .values(
        business_status=sa.bindparam("code"),
        business_updated_at=sa.bindparam("at"),
        updated_at=sa.bindparam("at"),
    )
)


async def set_business_status(
    conn: AsyncConnection, recipient_id: int, code: str, *, now: dt.datetime
) -> None:
    params = {"recipient_id": recipient_id, "code": code, "at": now}
    await _SET_BUSINESS_STATUS.execute(conn, params)


async def _dicts(conn: AsyncConnection, query: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in (await conn.execute(query)).mappings().all()]


async def message_history(
    conn: AsyncConnection, message_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Attempts, audit events and status events of one message, oldest first."""
    recipient_ids = sa.select(recipients.c.id).where(recipients.c.message_id == message_id)
    return {
        "attempts": await _dicts(
            conn,
            sa.select(attempts, recipients.c.unit_code)
            .join(recipients, recipients.c.id == attempts.c.recipient_id)
            .where(attempts.c.recipient_id.in_(recipient_ids))
            .order_by(attempts.c.id),
        ),
        "audit": await _dicts(
            conn,
            sa.select(audit_events)
            .where(audit_events.c.message_id == message_id)
            .order_by(audit_events.c.id),
        ),
        "status_events": await _dicts(
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


async def unmatched_status_events(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    return await _dicts(
        conn,
        sa.select(status_events)
        .where(status_events.c.message_id.is_(None))
        .order_by(status_events.c.id.desc())
        .limit(limit),
    )


# ---------------------------------------------------------------------------------- tokens


async def insert_token(
    conn: AsyncConnection,
    *,
    name: str,
    role: str,
    unit_code: str | None,
    token_sha256: str,
    now: dt.datetime,
) -> None:
    await conn.execute(
        tokens.insert().values(
            name=name, role=role, unit_code=unit_code, token_sha256=token_sha256, created_at=now
        )
    )


_LIVE_TOKEN = Statement(
    sa.select(tokens).where(
        tokens.c.token_sha256 == sa.bindparam("sha256"), tokens.c.revoked_at.is_(None)
    )
)


async def token_by_hash(conn: AsyncConnection, token_sha256: str) -> Any:
    return (await _LIVE_TOKEN.execute(conn, {"sha256": token_sha256})).one_or_none()


async def revoke_token(conn: AsyncConnection, name: str, *, now: dt.datetime) -> bool:
    result = await conn.execute(
        tokens.update()
        .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


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
    return _aware(value)  # type: ignore[no-any-return]


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


async def status_event_counts(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    rows = (
        await conn.execute(
            sa.select(
                status_events.c.direction, status_events.c.status_code, sa.func.count()
            ).group_by(status_events.c.direction, status_events.c.status_code)
        )
    ).all()
    return [(row[0], row[1], int(row[2])) for row in rows]


# -------------------------------------------------------------------------------- directory


async def upsert_directory(
    conn: AsyncConnection,
    entries: Sequence[UnitRecord],
    *,
    channel: str,
    now: dt.datetime,
    chunk: int = 2000,
) -> None:
    """Bulk insert-or-update of a channel's directory (≈120,000 agencies nationally). Names,
    parents and QĐ 20 codes follow the directory; a unit's channel, secure endpoint and local
    flag are the registry's own and are kept."""
    insert = upsert_insert(conn)
    statement: Any = insert(units)
    statement = statement.on_conflict_do_update(
        index_elements=[units.c.code],
        set_={
            "name": statement.excluded.name,
            "parent_code": statement.excluded.parent_code,
            "code_qd20": statement.excluded.code_qd20,
            "active": True,
            "updated_at": now,
        },
    )
    for start in range(0, len(entries), chunk):
        rows = [
            {
                "code": e.code,
                "name": e.name,
                "parent_code": e.parent_code,
                "code_qd20": e.code_qd20,
                "channel": channel,
                "is_local": False,
                "active": True,
                "allows_tuyet_mat": False,
                "created_at": now,
                "updated_at": now,
            }
            for e in entries[start : start + chunk]
        ]
        await conn.execute(statement, rows)  # executemany: one compiled statement, batched


async def deactivate_missing(
    conn: AsyncConnection, *, channel: str, synced_before: dt.datetime
) -> int:
    """Units of this channel's directory that the last sync did not list: closed or merged."""
    result = await conn.execute(
        units.update()
        .where(
            units.c.channel == channel,
            units.c.is_local.is_(False),
            units.c.active.is_(True),
            units.c.updated_at < synced_before,
        )
        .values(active=False)
    )
    return int(result.rowcount or 0)


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


# ------------------------------------------------------------------------------- hand-off


async def not_handed_off(
    conn: AsyncConnection, *, limit: int, after: tuple[dt.datetime, str] | None = None
) -> list[MessageRecord]:
    """Received messages not yet handed to the local system, oldest first; ``after``: only those
    after this (created_at, id), the last of the previous batch."""
    query = sa.select(messages).where(
        messages.c.direction == "in", messages.c.handed_off_at.is_(None)
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

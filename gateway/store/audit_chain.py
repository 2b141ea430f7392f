"""The audit trail as a hash chain: every audit row holds its place in the chain (``chain_seq``,
1, 2, 3 …) and ``row_hash = SHA-256(previous row's hash ‖ canonical row)``, the first row's
previous hash being 64 zeros. One row, ``audit_chain_head``, holds the last place and hash.

Appending serialises on that head row: the first statement moves it forward by the number of rows
appended (``UPDATE … RETURNING``), which on PostgreSQL locks it until the transaction ends, so
concurrent writers chain one after the other in commit order; on SQLite the one writer is
serialised anyway. A transaction that rolls back takes its places with it: no gap is left.

What it proves: a row changed, removed or inserted with plain SQL breaks the chain where it
happened, and :func:`verify` names that row. What it does not: someone who can write the database
can rewrite every hash after a row too; the head recorded elsewhere (each backup's manifest holds
it) is what catches that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import commit_log
from gateway.store.direct import Statement
from gateway.store.tables import audit_chain_head, audit_events

GENESIS = "0" * 64
HEAD_ID = 1
#: The columns a row's hash covers, in this order (``id`` is not: it is the database's number).
CHAINED = (
    "at",
    "actor",
    "action",
    "message_id",
    "recipient_id",
    "from_state",
    "to_state",
    "reason",
)

_ADVANCE = Statement(
    audit_chain_head.update()
    .where(audit_chain_head.c.id == HEAD_ID)
    .values(seq=audit_chain_head.c.seq + sa.bindparam("count"))
    .returning(audit_chain_head.c.seq, audit_chain_head.c.hash)
)
_SET_HASH = Statement(
    audit_chain_head.update()
    .where(audit_chain_head.c.id == HEAD_ID)
    .values(hash=sa.bindparam("last_hash"))
)
_INSERT = Statement(audit_events.insert())


def _canonical_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("docgw stores only timezone-aware datetimes")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def row_hash(previous: str, seq: int, row: Mapping[str, Any]) -> str:
    """The hash of one audit row at place ``seq`` after a row whose hash is ``previous``."""
    values = [seq, *(row[name] for name in CHAINED)]
    values[1] = _canonical_time(row["at"])
    canonical = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(bytes.fromhex(previous) + canonical.encode("utf-8")).hexdigest()


async def append(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert audit rows (the columns of ``audit_queries.audit_row``) at the end of the chain, in
    the caller's transaction."""
    if not rows:
        return
    head = (await _ADVANCE.execute(conn, {"count": len(rows)})).one_or_none()
    if head is None:
        raise RuntimeError("audit_chain_head has no row: run the migrations (docgw migrate)")
    seq, previous = head.seq - len(rows), head.hash
    chained: list[Mapping[str, Any]] = []
    for row in rows:
        seq += 1
        previous = row_hash(previous, seq, row)
        chained.append({**row, "chain_seq": seq, "row_hash": previous})
    await _INSERT.execute(conn, chained if len(chained) > 1 else chained[0])  # one: no executemany
    commit_log.after_commit(conn, rows)
    await _SET_HASH.execute(conn, {"last_hash": previous})


@dataclass(frozen=True, kw_only=True)
class Break:
    """The first place the chain does not hold. ``kind``: changed, removed or inserted."""

    kind: str
    row_id: int | None
    seq: int | None
    detail: str


@dataclass(frozen=True, kw_only=True)
class ChainReport:
    rows: int
    head_seq: int
    head_hash: str
    broken: Break | None


class _Walk:
    """Rows in chain order, checked one by one; stops at the first break."""

    def __init__(self) -> None:
        self.expected, self.previous, self.previous_id = 1, GENESIS, None
        self.broken: Break | None = None

    def step(self, row: Any) -> None:
        if row.chain_seq is None or row.chain_seq < self.expected:
            self.broken = Break(
                kind="inserted",
                row_id=row.id,
                seq=row.chain_seq,
                detail="a row outside the chain"
                if row.chain_seq is None
                else f"a second row at place {row.chain_seq}",
            )
        elif row.chain_seq > self.expected:
            self.broken = Break(
                kind="removed",
                row_id=None,
                seq=self.expected,
                detail=f"places {self.expected}..{row.chain_seq - 1} are missing "
                f"(between row id {self.previous_id} and row id {row.id})",
            )
        elif row_hash(self.previous, row.chain_seq, row._mapping) != row.row_hash:
            self.broken = Break(
                kind="changed",
                row_id=row.id,
                seq=row.chain_seq,
                detail="its content no longer matches its hash",
            )
        else:
            self.expected, self.previous, self.previous_id = (
                row.chain_seq + 1,
                row.row_hash,
                row.id,
            )


async def verify(conn: AsyncConnection, *, batch: int = 5000) -> ChainReport:
    """Walk the whole chain (rows outside it first: ``chain_seq`` NULL sorts as inserted) and
    name the first row that breaks it, then compare its end with the head row."""
    head = (await conn.execute(sa.select(audit_chain_head))).one_or_none()
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    walk, count = _Walk(), 0
    outside = (
        await conn.execute(
            sa.select(audit_events).where(audit_events.c.chain_seq.is_(None)).limit(1)
        )
    ).first()
    if outside is not None:
        walk.step(outside)
    position = (0, 0)  # keyset paging on (chain_seq, id): a duplicated place is read once
    while walk.broken is None:
        seq, row_id = position
        page = (
            await conn.execute(
                sa.select(audit_events)
                .where(
                    sa.or_(
                        audit_events.c.chain_seq > seq,
                        sa.and_(audit_events.c.chain_seq == seq, audit_events.c.id > row_id),
                    )
                )
                .order_by(audit_events.c.chain_seq, audit_events.c.id)
                .limit(batch)
            )
        ).all()
        for row in page:
            walk.step(row)
            count += 1
            if walk.broken is not None:
                break
        if len(page) < batch:
            break
        position = (page[-1].chain_seq, page[-1].id)
    if walk.broken is None and walk.expected - 1 != head_seq:
        walk.broken = Break(
            kind="removed",
            row_id=None,
            seq=walk.expected,
            detail=f"the chain ends at place {walk.expected - 1}, its head says {head_seq}",
        )
    elif walk.broken is None and walk.previous != head_hash:
        walk.broken = Break(
            kind="changed",
            row_id=walk.previous_id,
            seq=walk.expected - 1,
            detail="the last row's hash is not the one the head holds",
        )
    return ChainReport(rows=count, head_seq=head_seq, head_hash=head_hash, broken=walk.broken)

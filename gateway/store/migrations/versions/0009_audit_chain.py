"""The audit trail becomes a hash chain (store/audit_chain.py): each row's place and hash, and
the chain's head. The rows already there are chained in ``id`` order.

Revision ID: 0009
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.audit_chain import CHAINED, GENESIS, HEAD_ID, row_hash
from gateway.store.tables import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("row_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_events_chain_seq"), ["chain_seq"], unique=False)
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    seq, previous = _chain_existing_rows()
    op.bulk_insert(head, [{"id": HEAD_ID, "seq": seq, "hash": previous}])


def _chain_existing_rows() -> tuple[int, str]:
    connection = op.get_bind()
    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer()),
        sa.column("at", UtcDateTime()),
        *(sa.column(name) for name in CHAINED if name != "at"),
        sa.column("chain_seq", sa.BigInteger()),
        sa.column("row_hash", sa.String()),
    )
    seq, previous, after = 0, GENESIS, -1
    while True:
        page = connection.execute(
            sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(_BATCH)
        ).all()
        updates = []
        for row in page:
            seq += 1
            previous = row_hash(previous, seq, dict(row._mapping))
            updates.append({"row_id": row.id, "chain_seq": seq, "row_hash": previous})
        if updates:
            connection.execute(
                events.update()
                .where(events.c.id == sa.bindparam("row_id"))
                .values(chain_seq=sa.bindparam("chain_seq"), row_hash=sa.bindparam("row_hash")),
                updates,
            )
        if len(page) < _BATCH:
            return seq, previous
        after = page[-1].id


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_chain_seq"))
        batch_op.drop_column("row_hash")
        batch_op.drop_column("chain_seq")

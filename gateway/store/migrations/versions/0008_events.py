"""Events for the local system (the feed), what its units have taken, webhook endpoints.

Revision ID: 0008
Revises: 0005 (re-chained after the migrations of the other branches at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("document_id", sa.String(length=300), nullable=True),
        sa.Column("unit_code", sa.String(length=35), nullable=True),
        sa.Column("peer", sa.String(length=35), nullable=True),
        sa.Column("status_code", sa.String(length=2), nullable=True),
        sa.Column("status_message_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
        sa.UniqueConstraint("position", name=op.f("uq_events_position")),
    )
    op.create_index(op.f("ix_events_message_id"), "events", ["message_id"])
    op.create_index(op.f("ix_events_unit_code"), "events", ["unit_code"])
    op.create_table(
        "takes",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("unit_code", sa.String(length=35), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_takes_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("message_id", "unit_code", name=op.f("pk_takes")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("unit_code", sa.String(length=35), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )


def downgrade() -> None:
    op.drop_table("webhook_endpoints")
    op.drop_table("takes")
    op.drop_index(op.f("ix_events_unit_code"), table_name="events")
    op.drop_index(op.f("ix_events_message_id"), table_name="events")
    op.drop_table("events")

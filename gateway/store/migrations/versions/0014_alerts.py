"""Alerts and the per-channel circuit breakers.

Revision ID: 0014_alerts
Revises: 0012_document_signatures
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_alerts"
down_revision = "0012_document_signatures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("text_vi", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("open_key", sa.String(length=350), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.String(length=100), nullable=True),
        sa.Column("mail_told", sa.String(length=10), nullable=True),
        sa.Column("webhook_told", sa.String(length=10), nullable=True),
        sa.Column("notify_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alerts_open_key")),
        sa.CheckConstraint("severity IN ('warning', 'critical')", name=op.f("ck_alerts_severity")),
    )
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])
    op.create_table(
        "channel_breakers",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("unit_code", sa.String(length=35), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "unit_code", name=op.f("pk_channel_breakers")),
        sa.CheckConstraint(
            "state IN ('closed', 'open', 'recovering', 'paused')",
            name=op.f("ck_channel_breakers_state"),
        ),
    )


def downgrade() -> None:
    op.drop_table("channel_breakers")
    op.drop_index("ix_alerts_raised_at", table_name="alerts")
    op.drop_table("alerts")

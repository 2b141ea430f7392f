"""Per-recipient states as the channel reports them (the axis' getSentEdocList).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recipients") as batch:
        batch.add_column(sa.Column("channel_send_status", sa.String(40), nullable=True))
        batch.add_column(sa.Column("channel_receive_status", sa.String(40), nullable=True))
        batch.add_column(sa.Column("channel_checked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipients") as batch:
        batch.drop_column("channel_checked_at")
        batch.drop_column("channel_receive_status")
        batch.drop_column("channel_send_status")

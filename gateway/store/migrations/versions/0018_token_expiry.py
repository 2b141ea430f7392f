"""API tokens may expire (``docgw tokens create --expires-days N``).

Revision ID: 0018_token_expiry
Revises: 0014_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_token_expiry"
down_revision = "0014_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("expires_at")

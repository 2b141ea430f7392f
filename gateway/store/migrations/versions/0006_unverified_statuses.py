"""Status events say whether their sender was verified: a status from a unit docgw holds no
certificate for is kept (and shown as unverified), never dropped.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "status_events",
        sa.Column("verified", sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("status_events") as batch:
        batch.drop_column("verified")

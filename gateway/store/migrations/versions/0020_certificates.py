"""Certificates over their life: the CRLs docgw holds, and why a certificate was revoked (by an
operator, or by a CRL).

Revision ID: 0020_certificates
Revises: 0015_users
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_certificates"
down_revision = "0015_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unit_certificates") as batch:
        batch.add_column(sa.Column("revoked_reason", sa.String(500), nullable=True))
    op.create_table(
        "crls",
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_crls")),
    )


def downgrade() -> None:
    op.drop_table("crls")
    with op.batch_alter_table("unit_certificates") as batch:
        batch.drop_column("revoked_reason")

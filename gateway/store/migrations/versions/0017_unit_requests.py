"""Unit requests (registration with approval) and unit versions (every registry change: who,
when, why).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=35), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("certificates", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_for", sa.String(length=35), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("axis_outcome", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'refused')",
            name=op.f("ck_unit_requests_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_requests")),
    )
    op.create_index("ix_unit_requests_code", "unit_requests", ["code"])
    op.create_table(
        "unit_versions",
        sa.Column("code", sa.String(length=35), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("code", "version", name=op.f("pk_unit_versions")),
    )


def downgrade() -> None:
    op.drop_table("unit_versions")
    op.drop_index("ix_unit_requests_code", table_name="unit_requests")
    op.drop_table("unit_requests")

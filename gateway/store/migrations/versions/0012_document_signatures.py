"""The documents' own signatures: one row per PDF attachment of a document message.

Revision ID: 0012_document_signatures
Revises: 0013_job_runs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_document_signatures"
down_revision = "0013_job_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_signatures",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("attachment", sa.String(length=500), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("signatures", sa.JSON(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "verdict IN ('valid', 'unsigned', 'failing')",
            name=op.f("ck_document_signatures_verdict"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_document_signatures_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("message_id", "position", name=op.f("pk_document_signatures")),
    )


def downgrade() -> None:
    op.drop_table("document_signatures")

"""Import outcomes by file hash (``docgw import``) and archive items (ASiC-E, legal hold).

Revision ID: 0010
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_status_events_document_id", "status_events", ["document_id"])
    op.create_table(
        "import_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_import_files")),
    )
    op.create_table(
        "archive_items",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("container_sha256", sa.String(length=64), nullable=True),
        sa.Column("status_count", sa.Integer(), nullable=False),
        sa.Column("timestamped", sa.Boolean(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_archive_items_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["container_sha256"],
            ["blobs.sha256"],
            name=op.f("fk_archive_items_container_sha256_blobs"),
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_archive_items")),
    )


def downgrade() -> None:
    op.drop_table("archive_items")
    op.drop_table("import_files")
    op.drop_index("ix_status_events_document_id", table_name="status_events")

"""Status events say whether their sender was verified: a status from a unit docgw holds no
certificate for is kept (and shown as unverified), never dropped. Outgoing documents record their
BussinessDocType, and a new one (type 0) may not reuse a sent one's DocumentId (documents stored
before keep NULL: the index leaves them out); an index finds a sender's số/ký hiệu.

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


NEW_DOCUMENTS = "direction = 'out' AND business_doc_type = 0"


def upgrade() -> None:
    op.add_column(
        "status_events",
        sa.Column("verified", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.add_column("messages", sa.Column("business_doc_type", sa.SmallInteger(), nullable=True))
    op.create_index("ix_messages_sender_code", "messages", ["sender", "code"])
    op.create_index(
        "uq_messages_new_document_id",
        "messages",
        ["document_id"],
        unique=True,
        sqlite_where=sa.text(NEW_DOCUMENTS),
        postgresql_where=sa.text(NEW_DOCUMENTS),
    )


def downgrade() -> None:
    op.drop_index("uq_messages_new_document_id", table_name="messages")
    op.drop_index("ix_messages_sender_code", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("business_doc_type")
    with op.batch_alter_table("status_events") as batch:
        batch.drop_column("verified")

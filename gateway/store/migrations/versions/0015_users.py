"""The console's people and sessions; messages searchable without accents.

Revision ID: 0015_users
Revises: 0018_token_expiry
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from envelopes.model import Classification
from gateway.domain.text_search import searchable

revision = "0015_users"
down_revision = "0018_token_expiry"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("messages", sa.Column("search_text", sa.Text(), nullable=True))
    _backfill_search_text()
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("units", sa.JSON(), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=100), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("unit_code", sa.String(length=35), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_name"], ["users.name"], name=op.f("fk_console_sessions_user_name_users")
        ),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_console_sessions")),
    )
    op.create_index(
        op.f("ix_console_sessions_user_name"), "console_sessions", ["user_name"], unique=False
    )


def _backfill_search_text() -> None:
    """Messages stored before this revision get their folded text, a batch at a time; a
    classified message's subject (none is stored: store/visibility.py) is never folded into it."""
    bind = op.get_bind()
    messages = sa.table(
        "messages",
        sa.column("id", sa.String),
        sa.column("subject", sa.Text),
        sa.column("document_id", sa.String),
        sa.column("code", sa.String),
        sa.column("classification", sa.String),
        sa.column("search_text", sa.Text),
    )
    last = ""
    while True:
        rows = bind.execute(
            sa.select(
                messages.c.id,
                messages.c.subject,
                messages.c.document_id,
                messages.c.code,
                messages.c.classification,
            )
            .where(messages.c.id > last)
            .order_by(messages.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            classified = Classification(row.classification).is_classified
            subject = None if classified else row.subject
            bind.execute(
                messages.update()
                .where(messages.c.id == row.id)
                .values(search_text=searchable(subject, row.document_id, row.code))
            )
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_user_name"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("users")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("search_text")

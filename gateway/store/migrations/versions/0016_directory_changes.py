"""Directory changes: each unit's folded name (accent- and case-insensitive search), the code a
merged unit was replaced by, an index for the unit tree, and a record of every directory sync.

Revision ID: 0016
Revises: 0011_enum_checks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.domain.text_search import fold

revision = "0016"
down_revision = "0011_enum_checks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("name_folded", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("replaced_by", sa.String(length=35), nullable=True))
        batch.create_index("ix_units_parent_code", ["parent_code"])
    units = sa.table(
        "units",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("name_folded", sa.String),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(units.c.code, units.c.name)).all()
    if rows:
        bind.execute(
            units.update()
            .where(units.c.code == sa.bindparam("b_code"))
            .values(name_folded=sa.bindparam("b_folded")),
            [{"b_code": code, "b_folded": fold(name)} for code, name in rows],
        )
    op.create_table(
        "directory_syncs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=12), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("listed", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_syncs")),
    )
    op.create_index("ix_directory_syncs_channel", "directory_syncs", ["channel", "id"])


def downgrade() -> None:
    op.drop_index("ix_directory_syncs_channel", table_name="directory_syncs")
    op.drop_table("directory_syncs")
    with op.batch_alter_table("units") as batch:
        batch.drop_index("ix_units_parent_code")
        batch.drop_column("replaced_by")
        batch.drop_column("name_folded")

"""CHECK constraints on the enumerated columns: directions, kinds, classifications and transport
states (the database refuses a value the code does not know). SQLite copies each table to add
them (batch mode); ``migrate()`` turns its foreign keys off meanwhile and checks them after.

Revision ID: 0011_enum_checks
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011_enum_checks"
down_revision = "0010"
branch_labels = None
depends_on = None

# The values as they were at this revision (not imported: a migration must not change when the
# code's enums do later).
_DIRECTIONS = ("out", "in")
_STATES = (
    "queued",
    "sending",
    "sent",
    "retry_scheduled",
    "unconfirmed",
    "failed",
    "held",
    "cancelled",
)
CHECKS: dict[str, dict[str, tuple[str, ...]]] = {
    "messages": {
        "direction": _DIRECTIONS,
        "kind": ("document", "status"),
        "classification": ("thuong", "mat", "toi_mat", "tuyet_mat"),
    },
    "recipients": {"state": _STATES},
    "status_events": {"direction": _DIRECTIONS},
    "audit_events": {"from_state": _STATES, "to_state": _STATES},
}


def upgrade() -> None:
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for column, values in columns.items():
                allowed = ", ".join(f"'{value}'" for value in values)
                batch.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), f"{column} IN ({allowed})"
                )


def downgrade() -> None:
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")

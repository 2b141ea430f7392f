"""CHECK constraints on the enumerated columns 0011 left out: token and account roles, the
console's languages, delivery attempts' outcomes, ``docgw import``'s file outcomes and directory
syncs' modes (the database refuses a value the code does not know). SQLite copies each table to
add them (batch mode), as 0011 does.

A stored value outside its list (none that docgw wrote) stops the upgrade before anything
changes, naming the table, the column and the values, rather than failing on the first
constraint with the database's own message.

Revision ID: 0019_more_checks
Revises: 0020_certificates
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_more_checks"
down_revision = "0020_certificates"
branch_labels = None
depends_on = None

# The values as they were at this revision (not imported: a migration must not change when the
# code's enums do later; tests/integration/test_enum_checks.py compares them with the enums).
_ROLES = ("admin", "operator", "member")
CHECKS: dict[str, dict[str, tuple[str, ...]]] = {
    "tokens": {"role": _ROLES},
    "users": {"role": _ROLES, "language": ("vi", "en")},
    "attempts": {"outcome": ("sent", "transport_error", "outcome_unknown", "business_error")},
    "import_files": {"outcome": ("imported", "skipped", "refused")},
    "directory_syncs": {"mode": ("full", "incremental")},
}


class StoredValueUnknown(RuntimeError):
    """Rows hold a value the constraint would refuse."""


def _refuse_unknown_values() -> None:
    connection = op.get_bind()
    found = []
    for table, columns in CHECKS.items():
        for column, values in columns.items():
            column_: sa.ColumnClause[str] = sa.column(column)
            query = (
                sa.select(column_)
                .select_from(sa.table(table, column_))
                .where(column_.is_not(None), column_.not_in(values))
                .distinct()
                .limit(10)
            )
            unknown = connection.execute(query).scalars().all()
            if unknown:
                found.append(f"{table}.{column}: {', '.join(map(repr, unknown))}")
    if found:
        raise StoredValueUnknown(
            "migration 0019_more_checks: stored values outside the known ones (correct or delete "
            "those rows, then upgrade again): " + "; ".join(found)
        )


def upgrade() -> None:
    _refuse_unknown_values()
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

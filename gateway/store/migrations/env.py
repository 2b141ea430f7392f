"""Alembic environment: docgw passes an open connection in ``config.attributes``."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from gateway.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("docgw runs migrations through gateway.store.database.migrate()")
#: migrate() collects the revisions it applied here (None: nobody asked).
applied = context.config.attributes.get("applied")


def _applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    if applied is not None and step.is_upgrade:
        applied.append(step.up_revision_id)


context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    on_version_apply=_applied,
)
with context.begin_transaction():
    context.run_migrations()

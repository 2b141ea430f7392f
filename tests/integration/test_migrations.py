"""The Alembic migrations produce exactly the tables the code declares, on SQLite and PostgreSQL,
and running them again changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.store.database import create_engine, migrate
from gateway.store.tables import metadata


def _differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def test_migrations_match_the_models(database_url: str) -> None:
    async def scenario() -> list[Any]:
        engine = create_engine(database_url)
        try:
            await migrate(engine)
            await migrate(engine)  # idempotent
            async with engine.connect() as conn:
                tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
                assert set(metadata.tables) <= tables
                return await conn.run_sync(_differences)
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == []

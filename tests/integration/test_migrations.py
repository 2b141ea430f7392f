"""The Alembic migrations produce exactly the tables the code declares, on SQLite and PostgreSQL,
and running them again changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
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


def test_package_bytes_are_stored_without_compression_on_postgresql(database_url: str) -> None:
    """Migration 0004: TOAST compression of (already compressed) package bytes only costs CPU."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL storage setting; SQLite does not compress")

    async def scenario() -> set[tuple[str, str]]:
        engine = create_engine(database_url)
        try:
            await migrate(engine)
            async with engine.connect() as conn:
                rows = await conn.execute(
                    sa.text(
                        "SELECT c.relname, a.attstorage::text FROM pg_attribute a "
                        "JOIN pg_class c ON c.oid = a.attrelid "
                        "WHERE c.relname IN ('blobs', 'blob_chunks') AND a.attname = 'data'"
                    )
                )
                return {(row[0], row[1]) for row in rows}
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == {("blobs", "e"), ("blob_chunks", "e")}


def test_messages_stored_before_0015_are_found_without_accents(database_url: str) -> None:
    """Migration 0015 backfills the folded search text of the messages already stored; a
    classified message's subject is not folded into it (store/visibility.py)."""
    from alembic import command

    from gateway.store.database import alembic_config
    from gateway.store.message_queries import MessageFilter, list_messages

    async def scenario() -> list[str]:
        engine = create_engine(database_url)
        try:

            def before_0015(connection: sa.Connection) -> None:
                config = alembic_config(str(engine.url))
                config.attributes["connection"] = connection
                command.upgrade(config, "0018_token_expiry")

            async with engine.begin() as conn:
                await conn.run_sync(before_0015)
                await conn.execute(
                    sa.text(
                        "INSERT INTO blobs (sha256, size, data, created_at) "
                        "VALUES ('ab', 1, :data, :now)"
                    ),
                    {"data": b"x", "now": dt.datetime.now(dt.UTC)},
                )
                await conn.execute(
                    sa.text(
                        "INSERT INTO messages (id, direction, kind, document_id, sender, "
                        "classification, subject, priority, package_sha256, client, created_at) "
                        "VALUES ('m1', 'out', 'document', 'G22,2026/11/23,7816/VPCP', "
                        "'000.00.00.G22', 'thuong', 'V/v Liên thông Đường truyền', 0, 'ab', "
                        "'old', :now)"
                    ),
                    {"now": dt.datetime.now(dt.UTC)},
                )
                await conn.execute(
                    sa.text(
                        "INSERT INTO messages (id, direction, kind, document_id, sender, "
                        "classification, subject, priority, package_sha256, client, created_at) "
                        "VALUES ('m2', 'out', 'document', 'G22,2026/11/23,7817/VPCP', "
                        "'000.00.00.G22', 'mat', 'V/v Liên thông Đường truyền', 0, 'ab', "
                        "'old', :now)"
                    ),
                    {"now": dt.datetime.now(dt.UTC)},
                )
            await migrate(engine)
            async with engine.connect() as conn:
                found = await list_messages(conn, MessageFilter(text="lien THONG duong"))
                return [m.id for m in found]
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == ["m1"]

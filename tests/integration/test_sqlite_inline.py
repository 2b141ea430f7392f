"""The embedded SQLite engine runs statements on the event loop's thread (no aiosqlite worker
thread), and behaves as SQLAlchemy expects: results, errors, rollback, and a committed row read
back by another engine."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store.database import create_engine

ROWS = sa.Table(
    "rows",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(20), nullable=False, unique=True),
)


def test_statements_run_on_the_loop_thread_and_behave(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}"

    async def scenario() -> None:
        threads_before = threading.active_count()
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(ROWS.metadata.create_all)
                await conn.execute(ROWS.insert(), [{"name": "a"}, {"name": "b"}])
            # No worker thread was started for the connection.
            assert threading.active_count() == threads_before
            # A failing statement raises SQLAlchemy's error and the transaction rolls back whole.
            with pytest.raises(sa.exc.IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(ROWS.insert(), {"name": "c"})
                    await conn.execute(ROWS.insert(), {"name": "a"})
            async with engine.connect() as conn:
                names = (await conn.scalars(sa.select(ROWS.c.name).order_by(ROWS.c.name))).all()
            assert names == ["a", "b"]
            # Another engine (another connection to the file) sees the committed rows.
            other = create_engine(url)
            try:
                async with other.connect() as conn:
                    assert await conn.scalar(sa.select(sa.func.count()).select_from(ROWS)) == 2
                    mode = await conn.scalar(sa.text("PRAGMA journal_mode"))
                    assert mode == "wal"
            finally:
                await other.dispose()
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_concurrent_tasks_share_the_one_connection_in_turn(tmp_path: Path) -> None:
    """Many tasks at once through the single pooled connection: every insert lands once."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}"

    async def scenario() -> int:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(ROWS.metadata.create_all)

            async def insert(number: int) -> None:
                async with engine.begin() as conn:
                    await conn.execute(ROWS.insert(), {"name": f"n{number}"})
                    await asyncio.sleep(0)  # yield mid-transaction: others must wait their turn

            await asyncio.gather(*(insert(n) for n in range(200)))
            async with engine.connect() as conn:
                return int(await conn.scalar(sa.select(sa.func.count()).select_from(ROWS)) or 0)
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == 200

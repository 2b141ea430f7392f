"""The embedded SQLite engine runs statements on the event loop's thread (no aiosqlite worker
thread), and behaves as SQLAlchemy expects: results, errors, rollback, and a committed row read
back by another engine."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store.database import checkpoint_wal, create_engine

ROWS = sa.Table(
    "rows",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(4100), nullable=False, unique=True),
)


def test_statements_run_on_the_loop_thread_and_behave(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}"

    async def scenario() -> None:
        threads_before = set(threading.enumerate())
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(ROWS.metadata.create_all)
                await conn.execute(ROWS.insert(), [{"name": "a"}, {"name": "b"}])
            # No worker thread was started for the connection (threads of earlier tests may end
            # meanwhile, so the count alone is not the measure).
            assert set(threading.enumerate()) - threads_before == set()
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


def test_the_wal_is_checkpointed_from_a_thread_not_by_a_commit(tmp_path: Path) -> None:
    """After checkpoint_wal the loop's connection no longer checkpoints inside its commits: the
    database file alone (without its log) lacks what was written since; the next checkpoint_wal
    copies it in."""
    path = tmp_path / "wal.db"
    url = f"sqlite+aiosqlite:///{path}"

    def rows_in_file_alone() -> int:
        """The rows a reader of the main file sees, without the write-ahead log."""
        copy = tmp_path / f"copy-{uuid.uuid4().hex}.db"
        shutil.copyfile(path, copy)
        with contextlib.closing(sqlite3.connect(copy)) as conn:
            return int(conn.execute("SELECT count(*) FROM rows").fetchone()[0])

    async def scenario() -> tuple[int, int, int, int]:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(ROWS.metadata.create_all)
            await checkpoint_wal(engine)
            async with engine.connect() as conn:
                autocheckpoint = int(await conn.scalar(sa.text("PRAGMA wal_autocheckpoint")) or 0)
            # ~5,000 pages of log: SQLite's default would have checkpointed 5 times meanwhile.
            for start in range(0, 5000, 50):
                async with engine.begin() as conn:
                    await conn.execute(
                        ROWS.insert(),
                        [{"name": f"{n:06d}" + "x" * 4000} for n in range(start, start + 50)],
                    )
            before = rows_in_file_alone()
            await checkpoint_wal(engine)
            after = rows_in_file_alone()
            async with engine.connect() as conn:
                total = int(await conn.scalar(sa.select(sa.func.count()).select_from(ROWS)) or 0)
            return autocheckpoint, before, after, total
        finally:
            await engine.dispose()

    autocheckpoint, before, after, total = asyncio.run(scenario())
    assert autocheckpoint == 0
    assert total == 5000
    assert before == 0
    assert after == 5000

"""The embedded default's engine (``store.database.InlineSqliteEngine``): ``begin()`` and
``connect()`` keep AsyncEngine's meaning — commit on a clean exit, roll back on an exception or a
failed commit, the one pooled connection always given back — with fewer crossings into
SQLAlchemy's synchronous core, and without the task AsyncEngine closes in. Each also runs on the
plain engine (``[database] statements = "plain"``: SQLAlchemy's own aiosqlite engine), which
must mean the same."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.database import InlineSqliteEngine, create_engine

META = sa.MetaData()
PARENTS = sa.Table("parents", META, sa.Column("id", sa.Integer, primary_key=True))
CHILDREN = sa.Table(
    "children",
    META,
    sa.Column("id", sa.Integer, primary_key=True),
    # Checked at COMMIT, not at the INSERT: a commit that fails.
    sa.Column(
        "parent_id",
        sa.Integer,
        sa.ForeignKey("parents.id", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
)


@pytest.fixture(params=["direct", "plain"])
def statements(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(tmp_path: Path, scenario: Any, statements: str = "direct") -> None:
    async def main() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/engine.db", statements=statements)
        assert isinstance(engine, InlineSqliteEngine) == (statements == "direct")
        try:
            async with engine.begin() as conn:
                await conn.run_sync(META.create_all)
            await scenario(engine)
            assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    asyncio.run(main())


async def parent_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.scalars(sa.select(PARENTS.c.id).order_by(PARENTS.c.id))).all())


def test_begin_commits_on_a_clean_exit_and_rolls_back_on_an_exception(
    tmp_path: Path, statements: str
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(PARENTS.insert(), [{"id": 1}, {"id": 2}])
        with pytest.raises(RuntimeError, match="abort"):
            async with engine.begin() as conn:
                await conn.execute(PARENTS.insert(), {"id": 3})
                raise RuntimeError("abort")
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(PARENTS.insert(), {"id": 4})
                await conn.execute(PARENTS.insert(), {"id": 1})
        assert await parent_ids(engine) == [1, 2]

    run(tmp_path, scenario, statements)


def test_a_commit_that_fails_keeps_nothing_and_gives_the_connection_back(
    tmp_path: Path, statements: str
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
            async with engine.begin() as conn:
                await conn.execute(PARENTS.insert(), {"id": 5})
                await conn.execute(CHILDREN.insert(), {"id": 1, "parent_id": 99})
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert await parent_ids(engine) == []
        async with engine.begin() as conn:  # the connection is usable again
            await conn.execute(PARENTS.insert(), {"id": 6})
            await conn.execute(CHILDREN.insert(), {"id": 2, "parent_id": 6})
        assert await parent_ids(engine) == [6]

    run(tmp_path, scenario, statements)


def test_connect_autobegins_and_keeps_only_what_is_committed(
    tmp_path: Path, statements: str
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            await conn.execute(PARENTS.insert(), {"id": 7})
        async with engine.connect() as conn:
            await conn.execute(PARENTS.insert(), {"id": 8})
            await conn.commit()
        with pytest.raises(RuntimeError):
            async with engine.connect() as conn:
                await conn.execute(PARENTS.insert(), {"id": 9})
                raise RuntimeError("abort")
        assert await parent_ids(engine) == [8]

    run(tmp_path, scenario, statements)


def test_a_task_cancelled_while_waiting_for_the_connection_takes_nothing(
    tmp_path: Path, statements: str
) -> None:
    """SQLite has one pooled connection: a second transaction waits for it. Cancelled while
    waiting, it leaves the holder's transaction alone and holds nothing afterwards."""

    async def scenario(engine: AsyncEngine) -> None:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with engine.begin() as conn:
                await conn.execute(PARENTS.insert(), {"id": 10})
                holding.set()
                await release.wait()

        async def waiter() -> None:
            async with engine.begin() as conn:
                await conn.execute(PARENTS.insert(), {"id": 11})

        held = asyncio.create_task(holder())
        await holding.wait()
        waiting = asyncio.create_task(waiter())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        await held
        assert await parent_ids(engine) == [10]

    run(tmp_path, scenario, statements)

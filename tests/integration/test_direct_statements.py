"""Statements run on the driver connection (``gateway.store.direct``) behave as SQLAlchemy's own,
on both databases: the same rows and types, the caller's transaction, SQLAlchemy's exceptions, a
lost connection invalidated, listeners told. These also pin the SQLAlchemy internals the module
uses (the asyncpg adapter's transaction, the compiled result columns). Each runs on both ways of
running statements (``[database] statements``): the plain path, SQLAlchemy's public API, must
give the same answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store.database import create_engine, reader_of
from gateway.store.direct import Statement
from gateway.store.tables import UtcDateTime

META = sa.MetaData()
ITEMS = sa.Table(
    "direct_items",
    META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(32), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=True),
    sa.Column("flag", sa.Boolean, nullable=False, default=False),
    sa.Column("data", sa.LargeBinary, nullable=True),
    sa.Column("count", sa.Integer, nullable=False, default=0),
)

INSERT = Statement(ITEMS.insert())
INSERT_RETURNING = Statement(ITEMS.insert().returning(ITEMS.c.id, ITEMS.c.name))
BY_NAME = Statement(sa.select(ITEMS).where(ITEMS.c.name == sa.bindparam("name")))
#: A constant IN list, an ORDER BY and a bound LIMIT, as the delivery claim has.
OPEN = Statement(
    sa.select(ITEMS.c.name, ITEMS.c.state)
    .where(ITEMS.c.state.in_(["queued", "retry"]), ITEMS.c.at <= sa.bindparam("now"))
    .order_by(ITEMS.c.name)
    .limit(sa.bindparam("limit"))
)
GUARDED = Statement(
    ITEMS.update().where(
        ITEMS.c.name == sa.bindparam("guard_name"), ITEMS.c.state == sa.bindparam("guard_state")
    )
)
AT = dt.datetime(2026, 12, 2, 10, 30, 15, 123456, tzinfo=dt.UTC)


@pytest.fixture(params=["direct", "plain"])
def statements(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(database_url: str, scenario: Any, statements: str = "direct") -> None:
    async def main() -> None:
        engine = create_engine(database_url, statements=statements)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(META.create_all)
            await scenario(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())


def item(name: str, state: str = "queued", **more: Any) -> dict[str, Any]:
    return {"name": name, "state": state, "at": AT, **more}


def test_rows_and_types_are_sqlalchemys(database_url: str, statements: str) -> None:
    async def scenario(engine: Any) -> None:
        async with engine.begin() as conn:
            await INSERT.execute(conn, item("a", flag=True, data=b"\x00\xff"))
            await INSERT.execute(conn, item("b", "retry"))
            await INSERT.execute(conn, item("c", "sent"))
            returned = (await INSERT_RETURNING.execute(conn, item("d"))).one_or_none()
        assert returned.name == "d" and isinstance(returned.id, int)
        async with engine.connect() as conn:
            direct = (await BY_NAME.execute(conn, {"name": "a"})).first()
            alchemy = (await conn.execute(BY_NAME.statement, {"name": "a"})).first()
            # Same values, same Python types (the UTC datetime, the bool, the bytes), same names.
            assert tuple(direct) == tuple(alchemy)
            assert direct.at == AT and direct.at.tzinfo is not None
            assert direct.flag is True and bytes(direct.data) == b"\x00\xff"
            assert direct._fields == tuple(alchemy._fields)
            # Constant defaults filled in as SQLAlchemy does.
            b = (await BY_NAME.execute(conn, {"name": "b"})).one_or_none()
            assert (b.flag, b.count, b.data) == (False, 0, None)
            assert (await BY_NAME.execute(conn, {"name": "zz"})).one_or_none() is None
            later = AT + dt.timedelta(seconds=1)
            open_rows = (await OPEN.execute(conn, {"now": later, "limit": 10})).all()
            assert [tuple(r) for r in open_rows] == [
                ("a", "queued"),
                ("b", "retry"),
                ("d", "queued"),
            ]
            assert len((await OPEN.execute(conn, {"now": later, "limit": 2})).all()) == 2
            earlier = AT - dt.timedelta(seconds=1)
            assert (await OPEN.execute(conn, {"now": earlier, "limit": 10})).all() == []

    run(database_url, scenario, statements)


def test_rowcount_of_a_guarded_update(database_url: str, statements: str) -> None:
    async def scenario(engine: Any) -> None:
        async with engine.begin() as conn:
            await INSERT.execute(conn, [item("a"), item("b")])
            moved = await GUARDED.execute(
                conn, {"guard_name": "a", "guard_state": "queued", "state": "sent", "count": 1}
            )
            assert moved.rowcount == 1
            stale = await GUARDED.execute(
                conn, {"guard_name": "a", "guard_state": "queued", "state": "sent", "count": 2}
            )
            assert stale.rowcount == 0
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(ITEMS.c.name, ITEMS.c.state, ITEMS.c.count))).all()
        assert sorted(tuple(r) for r in rows) == [("a", "sent", 1), ("b", "queued", 0)]

    run(database_url, scenario, statements)


def test_statements_are_in_the_callers_transaction(database_url: str, statements: str) -> None:
    async def scenario(engine: Any) -> None:
        # Rolled back with SQLAlchemy's own statements of the same transaction.
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(ITEMS.insert(), item("by-sqlalchemy"))
                await INSERT.execute(conn, item("direct"))
                raise RuntimeError("abort")
        # A connection with no transaction begun: the statement begins one, as SQLAlchemy's
        # autobegin does; closing without commit rolls it back, commit keeps it.
        async with engine.connect() as conn:
            await INSERT.execute(conn, item("not-committed"))
        async with engine.connect() as conn:
            await INSERT.execute(conn, item("committed"))
            await conn.commit()
        other = create_engine(str(engine.url.render_as_string(hide_password=False)))
        try:
            async with other.connect() as conn:
                names = (await conn.scalars(sa.select(ITEMS.c.name))).all()
        finally:
            await other.dispose()
        assert names == ["committed"]

    run(database_url, scenario, statements)


def test_errors_are_sqlalchemys_and_roll_back_the_whole_transaction(
    database_url: str, statements: str
) -> None:
    async def scenario(engine: Any) -> None:
        async with engine.begin() as conn:
            await INSERT.execute(conn, item("a"))
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await INSERT.execute(conn, item("b"))
                await INSERT.execute(conn, item("a"))  # the unique name again
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await INSERT.execute(conn, [item("c"), item("a")])
        # A missing parameter is the caller's mistake, said before anything runs.
        async with engine.connect() as conn:
            with pytest.raises((sa.exc.ArgumentError, sa.exc.StatementError)):
                await BY_NAME.execute(conn, {})
            with pytest.raises(sa.exc.ArgumentError):
                await INSERT.execute(conn, [item("d"), {"name": "e", "state": "queued"}])
            names = (await conn.scalars(sa.select(ITEMS.c.name))).all()
        assert names == ["a"]

    run(database_url, scenario, statements)


def test_statements_it_cannot_run_are_refused(tmp_path: Path) -> None:
    async def scenario(engine: Any) -> None:
        in_list = Statement(sa.select(ITEMS).where(ITEMS.c.name.in_(sa.bindparam("names"))))
        async with engine.connect() as conn:
            with pytest.raises(TypeError, match="IN list"):
                await in_list.execute(conn, {"names": ["a"]})
            with pytest.raises(TypeError, match="executemany"):
                await INSERT_RETURNING.execute(conn, [item("a"), item("b")])

    run(f"sqlite+aiosqlite:///{tmp_path / 'refused.db'}", scenario)


def test_listeners_see_the_statements(database_url: str, statements: str) -> None:
    async def scenario(engine: Any) -> None:
        seen: list[tuple[str, bool]] = []

        def listener(_c: Any, _cursor: Any, statement: str, _p: Any, _x: Any, many: bool) -> None:
            seen.append((statement.split()[0], many))

        sa.event.listen(engine.sync_engine, "before_cursor_execute", listener)
        async with engine.begin() as conn:
            await INSERT.execute(conn, item("a"))
            await INSERT.execute(conn, [item("b"), item("c")])
            await BY_NAME.execute(conn, {"name": "a"})
        assert seen == [("INSERT", False), ("INSERT", True), ("SELECT", False)]

    run(database_url, scenario, statements)


def test_the_echo_log_shows_the_statements_and_not_whole_packages(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        engine = create_engine(database_url, echo=True)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(META.create_all)
            with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
                async with engine.begin() as conn:
                    await INSERT.execute(conn, item("a", data=b"\x00" * 100_000))
        finally:
            await engine.dispose()

    asyncio.run(main())
    logged = [r.getMessage() for r in caplog.records if "[direct]" in r.getMessage()]
    assert len(logged) == 1 and logged[0].startswith("INSERT INTO direct_items")
    assert "'a'" in logged[0] and len(logged[0]) < 1_000


def test_postgresql_autocommit_reader_and_a_lost_connection(
    database_url: str, statements: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL: autocommit and server-side disconnects")

    async def scenario(engine: Any) -> None:
        async with engine.begin() as conn:
            await INSERT.execute(conn, item("a"))
        # The reader engine runs without a transaction: nothing to commit, nothing held open.
        async with reader_of(engine).connect() as conn:
            pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
            assert (await BY_NAME.execute(conn, {"name": "a"})).first().name == "a"
            async with engine.connect() as other:
                state = await other.scalar(
                    sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
            assert state == "idle"  # not "idle in transaction"
        # The server drops the connection: SQLAlchemy's error, marked invalidated; the pool
        # hands out a working connection next.
        async with engine.connect() as conn:
            pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
            async with engine.connect() as killer:
                await killer.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
            with pytest.raises(sa.exc.DBAPIError) as raised:
                await BY_NAME.execute(conn, {"name": "a"})
            assert raised.value.connection_invalidated
        async with engine.connect() as conn:
            assert (await BY_NAME.execute(conn, {"name": "a"})).first().name == "a"

    run(database_url, scenario, statements)

"""Engines and migrations. SQLite (embedded default) and PostgreSQL run the same code."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from gateway.store import commit_log
from gateway.store.direct import PLAIN_OPTION, Statement
from gateway.store.errors import translated, unavailable

log = logging.getLogger("docgw.store")


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


def upsert_insert(connection: AsyncConnection) -> Any:
    """The INSERT construct with ON CONFLICT for the connection's database: PostgreSQL and SQLite
    spell the upsert alike, and each dialect has its own construct for it."""
    return _upsert_insert_of(connection.dialect.name)


def _upsert_insert_of(dialect: str) -> Any:
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


def insert_or_ignore(
    connection: AsyncConnection, table: sa.Table, *unique: sa.Column[Any]
) -> Statement:
    """``INSERT … ON CONFLICT (unique) DO NOTHING`` for the connection's database, built once per
    dialect and table; the row goes in as parameters (rowcount 0: it existed)."""
    return _insert_or_ignore(connection.dialect.name, table, tuple(c.name for c in unique))


@functools.cache
def _insert_or_ignore(dialect: str, table: sa.Table, unique: tuple[str, ...]) -> Statement:
    insert = _upsert_insert_of(dialect)(table)
    return Statement(insert.on_conflict_do_nothing(index_elements=list(unique)))


#: ``[database] statements``: how the store runs its statements (``store/direct.py``).
STATEMENTS = ("direct", "plain")


def create_engine(
    url: str, *, echo: bool = False, pool_size: int = 20, statements: str = "direct"
) -> StoreEngine:
    """The store's engine. ``statements``: ``"direct"`` runs the hot path's statements on the
    driver connection and, on SQLite, uses :class:`InlineSqliteEngine`; ``"plain"`` runs every
    statement through SQLAlchemy's public API on its own engine (``store/direct.py``)."""
    if statements not in STATEMENTS:
        raise ValueError(f"statements must be one of {', '.join(STATEMENTS)}")
    if statements == "direct":
        _warn_if_direct_untested()
    plain = {"execution_options": {PLAIN_OPTION: True}} if statements == "plain" else {}
    if is_sqlite(url):
        _make_sqlite_folder(url)
        # One connection: SQLite has one writer; serialising in the pool avoids "database is
        # locked" and keeps the embedded default simple. PostgreSQL is the way to scale out.
        one_connection: dict[str, Any] = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 300}
        engine: StoreEngine
        if plain:
            sync_engine = create_async_engine(url, echo=echo, **one_connection, **plain)
            engine = StoreEngine(sync_engine.sync_engine)
        else:
            database = sa.make_url(url).database or ":memory:"

            async def connect() -> aiosqlite.Connection:
                connection: aiosqlite.Connection = await InlineSqliteConnection(
                    lambda: sqlite3.connect(database)
                )
                return connection

            engine = InlineSqliteEngine(
                create_async_engine(
                    url, echo=echo, async_creator=connect, **one_connection
                ).sync_engine
            )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        commit_log.install(engine.sync_engine)
        return engine
    # No pre-ping: it costs asyncpg three round trips per checkout (~10% of a small message's
    # path). A connection the server dropped fails its first statement instead; SQLAlchemy then
    # discards the whole pool's stale connections, the request answers DATABASE_UNAVAILABLE once
    # and a worker's round is retried — nothing is committed half-way.
    pooled = StoreEngine(
        create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=10, **plain
        ).sync_engine
    )
    commit_log.install(pooled.sync_engine)
    return pooled


#: The SQLAlchemy minor releases the direct path's tests pass on (``store/direct.py``).
DIRECT_TESTED = ("2.1",)


@functools.cache
def _warn_if_direct_untested() -> None:
    release = ".".join(sa.__version__.split(".")[:2])
    if release not in DIRECT_TESTED:
        log.warning(
            "direct_statements_untested",
            extra={
                "event": "direct_statements_untested",
                "sqlalchemy": sa.__version__,
                "hint": '[database] statements = "plain" uses public APIs only',
            },
        )


class StoreConnection(AsyncConnection):
    """A connection whose database failures leave the store as
    :class:`~gateway.store.errors.DatabaseUnavailable`: when it is made, and from the block it
    serves (``async with engine.connect() as conn:``), after it went back to the pool."""

    __slots__ = ()

    async def start(self, is_ctxmanager: bool = False) -> AsyncConnection:
        with translated(connecting=True):
            return await super().start(is_ctxmanager)

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        with translated():
            await super().__aexit__(type_, value, traceback)
        if value is not None and (translation := unavailable(value)) is not None:
            raise translation from value


class StoreEngine(AsyncEngine):
    """docgw's engine: SQLAlchemy's AsyncEngine with the store's one boundary for database
    failures (``gateway/store/errors.py``) — every connection and transaction it gives out
    raises :class:`~gateway.store.errors.DatabaseUnavailable` for an unreachable, lost, locked or
    unreadable database, never a driver's or SQLAlchemy's exception."""

    __slots__ = ()
    _connection_cls = StoreConnection

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.connect() as connection:
            with translated():
                async with connection.begin():
                    yield connection

    def execution_options(self, **options: Any) -> StoreEngine:
        return type(self)(self.sync_engine.execution_options(**options))


class InlineSqliteEngine(StoreEngine):
    """The embedded default's engine: ``begin()`` and ``connect()`` cross into SQLAlchemy's
    synchronous core once on the way in and once on the way out, where AsyncEngine crosses twice
    each way for a transaction and closes in a task of its own.

    Why: each crossing is a greenlet switch there and back, and AsyncEngine's transaction (four
    crossings and the closing task) cost 134-155 µs of CPU here, an empty one, where a SQLite
    statement costs 5-20; these cost ~77 (``connect()``: 100 → ~57). A gateway opens four to five
    transactions or connections per document. The meaning is AsyncEngine's: ``begin()`` commits
    on a clean exit, rolls back on an exception and when the commit itself fails (the
    transaction's own ``__exit__`` decides, as under AsyncEngine), and the connection goes back
    to the pool in every case.

    Why no task to close: AsyncEngine closes in a shielded task so that a cancellation cannot
    abandon the close half-way. With :class:`InlineSqliteConnection` nothing after the checkout
    suspends — every driver call is done when it returns — so no cancellation can arrive in the
    middle of a commit or close. (Waiting for the pool's one connection does suspend, before
    anything is held.)
    """

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        with translated(connecting=True):
            connection, transaction = await greenlet_spawn(_connect_and_begin, self.sync_engine)
        with translated():
            try:
                yield AsyncConnection(self, connection)
            except BaseException as exc:
                await greenlet_spawn(_end, connection, transaction, exc)
                raise
            await greenlet_spawn(_end, connection, transaction, None)

    def connect(self) -> AsyncConnection:
        return _InlineSqliteAsyncConnection(self)


class _InlineSqliteAsyncConnection(StoreConnection):
    """``async with engine.connect()``: closed in one crossing, without a task (see above)."""

    __slots__ = ()

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        with translated():
            await self.close()
        if value is not None and (translation := unavailable(value)) is not None:
            raise translation from value


def _connect_and_begin(engine: sa.Engine) -> tuple[sa.Connection, sa.RootTransaction]:
    connection = engine.connect()
    try:
        transaction = connection.begin()
        transaction.__enter__()  # as ``with connection.begin():`` (AsyncEngine does the same)
    except BaseException:
        connection.close()
        raise
    return connection, transaction


def _end(
    connection: sa.Connection, transaction: sa.RootTransaction, error: BaseException | None
) -> None:
    """The transaction's own exit — commit, or roll back on an error and when the commit itself
    fails (SQLite keeps its transaction open after a failed COMMIT: closing alone would hand the
    pool a connection still inside it) — then back to the pool."""
    try:
        if error is None:
            transaction.__exit__(None, None, None)
        else:
            transaction.__exit__(type(error), error, error.__traceback__)
    finally:
        connection.close()


class InlineSqliteConnection(aiosqlite.Connection):
    """aiosqlite's connection with each call run at once on the event loop's thread instead of
    handed to a worker thread.

    Why: a statement here takes microseconds (WAL, synchronous=NORMAL: no fsync at commit), while
    aiosqlite's two thread hand-offs per call (queue, wake-up, call_soon_threadsafe) cost about
    four times that in CPU — measured 317 µs against 76 µs per indexed SELECT through SQLAlchemy,
    the largest single cost of a document's path on the embedded default. The price: while a
    statement runs the loop waits, which matters only when another process holds SQLite's write
    lock (busy_timeout); one process per SQLite file is the embedded default, and PostgreSQL the
    way to scale out. SQLAlchemy's aiosqlite dialect drives this class unchanged (it also queues
    work on ``_tx`` directly, which the inline queue serves too).
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        # aiosqlite starts its worker thread here; this class has none.
        return self._connect().__await__()

    @property
    def sqlite_connection(self) -> sqlite3.Connection:
        """The sqlite3 connection itself, for the statements run directly (``store/direct``)."""
        return self._conn


class _RunAtOnce:
    """The (future, function) queue of aiosqlite's worker thread, served on the spot."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as aiosqlite does
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)


def reader_of(engine: AsyncEngine) -> AsyncEngine:
    """The engine for single reads on the hot path (a token, a sender's certificates): on
    PostgreSQL in autocommit, which spares the BEGIN and ROLLBACK round trips around the one
    statement (two of three). SQLite begins no transaction for a read anyway, and resetting its
    isolation level on return would cost a statement: there the engine itself."""
    if is_sqlite(engine):
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def checkpoint_wal(engine: AsyncEngine) -> None:
    """SQLite: copy the write-ahead log into the database file from a thread, instead of inside
    a commit on the event loop (scheduled every second by ``docgw serve``).

    Left to SQLite, every thousandth page written makes one commit copy the log and fsync the
    file: measured 0.15 ms of CPU and 0.35 ms of the loop's time per 140 KB package. Here the
    loop's connection stops checkpointing (set again each run: a replaced connection would start
    with SQLite's default, which is safe), and a separate connection in a thread checkpoints
    PASSIVE — it never blocks a writer or a reader. What is committed is durable either way (WAL,
    synchronous=NORMAL); when the last connection closes, SQLite checkpoints on its own.
    """
    async with engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
    with translated():
        await asyncio.to_thread(_checkpoint_file, engine.url.database or "")


def _checkpoint_file(path: str) -> None:
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _make_sqlite_folder(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL + synchronous=NORMAL: a committed transaction survives the process being killed
    # (kill -9); only a power loss could lose the last commits. foreign_keys: SQLite's are off
    # by default.
    # busy_timeout first: switching a new file to WAL takes a write lock, which processes started
    # together (each migrating) would otherwise find taken and fail at once.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("gateway.store").joinpath("migrations"))
    )
    config.set_main_option("sqlalchemy.url", url)
    return config


#: The PostgreSQL advisory lock ``migrate`` holds (its transaction's), one per database.
MIGRATION_LOCK = 0x646F6367_6D6967  # "docgmig"


async def migrate(engine: AsyncEngine) -> tuple[str, ...]:
    """Bring the schema to the latest migration (idempotent); the revisions applied, oldest first.

    Under a lock, in one transaction: N processes started together after an upgrade (``docgw
    serve`` and its workers, every CLI command) migrate once — the first takes the lock and
    applies, the others wait for its commit and find the schema at the head. PostgreSQL: an
    advisory lock for the transaction. SQLite: ``BEGIN EXCLUSIVE``, which also makes the DDL one
    transaction there (the sqlite3 module would otherwise run each statement on its own), with
    foreign keys off meanwhile, as SQLite's own procedure for changing a table goes: adding a
    constraint copies the table and drops the old one, which would fail (or, deferred, leave
    counted violations) for every child row of a parent table copied; they are checked at the
    end instead (``PRAGMA foreign_key_check``), before the commit.
    """
    if await _at_head(engine):  # the usual case: no lock taken, no writer held up
        return ()
    return await _alembic_under_lock(engine, "upgrade", "head")


async def _at_head(engine: AsyncEngine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()

    def current(connection: sa.Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(current) == head


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the schema back to ``revision`` (tests of a migration's way down), as :func:`migrate`
    does the way up."""
    await _alembic_under_lock(engine, "downgrade", revision)


async def _alembic_under_lock(engine: AsyncEngine, verb: str, target: str) -> tuple[str, ...]:
    applied: list[str] = []

    def run(connection: sa.Connection) -> None:
        config = alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        config.attributes["applied"] = applied
        getattr(command, verb)(config, target)

    sqlite = is_sqlite(engine)
    async with engine.connect() as connection:
        if sqlite:  # outside a transaction: SQLite ignores the pragma inside one
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.commit()
        try:
            async with connection.begin():
                if sqlite:
                    await connection.exec_driver_sql("BEGIN EXCLUSIVE")
                else:
                    lock = sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)
                    await connection.execute(sa.select(lock))
                await connection.run_sync(run)
                if sqlite:
                    broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                await connection.commit()
    return tuple(applied)


def migrate_blocking(url: str) -> tuple[str, ...]:
    async def run() -> tuple[str, ...]:
        engine = create_engine(url)
        try:
            return await migrate(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())

"""Hot-path statements run on the driver connection, with SQLAlchemy's compilation but without
its per-execution machinery.

Why: on a document's path each gateway runs ~20 statements, and SQLAlchemy's execution of a
compiled, cached statement (cache key, execution context, parameter and result processing, the
async adapter's greenlet hops) costs far more than the database's own work — measured on the
exchange benchmark's machine: an indexed SELECT 120 µs through ``AsyncConnection.execute`` against
5 µs on ``sqlite3`` directly, and ~190 µs against ~65 µs on ``asyncpg``. Here a statement is
still written with SQLAlchemy Core (one definition for both databases), compiled once per dialect
(and per set of parameter names), and then executed with the dialect's own SQL text, parameter
order and type processors, straight on the DB-API driver of the connection SQLAlchemy holds.

Semantics kept: the statement runs in the caller's SQLAlchemy transaction (SQLite: the sqlite3
module's implicit BEGIN, as SQLAlchemy's own statements; PostgreSQL: the asyncpg adapter's
transaction, started here when this is the transaction's first statement); driver errors are
raised as SQLAlchemy's exceptions (``sa.exc.IntegrityError``…), and a lost PostgreSQL connection
is invalidated as SQLAlchemy would. Not supported, and refused when first compiled: IN lists
given at execution ("expanding" parameters; IN lists of constants are fine) and Python-side
column defaults other than constants — such statements stay on ``AsyncConnection.execute``.
The SQLAlchemy names used beyond its public API (the asyncpg adapter's transaction start and
error translation, the compiled result columns) are pinned by
``tests/integration/test_direct_statements.py`` on both databases.

**One narrow interface, two implementations.** The queries see only :class:`Statement`
(``execute(conn, params) → Rows``). How it runs is the engine's choice, ``[database] statements``:
``"direct"`` (the default: the above, and on SQLite ``database.InlineSqliteEngine``) or
``"plain"`` (``AsyncConnection.execute`` and SQLAlchemy's own aiosqlite engine: public APIs
only, for a SQLAlchemy release the direct path's tests do not pass on yet). The tests run both;
docs/performance.md measures the difference.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
from collections import namedtuple
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

Params = Mapping[str, Any]
_MISSING = object()
_ROWCOUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


#: The execution option that marks an engine's statements plain (``database.create_engine``).
PLAIN_OPTION = "docgw_plain_statements"


class Statement:
    """A Core statement, compiled per dialect (and per parameter names: an INSERT or UPDATE sets
    the columns its parameters name, as with ``AsyncConnection.execute``). Keep one per module,
    like a compiled query: the compilations are cached on it."""

    def __init__(self, statement: sa.ClauseElement) -> None:
        self.statement = statement
        self._dml = isinstance(statement, sa.Insert | sa.Update)
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    async def execute(
        self, conn: AsyncConnection, params: Params | list[Params] | None = None
    ) -> Rows:
        """Run with one set of parameters, or with a list of them (executemany: no rows)."""
        rows = params if isinstance(params, list) else [params or {}]
        if not rows:
            return Rows([], 0)
        if conn.sync_connection.get_execution_options().get(PLAIN_OPTION):  # type: ignore[union-attr]
            return await self._execute_plain(conn, params, rows)
        compiled = self._compiled_for(conn.dialect, rows[0])
        if not conn.in_transaction():
            await conn.begin()  # as SQLAlchemy's autobegin: the caller's commit() covers this
        if isinstance(params, list):
            if self._dml and any(p.keys() != rows[0].keys() for p in rows):
                raise sa.exc.ArgumentError("executemany: every row must name the same columns")
            many = [compiled.arguments(p) for p in rows]
            _announce(conn, compiled, many, True)
            return await _run_many(conn, compiled, many)
        args = compiled.arguments(rows[0])
        _announce(conn, compiled, args, False)
        return await _run(conn, compiled, args)

    async def _execute_plain(
        self, conn: AsyncConnection, params: Params | list[Params] | None, rows: list[Params]
    ) -> Rows:
        """Through ``AsyncConnection.execute``: the same rows, rowcount and errors."""
        statement: Any = self.statement
        if isinstance(params, list):
            if self._dml and any(p.keys() != rows[0].keys() for p in rows):
                raise sa.exc.ArgumentError("executemany: every row must name the same columns")
            if statement.exported_columns and isinstance(statement, sa.Insert):
                raise TypeError("executemany returns no rows: execute once per row instead")
            await conn.execute(statement, rows)
            return Rows([], len(rows))
        result = await conn.execute(statement, rows[0])
        return Rows(list(result.all()) if result.returns_rows else [], result.rowcount)

    def _compiled_for(self, dialect: Dialect, params: Params) -> _Compiled:
        keys = tuple(sorted(params)) if self._dml else ()
        compiled = self._compiled.get((dialect.name, keys))
        if compiled is None:
            compiled = _compile(self.statement, dialect, keys)
            self._compiled[(dialect.name, keys)] = compiled
        return compiled


class Rows:
    """The rows of a statement (as named tuples) and its rowcount: the subset of SQLAlchemy's
    ``Result`` the queries use. The rowcount of an executemany on PostgreSQL is the number of
    parameter sets (asyncpg reports no count for it)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise sa.exc.MultipleResultsFound(
                "Multiple rows were found when one or none was required"
            )
        return self.first()

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if not self._rows:
            raise sa.exc.NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise sa.exc.MultipleResultsFound("Multiple rows were found when one was required")
        return self._rows[0][0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: Per positional parameter: its name, its processor, its value when not given.
    names: tuple[str, ...]
    binders: tuple[Callable[[Any], Any] | None, ...]
    defaults: tuple[Any, ...]
    returns_rows: bool
    row: Callable[[Sequence[Any]], Any]
    results: tuple[Callable[[Any], Any] | None, ...]

    def arguments(self, params: Params) -> tuple[Any, ...]:
        values = []
        for name, binder, default in zip(self.names, self.binders, self.defaults, strict=True):
            value = params.get(name, default)
            if value is _MISSING:
                raise sa.exc.ArgumentError(f"a value is required for bind parameter {name!r}")
            values.append(binder(value) if binder is not None and value is not None else value)
        return tuple(values)

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        if not any(self.results):
            return [self.row(r) for r in raw]
        return [
            self.row([f(v) if f is not None else v for f, v in zip(self.results, r, strict=True)])
            for r in raw
        ]


def _compile(statement: sa.ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
    if isinstance(statement, sa.Insert) and not statement.exported_columns:
        # No RETURNING of the new primary key, which SQLAlchemy adds on PostgreSQL to report it.
        statement = statement.inline()
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    binds: dict[str, Any] = dict(compiled.binds)
    required = {name for name, bind in binds.items() if bind.required}
    for bind in compiled.post_compile_params:
        if bind.required or not isinstance(bind.value, list | tuple):
            raise TypeError("an IN list given at execution: use AsyncConnection.execute")
    # The statement as the driver gets it: IN lists of constants expanded into one placeholder
    # each (SQLAlchemy renders them at execution otherwise), for every dialect's paramstyle.
    expanded = compiled.construct_expanded_state(dict.fromkeys(required), escape_names=False)
    for bind in compiled.post_compile_params:
        for number in range(1, len(bind.value) + 1):
            binds[f"{compiled.bind_names[bind]}_{number}"] = bind
    prefetched = {}
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        default = column.default if column in compiled.insert_prefetch else column.onupdate
        if default is None or not default.is_scalar:
            raise TypeError(f"{column}: only constant column defaults are supported")
        prefetched[column.key] = default.arg
    names = tuple(expanded.positiontup or ())
    binders, defaults = [], []
    for name in names:
        binders.append(binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        if name in prefetched:
            defaults.append(prefetched[name])
        elif name in required:
            defaults.append(_MISSING)
        else:
            defaults.append(expanded.parameters[name])
    columns = compiled._result_columns  # (keyname, name, objects, type) per result column
    row: Any = namedtuple("Row", [c[0] for c in columns] or ["_"], rename=True)._make  # type: ignore[attr-defined]
    results = tuple(c[3].dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return _Compiled(
        sql=expanded.statement,
        names=names,
        binders=tuple(binders),
        defaults=tuple(defaults),
        returns_rows=bool(columns),
        row=row,
        results=results,
    )


async def _run(conn: AsyncConnection, compiled: _Compiled, args: tuple[Any, ...]) -> Rows:
    adapter, driver = _driver_of(conn)
    if conn.dialect.name == "sqlite":
        try:
            cursor = driver.sqlite_connection.execute(compiled.sql, args)
            raw = cursor.fetchall() if compiled.returns_rows else []
        except sqlite3.Error as error:
            raise _wrapped(conn, compiled, args, error) from error
        return Rows(compiled.rows(raw), cursor.rowcount)
    if compiled.returns_rows:
        fetch = functools.partial(driver.fetch, compiled.sql, *args)
        records = await _on_postgresql(conn, adapter, compiled, args, fetch)
        return Rows(compiled.rows(records), len(records))
    execute = functools.partial(driver.execute, compiled.sql, *args)
    status = await _on_postgresql(conn, adapter, compiled, args, execute)
    match = _ROWCOUNT.match(status or "")
    return Rows([], int(match.group(1)) if match else -1)


async def _run_many(
    conn: AsyncConnection, compiled: _Compiled, rows: list[tuple[Any, ...]]
) -> Rows:
    if compiled.returns_rows:
        raise TypeError("executemany returns no rows: execute once per row instead")
    adapter, driver = _driver_of(conn)
    if conn.dialect.name == "sqlite":
        try:
            cursor = driver.sqlite_connection.executemany(compiled.sql, rows)
        except sqlite3.Error as error:
            raise _wrapped(conn, compiled, rows, error) from error
        return Rows([], cursor.rowcount)
    executemany = functools.partial(driver.executemany, compiled.sql, rows)
    await _on_postgresql(conn, adapter, compiled, rows, executemany)
    return Rows([], len(rows))


async def _on_postgresql(
    conn: AsyncConnection,
    adapter: Any,
    compiled: _Compiled,
    args: Any,
    call: Callable[[], Awaitable[Any]],
) -> Any:
    """Await an asyncpg call in the caller's transaction (begun here if this is its first
    statement), one at a time on the connection as SQLAlchemy's adapter does, with its errors
    raised as SQLAlchemy's."""
    try:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
            return await call()
    except Exception as error:
        raise await _translated(conn, adapter, compiled, args, error) from error


def _announce(conn: AsyncConnection, compiled: _Compiled, args: Any, many: bool) -> None:
    """What SQLAlchemy does before it runs a statement, for those who watch: the engine's echo
    log and ``before_cursor_execute`` listeners (statement counts in tests, tracing)."""
    sync: Any = conn.sync_connection
    if sync.engine.logger.isEnabledFor(logging.INFO):
        rows = args if many else [args]
        shown = ", ".join(_shown(value) for value in rows[0])
        more = f" … and {len(rows) - 1} more rows" if len(rows) > 1 else ""
        sync.engine.logger.info("%s\n[direct] (%s)%s", compiled.sql, shown, more)
    if sync.dispatch.before_cursor_execute:
        sync.dispatch.before_cursor_execute(sync, None, compiled.sql, args, None, many)


def _shown(value: Any) -> str:
    """A parameter as the echo log shows it: a package's bytes are not written out whole."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text):,} characters)"


def _driver_of(conn: AsyncConnection) -> tuple[Any, Any]:
    """SQLAlchemy's DB-API adapter of the connection and the driver's own connection under it
    (SQLite: :class:`~gateway.store.database.InlineSqliteConnection`; PostgreSQL: asyncpg's)."""
    fairy: Any = conn.sync_connection.connection  # type: ignore[union-attr]
    return fairy.dbapi_connection, fairy.driver_connection


def _wrapped(conn: AsyncConnection, compiled: _Compiled, args: Any, error: Exception) -> Any:
    dbapi = conn.dialect.loaded_dbapi
    return sa.exc.DBAPIError.instance(compiled.sql, args, error, dbapi.Error)


async def _translated(
    conn: AsyncConnection, adapter: Any, compiled: _Compiled, args: Any, error: Exception
) -> Any:
    """An asyncpg error as SQLAlchemy raises it: through the adapter's DB-API translation, then
    wrapped; a lost connection is invalidated, so the pool does not hand it out again."""
    dbapi_error: Any = error
    try:
        adapter._handle_exception(error)
    except Exception as translated:  # the adapter always raises
        dbapi_error = translated
    disconnect = conn.dialect.is_disconnect(dbapi_error, adapter, None)
    wrapped = sa.exc.DBAPIError.instance(
        compiled.sql,
        args,
        dbapi_error,
        conn.dialect.loaded_dbapi.Error,
        connection_invalidated=disconnect,
    )
    if disconnect:
        await conn.invalidate()
    return wrapped

"""Database failures leave the store as one typed error, DATABASE_UNAVAILABLE
(``gateway/store/errors.py``), whatever the database and however it failed: a real PostgreSQL
port with nothing listening, a PostgreSQL connection the server ends mid-transaction, a SQLite
file another process holds locked, a SQLite path that is no database. Nothing is committed; the
engine works again once the database does. The scheduler's poll leaves an item for the next tick
on it (it expected that code, which the store never raised before)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import EXAMPLES, RECIPIENT, SENDER, postgres_url

from connectors.base import RemoteItem
from envelopes.building import build_document_bytes
from envelopes.errors import GatewayError
from envelopes.metadata import parse_metadata
from gateway.bootstrap import Gateway
from gateway.store.database import create_engine, migrate, reader_of
from gateway.store.errors import DatabaseUnavailable
from gateway.store.tables import workers
from gateway.usecases.polling import poll_channel


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(url: str, scenario: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = create_engine(url)
        try:
            await scenario(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())


async def every_door_refuses(engine: Any) -> list[DatabaseUnavailable]:
    """A transaction, a connection and the autocommit reader each raise DATABASE_UNAVAILABLE."""
    raised = []
    for door in (engine.begin, engine.connect, reader_of(engine).connect):
        with pytest.raises(DatabaseUnavailable) as caught:
            async with door() as conn:
                await conn.execute(sa.text("SELECT 1"))
        raised.append(caught.value)
    return raised


def test_a_postgresql_port_with_nothing_listening() -> None:
    url = f"postgresql+asyncpg://docgw@127.0.0.1:{closed_port()}/docgw"

    async def scenario(engine: Any) -> None:
        for error in await every_door_refuses(engine):
            assert isinstance(error, GatewayError) and error.code == "DATABASE_UNAVAILABLE"
            # The API shows the message; the driver's words are for the log and the console.
            assert "127.0.0.1" not in error.message and "Connect call failed" in error.detail
            assert isinstance(error.__cause__, OSError)

    run(url, scenario)


def test_a_missing_postgresql_database() -> None:
    base = postgres_url()
    if base is None:
        pytest.skip("needs TEST_POSTGRES_URL")

    async def scenario(engine: Any) -> None:
        for error in await every_door_refuses(engine):
            assert "does not exist" in error.detail

    run(base.rsplit("/", 1)[0] + "/docgw_no_such_database", scenario)


def test_a_postgresql_connection_lost_mid_transaction(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL: the server ends the connection")

    async def scenario(engine: Any) -> None:
        await migrate(engine)
        now = sa.func.now()
        with pytest.raises(DatabaseUnavailable):
            async with engine.begin() as conn:
                await conn.execute(workers.insert().values(id="lost", started_at=now, beat_at=now))
                pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
                async with engine.connect() as killer:
                    await killer.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
                await conn.execute(sa.text("SELECT 1"))
        async with engine.connect() as conn:  # the pool hands out a working connection again
            assert await conn.scalar(sa.select(sa.func.count()).select_from(workers)) == 0

    run(database_url, scenario)


def test_a_sqlite_file_another_process_holds_locked(tmp_path: Path) -> None:
    path = tmp_path / "docgw.db"

    async def scenario(engine: Any) -> None:
        await migrate(engine)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # as `sqlite3 docgw.db` holding a write transaction
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                async with engine.begin() as conn:
                    await conn.exec_driver_sql("PRAGMA busy_timeout=50")  # not 30 s in a test
                    await conn.execute(
                        workers.insert().values(
                            id="w", started_at=sa.func.now(), beat_at=sa.func.now()
                        )
                    )
            assert "locked" in caught.value.detail
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA busy_timeout=30000")
            assert await conn.scalar(sa.select(sa.func.count()).select_from(workers)) == 0

    run(f"sqlite+aiosqlite:///{path}", scenario)


@pytest.mark.parametrize("make_unreadable", ["directory", "garbage"])
def test_a_sqlite_path_that_is_no_database(tmp_path: Path, make_unreadable: str) -> None:
    path = tmp_path / "docgw.db"
    if make_unreadable == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"not a database, not even close " * 200)

    async def scenario(engine: Any) -> None:
        await every_door_refuses(engine)

    run(f"sqlite+aiosqlite:///{path}", scenario)


class OneItem:
    """A pollable channel with one document waiting: signed by SENDER for RECIPIENT."""

    name = "axis"

    def __init__(self, gateway: Gateway) -> None:
        self.acknowledged: list[bool] = []
        request = parse_metadata(
            (EXAMPLES / "new-document.json").read_bytes(), today=gateway.clock().date()
        )
        self.package, _ = build_document_bytes(
            request.header, business=request.business, signer=gateway.signer(SENDER)
        )

    async def pending(self, kind: str) -> list[RemoteItem]:
        return [RemoteItem(remote_id="1", kind=kind)] if kind == "document" else []

    async def fetch(self, item: RemoteItem) -> bytes:
        return self.package

    async def acknowledge(self, item: RemoteItem, *, ok: bool, reason: str = "") -> None:
        self.acknowledged.append(ok)


def test_a_poll_leaves_the_item_for_later_while_the_database_is_down(
    make_gateway: Any, database_url: str, tmp_path: Path
) -> None:
    down = (
        f"sqlite+aiosqlite:///{tmp_path}"  # a directory: SQLite cannot open it
        if database_url.startswith("sqlite")
        else f"postgresql+asyncpg://docgw@127.0.0.1:{closed_port()}/docgw"
    )

    async def scenario() -> None:
        async with make_gateway(local_units=(SENDER, RECIPIENT)) as gateway:
            working = gateway.engine
            gateway.engine = gateway.reader = create_engine(down)
            try:
                channel = OneItem(gateway)
                report = await poll_channel(gateway, "axis", channel)
            finally:
                with contextlib.suppress(Exception):
                    await gateway.engine.dispose()
                gateway.engine = gateway.reader = working
            # Not refused, not acknowledged: the channel offers it again at the next tick.
            assert (report.fetched, report.left_for_later, report.refused) == (1, 1, 0)
            assert channel.acknowledged == []

    asyncio.run(scenario())


def test_the_api_answers_503_without_the_drivers_words(
    make_gateway: Any, database_url: str, tmp_path: Path
) -> None:
    """The web layer knows no SQLAlchemy exception: the store's DATABASE_UNAVAILABLE is a 503
    problem like any other code's answer, and the driver's text (host, port, path) stays out."""
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.usecases import tokens
    from gateway.web.app import create_app

    down = (
        f"sqlite+aiosqlite:///{tmp_path}"
        if database_url.startswith("sqlite")
        else f"postgresql+asyncpg://docgw@127.0.0.1:{closed_port()}/docgw"
    )

    async def scenario() -> None:
        async with make_gateway() as gateway:
            token = await tokens.create_token(gateway, name="admin", role="admin")
            unreachable = create_engine(down)
            broken = dataclasses.replace(gateway, engine=unreachable, reader=unreachable)
            try:
                async with TestClient(TestServer(create_app(broken))) as client:
                    response = await client.get(
                        "/api/v1/messages", headers={"Authorization": f"Bearer {token}"}
                    )
                    text = await response.text()
            finally:
                await unreachable.dispose()
            assert response.status == 503, text
            assert response.content_type == "application/problem+json"
            body = json.loads(text)
            assert body["code"] == "DATABASE_UNAVAILABLE"
            assert str(tmp_path) not in text and "127.0.0.1" not in text and "Errno" not in text

    asyncio.run(scenario())

"""The audit trail is a hash chain: ``docgw audit verify`` (a real process) passes on an intact
trail and names the first row changed, removed or inserted with plain SQL, on SQLite and
PostgreSQL; concurrent writers chain without a gap or a fork; migration 0009 chains the rows that
were there before it."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from integration_support import SENDER, register_all, write_config

from gateway.bootstrap import build
from gateway.settings import load_settings
from gateway.store import audit_chain, audit_queries
from gateway.store.database import alembic_config, create_engine, migrate
from gateway.store.tables import audit_events

DOCGW = Path(sys.executable).parent / "docgw"


def audit_verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), "--config", str(config), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def trail(database_url: str, keys_dir: Path, tmp_path: Path) -> Path:
    """A migrated gateway with a few audit rows (the units registered, then 20 events)."""
    config = write_config(
        tmp_path / "docgw.toml", database_url=database_url, keys_dir=keys_dir, local_units=(SENDER,)
    )

    async def fill() -> None:
        gateway = await build(load_settings(config, {}))
        try:
            await migrate(gateway.engine)
            await register_all(gateway, keys_dir)
            for i in range(20):
                async with gateway.engine.begin() as conn:
                    await audit_queries.audit(
                        conn, now=gateway.clock(), actor="test", action="noted", reason=f"sự {i}"
                    )
        finally:
            await gateway.close()

    asyncio.run(fill())
    return config


def run_sql(database_url: str, *statements: str) -> None:
    async def run() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(sa.text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def middle_row(database_url: str) -> tuple[int, int]:
    async def run() -> tuple[int, int]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(audit_events.c.id, audit_events.c.chain_seq)
                        .order_by(audit_events.c.chain_seq)
                        .offset(10)
                        .limit(1)
                    )
                ).one()
                return int(row.id), int(row.chain_seq)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def assert_broken(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: AUDIT_CHAIN_BROKEN: "), result.stderr
    assert text in lines[0], lines[0]


def test_an_intact_trail_verifies(trail: Path) -> None:
    result = audit_verify(trail)
    assert result.returncode == 0, result.stderr
    assert "audit chain intact" in result.stdout


def test_a_changed_row_is_named(trail: Path, database_url: str) -> None:
    row_id, seq = middle_row(database_url)
    run_sql(database_url, f"UPDATE audit_events SET reason = 'sửa' WHERE id = {row_id}")
    assert_broken(audit_verify(trail), f"changed: row id {row_id} at place {seq}")


def test_a_removed_row_is_named(trail: Path, database_url: str) -> None:
    row_id, seq = middle_row(database_url)
    run_sql(database_url, f"DELETE FROM audit_events WHERE id = {row_id}")
    assert_broken(audit_verify(trail), f"removed: rows at place {seq}")


def test_the_last_row_removed_is_found(trail: Path, database_url: str) -> None:
    run_sql(
        database_url,
        "DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)",
    )
    assert_broken(audit_verify(trail), "removed: rows at place")


def test_an_inserted_row_is_named(trail: Path, database_url: str) -> None:
    row_id, seq = middle_row(database_url)
    # A forged row claiming an existing place, with a plausible hash.
    run_sql(
        database_url,
        "INSERT INTO audit_events (at, actor, action, reason, chain_seq, row_hash) "
        f"SELECT at, actor, action, 'giả', chain_seq, row_hash FROM audit_events "
        f"WHERE id = {row_id}",
    )
    result = audit_verify(trail)
    assert_broken(result, "inserted: row id ")
    assert f"a second row at place {seq}" in result.stderr


def test_a_row_inserted_outside_the_chain_is_named(trail: Path, database_url: str) -> None:
    run_sql(
        database_url,
        "INSERT INTO audit_events (at, actor, action) VALUES ('2026-01-01 00:00:00', 'x', 'y')",
    )
    assert_broken(audit_verify(trail), "a row outside the chain")


def test_concurrent_writers_chain_without_gap_or_fork(trail: Path) -> None:
    """Many transactions appending at once (PostgreSQL: separate connections) leave one chain."""

    async def run() -> audit_chain.ChainReport:
        gateway = await build(load_settings(trail, {}))
        try:

            async def write(i: int) -> None:
                async with gateway.engine.begin() as conn:
                    rows = [
                        audit_queries.audit_row(
                            now=gateway.clock(), actor="test", action="burst", reason=f"{i}/{j}"
                        )
                        for j in range(1 + i % 3)
                    ]
                    await audit_queries.insert_audit_rows(conn, rows)

            await asyncio.gather(*(write(i) for i in range(60)))
            async with gateway.engine.connect() as conn:
                return await audit_chain.verify(conn, batch=7)  # small pages: paging is tested
        finally:
            await gateway.close()

    report = asyncio.run(run())
    assert report.broken is None, report.broken
    assert report.rows == report.head_seq > 60


def test_the_migration_chains_the_rows_already_there(database_url: str) -> None:
    """Rows written at revision 0005 (before the chain) are chained by 0009, oldest first."""

    async def run() -> audit_chain.ChainReport:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.upgrade(_config_on(database_url, c), "0005"))
            async with engine.begin() as conn:
                for i in range(7):
                    await conn.execute(
                        sa.text(
                            "INSERT INTO audit_events (at, actor, action, reason) "
                            "VALUES (:at, 'old', 'noted', :reason)"
                        ),
                        {"at": dt.datetime(2026, 1, 1, 8, i, tzinfo=dt.UTC), "reason": f"cũ {i}"},
                    )
            await migrate(engine)
            async with engine.connect() as conn:
                return await audit_chain.verify(conn)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    assert report.broken is None, report.broken
    assert report.rows == report.head_seq == 7


def _config_on(url: str, connection: sa.Connection) -> object:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    return config

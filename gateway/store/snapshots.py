"""Consistent copies of the database for ``docgw backup``: the copy and what a backup records
about it (the schema revision and the audit chain's head), read in the copy's own transaction so
that they describe exactly what was copied."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from gateway.store.audit_chain import GENESIS, HEAD_ID
from gateway.store.database import create_engine
from gateway.store.tables import audit_chain_head


@dataclass(frozen=True, kw_only=True)
class SnapshotFacts:
    schema_revision: str | None
    audit_seq: int
    audit_hash: str


def _facts(revision: str | None, head: tuple[int, str] | None) -> SnapshotFacts:
    seq, hash_ = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS)
    return SnapshotFacts(schema_revision=revision, audit_seq=seq, audit_hash=hash_)


def sqlite_snapshot(source: Path, target: Path) -> SnapshotFacts:
    """One step of SQLite's online backup API: one read transaction over the whole file."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            revision = dst.execute("SELECT version_num FROM alembic_version").fetchone()
            head = dst.execute(
                "SELECT seq, hash FROM audit_chain_head WHERE id = ?", (HEAD_ID,)
            ).fetchone()
            return _facts(revision[0] if revision else None, head)
        finally:
            dst.close()
    finally:
        src.close()


def sqlite_intact(path: Path) -> bool:
    """SQLite's own integrity check of a copied file (read only)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = connection.execute("PRAGMA integrity_check").fetchone()
    finally:
        connection.close()
    return result is not None and result[0] == "ok"


async def postgres_snapshot(url: str, dump: Callable[[str], Awaitable[None]]) -> SnapshotFacts:
    """Export a snapshot and hold it open while ``dump(snapshot name)`` runs (pg_dump
    ``--snapshot``); the facts are read in the same snapshot."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                snapshot = await conn.scalar(sa.text("SELECT pg_export_snapshot()"))
                revision = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
                row = (
                    await conn.execute(
                        sa.select(audit_chain_head.c.seq, audit_chain_head.c.hash).where(
                            audit_chain_head.c.id == HEAD_ID
                        )
                    )
                ).first()
                await dump(str(snapshot))
        return _facts(revision, None if row is None else (int(row[0]), str(row[1])))
    finally:
        await engine.dispose()

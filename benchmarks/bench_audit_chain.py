"""What the audit trail's hash chain costs: one-row audit transactions, chained
(``audit_chain.append``) against a plain INSERT, with N concurrent writers, on SQLite and on
PostgreSQL (``TEST_POSTGRES_URL``; a fresh database, dropped afterwards). Run by hand::

    .venv/bin/python benchmarks/bench_audit_chain.py [--writers 8] [--transactions 1500]

Each variant runs twice, interleaved (plain, chained, plain, chained), to show the noise.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import mkdtemp

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import audit_chain, audit_queries
from gateway.store.database import create_engine, migrate
from gateway.store.direct import Statement
from gateway.store.tables import audit_events

PLAIN = Statement(audit_events.insert())


async def measure(url: str, transactions: int, writers: int) -> dict[str, float]:
    engine = create_engine(url)
    await migrate(engine)
    row = audit_queries.audit_row(
        now=dt.datetime.now(dt.UTC), actor="bench", action="moved",
        message_id=str(uuid.uuid4()), recipient_id=1, from_state="sending", to_state="sent",
    )  # fmt: skip

    async def plain(conn: AsyncConnection) -> None:
        await PLAIN.execute(conn, row)

    async def chained(conn: AsyncConnection) -> None:
        await audit_chain.append(conn, [row])

    results: dict[str, float] = {}
    try:
        for name, write in (("plain", plain), ("chained", chained)) * 2:

            async def worker(count: int, write: Callable[..., Awaitable[object]] = write) -> None:
                for _ in range(count):
                    async with engine.begin() as conn:
                        await write(conn)

            started = time.perf_counter()
            await asyncio.gather(*(worker(transactions // writers) for _ in range(writers)))
            elapsed = (time.perf_counter() - started) / transactions * 1e6
            results[name] = min(results.get(name, elapsed), elapsed)
    finally:
        await engine.dispose()
    return results


async def main(transactions: int, writers: int) -> None:
    sqlite = Path(mkdtemp()) / "bench.db"
    print("sqlite:", await measure(f"sqlite+aiosqlite:///{sqlite}", transactions, writers))
    base = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    admin_url = base.replace("postgresql+asyncpg", "postgresql")
    name = f"bench_chain_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = base.rsplit("/", 1)[0] + f"/{name}"
        print("postgresql:", await measure(url, transactions, writers))
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--transactions", type=int, default=1500)
    args = parser.parse_args()
    asyncio.run(main(args.transactions, args.writers))

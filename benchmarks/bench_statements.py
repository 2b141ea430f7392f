"""``[database] statements``: "direct" against "plain", statement by statement.

Run by hand (not a test)::

    .venv/bin/python benchmarks/bench_statements.py            # SQLite and PostgreSQL
    .venv/bin/python benchmarks/bench_statements.py --rounds 5 --count 2000

What it measures: the process CPU time per statement (``time.process_time``: what the gateway's
own process spends, less disturbed by a busy machine than wall time) of the document path's kinds
of statement through :class:`gateway.store.direct.Statement` — an indexed SELECT of one row, an
INSERT, a guarded UPDATE — each in its own transaction as the hot path has them, on an engine of
each setting, in interleaved rounds (direct, plain, direct, plain …) so that the machine's drift
hits both alike. It prints µs per statement per round and the median ratio plain ÷ direct.
PostgreSQL: ``TEST_POSTGRES_URL`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``),
a fresh database created and dropped; without a server its rows say so.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.database import create_engine
from gateway.store.direct import Statement

META = sa.MetaData()
ITEMS = sa.Table(
    "bench_items",
    META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(32), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
)
INSERT = Statement(ITEMS.insert())
BY_NAME = Statement(sa.select(ITEMS).where(ITEMS.c.name == sa.bindparam("name")))
GUARDED = Statement(
    ITEMS.update().where(
        ITEMS.c.name == sa.bindparam("guard_name"), ITEMS.c.state == sa.bindparam("guard_state")
    )
)
MODES = ("direct", "plain")


async def one_round(url: str, statements: str, count: int) -> dict[str, float]:
    """µs of process CPU time per statement, by kind."""
    engine = create_engine(url, statements=statements)
    prefix = uuid.uuid4().hex[:8]
    try:
        timings = {}
        started = time.process_time()
        for n in range(count):
            async with engine.begin() as conn:
                await INSERT.execute(conn, {"name": f"{prefix}{n}", "state": "queued"})
        timings["insert"] = time.process_time() - started
        started = time.process_time()
        for n in range(count):
            async with engine.connect() as conn:
                (await BY_NAME.execute(conn, {"name": f"{prefix}{n}"})).one_or_none()
        timings["select"] = time.process_time() - started
        started = time.process_time()
        for n in range(count):
            async with engine.begin() as conn:
                params = {"guard_name": f"{prefix}{n}", "guard_state": "queued", "state": "sent"}
                await GUARDED.execute(conn, params)
        timings["update"] = time.process_time() - started
        return {kind: seconds / count * 1e6 for kind, seconds in timings.items()}
    finally:
        await engine.dispose()


async def measure(url: str, rounds: int, count: int) -> dict[str, dict[str, list[float]]]:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    await engine.dispose()
    found: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    for _ in range(rounds):
        for mode in MODES:
            for kind, micros in (await one_round(url, mode, count)).items():
                found[mode].setdefault(kind, []).append(micros)
    return found


def rows(kind: str, found: dict[str, dict[str, list[float]]]) -> list[tuple[str, str, str]]:
    out = []
    for statement in ("select", "insert", "update"):
        direct, plain = found["direct"][statement], found["plain"][statement]
        pairs = ", ".join(f"{d:,.0f} / {p:,.0f}" for d, p in zip(direct, plain, strict=True))
        ratio = statistics.median(p / d for d, p in zip(direct, plain, strict=True))
        out.append((f"{kind}: {statement}, own transaction", pairs, f"{ratio:.2f}"))
    return out


async def postgres(base: str, rounds: int, count: int) -> dict[str, dict[str, list[float]]]:
    name = f"docgw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        return await measure(base.rsplit("/", 1)[0] + f"/{name}", rounds, count)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def print_table(table: Sequence[tuple[str, str, str]]) -> None:
    columns = ("measurement", "direct / plain per round (µs CPU)", "median plain÷direct")
    widths = [max(len(r[i]) for r in [columns, *table]) for i in range(3)]
    for cells in [columns, tuple("-" * w for w in widths), *table]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")


async def main_async(args: argparse.Namespace) -> int:
    table = []
    with tempfile.TemporaryDirectory(prefix="docgw-bench-statements-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        table += rows("sqlite", await measure(url, args.rounds, args.count))
    base = args.postgres
    try:
        table += rows("postgresql", await postgres(base, args.rounds, args.count))
    except (OSError, sa.exc.SQLAlchemyError) as exc:
        table.append(("postgresql: not measured", f"no server at {base} ({exc!s:.60})", "-"))
    print(f"\nSUMMARY: [database] statements, {args.count} statements per kind and round")
    print_table(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args: Any = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

"""Directory sync benchmark: the national directory (default 120,000 agencies, the simulator's
generated one) synced from the axis simulator over loopback HTTP into a fresh gateway, then
unchanged (the whole listing compared again), then 1 % of it changed and synced incrementally;
lookups by code timed one by one. The reference, measured in the same run on the same database:
a bare bulk insert of the same rows into a scratch table (the unavoidable write).

Run by hand (tests/integration/test_benchmark_directory_smoke.py only checks that it runs)::

    .venv/bin/python benchmarks/bench_directory.py                 # 120,000 agencies, SQLite
    .venv/bin/python benchmarks/bench_directory.py --postgres URL  # an empty PostgreSQL database
    .venv/bin/python benchmarks/bench_directory.py --quick         # 5,000, a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import sqlalchemy as sa

from connectors.simulators.axis import AxisState, generate_directory, running_axis
from connectors.vxp import VxpConnector
from gateway.bootstrap import Gateway, build
from gateway.settings import load_settings
from gateway.store import unit_queries
from gateway.store.database import migrate
from gateway.usecases import directory

SYSTEM, SECRET, UNIT = "bench", b"bench-directory-secret", "000.00.00.G22"
TITLE = "SUMMARY: directory sync beside a bare bulk insert of the same rows"


async def reference(gateway: Gateway, rows: list[dict[str, str | None]]) -> float:
    """A scratch table with the directory's columns, filled with one executemany per 2,000."""
    scratch = sa.Table(
        "bench_directory_scratch",
        sa.MetaData(),
        sa.Column("code", sa.String(35), primary_key=True),
        sa.Column("name", sa.String(300)),
        sa.Column("parent_code", sa.String(35)),
        sa.Column("code_qd20", sa.String(35)),
    )
    async with gateway.engine.begin() as conn:
        await conn.run_sync(scratch.metadata.create_all)
    started = time.perf_counter()
    async with gateway.engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            await conn.execute(scratch.insert(), rows[start : start + 2000])
    seconds = time.perf_counter() - started
    async with gateway.engine.begin() as conn:
        await conn.run_sync(scratch.metadata.drop_all)
    return seconds


async def lookups(gateway: Gateway, codes: list[str]) -> list[float]:
    times = []
    async with gateway.engine.connect() as conn:
        for code in codes:
            started = time.perf_counter()
            await unit_queries.get_unit(conn, code)
            times.append(time.perf_counter() - started)
    return times


async def run(count: int, url: str, work: Path) -> list[tuple[str, int, float]]:
    agencies = generate_directory(count, seed=11)
    state = AxisState(seed=11, record_bodies=False)
    state.load_directory(agencies)
    state.add_system(SYSTEM, SECRET, [UNIT])
    config = work / "docgw.toml"
    rows: list[tuple[str, int, float]] = []
    async with running_axis(state) as endpoint, aiohttp.ClientSession() as session:
        # A vxp channel as configured (its directory_full_sync_hours apply); the connector is
        # built here, on this session.
        config.write_text(
            f'[database]\nurl = "{url}"\ncreate = true\n[gateway]\nlocal_units = []\n'
            f'[channels.axis]\nkind = "vxp"\nendpoint = "{endpoint}"\n'
            f'system_id = "{SYSTEM}"\nsecret = "{SECRET.decode()}"\n',
            encoding="utf-8",
        )
        axis = VxpConnector(
            name="axis", endpoint=endpoint, system_id=SYSTEM, secret=SECRET, session=session
        )
        gateway = await build(load_settings(config, {}), connectors={"axis": axis})
        try:
            await migrate(gateway.engine)
            bare = [
                {"code": a.code, "name": a.name, "parent_code": a.parent_code,
                 "code_qd20": a.code_qd20}
                for a in agencies
            ]  # fmt: skip
            rows.append(("reference: bare bulk insert", len(bare), await reference(gateway, bare)))
            # The simulator (in this process) serialises a listing once: not docgw's time.
            await axis.agencies()
            await axis.agencies_qd20()
            for label in ("full sync, a new registry", "full sync, nothing changed"):
                started = time.perf_counter()
                report = await directory.sync_channel(gateway, "axis", full=True)
                rows.append((label, report.listed, time.perf_counter() - started))
            changed = random.Random(3).sample(agencies, max(1, count // 100))
            for index, agency in enumerate(changed):
                if index % 3 == 0:
                    state.remove_agency(agency.code)
                else:
                    state.change_agency(agency.code, name=f"{agency.name} (đổi tên)")
            started = time.perf_counter()
            report = await directory.sync_channel(gateway, "axis")
            assert report.mode == "incremental", report.mode
            rows.append(
                ("incremental sync, 1 % changed", report.listed, time.perf_counter() - started)
            )
            sample = [a.code for a in random.Random(5).sample(agencies, min(10_000, count))]
            times = await lookups(gateway, sample)
        finally:
            await gateway.close()
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    print(
        f"lookups by code: {len(times)}, median {statistics.median(times) * 1000:.3f} ms, "
        f"p99 {p99 * 1000:.3f} ms"
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120_000)
    parser.add_argument("--quick", action="store_true", help="5,000 agencies")
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database")
    args = parser.parse_args()
    count = 5000 if args.quick else args.count
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite+aiosqlite:///{tmp}/docgw.db"
        rows = asyncio.run(run(count, url, Path(tmp)))
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(TITLE)
    print(f"| measurement ({database}) | agencies | seconds | ratio to the reference |")
    print("|---|---|---|---|")
    reference_seconds = rows[0][2]
    for label, agencies, seconds in rows:
        print(f"| {label} | {agencies} | {seconds:.2f} | {seconds / reference_seconds:.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

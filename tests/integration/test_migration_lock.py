"""Migrations run under a lock: several real processes started together on one fresh database
(as ``docgw serve`` and its workers after an upgrade) all succeed, the schema is migrated once —
one process applies every revision, the others wait for it and apply none — and the database is
at the head revision. On PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from gateway.store.database import alembic_config, create_engine

PROCESSES = 5

#: Each process imports docgw, says it is ready, waits for the signal, migrates, prints what it
#: applied: the migrations start within milliseconds of each other, not an import apart.
MIGRATE = """
import json, sys, time
from pathlib import Path
from gateway.store.database import migrate_blocking
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.002)
print(json.dumps(migrate_blocking(url)))
"""


def test_processes_started_together_migrate_once(
    databases: Callable[[], str], tmp_path: Path
) -> None:
    url = databases()
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{n}" for n in range(PROCESSES)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url, str(ready), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready in readies
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(ready.exists() for ready in readies):
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
            time.sleep(0.01)
        go.touch()
        outcomes = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in processes] == [0] * PROCESSES, [err for _, err in outcomes]
    applied = sorted((json.loads(out) for out, _ in outcomes), key=len, reverse=True)
    script = ScriptDirectory.from_config(alembic_config(url))
    every = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert applied == [every] + [[]] * (PROCESSES - 1)
    assert asyncio.run(versions(url)) == [script.get_current_head()]


async def versions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in rows]
    finally:
        await engine.dispose()

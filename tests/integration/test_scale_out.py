"""Scale-out: 4 worker processes (``docgw worker``) on one PostgreSQL deliver 2,000 messages to a
real HTTP receiver with zero duplicates and zero losses (claims use FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import EXAMPLES, RECIPIENT, register_all, write_config
from receiver import Receiver

from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.bootstrap import build
from gateway.settings import load_settings
from gateway.store.database import migrate
from gateway.store.tables import attempts, recipients
from gateway.usecases import submit

pytestmark = pytest.mark.slow
MESSAGES = 2000
WORKERS = 4
DOCGW = Path(sys.executable).parent / "docgw"


def test_four_worker_processes_deliver_each_message_exactly_once(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("scale-out runs on PostgreSQL (SQLite is the single-process default)")
    receiver = Receiver().start()
    config = write_config(
        tmp_path / "docgw.toml",
        database_url=database_url,
        keys_dir=keys_dir,
        local_units=("000.00.00.G22",),
        extra=f'[channels.axis]\nkind = "http_push"\nendpoint = "{receiver.url}"\ntoken = "t"\n',
    )
    asyncio.run(_seed(config, keys_dir))
    env = {**os.environ, "DOCGW_DELIVERY__WORKERS": "2", "DOCGW_DELIVERY__BATCH_SIZE": "10"}
    logs = [(tmp_path / f"worker-{i}.log").open("wb") for i in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [str(DOCGW), "--config", str(config), "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    try:
        deadline = time.monotonic() + 300
        while len(receiver.registered) < MESSAGES and time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes), "a worker process died"
            time.sleep(0.5)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
        for log in logs:
            log.close()
        receiver.stop()
    assert len(receiver.registered) == MESSAGES, "messages were lost"
    duplicates = {key: n for key, n in receiver.deliveries.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} messages were delivered more than once"
    assert all(recipient == RECIPIENT for _, recipient in receiver.registered)
    states, attempt_count, workers_used = asyncio.run(_outcome(config))
    assert states == {"sent": MESSAGES}
    assert attempt_count == MESSAGES
    assert workers_used > 1, "the load was not shared between processes"
    for i in range(WORKERS):
        assert "Traceback" not in (tmp_path / f"worker-{i}.log").read_text(errors="replace")


async def _seed(config: Path, keys_dir: Path) -> None:
    gateway = await build(load_settings(config, {}), connectors={})
    try:
        await migrate(gateway.engine)
        await register_all(gateway, keys_dir)
        meta = (EXAMPLES / "new-document.json").read_bytes()
        today = gateway.clock().date()
        base = parse_metadata(meta, today=today)
        for i in range(MESSAGES):
            # A số/ký hiệu of its own: a repeat in one year is DUPLICATE_DOCUMENT_CODE.
            code = dataclasses.replace(base.header.code, number=str(i + 1))
            header = dataclasses.replace(base.header, document_id=f"scale-{i}", code=code)
            request = dataclasses.replace(base, header=header)
            await submit.submit_document(
                gateway,
                request,
                [AttachmentSource(name="a.txt", open=lambda i=i: io.BytesIO(f"tệp {i}".encode()))],
                client="test",
                actor="test",
            )
    finally:
        await gateway.close()


async def _outcome(config: Path) -> tuple[dict[str, Any], int, int]:
    gateway = await build(load_settings(config, {}), connectors={})
    try:
        async with gateway.engine.connect() as conn:
            states = dict(
                (await conn.execute(
                    sa.select(recipients.c.state, sa.func.count()).group_by(recipients.c.state)
                )).all()
            )  # fmt: skip
            attempt_count = await conn.scalar(sa.select(sa.func.count()).select_from(attempts))
            workers_used = await conn.scalar(
                sa.select(sa.func.count(sa.distinct(attempts.c.worker)))
            )
        return states, int(attempt_count or 0), int(workers_used or 0)
    finally:
        await gateway.close()

"""Proof: a backup taken while gateway A sends, restored on an empty folder, loses nothing
acknowledged before it and sends nothing again that the snapshot knew was sent.

A runs as ``docgw serve`` (a process, embedded SQLite) and sends through the national axis
simulator (kind "vxp", real HTTP on loopback) to gateway B, which polls the axis as ``docgw serve``
does. Documents are submitted through A's API without pause. Mid-way ``docgw backup create`` runs
(a process, SQLite's online backup API while A writes); the submissions go on, then A is killed
with SIGKILL, its folder abandoned. ``docgw restore`` brings it back in an empty folder and it is
started again from there.

What is asserted, precisely:

- every document A answered 201 before the backup command started is in the snapshot, and B ends
  up holding it — once (B's store has one row per document);
- no document the snapshot records as ``sent`` to B is sent through the axis again: the axis'
  own record of every sendEdoc shows each such document exactly once;
- a document the axis saw twice was, in the snapshot, not yet ``sent`` (queued, or claimed and
  in flight): its first send happened after the snapshot, or was not yet recorded when it was
  taken, and the restored gateway cannot know it happened. Those resends reach B as the same
  package (the same DocumentId), and B's deduplication keeps one;
- documents answered after the snapshot, before the kill, are not in the restored gateway (the
  backup cannot hold them); the test reports how many there were;
- the restored gateway's audit chain verifies.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import (
    A_SECRET,
    A_SYSTEM,
    B_SECRET,
    B_SYSTEM,
    DOCGW,
    RECIPIENT,
    SENDER,
    Peer,
    eventually,
    free_port,
    received_documents,
    running_node,
    tail,
    vxp_channel,
    write_config,
)

from connectors.simulators.axis import AxisState, running_axis

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "mật khẩu sao lưu kiểm thử tải"
BEFORE_BACKUP = 40  # documents answered before the backup starts
AFTER_BACKUP = 20  # documents answered after it ends, before the kill


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCGW_")}
    return {**env, "DOCGW_BACKUP__PASSPHRASE": PASSPHRASE}


def docgw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, env=environment()
    )


class Submitter:
    """Submits documents through A's API, a few at once, until stopped; records each 201."""

    def __init__(self, port: int, token: str) -> None:
        self.url = f"http://127.0.0.1:{port}/api/v1/messages"
        self.token = token
        self.answered: dict[str, tuple[float, str]] = {}  # message id → (monotonic, document id)
        self.stop = asyncio.Event()
        self.meta = json.loads((REPO / "examples" / "new-document.json").read_text("utf-8"))

    async def run(self, workers: int = 4) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            counter = iter(range(10**6))
            await asyncio.gather(*(self._worker(session, counter) for _ in range(workers)))

    async def _worker(self, session: aiohttp.ClientSession, counter: Any) -> None:
        while not self.stop.is_set():
            i = next(counter)
            document = {**self.meta, "code": {"number": str(i), "notation": "VPCP-TTĐT"}}
            form = aiohttp.FormData()
            form.add_field("metadata", json.dumps(document), content_type="application/json")
            form.add_field("attachment", os.urandom(2000), filename=f"t{i}.pdf")
            try:
                async with session.post(
                    self.url, data=form, headers={"Idempotency-Key": f"tai-{i}"}
                ) as response:
                    if response.status == 201:
                        body = await response.json()
                        self.answered[body["id"]] = (time.monotonic(), body["document_id"])
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)  # A is down (killed): the test stops us soon

    def count(self) -> int:
        return len(self.answered)


async def start_serve(config: Path) -> asyncio.subprocess.Process:
    log = config.with_suffix(".log")
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            str(DOCGW), "--config", str(config), "serve", stdout=out, stderr=out,
            env=environment(),
        )  # fmt: skip

    async def serving() -> bool:
        assert process.returncode is None, tail(log)
        return b"docgw serving" in log.read_bytes()

    await eventually(serving, timeout=60, what=f"docgw serve ({config})")
    return process


def snapshot_states(database: Path) -> dict[str, tuple[str, str]]:
    """message id → (document id, A's transport state for B) as the snapshot holds them."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT m.id, m.document_id, r.state FROM messages m "
            "JOIN recipients r ON r.message_id = m.id WHERE m.direction = 'out'"
        ).fetchall()
    finally:
        connection.close()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_backup_under_load_restored_loses_nothing_and_resends_only_what_it_cannot_know(
    keys_dir: Path, tmp_path: Path
) -> None:
    axis_state = AxisState(seed=7)
    axis_state.add_system(A_SYSTEM, A_SECRET.encode(), [SENDER])
    axis_state.add_system(B_SYSTEM, B_SECRET.encode(), [RECIPIENT])
    peers = [Peer(code=SENDER), Peer(code=RECIPIENT)]
    port = free_port()
    old_home, new_home, backups = tmp_path / "a-old", tmp_path / "a-new", tmp_path / "backups"
    old_home.mkdir()

    async def scenario() -> None:
        async with running_axis(axis_state, shutdown_timeout=1.0) as axis_url:
            a_config = write_config(
                old_home / "docgw.toml",
                keys_dir=keys_dir,
                unit=SENDER,
                channels=vxp_channel(axis_url, A_SYSTEM, A_SECRET),
                api_port=port,
            )
            # A short lease: what was claimed at the snapshot is taken up again soon.
            a_config.write_text(
                a_config.read_text().replace("lease_seconds = 30", "lease_seconds = 3")
            )
            b_config = write_config(
                tmp_path / "b.toml",
                keys_dir=keys_dir,
                unit=RECIPIENT,
                channels=vxp_channel(axis_url, B_SYSTEM, B_SECRET),
            )
            async with running_node(a_config, peers, keys_dir, serve=False):
                pass
            token = docgw("--config", a_config, "tokens", "create", "--role", "operator",
                          "--name", "tai")  # fmt: skip
            assert token.returncode == 0, token.stderr
            async with running_node(b_config, peers, keys_dir) as b:
                a = await start_serve(a_config)
                submitter = Submitter(port, token.stdout.strip())
                submitting = asyncio.create_task(submitter.run())
                try:
                    await eventually(
                        lambda: _true(submitter.count() >= BEFORE_BACKUP),
                        timeout=120,
                        what="documents answered before the backup",
                    )
                    backup_started = time.monotonic()
                    created = await asyncio.to_thread(
                        docgw, "--config", a_config, "backup", "create", "--to", backups
                    )
                    assert created.returncode == 0, created.stderr
                    after = submitter.count()
                    await eventually(
                        lambda: _true(submitter.count() >= after + AFTER_BACKUP),
                        timeout=120,
                        what="documents answered after the backup",
                    )
                    a.kill()  # SIGKILL: A's folder is abandoned as it is
                    await a.wait()
                finally:
                    submitter.stop.set()
                    await submitting
                (backup,) = backups.iterdir()
                snapshot = snapshot_states(backup / "database.sqlite3")
                restored = await asyncio.to_thread(docgw, "restore", backup, "--dir", new_home)
                assert restored.returncode == 0, restored.stderr
                a2 = await start_serve(new_home / "docgw.toml")
                try:
                    in_snapshot = {document for document, _ in snapshot.values()}

                    async def b_has_the_snapshot() -> bool:
                        held = {r.document_id for r in await received_documents(b)}
                        return in_snapshot <= held

                    await eventually(b_has_the_snapshot, timeout=180, what="B holds the snapshot")
                    await asyncio.sleep(2)  # anything still to come from A would come now
                    received = [r.document_id for r in await received_documents(b)]
                finally:
                    a2.terminate()
                    await a2.wait()

        acknowledged = {
            message: document
            for message, (at, document) in submitter.answered.items()
            if at < backup_started
        }
        lost_after = {
            message
            for message, (at, _) in submitter.answered.items()
            if at > backup_started and message not in snapshot
        }
        assert len(acknowledged) >= BEFORE_BACKUP
        # Every document acknowledged before the backup is in it, and B holds it once.
        assert set(acknowledged) <= set(snapshot), "acknowledged but not in the snapshot"
        counts = Counter(received)
        assert {d for d in acknowledged.values() if counts[d] != 1} == set()
        assert max(counts.values()) == 1, "B stores a document once"
        # The axis' record: what the snapshot knew as sent went exactly once.
        # (B's 01 answers go through the axis too, naming the document: A's sends only.)
        sends = Counter(s.document_id for s in axis_state.sent.values() if s.system_id == A_SYSTEM)
        sent_in_snapshot = {d for d, state in snapshot.values() if state == "sent"}
        assert sent_in_snapshot, "the backup was taken while A was sending"
        assert {d: sends[d] for d in sent_in_snapshot if sends[d] != 1} == {}
        twice = {d for d, n in sends.items() if n > 1}
        assert twice <= {d for d, state in snapshot.values() if state != "sent"}
        print(
            f"answered {len(submitter.answered)}, before the backup {len(acknowledged)}, "
            f"in the snapshot {len(snapshot)} ({len(sent_in_snapshot)} sent), answered after "
            f"it and lost with A {len(lost_after)}, sent twice (first send after the snapshot) "
            f"{len(twice)}"
        )

    asyncio.run(scenario())
    chain = docgw("--config", new_home / "docgw.toml", "audit", "verify")
    assert chain.returncode == 0, chain.stderr


async def _true(value: bool) -> bool:
    return value

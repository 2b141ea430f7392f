"""Crash safety: ``docgw serve`` (embedded SQLite) is killed with SIGKILL at random moments while
500 documents are submitted through its API and its receiver fails now and then; it is restarted
each time. Every document answered 201 ends registered exactly once at the receiver: none lost,
none duplicated (the receiver deduplicates resends of the same package)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest
from integration_support import EXAMPLES
from receiver import Receiver

pytestmark = pytest.mark.slow
DOCGW = Path(sys.executable).parent / "docgw"
DOCUMENTS = 500
KILLS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """Runs ``docgw serve`` and kills/restarts it."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(DOCGW), "--config", str(self.config), "serve"], stdout=out, stderr=out
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no cleanup of any kind
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def test_kill_9_during_submission_and_delivery_loses_and_duplicates_nothing(
    tmp_path: Path, keys_dir: Path
) -> None:
    receiver = Receiver(fail_rate=0.1, fail_after_commit_rate=0.05).start()
    port = free_port()
    config = tmp_path / "docgw.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/docgw.db"\n'
        f"[api]\nport = {port}\n"
        '[gateway]\nlocal_units = ["000.00.00.G22"]\n'
        f'[keys]\ndir = "{keys_dir}"\n'
        "[delivery]\nidle_poll_seconds = 0.05\nlease_seconds = 2\n"
        "[retry]\nbase_seconds = 0.05\nmax_delay_seconds = 0.5\nmax_attempts = 1000\n"
        f'[channels.axis]\nkind = "http_push"\nendpoint = "{receiver.url}"\ntoken = "t"\n',
        encoding="utf-8",
    )
    _prepare(config, keys_dir)
    create_token = ["tokens", "create", "--role", "operator", "--name", "load"]
    token = subprocess.run(
        [str(DOCGW), "--config", str(config), *create_token],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = Server(config, tmp_path / "serve.log")
    server.start()
    killer_done = threading.Event()

    def killer() -> None:
        rng = random.Random(11)
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 3.0))
            server.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            server.start()
        killer_done.set()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        answered = asyncio.run(_submit_all(port, token))
        thread.join(60)
        assert killer_done.is_set()
        deadline = time.monotonic() + 180
        while not answered <= {m for m, _ in receiver.registered} and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        server.stop()
        receiver.stop()
    registered = {message for message, _ in receiver.registered}
    assert len(answered) == DOCUMENTS
    assert answered - registered == set(), "answered 201 but never delivered"
    assert registered - answered == set(), "delivered a message nobody was told about"
    # Resends after kills and lost answers happen; each was registered once by the receiver.
    assert len(receiver.registered) == DOCUMENTS
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def _prepare(config: Path, keys_dir: Path) -> None:
    for code, name in (
        ("000.00.00.G22", "Văn phòng Chính phủ"),
        ("000.00.00.H41", "UBND tỉnh Nghệ An"),
    ):
        added = subprocess.run(
            [str(DOCGW), "--config", str(config), "units", "add", code, "--name", name,
             "--channel", "axis", "--cert", str(keys_dir / f"{code}.cert.pem")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr


async def _submit_all(port: int, token: str) -> set[str]:
    """Submit every document, retrying each (same idempotency key) until it is answered."""
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    answered: dict[int, str] = {}
    semaphore = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:

        async def one(i: int) -> None:
            # A số/ký hiệu of its own: a repeat in one year is DUPLICATE_DOCUMENT_CODE.
            code = {**meta["code"], "number": str(i + 1)}
            document = {**meta, "document_id": f"crash-{i}", "code": code}
            async with semaphore:
                while True:
                    form = aiohttp.FormData()
                    form.add_field(
                        "metadata", json.dumps(document), content_type="application/json"
                    )
                    form.add_field("attachment", f"tệp {i}".encode(), filename=f"t{i}.txt")
                    try:
                        async with session.post(
                            f"http://127.0.0.1:{port}/api/v1/messages",
                            data=form,
                            headers={"Idempotency-Key": f"doc-{i}"},
                            timeout=aiohttp.ClientTimeout(total=30),
                        ) as response:
                            if response.status in (200, 201):
                                answered[i] = (await response.json())["id"]
                                return
                            assert response.status >= 500, await response.text()
                    except (aiohttp.ClientError, TimeoutError):
                        pass  # the server is down (killed): try again, same key
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(one(i) for i in range(DOCUMENTS)))
    return set(answered.values())

"""A 100 MB attachment downloads through a real `create_app` process in bounded memory: the
server's peak resident set (VmHWM) grows by far less than the file while it is served, as a
package and as a decoded attachment."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from integration_support import EXAMPLES, RECIPIENT, SENDER, register_all, write_config

from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.bootstrap import build
from gateway.settings import load_settings
from gateway.store import blobs, message_queries
from gateway.store.database import migrate
from gateway.usecases import submit, tokens
from gateway.usecases.statuses import VIETNAM

SIZE = 100 * 1024 * 1024
#: What the server may add to its peak while serving 100 MB (a 134 MB package, base64): chunks,
#: spool buffers (8 MiB each before they go to disk), the parser's buffers.
GROWTH_LIMIT = 48 * 1024 * 1024
SERVER = Path(__file__).with_name("download_server.py")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)"),
]


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def big_file(path: Path) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        for index in range(SIZE >> 20):
            piece = block[:8] + index.to_bytes(8, "big") + block[16:]
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest()


async def prepare(config: Path, keys_dir: Path, attachment: Path) -> tuple[str, str, str]:
    """(big message id, small message id, a member token of the sender)."""
    gateway = await build(load_settings(config, {}))
    try:
        await migrate(gateway.engine)
        await register_all(gateway, keys_dir)
        meta = json.loads((EXAMPLES / "new-document.json").read_text("utf-8"))
        meta["to"] = [{"organ_id": RECIPIENT}]
        today = gateway.clock().astimezone(VIETNAM).date()
        ids = []
        for number, source in enumerate(
            (
                AttachmentSource(name="lon.bin", open=lambda: attachment.open("rb")),
                AttachmentSource(name="nho.pdf", open=lambda: io.BytesIO(b"%PDF")),
            )
        ):
            meta["code"]["number"] = str(9000 + number)
            submitted = await submit.submit_document(
                gateway, parse_metadata(meta, today=today), [source], client="t", actor="t"
            )
            ids.append(submitted.message_id)
        token = await tokens.create_token(gateway, name="g22", role="member", unit_code=SENDER)
        async with gateway.engine.connect() as conn:
            big = await message_queries.get_message(conn, ids[0])
            assert big is not None
            assert await blobs.size_of(conn, big.package_sha256) > SIZE
        return ids[0], ids[1], token
    finally:
        await gateway.close()


async def download(url: str, token: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_chunked(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def test_a_100_mb_attachment_streams_in_bounded_memory(tmp_path: Path, keys_dir: Path) -> None:
    attachment = tmp_path / "lon.bin"
    expected = big_file(attachment)
    config = write_config(
        tmp_path / "docgw.toml",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/docgw-{uuid.uuid4().hex[:6]}.db",
        keys_dir=keys_dir,
        local_units=(SENDER,),
    )
    big, small, token = asyncio.run(prepare(config, keys_dir, attachment))
    attachment.unlink()
    server = subprocess.Popen(
        [sys.executable, str(SERVER), str(config)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{server.stdout.readline().strip()}/api/v1/messages"

        async def scenario() -> dict[str, Any]:
            # Warm: every code path of both downloads has run once on a small message.
            await download(f"{base}/{small}/package", token)
            await download(f"{base}/{small}/attachments/1", token)
            before = peak_rss(server.pid)
            digest, size = await download(f"{base}/{big}/attachments/1", token)
            after_attachment = peak_rss(server.pid)
            _, package_size = await download(f"{base}/{big}/package", token)
            return {
                "digest": digest,
                "size": size,
                "package_size": package_size,
                "attachment_growth": after_attachment - before,
                "package_growth": peak_rss(server.pid) - before,
            }

        seen = asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    assert (seen["digest"], seen["size"]) == (expected, SIZE)
    assert seen["package_size"] > SIZE
    assert seen["attachment_growth"] < GROWTH_LIMIT, seen
    assert seen["package_growth"] < GROWTH_LIMIT, seen

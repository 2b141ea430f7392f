"""What the acceptance tests share: whole gateways on real SQLite files, started in-process the way
``docgw serve`` starts them (``gateway.service._run``: secure inbox, delivery workers and the
scheduler's poll / sent-states jobs), talking to the simulators over real HTTP on loopback.

A gateway's configuration file is written by :func:`write_config` (its own SQLite file beside it);
:func:`running_node` builds it, fills its unit registry before it starts (so its first poll already
knows every sender) and serves until the ``async with`` block ends. :func:`docgw_serve` runs a
prepared gateway as a ``docgw serve`` process instead. Everything in-process runs on the test's
own event loop (``asyncio.run``): no pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiohttp import web

from connectors.simulators.soap_axis import DEFAULT_PATH, SoapAxisState, create_soap_app
from envelopes.attachments import AttachmentSource
from envelopes.metadata import DocumentRequest, parse_metadata
from gateway.bootstrap import Gateway, build
from gateway.service import _run
from gateway.settings import load_settings
from gateway.store import message_queries
from gateway.store.database import migrate
from gateway.store.records import RecipientRecord, UnitRecord
from gateway.store.tables import blob_chunks, blobs, messages, recipients
from gateway.usecases import registry, submit
from gateway.usecases.packages import load_to_spool

SENDER, RECIPIENT, OTHER = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14"
UNITS = (SENDER, RECIPIENT, OTHER)
A_SYSTEM, B_SYSTEM = "he-thong-a", "he-thong-b"
A_SECRET, B_SECRET = "bi-mat-cua-a", "bi-mat-cua-b"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def today() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------------- documents


def document_request(
    *,
    number: str,
    subject: str,
    classification: str = "thuong",
    to: Sequence[str] = (RECIPIENT,),
    sender: str = SENDER,
) -> DocumentRequest:
    """A công văn from ``sender``; ``number`` makes its DocumentId unique."""
    return parse_metadata(
        {
            "from": {"organ_id": sender, "organ_name": "Văn phòng Chính phủ"},
            "to": [{"organ_id": code, "organ_name": f"Đơn vị {code}"} for code in to],
            "code": {"number": number, "notation": "VPCP-TTĐT"},
            "promulgation": {"place": "Hà Nội", "date": today().isoformat()},
            "document_type": {"type": 1, "type_name": "Công văn"},
            "subject": subject,
            "content": "Nội dung kiểm thử đầu cuối.",
            "signer": {"competence": "KT. BỘ TRƯỞNG", "position": "Thứ trưởng", "full_name": "A"},
            "other_info": {"priority": 0},
            "business": {"doc_type": 0, "paper": 0},
            "classification": classification,
        },
        today=today(),
    )


def attachment(data: bytes, name: str = "van-ban.pdf") -> AttachmentSource:
    return AttachmentSource(name=name, open=lambda: io.BytesIO(data))


async def send_document(
    gateway: Gateway,
    *,
    number: str,
    subject: str,
    content: bytes = b"%PDF-1.7 noi dung",
    classification: str = "thuong",
    to: Sequence[str] = (RECIPIENT,),
) -> submit.Submitted:
    return await submit.submit_document(
        gateway,
        document_request(number=number, subject=subject, classification=classification, to=to),
        [attachment(content)],
        client="acceptance",
        actor="acceptance",
        idempotency_key=f"doc-{number}",
    )


def forms_of(secret: bytes) -> list[bytes]:
    """Every way ``secret`` can show in a package: as is, and base64-encoded at any alignment (an
    attachment travels as one line of base64 inside the package)."""
    forms = [secret]
    for skip in range(3):
        encoded = base64.b64encode(secret[skip:])
        forms.append(encoded[: len(encoded) - 4])  # drop the tail that depends on what follows
    return [form for form in forms if len(form) >= 8]


def leaked(secrets: Iterable[bytes], bodies: Iterable[bytes]) -> list[bytes]:
    """The secrets (in any of their forms) found in any body."""
    bodies = list(bodies)
    return [
        secret for secret in secrets if any(f in body for f in forms_of(secret) for body in bodies)
    ]


# ------------------------------------------------------------------------------------- config


def write_config(
    path: Path,
    *,
    keys_dir: Path,
    unit: str,
    channels: str,
    extra: str = "",
    retry: str = "base_seconds = 0.05\nmax_delay_seconds = 0.5\nmax_attempts = 200\n",
    send_timeout: float = 5.0,
    delivery: str = "",
    api_port: int | None = None,
    profile: str = "standard",
) -> Path:
    """One gateway's configuration: its own SQLite file beside the config, short waits."""
    api = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n' if api_port else ""
    path.write_text(
        api + f'[database]\nurl = "sqlite+aiosqlite:///{path.with_suffix(".db")}"\n'
        f'[gateway]\nprofile = "{profile}"\nlocal_units = ["{unit}"]\n'
        f'[keys]\ndir = "{keys_dir}"\n'
        "[delivery]\nidle_poll_seconds = 0.05\nlease_seconds = 30\n"
        f"send_timeout_seconds = {send_timeout}\n{delivery}"
        f"[retry]\n{retry}" + extra + channels,
        encoding="utf-8",
    )
    return path


def vxp_channel(endpoint: str, system_id: str, secret: str, *, name: str = "axis") -> str:
    return (
        f'[channels.{name}]\nkind = "vxp"\nendpoint = "{endpoint}"\n'
        f'system_id = "{system_id}"\nsecret = "{secret}"\n'
        "poll_seconds = 0.1\nsent_states_seconds = 0.25\n"
    )


def soap_channel(endpoint: str, *, name: str = "axis") -> str:
    return f'[channels.{name}]\nkind = "soap"\nendpoint = "{endpoint}"\npoll_seconds = 0.1\n'


@asynccontextmanager
async def soap_platform(state: SoapAxisState) -> AsyncIterator[str]:
    """The provincial SOAP platform simulator on a free loopback port; yields its service URL."""
    runner = web.AppRunner(create_soap_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{DEFAULT_PATH}"
    finally:
        await runner.cleanup()


def secure_channel(*, name: str = "secure") -> str:
    return f'[channels.{name}]\nkind = "secure"\n'


def secure_inbox(port: int) -> str:
    return f'[secure_inbox]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'


# -------------------------------------------------------------------------------------- nodes


@dataclass(frozen=True, kw_only=True)
class Peer:
    """A unit as one gateway's registry knows it."""

    code: str
    channel: str | None = "axis"
    secure_endpoint: str | None = None
    allows_tuyet_mat: bool = False


async def register(gateway: Gateway, peers: Sequence[Peer], keys_dir: Path) -> None:
    for peer in peers:
        await registry.register_unit(
            gateway,
            UnitRecord(
                code=peer.code,
                name=f"Đơn vị {peer.code}",
                channel=peer.channel,
                secure_endpoint=peer.secure_endpoint,
                allows_tuyet_mat=peer.allows_tuyet_mat,
                is_local=peer.code in gateway.signers,
            ),
            certificate_pem=(keys_dir / f"{peer.code}.cert.pem").read_text(),
            actor="acceptance",
        )


@asynccontextmanager
async def running_node(
    config: Path, peers: Sequence[Peer], keys_dir: Path, *, serve: bool = True
) -> AsyncIterator[Gateway]:
    """A gateway built from ``config`` with ``peers`` registered; while the block runs it serves
    as ``docgw serve`` would (without the REST API): workers, scheduler, secure inbox."""
    gateway = await build(load_settings(config, {}))
    try:
        await migrate(gateway.engine)
        await register(gateway, peers, keys_dir)
        if not serve:
            yield gateway
            return
        stop = asyncio.Event()
        service = asyncio.create_task(_run(gateway, stop, False))
        try:
            await asyncio.sleep(0)
            yield gateway
        finally:
            stop.set()
            await service
    finally:
        await gateway.close()


DOCGW = Path(sys.executable).parent / "docgw"


@asynccontextmanager
async def docgw_serve(config: Path, *, startup_timeout: float = 30) -> AsyncIterator[Path]:
    """``docgw --config CONFIG serve`` as a process of its own (its database prepared by
    :func:`running_node` with ``serve=False``). Yields its log file; stops it with SIGTERM (as an
    init system would) and checks that it stopped cleanly."""
    log = config.with_suffix(".log")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    }
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(DOCGW), "--config", str(config), "serve", stdout=out, stderr=out, env=env
        )

    async def serving() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"docgw serve exited {process.returncode}: {tail(log)}")
        return b"docgw serving" in log.read_bytes()

    try:
        await eventually(serving, timeout=startup_timeout, what=f"docgw serve ({config.name})")
        yield log
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise AssertionError(f"docgw serve did not stop on SIGTERM: {tail(log)}") from None
    assert process.returncode == 0, f"docgw serve exited {process.returncode}: {tail(log)}"


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, interval: float = 0.05
) -> float:
    """Wait until ``check()`` holds; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - started


# ------------------------------------------------------------------------------------ looking


async def rows(gateway: Gateway, statement: Any) -> list[Any]:
    async with gateway.engine.connect() as conn:
        return list((await conn.execute(statement)).all())


async def received_documents(gateway: Gateway) -> list[Any]:
    """Documents this gateway received and stored (direction 'in', kind 'document')."""
    return await rows(
        gateway,
        sa.select(messages).where(messages.c.direction == "in", messages.c.kind == "document"),
    )


async def recipients_of(gateway: Gateway, message_id: str) -> list[RecipientRecord]:
    async with gateway.engine.connect() as conn:
        return await message_queries.get_recipients(conn, message_id)


async def recipient_rows(gateway: Gateway, message_id: str) -> list[Any]:
    return await rows(gateway, sa.select(recipients).where(recipients.c.message_id == message_id))


async def package_of(gateway: Gateway, sha256: str) -> bytes:
    async with gateway.engine.connect() as conn:
        spooled = await load_to_spool(conn, sha256)
    try:
        return spooled.read()
    finally:
        spooled.close()


async def states(gateway: Gateway, message_id: str) -> dict[str, tuple[str, str | None]]:
    """unit → (transport state, business status) for one sent message."""
    return {
        r.unit_code: (r.state.value, r.business_status)
        for r in await recipients_of(gateway, message_id)
    }


async def stored_bytes(gateway: Gateway) -> list[bytes]:
    """Every package byte this gateway's database holds (inline blobs and chunks)."""
    inline = await rows(gateway, sa.select(blobs.c.data).where(blobs.c.data.is_not(None)))
    chunks = await rows(gateway, sa.select(blob_chunks.c.data))
    return [bytes(r.data) for r in (*inline, *chunks)]

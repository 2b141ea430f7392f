"""Submitting a large classified document keeps the gateway responsive: its copies (one sealed for
the sender, one for each recipient's current certificate) are sealed off the event loop and with
no database connection held (before the write transaction), and stored sealed — never the
plaintext.

Real databases (SQLite file and PostgreSQL), a 100 MB attachment, the real secure channel's
routing, real sealing (each call of ``envelopes.sealing.seal_stream`` is watched, not replaced:
which thread, how many pooled connections are out). On PostgreSQL a ticker task also bounds the
event loop's largest stall (the delay of a 10 ms sleep) while the package is built, sealed and
stored. Not on SQLite: its statements run on the loop's thread (``store/database.py``: the inline
engine), so there the loop's stalls while a 100 MB package is stored are the database's writes
(and its commit), which the sealing must not lengthen — it holds no connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from integration_support import EXAMPLES, RECIPIENT, SENDER
from secure_peers import NOWHERE, make_pki, register, secure_gateway

from envelopes import sealing
from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.bootstrap import Gateway
from gateway.store import blobs
from gateway.store.database import is_sqlite
from gateway.store.tables import messages, recipients
from gateway.usecases import submit
from gateway.usecases.statuses import VIETNAM

MIB = 1024 * 1024
SIZE = 100 * MIB
TICK = 0.01
#: What the loop may stall for at most (whole-package work on it takes seconds at 100 MB).
STALL = 1.0


@pytest.fixture(scope="module")
def big_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "lon.pdf"
    with path.open("wb") as out:
        out.write(b"%PDF-1.7\n")
        block = bytes(range(256)) * (4 * MIB // 256)
        for _ in range(SIZE // len(block)):
            out.write(block)
    return path


def cert_of(keys_dir: Path, unit: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((keys_dir / f"{unit}.cert.pem").read_bytes())


async def worst_lag(stop: asyncio.Event) -> float:
    """The largest delay of a ``TICK`` sleep until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK)
        worst = max(worst, loop.time() - before - TICK)
    return worst


async def submit_big(gateway: Gateway, path: Path) -> submit.Submitted:
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta.update(classification="mat", code={"number": "900", "notation": "VPCP-TTĐT"})
    meta["to"] = [{"organ_id": RECIPIENT, "organ_name": "Đơn vị nhận"}]
    request = parse_metadata(meta, today=dt.datetime.now(VIETNAM).date())
    attachment = AttachmentSource(name="lon.pdf", open=lambda: path.open("rb"))
    return await submit.submit_document(gateway, request, [attachment], client="test", actor="test")


@pytest.mark.slow
def test_a_100_mb_classified_submission_seals_off_the_loop_and_with_no_connection_held(
    make_gateway: Any,
    keys_dir: Path,
    big_pdf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pki = make_pki(tmp_path)
    engines: list[Any] = []
    seals: list[tuple[bool, int]] = []
    seal_stream = sealing.seal_stream

    def watched(*args: Any, **kwargs: Any) -> None:
        on_loop = threading.current_thread() is threading.main_thread()
        seals.append((on_loop, engines[0].pool.checkedout()))
        seal_stream(*args, **kwargs)

    monkeypatch.setattr(sealing, "seal_stream", watched)

    async def scenario() -> None:
        async with secure_gateway(make_gateway, pki) as gw:
            engines.append(gw.engine)
            await register(gw, secure_endpoint=NOWHERE)
            stop = asyncio.Event()
            ticker = asyncio.create_task(worst_lag(stop))
            await asyncio.sleep(TICK * 3)
            try:
                submitted = await submit_big(gw, big_pdf)
            finally:
                stop.set()
            lag = await ticker
            assert submitted.state == "queued"
            assert [(r.recipient, r.channel) for r in submitted.routes] == [(RECIPIENT, "secure")]
            # Two copies (the sender's, the recipient's), each sealed in a thread while no
            # connection was out of the pool.
            assert seals == [(False, 0), (False, 0)]
            if not is_sqlite(gw.engine):
                # Whole-package work on the loop (building, sealing a copy) stalls it for a
                # second or more; what remains are the chunked writes and the threads' turns.
                assert lag < STALL, lag

            # Stored sealed: the message's copy for the sender, the recipient's for its unit.
            async with gw.engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(
                            messages.c.package_sha256.label("own_sha256"),
                            messages.c.subject,
                            recipients.c.package_sha256.label("copy_sha256"),
                            recipients.c.state,
                        )
                        .join(recipients, recipients.c.message_id == messages.c.id)
                        .where(messages.c.id == submitted.message_id)
                    )
                ).one()
                own_head = await blobs.read_first_chunk(conn, row.own_sha256)
                copy_head = await blobs.read_first_chunk(conn, row.copy_sha256)
            assert row.subject is None
            assert row.state == "queued"
            assert sealing.read_seal_header(own_head).is_for(cert_of(keys_dir, SENDER))
            assert sealing.read_seal_header(copy_head).is_for(cert_of(keys_dir, RECIPIENT))

    asyncio.run(scenario())

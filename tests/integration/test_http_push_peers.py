"""Peer push between two gateways (issue 13): gateway A's ``http_push`` channel posts to gateway
B's ``/api/v1/inbox`` — B's real API on loopback — with the token its configuration takes from the
environment, and B stores the document once it has verified it. A wrong token ends the recipient
at once with ``PEER_UNAUTHORIZED`` (not retried as a transport error); a channel without a token
does not start. Real databases (SQLite file and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from integration_support import RECIPIENT, SENDER, register_all, write_config
from secure_peers import drain, send

from gateway.bootstrap import Gateway, build
from gateway.domain.lifecycle import TransportState
from gateway.settings import SettingsError, load_settings
from gateway.store import message_queries
from gateway.store.database import migrate
from gateway.store.records import UnitRecord
from gateway.store.tables import attempts, messages, recipients
from gateway.usecases import registry, tokens
from gateway.web.app import create_app

TOKEN_VARIABLE = "DOCGW_CHANNELS__PEER__TOKEN"


def peer_channel(endpoint: str) -> str:
    """The channel as an operator writes it: no token in the file."""
    return f'[channels.peer]\nkind = "http_push"\nendpoint = "{endpoint}"\n'


@asynccontextmanager
async def gateway_from(
    config: Path, environ: dict[str, str], keys_dir: Path
) -> AsyncIterator[Gateway]:
    """A gateway as ``docgw serve`` builds it: its settings from the file and the environment."""
    gateway = await build(load_settings(config, environ))
    try:
        await migrate(gateway.engine)
        await register_all(gateway, keys_dir)
        yield gateway
    finally:
        await gateway.close()


@asynccontextmanager
async def two_gateways(
    urls: tuple[str, str], keys_dir: Path, tmp_path: Path, token_of_a: Callable[[str], str]
) -> AsyncIterator[tuple[Gateway, Gateway, str]]:
    """B (RECIPIENT's gateway, its API on loopback) and A (SENDER's, pushing to B's inbox with
    ``token_of_a(the operator token B issued)`` from its environment), each on its own database
    of ``urls``. Yields (a, b, b's token)."""
    databases = dict(zip(("a", "b"), urls, strict=True))

    def config(name: str, unit: str, extra: str = "") -> Path:
        return write_config(
            tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.toml",
            database_url=databases[name],
            keys_dir=keys_dir,
            local_units=(unit,),
            extra=extra,
        )

    async with gateway_from(config("b", RECIPIENT), {}, keys_dir) as b:
        issued = await tokens.create_token(b, name="gateway-a", role="operator")
        async with TestServer(create_app(b), host="127.0.0.1") as server:
            inbox = str(server.make_url("/api/v1/inbox"))
            environ = {TOKEN_VARIABLE: token_of_a(issued)}
            async with gateway_from(
                config("a", SENDER, peer_channel(inbox)), environ, keys_dir
            ) as a:
                await registry.register_unit(
                    a,
                    UnitRecord(code=RECIPIENT, name="", channel="peer"),
                    certificate_pem=None,
                    actor="admin",
                    given=("channel",),
                )
                yield a, b, issued


async def recipient_outcome(
    gateway: Gateway, message_id: str
) -> tuple[TransportState, str | None, list[str | None]]:
    async with gateway.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(recipients.c.id, recipients.c.state, recipients.c.remote_id).where(
                    recipients.c.message_id == message_id
                )
            )
        ).one()
        codes = await conn.scalars(
            sa.select(attempts.c.error_code).where(attempts.c.recipient_id == row.id)
        )
        return TransportState(row.state), row.remote_id, list(codes)


async def received(gateway: Gateway) -> list[Any]:
    async with gateway.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(messages.c.id, messages.c.sender, messages.c.document_id, messages.c.kind)
            .where(messages.c.direction == "in")
            .order_by(messages.c.created_at)
        )
        return list(rows)


def test_a_document_pushed_from_a_reaches_bs_inbox_and_is_verified_there(
    databases: Callable[[], str], keys_dir: Path, tmp_path: Path
) -> None:
    urls = (databases(), databases())  # made before the event loop runs (PostgreSQL: CREATE)

    async def scenario() -> None:
        async with two_gateways(urls, keys_dir, tmp_path, lambda issued: issued) as (a, b, _):
            message_id = await send(a, "thuong", "701")
            await drain(a)
            state, remote_id, codes = await recipient_outcome(a, message_id)
            assert (state, codes) == (TransportState.SENT, [None])
            [document] = await received(b)
            assert document.id == remote_id  # B's answer: the id it stored the document under
            assert (document.sender, document.kind) == (SENDER, "document")
            async with a.engine.connect() as conn:
                ours = await message_queries.get_message(conn, message_id)
            async with b.engine.connect() as conn:
                stored = await message_queries.get_message(conn, document.id)
            assert ours is not None and stored is not None
            assert stored.document_id == ours.document_id
            assert stored.subject == ours.subject
            # Verified and taken in: B's local unit has it, and B answers 01 to the sender.
            assert [(r.unit_code, r.business_status) for r in stored.recipients] == [
                (RECIPIENT, "01")
            ]

    asyncio.run(scenario())


@pytest.mark.parametrize("token", ["wrong", "revoked"])
def test_a_refused_token_fails_the_recipient_with_its_code_after_one_attempt(
    databases: Callable[[], str], keys_dir: Path, tmp_path: Path, token: str
) -> None:
    urls = (databases(), databases())  # made before the event loop runs (PostgreSQL: CREATE)

    def token_of_a(issued: str) -> str:
        return issued if token == "revoked" else "not-the-token-b-issued"

    async def scenario() -> None:
        async with two_gateways(urls, keys_dir, tmp_path, token_of_a) as (a, b, _):
            if token == "revoked":
                await tokens.revoke_token(b, "gateway-a")
            message_id = await send(a, "thuong", "702")
            await drain(a)
            state, remote_id, codes = await recipient_outcome(a, message_id)
            assert (state, remote_id) == (TransportState.FAILED, None)
            assert codes == ["PEER_UNAUTHORIZED"]  # final at once: no retries spent on it
            assert await received(b) == []

    asyncio.run(scenario())


def test_an_http_push_channel_without_its_token_does_not_start(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(peer_channel("http://127.0.0.1:9/api/v1/inbox"), encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        load_settings(config, {})
    assert refused.value.code == "CONFIG_INVALID"
    assert refused.value.element == "channels.peer.token"
    assert TOKEN_VARIABLE in refused.value.message
    # From the environment, kept exactly as written, and never shown.
    settings = load_settings(config, {TOKEN_VARIABLE: "0123456789"})
    assert settings.channel("peer").token == "0123456789"
    assert "0123456789" not in repr(settings)

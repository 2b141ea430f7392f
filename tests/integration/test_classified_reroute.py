"""An operator's re-route never bends the classified routing policy (DOMAIN.md §6), on real
databases (SQLite file and PostgreSQL) and over the real HTTP API.

The gateway has the axis (a fake axis connector), a ``kind = "secure"`` channel whose connector is
replaced by an in-memory fake (a test double of the configured secure channel: the configuration
says what the channel is, the fake only records what it was handed) and an ``http_push`` channel.
A held classified recipient may be re-routed only where its first routing could have sent it: a
secure channel, to its registered secure endpoint, and for tuyet_mat with its explicit permission.
Anything else is REROUTE_REFUSED and changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from integration_support import RECIPIENT, SENDER
from secure_peers import drain, refused_over_api, register, send, snapshot

from connectors.base import ClassifiedRefused, Delivery
from connectors.fake import FakeConnector, Scripted
from connectors.http_push import HttpPushConnector
from envelopes.dgwseal1 import MAGIC
from envelopes.model import Classification
from envelopes.sealing import SealFormat, sniff
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.store.tables import recipients
from gateway.usecases import operations
from gateway.usecases.operations import RerouteRefused

ENDPOINT = "https://gw-h41.example.gov.vn:8443/inbox"
CHANNELS = (
    '[channels.secure]\nkind = "secure"\n'
    '[channels.lan]\nkind = "http_push"\nendpoint = "http://127.0.0.1:9/api/v1/inbox"\n'
    'token = "t"\n'
)


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


async def where_is(gateway: Gateway, message_id: str) -> tuple[TransportState, str | None]:
    """The one recipient's state and channel."""
    async with gateway.engine.connect() as conn:
        [row] = (
            await conn.execute(
                sa.select(recipients.c.state, recipients.c.channel).where(
                    recipients.c.message_id == message_id
                )
            )
        ).all()
    return TransportState(row.state), row.channel


@pytest.fixture
def gateway_with_secure_channel(make_gateway: Any) -> Callable[..., Any]:
    axis = FakeConnector(name="axis", is_axis=True)
    secure, lan = FakeConnector(name="secure"), FakeConnector(name="lan")

    def factory() -> Any:
        return make_gateway(connectors={"axis": axis, "secure": secure, "lan": lan}, extra=CHANNELS)

    factory.axis = axis  # type: ignore[attr-defined]
    factory.secure = secure  # type: ignore[attr-defined]
    factory.lan = lan  # type: ignore[attr-defined]
    return factory


def test_a_held_mat_to_a_unit_without_a_secure_endpoint_cannot_be_rerouted(
    gateway_with_secure_channel: Any,
) -> None:
    async def scenario() -> None:
        async with gateway_with_secure_channel() as gateway:
            assert gateway.channels["secure"].is_secure
            message_id = await send(gateway, "mat", "401")
            await drain(gateway)
            assert await where_is(gateway, message_id) == (TransportState.HELD, None)
            before = await snapshot(gateway)

            for channel in ("secure", "lan", "axis"):
                with pytest.raises(RerouteRefused) as refused:
                    await operations.reroute(
                        gateway, message_id, channel=channel, reason="thử", actor="operator"
                    )
                assert refused.value.code == "REROUTE_REFUSED"
                assert refused.value.element == "channel"
                assert RECIPIENT in refused.value.message
                expected = (
                    "needs a secure endpoint"
                    if channel == "secure"
                    else f"may only take a secure channel; {channel} is not one"
                )
                assert expected in refused.value.message, refused.value.message
                assert await snapshot(gateway) == before
            await drain(gateway)
            for fake in (gateway_with_secure_channel.axis, gateway_with_secure_channel.secure):
                assert fake.deliveries == []

            # Once the unit has a registered secure endpoint, the same re-route is accepted, and
            # the package goes to that endpoint, sealed.
            await register(gateway, secure_endpoint=ENDPOINT)
            await operations.reroute(
                gateway, message_id, channel="secure", reason="đã đăng ký", actor="operator"
            )
            await drain(gateway)
            [sent] = gateway_with_secure_channel.secure.deliveries
            [package] = gateway_with_secure_channel.secure.packages
            assert (sent.endpoint, sent.recipients) == (ENDPOINT, (RECIPIENT,))
            assert sniff(package) is SealFormat.CMS
            assert await where_is(gateway, message_id) == (TransportState.SENT, "secure")

    run(scenario)


def test_a_held_tuyet_mat_cannot_be_rerouted_until_its_route_allows_it(
    gateway_with_secure_channel: Any,
) -> None:
    async def scenario() -> None:
        async with gateway_with_secure_channel() as gateway:
            await register(gateway, secure_endpoint=ENDPOINT)
            message_id = await send(gateway, "tuyet_mat", "402")
            assert await where_is(gateway, message_id) == (TransportState.HELD, None)
            before = await snapshot(gateway)

            with pytest.raises(RerouteRefused, match="tuyet_mat is not explicitly allowed"):
                await operations.reroute(
                    gateway, message_id, channel="secure", reason="gấp", actor="operator"
                )
            assert await snapshot(gateway) == before
            await drain(gateway)
            assert gateway_with_secure_channel.secure.deliveries == []

            # Mật to the same unit goes: only Tuyệt mật needs the permission.
            await send(gateway, "mat", "403")
            await drain(gateway)
            assert len(gateway_with_secure_channel.secure.deliveries) == 1

            await register(gateway, allows_tuyet_mat=True)
            await operations.reroute(
                gateway, message_id, channel="secure", reason="đã được phép", actor="operator"
            )
            await drain(gateway)
            sent = gateway_with_secure_channel.secure.deliveries[-1]
            assert (sent.message_id, sent.endpoint) == (message_id, ENDPOINT)
            assert sent.classification is Classification.TUYET_MAT
            assert await where_is(gateway, message_id) == (TransportState.SENT, "secure")

    run(scenario)


def test_the_api_answers_a_refused_reroute_409_and_changes_nothing(
    gateway_with_secure_channel: Any,
) -> None:
    async def scenario() -> None:
        async with gateway_with_secure_channel() as gateway:
            message_id = await send(gateway, "toi_mat", "404")
            await refused_over_api(
                gateway,
                f"/api/v1/messages/{message_id}/reroute",
                {"channel": "secure", "reason": "thử"},
                "REROUTE_REFUSED",
                "needs a secure endpoint",
            )

    run(scenario)


def test_an_unclassified_reroute_still_takes_any_configured_channel(
    gateway_with_secure_channel: Any,
) -> None:
    async def scenario() -> None:
        async with gateway_with_secure_channel() as gateway:
            gateway_with_secure_channel.axis.script.append(Scripted.REFUSED)
            message_id = await send(gateway, "thuong", "405")
            await drain(gateway)
            assert await where_is(gateway, message_id) == (TransportState.FAILED, "axis")
            await operations.reroute(
                gateway, message_id, channel="lan", reason="trục từ chối", actor="operator"
            )
            await drain(gateway)
            assert await where_is(gateway, message_id) == (TransportState.SENT, "lan")
            [sent] = gateway_with_secure_channel.lan.deliveries
            assert sent.message_id == message_id

    run(scenario)


def test_http_push_refuses_a_classified_package_before_connecting() -> None:
    """Configuration refuses ``secure = true`` on http_push; the connector refuses again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = MAGIC + b"\x00" * 64
    opened: list[bool] = []

    def open_package() -> io.BytesIO:
        opened.append(True)
        return io.BytesIO(data)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            push = HttpPushConnector(
                name="lan", endpoint=f"http://127.0.0.1:{port}/api/v1/inbox", session=session
            )
            for level in (Classification.MAT, Classification.TOI_MAT, Classification.TUYET_MAT):
                with pytest.raises(ClassifiedRefused, match="not a secure-network channel"):
                    await push.deliver(
                        Delivery(
                            message_id="m",
                            document_id="d",
                            kind="document",
                            sender=SENDER,
                            recipients=(RECIPIENT,),
                            classification=level,
                            open_package=open_package,
                            package_size=len(data),
                            package_sha256=hashlib.sha256(data).hexdigest(),
                            attempt=1,
                            endpoint=ENDPOINT,
                        )
                    )
        assert opened == []  # refused before the package was even opened

    run(scenario)

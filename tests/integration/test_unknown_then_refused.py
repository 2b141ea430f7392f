""" "Outcome unknown, never refused" across attempts, against the axis simulator over real HTTP.

Attempt 1's sendEdoc is committed by the axis and the connection dropped before the answer: the
outcome is unknown, the recipient ``unconfirmed`` — and the axis holds the package. A later
attempt — a new call — that the axis refuses (code 23, receiver locked; code 15, the system's
secret changed), or running out of attempts, cannot say the document was not delivered: the
recipient fails as ``MAYBE_DELIVERED`` (its reason says the peer may hold an earlier copy), not
as a plain refusal. A transport error in between keeps it ``unconfirmed``. Nothing settles it by
itself: the axis' per-recipient states (getSentEdocList) are asked by the DocId an answer carries,
which the dropped attempt never returned.

Real databases (SQLite file and PostgreSQL), docgw's VxpConnector and the axis simulator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from integration_support import RECIPIENT, SENDER
from secure_peers import drain, send

from connectors.simulators.axis import AxisFaults, AxisState, running_axis
from connectors.vxp import VxpConnector
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import MAYBE_DELIVERED, RetryPolicy
from gateway.store.tables import attempts, recipients

A_SYSTEM, B_SYSTEM = "he-thong-a", "he-thong-b"
A_SECRET, B_SECRET = b"secret-of-a", b"secret-of-b"
#: The axis takes the package, then drops the connection before it answers.
COMMIT_THEN_DROP = AxisFaults(timeout_after_commit_rate=1.0, drop_connection=True)


@dataclass
class Setup:
    gateway: Gateway
    axis: AxisState
    vxp: VxpConnector


@asynccontextmanager
async def on_the_axis(make_gateway: Any, *, max_attempts: int = 50) -> AsyncIterator[Setup]:
    """A gateway whose channel "axis" is docgw's VxpConnector (one request per call: each attempt
    of the outbox is one sendEdoc) to a fresh axis simulator that drops attempt 1 after commit.
    The gateway's clock stands still: :func:`later` makes the retry due."""
    state = AxisState(seed=7)
    state.add_system(A_SYSTEM, A_SECRET, [SENDER])
    state.add_system(B_SYSTEM, B_SECRET, [RECIPIENT])
    state.set_faults(COMMIT_THEN_DROP)
    async with (
        running_axis(state, shutdown_timeout=1.0) as url,
        aiohttp.ClientSession() as session,
    ):
        vxp = VxpConnector(
            name="axis",
            endpoint=url,
            system_id=A_SYSTEM,
            secret=A_SECRET,
            session=session,
            timeout=5.0,
            attempts=1,
        )
        async with make_gateway(connectors={"axis": vxp}) as gateway:
            gateway.retry_policies["axis"] = RetryPolicy(
                base_seconds=0.05, max_delay_seconds=0.2, max_attempts=max_attempts
            )
            later(gateway, hours=0)
            yield Setup(gateway=gateway, axis=state, vxp=vxp)


def later(gateway: Gateway, hours: float = 2) -> None:
    now = gateway.clock() + dt.timedelta(hours=hours)
    gateway.clock = lambda: now


@dataclass(frozen=True)
class Recipient:
    state: TransportState
    last_error: str | None
    remote_id: str | None
    #: (outcome, error_code) of each attempt, in order.
    attempts: list[tuple[str, str | None]]


async def recipient(gateway: Gateway, message_id: str) -> Recipient:
    async with gateway.engine.connect() as conn:
        row = (
            await conn.execute(sa.select(recipients).where(recipients.c.message_id == message_id))
        ).one()
        made = (
            await conn.execute(
                sa.select(attempts.c.outcome, attempts.c.error_code)
                .where(attempts.c.recipient_id == row.id)
                .order_by(attempts.c.id)
            )
        ).all()
    return Recipient(
        state=TransportState(row.state),
        last_error=row.last_error,
        remote_id=row.remote_id,
        attempts=[(outcome, code) for outcome, code in made],
    )


async def attempt_one_unknown(setup: Setup) -> str:
    """Submit a document; its first attempt is committed by the axis and cut off."""
    message_id = await send(setup.gateway, "thuong", "801")
    await drain(setup.gateway)
    first = await recipient(setup.gateway, message_id)
    assert first.state is TransportState.UNCONFIRMED
    assert first.attempts == [("outcome_unknown", "PEER_OUTCOME_UNKNOWN")]
    assert setup.axis.counters["packages"] == 1  # the axis holds attempt 1's copy
    setup.axis.set_faults(AxisFaults())
    return message_id


def refuse(axis: AxisState, code: str) -> None:
    if code == "23":
        axis.locked_units.add(RECIPIENT)
    else:
        axis.add_system(A_SYSTEM, b"rotated", [SENDER])


async def assert_maybe_delivered(
    setup: Setup, message_id: str, last: str, *, copies: int = 1
) -> Recipient:
    """Failed as MAYBE_DELIVERED, saying ``last``; the axis holds the ``copies`` the unknown
    attempts left, from SENDER; the axis-state poll cannot settle it (no DocId was learnt)."""
    ended = await recipient(setup.gateway, message_id)
    assert ended.state is TransportState.FAILED
    assert ended.last_error is not None
    assert ended.last_error.startswith(f"{MAYBE_DELIVERED}: "), ended.last_error
    assert "the peer may hold that copy" in ended.last_error
    assert last in ended.last_error, ended.last_error
    assert setup.axis.counters["packages"] == copies
    assert [item.from_code for item in setup.axis.items.values()] == [SENDER] * copies
    assert ended.remote_id is None
    return ended


@pytest.mark.parametrize("code", ["23", "15"], ids=["receiver-locked", "secret-changed"])
def test_a_refusal_after_an_unknown_outcome_fails_as_maybe_delivered(
    make_gateway: Any, code: str
) -> None:
    async def scenario() -> None:
        async with on_the_axis(make_gateway) as setup:
            message_id = await attempt_one_unknown(setup)
            refuse(setup.axis, code)
            later(setup.gateway)
            await drain(setup.gateway)
            ended = await assert_maybe_delivered(
                setup, message_id, f"refused by the peer: axis code {code}: "
            )
            assert ended.attempts[1] == ("business_error", "PEER_REFUSED")

    asyncio.run(scenario())


def test_a_transport_error_after_an_unknown_outcome_stays_unconfirmed(make_gateway: Any) -> None:
    """Unknown, then busy (503), then refused: the busy attempt does not forget attempt 1."""

    async def scenario() -> None:
        async with on_the_axis(make_gateway) as setup:
            message_id = await attempt_one_unknown(setup)
            setup.axis.set_faults(AxisFaults(burst_5xx=1))
            later(setup.gateway)
            await drain(setup.gateway)
            busy = await recipient(setup.gateway, message_id)
            assert busy.state is TransportState.UNCONFIRMED, busy
            assert busy.attempts[1] == ("transport_error", "PEER_UNAVAILABLE")

            refuse(setup.axis, "23")
            later(setup.gateway)
            await drain(setup.gateway)
            ended = await assert_maybe_delivered(setup, message_id, "axis code 23")
            assert [outcome for outcome, _ in ended.attempts] == [
                "outcome_unknown",
                "transport_error",
                "business_error",
            ]

    asyncio.run(scenario())


@pytest.mark.parametrize("then", ["busy", "unknown"])
def test_giving_up_after_an_unknown_outcome_fails_as_maybe_delivered(
    make_gateway: Any, then: str
) -> None:
    async def scenario() -> None:
        async with on_the_axis(make_gateway, max_attempts=2) as setup:
            message_id = await attempt_one_unknown(setup)
            setup.axis.set_faults(AxisFaults(burst_5xx=1) if then == "busy" else COMMIT_THEN_DROP)
            later(setup.gateway)
            await drain(setup.gateway)
            # An unknown attempt 2 was taken by the axis as well: two copies (B keeps one).
            copies = 2 if then == "unknown" else 1
            ended = await assert_maybe_delivered(
                setup, message_id, "gave up after 2 attempts", copies=copies
            )
            assert len(ended.attempts) == 2

    asyncio.run(scenario())


def test_a_refusal_with_no_unknown_outcome_before_it_is_a_plain_refusal(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        async with on_the_axis(make_gateway) as setup:
            setup.axis.set_faults(AxisFaults())
            refuse(setup.axis, "23")
            message_id = await send(setup.gateway, "thuong", "802")
            await drain(setup.gateway)
            ended = await recipient(setup.gateway, message_id)
            assert ended.state is TransportState.FAILED
            assert ended.last_error is not None
            assert ended.last_error.startswith("refused by the peer: axis code 23: ")
            assert setup.axis.counters["packages"] == 0

    asyncio.run(scenario())

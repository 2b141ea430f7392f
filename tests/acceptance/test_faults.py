"""Proof 2: at-least-once sending + receiver-side deduplication = exactly once, under faults.

1,000 documents go from gateway A to gateway B through the VXP simulator while it answers 30% of
all requests (sends, polls, downloads, acknowledgements — both gateways') with a 5xx, commits some
sends and then hangs past A's send timeout (A must resend the SAME package), queues and lists
some packages twice, and is down for a while in the middle (set at run time through
``POST /_sim/faults``). Retries are short and durable (in each gateway's SQLite file). The two
gateways run as ``docgw serve`` processes (so the two cores work in parallel); this process runs
the simulator, prepares both databases, submits the documents and reads the results.

In the end B holds each of the 1,000 documents exactly once (its messages table: direction 'in',
kind 'document', 1,000 distinct DocumentIds, one 01 sent for each) and A shows every recipient
``sent`` at business status 01 — although the axis delivered more than 1,000 copies.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from harness import (
    A_SECRET,
    A_SYSTEM,
    B_SECRET,
    B_SYSTEM,
    RECIPIENT,
    SENDER,
    Peer,
    docgw_serve,
    eventually,
    free_port,
    rows,
    running_node,
    send_document,
    vxp_channel,
    write_config,
)

from connectors.simulators.axis import AxisFaults, AxisState, running_axis
from gateway.bootstrap import Gateway
from gateway.store.tables import attempts, messages, recipients

#: ACCEPTANCE_DOCUMENTS=200 makes a quick local run; the proof is 1,000.
DOCUMENTS = int(os.environ.get("ACCEPTANCE_DOCUMENTS", "1000"))
SEND_TIMEOUT = 0.3
FAULTS = AxisFaults(
    error_rate=0.3,
    timeout_after_commit_rate=0.02,
    hang_seconds=2.0,  # past A's send timeout: A cannot know the axis committed
    duplicate_delivery_rate=0.05,
)
RETRY = "base_seconds = 0.05\nmax_delay_seconds = 0.5\nmax_attempts = 10000\njitter = 0.5\n"
DELIVERY = "batch_size = 50\nworkers = 2\n"
#: The axis down (1.5 s) opens each gateway's breaker: probes as short as the retries, and the
#: backlog drains a batch per slice.
BREAKER = "[alerts]\nbreaker_probe_seconds = 0.5\ndrain_batch = 50\ndrain_interval_seconds = 0.1\n"


async def count(gateway: Gateway, statement: sa.Select[tuple[int]]) -> int:
    async with gateway.engine.connect() as conn:
        return int(await conn.scalar(statement) or 0)


DOCUMENTS_IN = (
    sa.select(sa.func.count())
    .select_from(messages)
    .where(messages.c.direction == "in", messages.c.kind == "document")
)


def out_documents_at(status: str) -> sa.Select[tuple[int]]:
    return (
        sa.select(sa.func.count())
        .select_from(recipients.join(messages, messages.c.id == recipients.c.message_id))
        .where(
            messages.c.direction == "out",
            messages.c.kind == "document",
            recipients.c.state == "sent",
            recipients.c.business_status == status,
        )
    )


async def submit_all(a: Gateway, numbers: range) -> list[str]:
    """Submit concurrently (building and signing run in threads), a few at a time."""
    gate = asyncio.Semaphore(8)

    async def one(number: int) -> str:
        async with gate:
            submitted = await send_document(
                a,
                number=str(number),
                subject=f"V/v kiểm thử chịu lỗi số {number}",
                content=b"%PDF-1.7 tai lieu " + str(number).encode(),
            )
            return submitted.document_id

    return list(await asyncio.gather(*(one(n) for n in numbers)))


async def down_for(url: str, seconds: float) -> None:
    async with aiohttp.ClientSession() as session:
        change = {"down_until": time.time() + seconds}
        async with session.post(f"{url}/_sim/faults", json=change) as answer:
            assert answer.status == 200
            assert (await answer.json())["error_rate"] == FAULTS.error_rate


@pytest.mark.slow
def test_a_thousand_documents_arrive_exactly_once_under_faults(
    keys_dir: Path, tmp_path: Path
) -> None:
    timings: dict[str, float] = {}

    async def scenario() -> None:
        axis = AxisState(seed=2, record_bodies=False, faults=FAULTS)
        axis.add_system(A_SYSTEM, A_SECRET.encode(), [SENDER])
        axis.add_system(B_SYSTEM, B_SECRET.encode(), [RECIPIENT])
        async with running_axis(axis, shutdown_timeout=0.5) as url:
            configs = {
                unit: write_config(
                    tmp_path / f"{name}.toml",
                    keys_dir=keys_dir,
                    unit=unit,
                    channels=vxp_channel(url, system, secret),
                    retry=RETRY,
                    send_timeout=SEND_TIMEOUT,
                    delivery=DELIVERY,
                    extra=BREAKER,
                    api_port=free_port(),
                )
                for name, unit, system, secret in (
                    ("a", SENDER, A_SYSTEM, A_SECRET),
                    ("b", RECIPIENT, B_SYSTEM, B_SECRET),
                )
            }
            peers = [Peer(code=SENDER), Peer(code=RECIPIENT)]
            started = time.monotonic()
            # Both databases are prepared here; the gateways then run as `docgw serve` processes
            # (the two cores work in parallel), and this process reads their SQLite files.
            async with (
                running_node(configs[SENDER], peers, keys_dir, serve=False) as a,
                running_node(configs[RECIPIENT], peers, keys_dir, serve=False) as b,
            ):
                document_ids = await submit_all(a, range(1, DOCUMENTS + 1))
                timings["submitted"] = time.monotonic() - started
                assert len(set(document_ids)) == DOCUMENTS
                async with docgw_serve(configs[RECIPIENT]), docgw_serve(configs[SENDER]):

                    async def a_third_arrived() -> bool:
                        return await count(b, DOCUMENTS_IN) >= DOCUMENTS // 3

                    await eventually(a_third_arrived, timeout=120, what="a third at B")
                    timings["a third at B"] = time.monotonic() - started
                    await down_for(url, 1.5)

                    async def all_answered() -> bool:
                        return await count(a, out_documents_at("01")) == DOCUMENTS

                    await eventually(all_answered, timeout=150, what="01 for every document")
                    timings["answered"] = time.monotonic() - started
                await _exactly_once(a, b, document_ids)
                outcomes = await _attempts_by_outcome(a)
                _faults_happened(axis, outcomes)

    asyncio.run(scenario())
    print(f"\n{DOCUMENTS} documents, seconds: { {k: round(v, 1) for k, v in timings.items()} }")


async def _exactly_once(a: Gateway, b: Gateway, document_ids: list[str]) -> None:
    received = await rows(
        b,
        sa.select(messages.c.document_id, messages.c.sender).where(
            messages.c.direction == "in", messages.c.kind == "document"
        ),
    )
    assert len(received) == DOCUMENTS
    assert sorted(r.document_id for r in received) == sorted(document_ids)
    assert {r.sender for r in received} == {SENDER}
    # One automatic 01 per document, no more: duplicates were acknowledged, not answered.
    answers = await count(
        b,
        sa.select(sa.func.count())
        .select_from(messages)
        .where(
            messages.c.direction == "out",
            messages.c.kind == "status",
            messages.c.status_code == "01",
        ),
    )
    assert answers == DOCUMENTS
    # At A every recipient is sent (transport) and at 01 (business); nothing failed or waits.
    states = await rows(
        a,
        sa.select(recipients.c.state, recipients.c.business_status, sa.func.count())
        .select_from(recipients.join(messages, messages.c.id == recipients.c.message_id))
        .where(messages.c.direction == "out", messages.c.kind == "document")
        .group_by(recipients.c.state, recipients.c.business_status),
    )
    assert [tuple(r) for r in states] == [("sent", "01", DOCUMENTS)]


def _faults_happened(axis: AxisState, outcomes: dict[str, int]) -> None:
    counters = axis.counters
    assert counters["faults_error"] > 0
    assert counters["faults_down"] > 0
    assert counters["timeouts_after_commit"] > 0
    assert counters["duplicate_deliveries"] > 0
    # More copies reached B's queue than there were documents: B deduplicated them.
    copies = sum(
        len(sent.receiver_doc_ids) for sent in axis.sent.values() if sent.message_type == "edoc"
    )
    assert copies > DOCUMENTS, copies
    # A saw the faults: transport errors retried, unknown outcomes resent (same package).
    assert outcomes["sent"] == DOCUMENTS, outcomes
    assert outcomes["transport_error"] > 0 and outcomes["outcome_unknown"] > 0, outcomes


async def _attempts_by_outcome(a: Gateway) -> dict[str, int]:
    found = await rows(
        a, sa.select(attempts.c.outcome, sa.func.count()).group_by(attempts.c.outcome)
    )
    return {str(r[0]): int(r[1]) for r in found}

"""Proof 1: a document's whole journey between gateways through an axis, over real HTTP on
loopback, in both axis dialects.

Gateway A (000.00.00.G22) sends one document to two units, each with its own gateway: B
(000.00.00.H41) and C (000.00.00.H14). Every gateway runs as ``docgw serve`` runs it, on its own
SQLite file, with one axis channel: the national axis (kind "vxp", each system's id and secret
registered in the simulator) or a provincial SOAP platform (kind "soap", zeep). The scheduled polls
of B and C fetch the package, verify A's signature although the axis appended a TraceHeader, store
it and answer 01 by themselves; B's clerk then accepts it (03) while C's has not yet, then C's does.
A's poll applies the statuses per recipient: both ``sent`` on the transport layer, B at 03 while C
is still at 01, then both at 03 on the business layer, with the axis' own per-recipient view kept
beside them (vxp: getSentEdocList).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import (
    A_SECRET,
    A_SYSTEM,
    B_SECRET,
    B_SYSTEM,
    OTHER,
    RECIPIENT,
    SENDER,
    Peer,
    eventually,
    package_of,
    received_documents,
    recipient_rows,
    rows,
    running_node,
    send_document,
    soap_channel,
    soap_platform,
    states,
    vxp_channel,
    write_config,
)

from connectors.base import DirectoryEntry
from connectors.simulators.axis import AxisState, running_axis
from connectors.simulators.soap_axis import SoapAxisState
from connectors.vxp import VxpConnector
from envelopes.model import StatusCode
from gateway.bootstrap import Gateway
from gateway.store.tables import messages, status_events
from gateway.usecases import channel_states, statuses

C_SYSTEM, C_SECRET = "he-thong-c", "bi-mat-cua-c"
UNITS = (SENDER, RECIPIENT, OTHER)
TRACE = re.compile(rb"<(?:edXML:)?TraceHeader>")


@asynccontextmanager
async def three_gateways(
    kind: str, keys_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Gateway, Gateway, AxisState, SoapAxisState]]:
    axis_state = AxisState(seed=1)
    systems = ((A_SYSTEM, A_SECRET, SENDER), (B_SYSTEM, B_SECRET, RECIPIENT))
    for system, secret, unit in (*systems, (C_SYSTEM, C_SECRET, OTHER)):
        axis_state.add_system(system, secret.encode(), [unit])
    soap_state = SoapAxisState(organizations=[DirectoryEntry(code=c, name=c) for c in UNITS])
    async with (
        running_axis(axis_state, shutdown_timeout=1.0) as vxp_url,
        soap_platform(soap_state) as soap_url,
    ):
        configs = []
        for name, (system, secret, unit) in zip(
            "abc", (*systems, (C_SYSTEM, C_SECRET, OTHER)), strict=True
        ):
            channel = (
                vxp_channel(vxp_url, system, secret) if kind == "vxp" else soap_channel(soap_url)
            )
            configs.append(
                write_config(
                    tmp_path / f"{name}.toml", keys_dir=keys_dir, unit=unit, channels=channel
                )
            )
        peers = [Peer(code=code) for code in UNITS]
        async with (
            running_node(configs[0], peers, keys_dir) as a,
            running_node(configs[1], peers, keys_dir) as b,
            running_node(configs[2], peers, keys_dir) as c,
        ):
            yield a, b, c, axis_state, soap_state


@pytest.mark.parametrize("kind", ["vxp", "soap"])
def test_a_document_goes_to_two_gateways_and_their_statuses_come_back(
    kind: str, keys_dir: Path, tmp_path: Path
) -> None:
    subject = f"V/v kiểm thử hành trình {kind} {uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with three_gateways(kind, keys_dir, tmp_path) as (a, b, c, axis_state, soap_state):
            sent = await send_document(a, number="101", subject=subject, to=(RECIPIENT, OTHER))
            assert sent.state == "queued"
            assert {r.recipient: r.channel for r in sent.routes} == {
                RECIPIENT: "axis",
                OTHER: "axis",
            }

            async def arrived() -> bool:
                return await states(a, sent.message_id) == {
                    RECIPIENT: ("sent", "01"),
                    OTHER: ("sent", "01"),
                }

            await eventually(arrived, timeout=30, what="A sees both automatic 01s")

            for gateway, unit in ((b, RECIPIENT), (c, OTHER)):
                # Stored as it came off the axis, with the axis' TraceHeader, and verified.
                [incoming] = await received_documents(gateway)
                assert (incoming.document_id, incoming.subject) == (sent.document_id, subject)
                assert incoming.sender == SENDER and SENDER in (incoming.signer_subject or "")
                stored = await package_of(gateway, incoming.package_sha256)
                assert len(TRACE.findall(stored)) == 1, "the axis appended its own TraceHeader"
                [row] = await recipient_rows(gateway, incoming.id)
                assert (row.unit_code, row.business_status) == (unit, "01")

            # B's clerk registers the document: 03 on request. C says nothing more.
            [b_incoming] = await received_documents(b)
            [reply_id] = await statuses.reply(
                b,
                b_incoming.id,
                code=StatusCode.ACCEPTED,
                description="Đã vào sổ văn bản đến",
                staff=None,
                actor="van-thu-b",
            )

            async def accepted() -> bool:
                return await states(a, sent.message_id) == {
                    RECIPIENT: ("sent", "03"),
                    OTHER: ("sent", "01"),
                }

            await eventually(accepted, timeout=30, what="A sees B's 03, C still at 01")
            await _timelines(a, b, sent.message_id, reply_id)

            [c_incoming] = await received_documents(c)
            await statuses.reply(
                c,
                c_incoming.id,
                code=StatusCode.ACCEPTED,
                description="Đã vào sổ",
                staff=None,
                actor="van-thu-c",
            )

            async def both_accepted() -> bool:
                return await states(a, sent.message_id) == {
                    RECIPIENT: ("sent", "03"),
                    OTHER: ("sent", "03"),
                }

            await eventually(both_accepted, timeout=30, what="A sees C's 03 too")
            if kind == "vxp":
                await _axis_view(a, sent.message_id, axis_state)
            else:
                assert len(soap_state.sent) == 5  # the document, two 01s, two 03s

                async def all_confirmed() -> bool:  # each copy, once stored by its receiver
                    return len(soap_state.confirmations) == 6

                await eventually(all_confirmed, timeout=10, what="every copy confirmed")
                assert all(c.ok for c in soap_state.confirmations)

    asyncio.run(scenario())


async def _timelines(a: Gateway, b: Gateway, message_id: str, reply_id: str) -> None:
    timeline = await rows(
        a,
        sa.select(status_events.c.reporter, status_events.c.status_code)
        .where(status_events.c.message_id == message_id, status_events.c.direction == "in")
        .order_by(status_events.c.id),
    )
    by_reporter: dict[str, list[str]] = {}
    for reporter, code in timeline:
        by_reporter.setdefault(reporter, []).append(code)
    assert by_reporter == {RECIPIENT: ["01", "03"], OTHER: ["01"]}, by_reporter
    b_out = await rows(
        b,
        sa.select(messages.c.status_code).where(
            messages.c.direction == "out", messages.c.kind == "status"
        ),
    )
    assert sorted(r.status_code for r in b_out) == ["01", "03"]
    assert await states(b, reply_id) == {SENDER: ("sent", None)}


async def _axis_view(a: Gateway, message_id: str, axis_state: AxisState) -> None:
    """A asks the axis for each recipient's state (getSentEdocList): kept beside, never mixed
    with, the business status."""
    connector = a.connectors["axis"]
    assert isinstance(connector, VxpConnector)
    assert await channel_states.refresh_sent_states(a, "axis", connector) == 2
    found = {r.unit_code: r for r in await recipient_rows(a, message_id)}
    for unit in (RECIPIENT, OTHER):
        row = found[unit]
        assert (row.state, row.business_status) == ("sent", "03")
        assert (row.channel_send_status, row.channel_receive_status) == ("done", "done")
    # One package on the axis for both recipients (it routes by MessageHeader/To), one copy
    # per recipient, each acknowledged "done" by its own gateway.
    [remote_id] = {r.remote_id for r in found.values()}
    sent = axis_state.sent[remote_id]
    assert {
        axis_state.items[i].to_code: axis_state.items[i].status for i in sent.receiver_doc_ids
    } == {
        RECIPIENT: "done",
        OTHER: "done",
    }

"""Proof 4: what the axis may change and what it may not.

The simulator relays A's package with its own TraceHeader appended (as the real axis does), and B
verifies it: transit trace entries are outside what docgw signs. Then the simulator pushes a
package whose subject was changed by one byte while it waited in the queue: B's poll refuses it,
acknowledges it ``fail`` with the verifier's error code, and stores nothing — no document, no
automatic 01, so A never hears that it arrived.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import unquote

import sqlalchemy as sa
from harness import (
    A_SECRET,
    A_SYSTEM,
    B_SECRET,
    B_SYSTEM,
    RECIPIENT,
    SENDER,
    Peer,
    eventually,
    package_of,
    received_documents,
    rows,
    running_node,
    send_document,
    states,
    vxp_channel,
    write_config,
)

from connectors.simulators.axis import AxisState, running_axis
from gateway.store.tables import messages


def test_the_axis_trace_is_tolerated_and_a_tampered_subject_is_refused(
    keys_dir: Path, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:10].upper()
    genuine_subject = f"V/v hồ sơ nguyên vẹn {marker}"
    tampered_subject = f"V/v hồ sơ bị sửa TAMPER-{marker}"

    async def scenario() -> None:
        axis = AxisState(seed=4, trace_organ_id="VXP.SIMULATOR")
        axis.add_system(A_SYSTEM, A_SECRET.encode(), [SENDER])
        axis.add_system(B_SYSTEM, B_SECRET.encode(), [RECIPIENT])
        async with running_axis(axis, shutdown_timeout=1.0) as url:
            peers = [Peer(code=SENDER), Peer(code=RECIPIENT)]
            a_config = write_config(
                tmp_path / "a.toml",
                keys_dir=keys_dir,
                unit=SENDER,
                channels=vxp_channel(url, A_SYSTEM, A_SECRET),
            )
            b_config = write_config(
                tmp_path / "b.toml",
                keys_dir=keys_dir,
                unit=RECIPIENT,
                channels=vxp_channel(url, B_SYSTEM, B_SECRET),
            )
            async with running_node(a_config, peers, keys_dir) as a:
                genuine = await send_document(a, number="401", subject=genuine_subject)
                tampered = await send_document(a, number="402", subject=tampered_subject)

                async def on_the_axis() -> bool:
                    return len(axis.sent) == 2

                await eventually(on_the_axis, timeout=20, what="both packages on the axis")
                # B is not running yet: the packages wait in B's queue on the axis. One byte of
                # the second one's subject changes there ('T' → 'X': still valid UTF-8 and XML).
                [item] = [
                    axis.items[i]
                    for i in axis.queues[RECIPIENT]
                    if f"TAMPER-{marker}".encode() in axis.items[i].data
                ]
                original = item.data
                at = original.index(f"TAMPER-{marker}".encode())
                item.data = original[:at] + b"X" + original[at + 1 :]
                assert len(item.data) == len(original) and item.data != original

                async with running_node(b_config, peers, keys_dir) as b:

                    async def both_handled() -> bool:
                        return all(axis.items[i].status in ("done", "fail") for i in axis.items)

                    await eventually(both_handled, timeout=20, what="B handles both packages")
                    [stored] = await received_documents(b)
                    assert stored.document_id == genuine.document_id
                    assert stored.subject == genuine_subject

                    # The genuine one verified although it carries the axis' TraceHeader.
                    package = await package_of(b, stored.package_sha256)
                    assert b"<edXML:OrganId>VXP.SIMULATOR</edXML:OrganId>" in package

                    # The tampered one was refused with the verifier's code, nothing stored.
                    assert item.status == "fail"
                    reason = unquote(item.description)
                    assert reason.startswith("SIGNED_HEADER_CHANGED: "), reason
                    about_tampered = await rows(
                        b,
                        sa.select(messages.c.id).where(
                            messages.c.document_id == tampered.document_id
                        ),
                    )
                    assert about_tampered == []  # neither the document nor a 01 about it

                    async def genuine_arrived() -> bool:
                        return await states(a, genuine.message_id) == {RECIPIENT: ("sent", "01")}

                    await eventually(genuine_arrived, timeout=20, what="A sees 01 for genuine")
                    # A sent the tampered one fine; B never confirmed it arrived.
                    assert await states(a, tampered.message_id) == {RECIPIENT: ("sent", None)}

    asyncio.run(scenario())

"""Proof 3: classified documents never touch the axis (DOMAIN.md §6).

The axis simulator records every byte it receives (each request's line, headers and body). Gateway
A sends Mật, Tối mật and Tuyệt mật documents, each with a unique subject string and a unique
attachment byte string, next to an unclassified control document (whose strings DO show up in the
recording: the recorder works).

* Where no secure route exists — the recipient reachable only through the axis, or A having a
  secure channel but the recipient no registered secure endpoint — they are held, with the reason
  for the operator, and none of their content reaches the axis (nor A's database in plaintext).
* Where a secure route exists — A has a "secure" channel, B is registered with its secure inbox
  URL and runs that inbox over mutual TLS with certificates from the keys folder — Mật and Tối mật
  go over it sealed for B's certificate; B opens, verifies, stores (the sealed bytes) and answers
  01 over the same network; Tuyệt mật is held until B's route allows it explicitly.
* A gateway with ``profile = "secure"`` and an axis channel does not start.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import (
    A_SECRET,
    A_SYSTEM,
    B_SECRET,
    B_SYSTEM,
    RECIPIENT,
    SENDER,
    UNITS,
    Peer,
    docgw_serve,
    eventually,
    free_port,
    leaked,
    package_of,
    received_documents,
    recipients_of,
    register,
    rows,
    running_node,
    secure_channel,
    secure_inbox,
    send_document,
    soap_channel,
    soap_platform,
    states,
    stored_bytes,
    vxp_channel,
    write_config,
)

from connectors.base import DirectoryEntry
from connectors.simulators.axis import AxisState, running_axis
from connectors.simulators.soap_axis import SoapAxisState
from envelopes.sealing import SealFormat, read_seal_header, sniff
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.keystore import load_issued, unit_paths
from gateway.store import message_queries
from gateway.store.tables import messages
from gateway.usecases import operations
from gateway.usecases.errors import Conflict

CLASSIFIED = ("mat", "toi_mat", "tuyet_mat")


@dataclass(frozen=True, kw_only=True)
class Secret:
    """One classified document and the strings that must never leave A unencrypted."""

    classification: str
    number: str
    marker: str

    @property
    def subject(self) -> str:
        return f"V/v tài liệu {self.classification} {self.marker}"

    @property
    def content(self) -> bytes:
        return b"%PDF-1.7\n" + f"ATTACH-{self.marker}-".encode() * 4 + b"\n%%EOF"

    @property
    def needles(self) -> list[bytes]:
        return [self.marker.encode(), self.subject.encode(), self.content]


def secrets(first_number: int) -> list[Secret]:
    return [
        Secret(
            classification=classification,
            number=str(first_number + index),
            marker=f"SECRET{uuid.uuid4().hex.upper()}",
        )
        for index, classification in enumerate(CLASSIFIED)
    ]


async def send_secret(gateway: Gateway, secret: Secret) -> str:
    submitted = await send_document(
        gateway,
        number=secret.number,
        subject=secret.subject,
        content=secret.content,
        classification=secret.classification,
    )
    return submitted.message_id


def two_systems(seed: int) -> AxisState:
    axis = AxisState(seed=seed, record_bodies=True)
    axis.add_system(A_SYSTEM, A_SECRET.encode(), [SENDER])
    axis.add_system(B_SYSTEM, B_SECRET.encode(), [RECIPIENT])
    return axis


async def creation_reason(gateway: Gateway, message_id: str) -> str:
    async with gateway.engine.connect() as conn:
        history = await message_queries.message_history(conn, message_id)
    [created] = [e for e in history["audit"] if e["action"] == "created"]
    return str(created["reason"])


# ------------------------------------------------------------------------------- no secure route


@asynccontextmanager
async def an_axis(kind: str) -> AsyncIterator[tuple[str, str, Callable[[], list[bytes]]]]:
    """The national axis (VXP) or a provincial SOAP platform, recording every request: yields A's
    and B's channel tables and what the platform received so far, each request whole."""
    if kind == "vxp":
        axis = two_systems(seed=3)
        async with running_axis(axis, shutdown_timeout=1.0) as url:
            yield (
                vxp_channel(url, A_SYSTEM, A_SECRET),
                vxp_channel(url, B_SYSTEM, B_SECRET),
                lambda: everything_received(axis),
            )
        return
    platform = SoapAxisState(organizations=[DirectoryEntry(code=c, name=c) for c in UNITS])
    async with soap_platform(platform) as url:
        yield (
            soap_channel(url),
            soap_channel(url),
            lambda: [
                head + b"\r\n\r\n" + body
                for head, body in zip(platform.request_heads, platform.requests, strict=True)
            ],
        )


@pytest.mark.parametrize("axis_kind", ["vxp", "soap"])
@pytest.mark.parametrize("setup", ["axis_only", "no_secure_endpoint"])
def test_classified_documents_are_held_where_no_secure_route_exists(
    setup: str, axis_kind: str, keys_dir: Path, tmp_path: Path
) -> None:
    """``axis_only``: A and B have only the axis channel. ``no_secure_endpoint``: A also has a
    secure channel, but B is registered without a secure endpoint. The axis is the national one
    (VXP) or a provincial SOAP platform."""
    documents = secrets(first_number=301)
    control_marker = f"CONTROL{uuid.uuid4().hex.upper()}"

    async def scenario() -> None:
        async with an_axis(axis_kind) as (a_channels, b_channels, received):
            if setup == "no_secure_endpoint":
                a_channels += secure_channel()
            a_config = write_config(
                tmp_path / "a.toml", keys_dir=keys_dir, unit=SENDER, channels=a_channels
            )
            b_config = write_config(
                tmp_path / "b.toml", keys_dir=keys_dir, unit=RECIPIENT, channels=b_channels
            )
            peers = [Peer(code=SENDER), Peer(code=RECIPIENT)]  # no secure endpoint anywhere
            async with (
                running_node(a_config, peers, keys_dir) as a,
                running_node(b_config, peers, keys_dir) as b,
            ):
                held = {s.classification: await send_secret(a, s) for s in documents}
                control = await send_document(
                    a, number="300", subject=f"V/v văn bản thường {control_marker}"
                )

                async def control_answered() -> bool:
                    return await states(a, control.message_id) == {RECIPIENT: ("sent", "01")}

                await eventually(control_answered, timeout=20, what="the control's round trip")
                # The workers have run rounds since: the classified ones are still held.
                for secret in documents:
                    message_id = held[secret.classification]
                    [recipient] = await recipients_of(a, message_id)
                    assert recipient.state is TransportState.HELD
                    assert (recipient.channel, recipient.attempt_count) == (None, 0)
                    reason = await creation_reason(a, message_id)
                    assert "needs a secure endpoint" in reason, reason
                    # The operator cannot push it onto the axis either.
                    with pytest.raises(Conflict):
                        await operations.reroute(
                            a, message_id, channel="axis", reason="thử", actor="operator"
                        )

                await _nothing_leaked(received(), a, documents, control_marker)
                assert [d.document_id for d in await received_documents(b)] == [control.document_id]

    asyncio.run(scenario())


def everything_received(axis: AxisState) -> list[bytes]:
    """Every request the axis received, whole: its line and headers, then its body."""
    assert all(head.startswith(b"POST /") for head in axis.received_heads)
    return [
        head + b"\r\n\r\n" + body
        for head, body in zip(axis.received_heads, axis.received_bodies, strict=True)
    ]


async def _nothing_leaked(
    bodies: list[bytes], a: Gateway, documents: list[Secret], control_marker: str
) -> None:
    if control_marker:
        assert leaked([control_marker.encode()], bodies), "the recorder must see the control"
    for secret in documents:
        assert leaked(secret.needles, bodies) == [], f"{secret.classification} reached the axis"
        # A's own database keeps classified packages sealed, never in plaintext.
        assert leaked(secret.needles, await stored_bytes(a)) == []


# ---------------------------------------------------------------------------- a secure route


@dataclass(frozen=True, kw_only=True)
class SecurePair:
    axis: AxisState
    a: Gateway
    b: Gateway
    b_endpoint: str


@asynccontextmanager
async def secure_pair(
    keys_dir: Path, tmp_path: Path, *, b_answers_over: str = "secure"
) -> AsyncIterator[SecurePair]:
    """A and B, each with the axis channel, a secure channel and a secure inbox (mutual TLS,
    unit certificates from the keys folder). A's registry: B through the axis, plus B's secure
    inbox. B's registry: A through ``b_answers_over`` ("secure": A's inbox; or "axis")."""
    a_inbox, b_inbox = free_port(), free_port()
    a_endpoint = f"https://127.0.0.1:{a_inbox}/inbox"
    b_endpoint = f"https://127.0.0.1:{b_inbox}/inbox"
    axis = two_systems(seed=5)
    async with running_axis(axis, shutdown_timeout=1.0) as url:
        a_config = write_config(
            tmp_path / "a.toml",
            keys_dir=keys_dir,
            unit=SENDER,
            channels=vxp_channel(url, A_SYSTEM, A_SECRET) + secure_channel(),
            extra=secure_inbox(a_inbox),
        )
        b_config = write_config(
            tmp_path / "b.toml",
            keys_dir=keys_dir,
            unit=RECIPIENT,
            channels=vxp_channel(url, B_SYSTEM, B_SECRET) + secure_channel(),
            extra=secure_inbox(b_inbox),
        )
        a_peers = [Peer(code=SENDER), Peer(code=RECIPIENT, secure_endpoint=b_endpoint)]
        b_peers = [
            Peer(code=SENDER, channel=b_answers_over, secure_endpoint=a_endpoint),
            Peer(code=RECIPIENT),
        ]
        async with (
            running_node(a_config, a_peers, keys_dir) as a,
            running_node(b_config, b_peers, keys_dir) as b,
        ):
            yield SecurePair(axis=axis, a=a, b=b, b_endpoint=b_endpoint)


async def answered(gateway: Gateway, *message_ids: str, timeout: float = 20) -> None:
    async def all_at_01() -> bool:
        seen = [(await states(gateway, m))[RECIPIENT] for m in message_ids]
        return seen == [("sent", "01")] * len(message_ids)

    await eventually(all_at_01, timeout=timeout, what=f"01 for {len(message_ids)} messages")


def test_classified_documents_take_the_secure_route_and_only_it(
    keys_dir: Path, tmp_path: Path
) -> None:
    documents = secrets(first_number=311)
    mat, toi_mat, tuyet_mat = documents
    allowed_later = Secret(
        classification="tuyet_mat", number="314", marker=f"SECRET{uuid.uuid4().hex.upper()}"
    )
    control_marker = f"CONTROL{uuid.uuid4().hex.upper()}"

    async def scenario() -> None:
        async with secure_pair(keys_dir, tmp_path) as pair:
            a, b = pair.a, pair.b
            ids = {s.classification: await send_secret(a, s) for s in documents}
            control = await send_document(
                a, number="310", subject=f"V/v văn bản thường {control_marker}"
            )
            await answered(a, control.message_id, ids["mat"], ids["toi_mat"])

            b_cert = load_issued(*unit_paths(keys_dir, RECIPIENT)).certificate
            # B keeps no readable subject for a classified document: match on số/ký hiệu.
            by_code = {d.code: d for d in await received_documents(b)}
            for secret in (mat, toi_mat):
                [recipient] = await recipients_of(a, ids[secret.classification])
                assert recipient.channel == "secure"
                assert recipient.package_sha256 is not None
                # What travelled is the copy sealed for B's certificate; B opened it (it knows
                # the subject), verified A's signature and kept the sealed bytes only.
                stored = by_code[f"{secret.number}/VPCP-TTĐT"]
                assert stored.subject is None
                assert stored.route == f"secure:{SENDER}"
                assert SENDER in (stored.signer_subject or "")
                assert stored.package_sha256 == recipient.package_sha256
                sealed = await package_of(b, stored.package_sha256)
                assert sniff(sealed) is SealFormat.CMS and read_seal_header(sealed).is_for(b_cert)
                assert leaked(secret.needles, await stored_bytes(b)) == []

            [held] = await recipients_of(a, ids["tuyet_mat"])
            assert held.state is TransportState.HELD
            reason = await creation_reason(a, ids["tuyet_mat"])
            assert "tuyet_mat is not explicitly allowed" in reason, reason
            assert f"{tuyet_mat.number}/VPCP-TTĐT" not in by_code

            # B's route is explicitly allowed Tuyệt mật: the next one goes.
            await register(
                a,
                [Peer(code=RECIPIENT, secure_endpoint=pair.b_endpoint, allows_tuyet_mat=True)],
                keys_dir,
            )
            allowed_id = await send_secret(a, allowed_later)
            await answered(a, allowed_id)
            codes = {d.code for d in await received_documents(b)}
            assert f"{allowed_later.number}/VPCP-TTĐT" in codes
            assert f"{tuyet_mat.number}/VPCP-TTĐT" not in codes  # the first one stays held

            await _nothing_leaked(
                everything_received(pair.axis), a, [*documents, allowed_later], control_marker
            )
            # B's answers went over the secure network too: the axis carried A's control only.
            assert pair.axis.counters["packages"] == 1

    asyncio.run(scenario())


def test_statuses_about_a_classified_document_stay_off_the_axis(
    keys_dir: Path, tmp_path: Path
) -> None:
    [mat, *_] = secrets(first_number=321)

    async def scenario() -> None:
        async with secure_pair(keys_dir, tmp_path, b_answers_over="axis") as pair:
            message_id = await send_secret(pair.a, mat)
            await answered(pair.a, message_id)
            [recipient] = await recipients_of(pair.a, message_id)
            assert recipient.channel == "secure"
            await _nothing_leaked(everything_received(pair.axis), pair.a, [mat], control_marker="")
            [row] = await rows(
                pair.a, sa.select(messages.c.document_id).where(messages.c.id == message_id)
            )
            assert leaked([row.document_id.encode()], everything_received(pair.axis)) == []

    asyncio.run(scenario())


def test_a_held_tuyet_mat_rerouted_once_allowed_is_delivered(
    keys_dir: Path, tmp_path: Path
) -> None:
    [_, _, tuyet_mat] = secrets(first_number=331)

    async def scenario() -> None:
        async with secure_pair(keys_dir, tmp_path) as pair:
            message_id = await send_secret(pair.a, tuyet_mat)
            assert await states(pair.a, message_id) == {RECIPIENT: ("held", None)}
            await register(
                pair.a,
                [Peer(code=RECIPIENT, secure_endpoint=pair.b_endpoint, allows_tuyet_mat=True)],
                keys_dir,
            )
            await operations.reroute(
                pair.a, message_id, channel="secure", reason="đã được phép", actor="operator"
            )

            async def settled() -> bool:
                state = (await states(pair.a, message_id))[RECIPIENT]
                return state[0] in ("failed", "sent") and (state[0] == "failed" or bool(state[1]))

            await eventually(settled, timeout=20, what="the re-routed tuyet_mat settles")
            [recipient] = await recipients_of(pair.a, message_id)
            assert (recipient.state, recipient.last_error) == (TransportState.SENT, None)

    asyncio.run(scenario())


# ------------------------------------------------------------------------ the secure profile


def test_a_secure_profile_gateway_with_an_axis_channel_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "secure.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "secure.db"}"\n'
        '[gateway]\nprofile = "secure"\nlocal_units = ["000.00.00.H41"]\n'
        '[channels.axis]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9"\n'
        'system_id = "he-thong-mat"\nsecret = "khong-duoc-dung"\n',
        encoding="utf-8",
    )
    docgw = Path(sys.executable).parent / "docgw"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCGW_")}
    done = subprocess.run(
        [str(docgw), "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: CONFIG_INVALID: ") and "[channels.axis]" in lines[0]
    assert 'profile = "secure"' in lines[0]
    assert not (tmp_path / "secure.db").exists()  # refused before anything was created


@pytest.mark.slow
def test_a_secure_profile_gateway_serves_the_classified_side(
    keys_dir: Path, tmp_path: Path
) -> None:
    """B as deployments run the classified side: ``docgw serve`` with ``profile = "secure"``, a
    secure channel and its secure inbox only. A (secure channel + inbox, no axis) sends Mật and
    Tối mật; B's process opens, verifies and stores them and answers 01 over mutual TLS."""
    documents = secrets(first_number=341)[:2]

    async def scenario() -> None:
        a_inbox, b_inbox = free_port(), free_port()
        a_config = write_config(
            tmp_path / "a.toml",
            keys_dir=keys_dir,
            unit=SENDER,
            channels=secure_channel(),
            extra=secure_inbox(a_inbox),
        )
        b_config = write_config(
            tmp_path / "b.toml",
            keys_dir=keys_dir,
            unit=RECIPIENT,
            channels=secure_channel(),
            extra=secure_inbox(b_inbox),
            api_port=free_port(),
            profile="secure",
        )
        a_peers = [
            Peer(code=SENDER, channel=None),
            Peer(
                code=RECIPIENT, channel=None, secure_endpoint=f"https://127.0.0.1:{b_inbox}/inbox"
            ),
        ]
        b_peers = [
            Peer(
                code=SENDER, channel="secure", secure_endpoint=f"https://127.0.0.1:{a_inbox}/inbox"
            ),
            Peer(code=RECIPIENT, channel=None),
        ]
        async with running_node(b_config, b_peers, keys_dir, serve=False) as b:
            async with docgw_serve(b_config), running_node(a_config, a_peers, keys_dir) as a:
                ids = [await send_secret(a, secret) for secret in documents]
                await answered(a, *ids, timeout=30)
            stored = {d.code: d for d in await received_documents(b)}
            assert set(stored) == {f"{secret.number}/VPCP-TTĐT" for secret in documents}
            assert all(d.subject is None for d in stored.values())
            assert {d.route for d in stored.values()} == {f"secure:{SENDER}"}
            for secret in documents:
                assert leaked(secret.needles, await stored_bytes(b)) == []

    asyncio.run(scenario())

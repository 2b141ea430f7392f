"""The durable outbox and inbox on real databases (SQLite file and PostgreSQL), with the fake
connector's scriptable failures: every lifecycle path a recipient can take."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from integration_support import EXAMPLES, OTHER, RECIPIENT, SENDER, register_all, write_config

from connectors.fake import FakeConnector, Scripted
from envelopes.attachments import AttachmentSource
from envelopes.metadata import DocumentRequest, parse_metadata
from envelopes.model import Classification, StatusCode
from envelopes.reading import read_package
from envelopes.sealing import SealFormat, sniff
from gateway.bootstrap import Gateway, build
from gateway.domain.lifecycle import IllegalTransition, TransportState
from gateway.settings import load_settings
from gateway.store import job_queries, message_queries, status_queries
from gateway.store.database import migrate
from gateway.store.records import aware
from gateway.store.tables import audit_events, messages, recipients, unit_certificates, units
from gateway.usecases import delivery, intake, operations, statuses, submit
from gateway.usecases.errors import Conflict, ReasonRequired, UnknownSender, UnknownUnit

TODAY = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()


def request(**changes: Any) -> DocumentRequest:
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta.update(changes)
    return parse_metadata(meta, today=TODAY)


def attachment(data: bytes = b"%PDF-1.7 noi dung") -> AttachmentSource:
    return AttachmentSource(name="van-ban.pdf", open=lambda: io.BytesIO(data))


async def send(gateway: Gateway, req: DocumentRequest | None = None, key: str | None = None) -> str:
    result = await submit.submit_document(
        gateway, req or request(), [attachment()], client="test", actor="test", idempotency_key=key
    )
    return result.message_id


@pytest.fixture(params=["direct", "plain"])
def database_statements(request: pytest.FixtureRequest) -> str:
    """The outbox on both ways of running the store's statements (``[database] statements``)."""
    return str(request.param)


async def drain(gateway: Gateway, rounds: int = 200) -> None:
    """Deliver until nothing is due (sleeping through short retry delays)."""
    for _ in range(rounds):
        if not await delivery.deliver_due(gateway, "w"):
            async with gateway.engine.connect() as conn:
                pending = await conn.scalar(
                    sa.select(sa.func.count()).where(
                        recipients.c.state.in_(["queued", "retry_scheduled", "unconfirmed"])
                    )
                )
            if not pending:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the queue did not drain")


async def recipient_states(gateway: Gateway, message_id: str) -> dict[str, TransportState]:
    async with gateway.engine.connect() as conn:
        return {
            r.unit_code: r.state for r in await message_queries.get_recipients(conn, message_id)
        }


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


@contextlib.contextmanager
def statements(gateway: Gateway, prefix: str) -> Iterator[list[str]]:
    """The SQL statements starting with ``prefix`` that the gateway's engine runs meanwhile."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(prefix):
            seen.append(statement)

    sa.event.listen(gateway.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(gateway.engine.sync_engine, "before_cursor_execute", count)


def test_transport_failures_are_retried_until_sent(make_gateway: Any) -> None:
    fake = FakeConnector(name="axis", script=[Scripted.UNAVAILABLE, Scripted.UNAVAILABLE])

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": fake}) as gateway:
            message_id = await send(gateway)
            await drain(gateway)
            assert await recipient_states(gateway, message_id) == {RECIPIENT: TransportState.SENT}
            async with gateway.engine.connect() as conn:
                history = await message_queries.message_history(conn, message_id)
            outcomes = [a["outcome"] for a in history["attempts"]]
            assert outcomes == ["transport_error", "transport_error", "sent"]
            actions = [e["action"] for e in history["audit"]]
            assert actions.count("claimed") == 3 and "attempt_sent" in actions

    run(scenario)


def test_timeout_after_commit_resends_the_same_package_and_registers_once(
    make_gateway: Any,
) -> None:
    fake = FakeConnector(name="axis", script=[Scripted.TIMEOUT_AFTER_COMMIT])

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": fake}) as gateway:
            message_id = await send(gateway)
            await delivery.deliver_due(gateway, "w")
            assert await recipient_states(gateway, message_id) == {
                RECIPIENT: TransportState.UNCONFIRMED
            }
            await drain(gateway)
            assert len(fake.packages) == 2 and fake.packages[0] == fake.packages[1]
            assert list(fake.registered.values()) == [2]  # delivered twice, one document
            assert len(fake.registered) == 1

    run(scenario)


def test_business_refusal_fails_at_once_with_the_reason(make_gateway: Any) -> None:
    fake = FakeConnector(name="axis", script=[Scripted.REFUSED])

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": fake}) as gateway:
            message_id = await send(gateway)
            await drain(gateway)
            async with gateway.engine.connect() as conn:
                [recipient] = await message_queries.get_recipients(conn, message_id)
            assert recipient.state is TransportState.FAILED
            assert recipient.attempt_count == 1
            assert "refused by the peer" in (recipient.last_error or "")
            # The operator resends it, with a reason; it goes this time.
            with pytest.raises(ReasonRequired):
                await operations.resend(gateway, message_id, reason=" ", actor="op")
            await operations.resend(gateway, message_id, reason="peer fixed", actor="op")
            await drain(gateway)
            assert await recipient_states(gateway, message_id) == {RECIPIENT: TransportState.SENT}

    run(scenario)


def test_attempt_limit_ends_in_failed(make_gateway: Any) -> None:
    fake = FakeConnector(name="axis", fail_rate=1.0)

    async def scenario() -> None:
        async with make_gateway(
            connectors={"axis": fake},
            extra="[channels.axis]\nkind='fake'\n[channels.axis.retry]\nbase_seconds=0.01\nmax_delay_seconds=0.02\nmax_attempts=3\n",
        ) as gateway:
            message_id = await send(gateway)
            await drain(gateway)
            async with gateway.engine.connect() as conn:
                [recipient] = await message_queries.get_recipients(conn, message_id)
            assert recipient.state is TransportState.FAILED
            assert recipient.attempt_count == 3 and "gave up after 3" in (
                recipient.last_error or ""
            )

    run(scenario)


def test_idempotency_key_returns_the_original(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            first = await send(gateway, key="req-1")
            again = await submit.submit_document(
                gateway,
                request(),
                [attachment()],
                client="test",
                actor="t",
                idempotency_key="req-1",
            )
            assert again.message_id == first and not again.created
            other_client = await submit.submit_document(
                gateway,
                request(code={"number": "7817", "notation": "VPCP-TTĐT"}),  # its own số
                [attachment()],
                client="other",
                actor="t",
                idempotency_key="req-1",
            )
            assert other_client.message_id != first
            async with gateway.engine.connect() as conn:
                assert await conn.scalar(sa.select(sa.func.count()).select_from(messages)) == 2

    run(scenario)


def test_unknown_recipient_changes_nothing(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            bad = request(to=[{"organ_id": "000.00.00.K99", "organ_name": "?"}])
            with pytest.raises(UnknownUnit):
                await send(gateway, bad)
            async with gateway.engine.connect() as conn:
                assert await conn.scalar(sa.select(sa.func.count()).select_from(messages)) == 0

    run(scenario)


def test_classified_without_secure_route_is_held_and_never_reaches_the_axis(
    make_gateway: Any,
) -> None:
    fake = FakeConnector(name="axis", is_axis=True)

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": fake}) as gateway:
            message_id = await send(gateway, request(classification="mat"))
            await drain(gateway)
            assert await recipient_states(gateway, message_id) == {RECIPIENT: TransportState.HELD}
            assert fake.packages == []
            with pytest.raises(Conflict):
                await operations.reroute(
                    gateway, message_id, channel="axis", reason="x", actor="op"
                )

    run(scenario)


def test_classified_package_is_stored_only_sealed(make_gateway: Any) -> None:
    from gateway.store import blobs

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            message_id = await send(gateway, request(classification="toi_mat"))
            async with gateway.engine.connect() as conn:
                message = await message_queries.get_message(conn, message_id)
                assert message is not None and message.classification == "toi_mat"
                data = await blobs.read_bytes(conn, message.package_sha256)
            assert sniff(data) is SealFormat.CMS
            assert "kết nối".encode() not in data

    run(scenario)


def test_lease_expiry_makes_a_lost_claim_unconfirmed_then_it_is_resent(make_gateway: Any) -> None:
    fake = FakeConnector(name="axis")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": fake}) as gateway:
            message_id = await send(gateway)
            now = gateway.clock()
            async with gateway.engine.begin() as conn:  # a worker claims, then "dies"
                claimed = await job_queries.claim_due(
                    conn,
                    now=now,
                    limit=10,
                    lease_until=now - dt.timedelta(seconds=1),
                    worker="dead",
                )
            assert [c.message_id for c in claimed] == [message_id]
            assert await delivery.recover_expired(gateway) == 1
            assert await recipient_states(gateway, message_id) == {
                RECIPIENT: TransportState.UNCONFIRMED
            }
            await drain(gateway)
            assert await recipient_states(gateway, message_id) == {RECIPIENT: TransportState.SENT}
            # The dead worker's late outcome cannot move the recipient again.
            async with gateway.engine.begin() as conn:
                with pytest.raises(IllegalTransition):
                    await message_queries.transition(
                        conn, claimed[0].recipient_id, TransportState.SENDING,
                        TransportState.FAILED, now=now, actor="dead", action="late",
                    )  # fmt: skip

    run(scenario)


def test_cancel_needs_a_reason_and_stops_delivery(make_gateway: Any) -> None:
    fake = FakeConnector(name="axis")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": fake}) as gateway:
            message_id = await send(gateway)
            with pytest.raises(ReasonRequired):
                await operations.cancel(gateway, message_id, reason=None, actor="op")
            await operations.cancel(gateway, message_id, reason="sent by mistake", actor="op")
            await drain(gateway)
            assert fake.packages == []
            assert await recipient_states(gateway, message_id) == {
                RECIPIENT: TransportState.CANCELLED
            }
            with pytest.raises(Conflict):
                await operations.cancel(gateway, message_id, reason="again", actor="op")

    run(scenario)


def test_exchange_between_two_gateways_with_dedupe_and_statuses(
    make_gateway: Any, databases: Callable[[], str]
) -> None:
    axis_a, axis_b = FakeConnector(name="axis"), FakeConnector(name="axis")
    url_b = databases()  # made before the event loop runs

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": axis_a}) as a,
            make_gateway(local_units=(RECIPIENT,), connectors={"axis": axis_b}, url=url_b) as b,
        ):
            message_id = await send(a)
            await drain(a)
            package = axis_a.packages[0]
            received = await intake.receive_package(b, io.BytesIO(package), via="axis")
            assert not received.duplicate and len(received.answers) == 1
            again = await intake.receive_package(b, io.BytesIO(package), via="axis")
            assert again.duplicate and again.message_id == received.message_id
            async with b.engine.connect() as conn:
                count = await conn.scalar(
                    sa.select(sa.func.count()).where(messages.c.direction == "in")
                )
            assert count == 1  # the duplicate stored nothing
            await statuses.reply(
                b, received.message_id, code=StatusCode.ACCEPTED, description="Đã vào sổ",
                staff=None, actor="op",
            )  # fmt: skip
            await drain(b)
            assert len(axis_b.packages) == 2  # 01 then 03
            # They reach A out of order: 03 first, then 01. (The fake keeps them in delivery
            # order, which concurrent groups do not fix: pick each by its status code.)
            by_code = {read_package(p).status().status_code.value: p for p in axis_b.packages}
            await intake.receive_package(a, io.BytesIO(by_code["03"]), via="axis")
            await intake.receive_package(a, io.BytesIO(by_code["01"]), via="axis")
            async with a.engine.connect() as conn:
                [recipient] = await message_queries.get_recipients(conn, message_id)
                history = await message_queries.message_history(conn, message_id)
            assert recipient.business_status == "03"
            events = [(e["status_code"], e["out_of_order"]) for e in history["status_events"]]
            assert events == [("03", False), ("01", True)]

    run(scenario)


def test_status_for_an_unknown_document_is_kept(
    make_gateway: Any, databases: Callable[[], str]
) -> None:
    url_c = databases()

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": FakeConnector(name="axis")}) as a,
            make_gateway(
                local_units=(OTHER,),
                connectors={"axis": FakeConnector(name="axis")},
                url=url_c,
            ) as c,
        ):
            async with c.engine.begin() as conn:
                await statuses.enqueue_status(
                    c, conn, reporter=OTHER, to=SENDER,
                    about=statuses.ResponseFor(organ_id=SENDER, document_id="không-có"),
                    code=StatusCode.ARRIVED, description=None, staff=None,
                    related_message_id=None, classification=Classification.THUONG,
                    actor="t", now=c.clock(),
                )  # fmt: skip
            await drain(c)
            connector = c.connectors["axis"]
            assert isinstance(connector, FakeConnector)
            await intake.receive_package(a, io.BytesIO(connector.packages[0]), via="axis")
            async with a.engine.connect() as conn:
                unknown = await status_queries.unmatched_status_events(conn)
            assert [(e["document_id"], e["status_code"]) for e in unknown] == [("không-có", "01")]

    run(scenario)


def test_breached_send_deadline_is_listed(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway(
            connectors={"axis": FakeConnector(name="axis", fail_rate=1.0)}
        ) as gateway:
            normal = {"priority": 0}  # urgent ones are due 30 minutes after acceptance
            old = request(promulgation={"place": "Hà Nội", "date": "2026-11-20"}, other_info=normal)
            message_id = await send(gateway, old)
            fresh = await send(
                gateway,
                request(
                    code={"number": "1", "notation": "X"},
                    promulgation={"place": "Hà Nội", "date": TODAY.isoformat()},
                    other_info=normal,
                ),
            )
            async with gateway.engine.connect() as conn:
                breached = await message_queries.list_messages(
                    conn, message_queries.MessageFilter(breached_before=gateway.clock())
                )
            ids = [m.id for m in breached]
            assert message_id in ids and fresh not in ids

    run(scenario)


def test_records_are_plain_values(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            message_id = await send(gateway)
            async with gateway.engine.connect() as conn:
                message = await message_queries.get_message(conn, message_id)
            assert message is not None
            assert dataclasses.is_dataclass(message)
            assert message.classification == Classification.THUONG.value
            assert message.created_at.tzinfo is not None

    run(scenario)


@pytest.mark.parametrize("registry_state", ["unknown", "inactive", "no-certificate", "revoked"])
def test_a_package_from_a_sender_without_a_live_registration_is_refused_and_stores_nothing(
    make_gateway: Any, databases: Callable[[], str], registry_state: str
) -> None:
    """Intake trusts only the sender's own registered, unrevoked certificates of an active unit:
    each way of lacking one is UNKNOWN_SENDER, and nothing is stored."""
    axis_a = FakeConnector(name="axis")
    url_b = databases()

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": axis_a}) as a,
            make_gateway(local_units=(RECIPIENT,), url=url_b) as b,
        ):
            await send(a)
            await drain(a)
            package = axis_a.packages[0]
            async with b.engine.begin() as conn:
                if registry_state == "unknown":
                    await conn.execute(
                        sa.delete(unit_certificates).where(unit_certificates.c.unit_code == SENDER)
                    )
                    await conn.execute(sa.delete(units).where(units.c.code == SENDER))
                elif registry_state == "inactive":
                    await conn.execute(
                        sa.update(units).where(units.c.code == SENDER).values(active=False)
                    )
                elif registry_state == "no-certificate":
                    await conn.execute(
                        sa.delete(unit_certificates).where(unit_certificates.c.unit_code == SENDER)
                    )
                else:
                    await conn.execute(
                        sa.update(unit_certificates)
                        .where(unit_certificates.c.unit_code == SENDER)
                        .values(revoked_at=b.clock())
                    )
            with pytest.raises(UnknownSender) as refused:
                await intake.receive_package(b, io.BytesIO(package), via="axis")
            assert refused.value.code == "UNKNOWN_SENDER"
            async with b.engine.connect() as conn:
                assert await conn.scalar(sa.select(sa.func.count()).select_from(messages)) == 0

    run(scenario)


def test_one_announcement_of_new_work_runs_one_round_not_one_per_worker(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    """Idle workers wait for an announcement; the first to wake takes it, the others keep
    waiting (a round per worker per submission cost two empty claims per document). Stopping
    wakes them all."""

    async def scenario() -> None:
        config = write_config(
            tmp_path / "workers.toml",
            database_url=database_url,
            keys_dir=keys_dir,
            local_units=(SENDER,),
        )
        axis = FakeConnector(name="axis")
        settings = load_settings(config, {"DOCGW_DELIVERY__IDLE_POLL_SECONDS": "60"})
        gateway = await build(settings, connectors={"axis": axis})
        claims: list[str] = []

        def count_claims(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if "next_attempt_at <=" in statement and statement.lstrip().startswith("SELECT"):
                claims.append(statement)

        sa.event.listen(gateway.engine.sync_engine, "before_cursor_execute", count_claims)
        stop = asyncio.Event()
        workers: list[asyncio.Task[None]] = []
        try:
            await migrate(gateway.engine)
            await register_all(gateway, keys_dir)
            workers = [
                asyncio.create_task(delivery.run_worker(gateway, f"w{n}", stop)) for n in range(3)
            ]
            await asyncio.sleep(0.3)  # each ran its first round, found nothing, and waits
            assert len(claims) == 3
            await send(gateway)
            for _ in range(100):
                if axis.packages:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # time for any other worker to run a round, were it woken
            assert len(axis.packages) == 1
            assert len(claims) == 4
            # Stopping as the service does (stop, then one announcement) ends every waiting
            # worker at once, not after its 60 s idle wait.
            stop.set()
            gateway.work_available.set()
            await asyncio.wait_for(asyncio.gather(*workers), timeout=5)
        finally:
            stop.set()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await gateway.close()

    run(scenario)


def test_a_round_of_outcomes_moves_each_recipient_once_and_reports_the_lost(
    make_gateway: Any,
) -> None:
    """transition_many: sent and retry moves (two sets of columns) in one transaction; a recipient
    that recovery already took out of ``sending`` stays where it is and is reported lost. On
    PostgreSQL the moves that set the same columns go as ONE guarded UPDATE."""

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            ids = [await send(gateway, request(to=[{"organ_id": RECIPIENT}, {"organ_id": OTHER}]))]
            ids.append(await send(gateway, request(code={"number": "7817", "notation": "X"})))
            now = gateway.clock()
            async with gateway.engine.begin() as conn:
                claimed = await job_queries.claim_due(
                    conn, now=now, limit=10, lease_until=now + dt.timedelta(minutes=1), worker="w"
                )
            assert len(claimed) == 3
            sent_a, sent_b, lost = claimed
            async with gateway.engine.begin() as conn:  # recovery got there first
                await message_queries.transition(
                    conn, lost.recipient_id, TransportState.SENDING, TransportState.UNCONFIRMED,
                    now=now, actor="recovery", action="lease_expired",
                )  # fmt: skip
            later = now + dt.timedelta(seconds=5)
            moves = [
                message_queries.Move(
                    recipient_id=sent_a.recipient_id, message_id=sent_a.message_id,
                    current=TransportState.SENDING, new=TransportState.SENT, at=later,
                    action="attempt_delivered",
                    fields={"lease_until": None, "sent_at": later, "remote_id": "axis-1"},
                ),
                message_queries.Move(
                    recipient_id=lost.recipient_id, message_id=lost.message_id,
                    current=TransportState.SENDING, new=TransportState.SENT, at=later,
                    action="attempt_delivered",
                    fields={"lease_until": None, "sent_at": later, "remote_id": "axis-2"},
                ),
                message_queries.Move(
                    recipient_id=sent_b.recipient_id, message_id=sent_b.message_id,
                    current=TransportState.SENDING, new=TransportState.RETRY_SCHEDULED, at=later,
                    action="attempt_transport_error", reason="peer down",
                    fields={"lease_until": None, "last_error": "peer down",
                            "next_attempt_at": later + dt.timedelta(seconds=30)},
                ),
            ]  # fmt: skip
            with statements(gateway, "UPDATE recipients") as updates:
                async with gateway.engine.begin() as conn:
                    result = await message_queries.transition_many(conn, moves, actor="w")
            assert [m.recipient_id for m in result] == [lost.recipient_id]
            per_shape = gateway.engine.dialect.name == "postgresql"
            assert len(updates) == (2 if per_shape else 3)
            async with gateway.engine.connect() as conn:
                rows = {
                    row.id: row
                    for row in (
                        await conn.execute(
                            sa.select(recipients).where(
                                recipients.c.id.in_([c.recipient_id for c in claimed])
                            )
                        )
                    ).all()
                }
            a, b, c = rows[sent_a.recipient_id], rows[sent_b.recipient_id], rows[lost.recipient_id]
            assert (a.state, a.remote_id, a.lease_until) == ("sent", "axis-1", None)
            assert aware(a.sent_at) == later
            assert (b.state, b.last_error) == ("retry_scheduled", "peer down")
            assert aware(b.next_attempt_at) == later + dt.timedelta(seconds=30)
            assert (c.state, c.remote_id) == ("unconfirmed", None)
            async with gateway.engine.connect() as conn:
                audited = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.actor == "w", audit_events.c.action.like("attempt_%"))
                )
            assert audited == 2  # the lost move leaves no audit row

    run(scenario)


def test_a_received_document_audits_both_recipients_in_one_insert(
    make_gateway: Any, databases: Callable[[], str]
) -> None:
    """The received copy's recipient and the 01 answer's recipient are both audited as created,
    with one INSERT for the transaction."""
    axis_a = FakeConnector(name="axis")
    url_b = databases()

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": axis_a}) as a,
            make_gateway(
                local_units=(RECIPIENT,), connectors={"axis": FakeConnector(name="axis")}, url=url_b
            ) as b,
        ):
            await send(a)
            await drain(a)
            with statements(b, "INSERT INTO audit_events") as inserts:
                received = await intake.receive_package(
                    b, io.BytesIO(axis_a.packages[0]), via="axis"
                )
            assert len(inserts) == 1
            (answer,) = received.answers
            async with b.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(
                            audit_events.c.message_id,
                            audit_events.c.action,
                            audit_events.c.to_state,
                            audit_events.c.actor,
                        )
                        .where(audit_events.c.action == "created")
                        .order_by(audit_events.c.id)
                    )
                ).all()
            assert [tuple(r) for r in rows] == [
                (received.message_id, "created", "sent", "axis"),
                (answer, "created", "queued", "intake"),
            ]

    run(scenario)

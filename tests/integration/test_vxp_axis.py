"""The national axis: docgw's VxpConnector against the axis simulator, over real HTTP on loopback.

Two systems: A serves 000.00.00.G22, B serves 000.00.00.H41. A package docgw built and signed goes
A → axis → B; B lists it, fetches it with exactly one TraceHeader appended (every other byte
unchanged) and docgw's signature still verifies; B acknowledges and A sees B's state. Then every
way a delivery can end: refusals with the axis' codes, 5xx, bursts, a timeout after the axis
committed, duplicates, and classified packages that never leave the process. Each test runs its
own event loop (``asyncio.run``) with a fresh simulator on a free port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import io
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from aiohttp import web
from pki import NEW_DOCUMENT, attachment_sources, sample_header, sample_status, sample_traces

from connectors.base import (
    ClassifiedRefused,
    Delivery,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    Receipt,
    RecipientState,
    RemoteItem,
)
from connectors.simulators.axis import (
    AxisFaults,
    AxisState,
    append_trace_header,
    generate_directory,
    running_axis,
)
from connectors.simulators.axis import _parser as axis_parser
from connectors.simulators.axis import _state_from as axis_state_from
from connectors.simulators.common import max_skew_from
from connectors.vxp import VxpConnector, VxpRefused
from connectors.vxp_signing import HashFileForm, TimestampFormat, sign_headers
from envelopes.building import build_document_bytes, build_status
from envelopes.errors import UnitCodeError
from envelopes.model import Classification, Organization
from envelopes.reading import read_package
from envelopes.signing import Signer, TrustPolicy
from envelopes.verification import verify_document, verify_status
from gateway.keystore import Issued, create_ca, issue_unit_certificate

A_UNIT, B_UNIT = "000.00.00.G22", "000.00.00.H41"
A_SYSTEM, B_SYSTEM = "he-thong-a", "he-thong-b"
A_SECRET, B_SECRET = b"secret-of-a", b"secret-of-b"
#: The entry the axis appends (with the indentation it copies), as A is the sending unit.
ADDED_TRACE = re.compile(
    rb"<edXML:TraceHeader><edXML:OrganId>000\.00\.00\.G22</edXML:OrganId>"
    rb"<edXML:Timestamp>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d</edXML:Timestamp></edXML:TraceHeader>\s*"
)
ATTACHMENTS = {"cong-van.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 64, "phu-luc.txt": b"Phu luc"}

# ---------------------------------------------------------------------------------- packages


@functools.cache
def _ca() -> Issued:
    return create_ca()


@functools.cache
def unit_keys(code: str) -> Issued:
    return issue_unit_certificate(_ca(), code)


def signer(code: str) -> Signer:
    keys = unit_keys(code)
    return Signer(private_key=keys.key, certificate=keys.certificate)


def pinned(code: str) -> TrustPolicy:
    return TrustPolicy(pinned=(unit_keys(code).certificate,))


@functools.cache
def document(to: str = B_UNIT) -> bytes:
    """A docgw-built, signed document from A to ``to`` (with the sender's own trace entry)."""
    header = dataclasses.replace(
        sample_header(),
        to=(Organization(organ_id=to, organ_name="UBND tỉnh Quảng Trị"),),
    )
    data, _ = build_document_bytes(
        header,
        attachments=attachment_sources(ATTACHMENTS),
        business=NEW_DOCUMENT,
        traces=sample_traces(),
        signer=signer(A_UNIT),
    )
    return data


@functools.cache
def status_from_b() -> bytes:
    """B's status 03 about A's document (a status package has no To: the ``to`` header routes)."""
    status = dataclasses.replace(
        sample_status(), from_=Organization(organ_id=B_UNIT, organ_name="UBND tỉnh Quảng Trị")
    )
    return build_status(status, signer=signer(B_UNIT))


def delivery(
    data: bytes,
    *,
    sender: str = A_UNIT,
    recipients: tuple[str, ...] = (B_UNIT,),
    kind: str = "document",
    classification: Classification = Classification.THUONG,
    open_package: Callable[[], IO[bytes]] | None = None,
    sha256: str | None = None,
) -> Delivery:
    return Delivery(
        message_id="msg-1",
        document_id="000.00.00.G22,2024/03/15,7816/VPCP-TTĐT",
        kind=kind,
        sender=sender,
        recipients=recipients,
        classification=classification,
        open_package=open_package or (lambda: io.BytesIO(data)),
        package_size=len(data),
        package_sha256=sha256 or hashlib.sha256(data).hexdigest(),
        attempt=1,
    )


# ------------------------------------------------------------------------------------ the axis


@dataclasses.dataclass
class Axis:
    state: AxisState
    url: str
    session: aiohttp.ClientSession
    a: VxpConnector
    b: VxpConnector

    def connector(self, **changes: object) -> VxpConnector:
        return dataclasses.replace(self.a, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def axis(
    faults: AxisFaults | None = None, *, timeout: float = 10.0, state: AxisState | None = None
) -> AsyncIterator[Axis]:
    state = state or AxisState(seed=7)
    if faults is not None:
        state.set_faults(faults)
    state.add_system(A_SYSTEM, A_SECRET, [A_UNIT])
    state.add_system(B_SYSTEM, B_SECRET, [B_UNIT])
    async with (
        running_axis(state, shutdown_timeout=1.0) as url,
        aiohttp.ClientSession() as session,
    ):

        def make(name: str, system_id: str, secret: bytes) -> VxpConnector:
            return VxpConnector(
                name=name,
                endpoint=url,
                system_id=system_id,
                secret=secret,
                session=session,
                timeout=timeout,
            )

        yield Axis(
            state=state,
            url=url,
            session=session,
            a=make("axis-a", A_SYSTEM, A_SECRET),
            b=make("axis-b", B_SYSTEM, B_SECRET),
        )


def a_connector_at(
    port: int, session: aiohttp.ClientSession, *, timeout: float = 10.0
) -> VxpConnector:
    """System A's connector to whatever listens on this loopback port."""
    return VxpConnector(
        name="axis",
        endpoint=f"http://127.0.0.1:{port}",
        system_id=A_SYSTEM,
        secret=A_SECRET,
        session=session,
        timeout=timeout,
    )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def nothing_queued(state: AxisState) -> bool:
    return not state.sent and not state.items and not any(state.queues.values())


async def refusal(axis_call: Awaitable[object]) -> VxpRefused:
    with pytest.raises(PeerRefused) as caught:
        await axis_call
    assert isinstance(caught.value, VxpRefused)
    return caught.value


# ------------------------------------------------------------------------------- the journey


def test_a_signed_document_travels_a_to_b_and_still_verifies() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            data = document()
            receipt = await ax.a.deliver(delivery(data))
            assert isinstance(receipt, Receipt) and receipt.remote_id

            assert await ax.a.pending("document") == []  # A does not see B's mail
            assert await ax.b.pending("status") == []
            items = await ax.b.pending("document")
            assert len(items) == 1
            assert items[0].sender == A_UNIT and items[0].kind == "document"

            got = await ax.b.fetch(items[0])
            # Exactly one insertion, the axis' TraceHeader; every other byte as A sent it.
            added = re.findall(ADDED_TRACE, got)
            assert len(added) == 1 and len(got) - len(data) == len(added[0])
            assert got.replace(added[0], b"", 1) == data

            verified = verify_document(read_package(got), pinned(A_UNIT))
            assert verified.package.header.document_id == sample_header().document_id
            assert verified.package.header.to[0].organ_id == B_UNIT
            assert len(verified.unsigned_traces) == len(sample_traces()) + 1
            assert verified.unsigned_traces[-1].organ_id == A_UNIT
            assert [a.name for a in verified.package.attachments] == list(ATTACHMENTS)

            await ax.b.acknowledge(items[0], ok=True)
            assert await ax.b.pending("document") == []
            assert await ax.a.sent_states(receipt.remote_id) == [
                RecipientState(recipient=B_UNIT, send_status="done", receive_status="done")
            ]

    run(scenario)


def test_a_status_package_is_routed_by_the_to_header_and_verifies() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            data = status_from_b()
            await ax.b.deliver(delivery(data, sender=B_UNIT, recipients=(A_UNIT,), kind="status"))
            assert await ax.a.pending("document") == []
            (item,) = await ax.a.pending("status")
            got = await ax.a.fetch(item)
            assert got == data  # no TraceHeaderList in a status package: left as it was
            assert verify_status(read_package(got), pinned(B_UNIT)).status.from_.organ_id == B_UNIT
            await ax.a.acknowledge(item, ok=False, reason="Không đọc được gói tin")
            queued = ax.state.items[item.remote_id]
            assert (queued.status, queued.description) == ("fail", "Không đọc được gói tin")

    run(scenario)


def test_the_epoch_millis_and_canonical_hash_settings_are_accepted_too() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            other_forms = ax.connector(
                hash_form=HashFileForm.CANONICAL, timestamp_format=TimestampFormat.EPOCH_MILLIS
            )
            assert (await other_forms.deliver(delivery(document()))).remote_id
            assert len(await ax.b.pending("document")) == 1

    run(scenario)


# ----------------------------------------------------------------------------------- refusals


def test_a_wrong_secret_is_refused_with_code_15_and_nothing_is_queued() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            intruder = ax.connector(secret=b"not-the-secret")
            error = await refusal(intruder.deliver(delivery(document())))
            assert error.axis_code == "15" and "15" in str(error)
            assert ax.state.counters["auth_failures"] == 1
            assert ax.state.counters["packages"] == 0 and nothing_queued(ax.state)
            assert await ax.b.pending("document") == []

    run(scenario)


def test_an_unknown_receiver_is_refused_with_code_18() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            data = document(to="000.00.00.H99")
            error = await refusal(ax.a.deliver(delivery(data, recipients=("000.00.00.H99",))))
            assert error.axis_code == "18" and "000.00.00.H99" in str(error)
            assert nothing_queued(ax.state)

    run(scenario)


def test_a_sender_the_system_does_not_serve_is_refused_with_code_19() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            error = await refusal(ax.b.deliver(delivery(document())))  # B sends A's package
            assert error.axis_code == "19"
            assert nothing_queued(ax.state)

    run(scenario)


def test_a_locked_receiver_is_refused_with_code_23() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            ax.state.locked_units.add(B_UNIT)
            assert (await refusal(ax.a.deliver(delivery(document())))).axis_code == "23"
            assert nothing_queued(ax.state)

    run(scenario)


def test_an_unreadable_package_is_refused_with_code_22() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            error = await refusal(ax.a.deliver(delivery(b"<edXML><not-closed>")))
            assert error.axis_code == "22"
            status_as_document = delivery(status_from_b(), sender=B_UNIT, recipients=(A_UNIT,))
            assert (await refusal(ax.b.deliver(status_as_document))).axis_code == "22"
            assert nothing_queued(ax.state)

    run(scenario)


def test_a_hash_file_that_does_not_match_the_body_is_refused_with_code_10() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            wrong = hashlib.sha256(b"another package").hexdigest()
            error = await refusal(ax.a.deliver(delivery(document(), sha256=wrong)))
            assert error.axis_code == "10"
            assert nothing_queued(ax.state)

    run(scenario)


# ------------------------------------------------------------------------------------- faults


def test_a_30_percent_error_rate_is_absorbed_by_the_retries_inside_a_call() -> None:
    async def scenario() -> None:
        async with axis(AxisFaults(error_rate=0.3)) as ax:
            # One request per call: the axis is unavailable sometimes.
            single = ax.connector(attempts=1)
            outcomes: list[str] = []
            for _ in range(30):
                try:
                    await single.deliver(delivery(document()))
                    outcomes.append("ok")
                except PeerUnavailable:
                    outcomes.append("unavailable")
            assert 0 < outcomes.count("unavailable") < 30
            # A 500 comes before anything is committed: only the successes were queued.
            assert ax.state.counters["packages"] == outcomes.count("ok")
            assert ax.state.counters["requests"] == 30

            # Up to four requests per call: (almost) every call gets through; every request
            # beyond one per delivered package was a 500.
            ax.state.counters.clear()
            delivered = 0
            for _ in range(30):
                with contextlib.suppress(PeerUnavailable):
                    await ax.a.deliver(delivery(document()))
                    delivered += 1
            assert delivered >= 28
            assert ax.state.counters["faults_error"] > 0
            assert ax.state.counters["packages"] == delivered
            assert ax.state.counters["requests"] == delivered + ax.state.counters["faults_error"]

    run(scenario)


def test_a_5xx_burst_shorter_than_the_retries_is_one_successful_call() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            async with ax.session.post(f"{ax.url}/_sim/faults", json={"burst_5xx": 2}) as answer:
                assert answer.status == 200
            receipt = await ax.a.deliver(delivery(document()))
            assert receipt.remote_id
            assert ax.state.counters["faults_burst_5xx"] == 2
            assert ax.state.counters["requests"] == 3  # two 503s, then the package
            assert ax.state.counters["packages"] == 1
            assert len(await ax.b.pending("document")) == 1

            # A read-only call rides out a burst too.
            ax.state.set_faults(AxisFaults(burst_5xx=3))
            assert len(await ax.b.pending("document")) == 1
            assert ax.state.counters["faults_burst_5xx"] == 5

    run(scenario)


def test_a_5xx_burst_longer_than_the_retries_is_unavailable_after_four_requests() -> None:
    async def scenario() -> None:
        async with axis(AxisFaults(burst_5xx=5)) as ax:
            with pytest.raises(PeerUnavailable, match="after 4 requests") as caught:
                await ax.a.deliver(delivery(document()))
            assert not isinstance(caught.value, OutcomeUnknown)  # a 503 committed nothing
            assert ax.state.counters["requests"] == 4
            assert nothing_queued(ax.state)
            # The fifth 503, then the package: the next call (the outbox's retry) gets through.
            assert (await ax.a.deliver(delivery(document()))).remote_id
            assert ax.state.counters["requests"] == 6

    run(scenario)


def test_the_retries_stay_within_the_calls_timeout_budget() -> None:
    async def scenario() -> None:
        async with axis(AxisFaults(down_until=time.time() + 60), timeout=1.0) as ax:
            patient = ax.connector(attempts=50, retry_wait=0.05, retry_wait_max=0.3)
            started = time.monotonic()
            with pytest.raises(PeerUnavailable) as caught:
                await patient.pending("document")
            elapsed = time.monotonic() - started
            assert not isinstance(caught.value, OutcomeUnknown)  # a read-only call
            # The last request ends the call: a 503, or, on a loaded machine, no answer within
            # what was left of the budget (each request gets only that).
            ending = re.search(
                r": (HTTP 503: .*|no answer within (\S+)s) \(after (\d+) requests\)$",
                caught.value.message,
                re.DOTALL,
            )
            assert ending is not None, caught.value.message
            tries = int(ending[3])
            # The budget ended the call, not the 50 attempts: 50 pauses of up to 0.3 s each
            # cannot fit in 1 s (their expected sum is several seconds).
            assert 2 <= tries < 50
            requests = ax.state.counters["requests"]
            if ending[2] is None:
                assert requests == tries  # each request answered 503
            else:
                # The request given up on may not have reached the simulator (on this loop) yet.
                assert float(ending[2]) <= 1.0
                assert tries - 1 <= requests <= tries
            assert ax.state.counters["faults_down"] == requests
            # Loose, so that a loaded machine cannot fail it: no request outlives the budget.
            assert elapsed < 3 * 1.0

    run(scenario)


def test_business_errors_are_final_after_exactly_one_request() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            cases = [
                (ax.connector(secret=b"wrong").deliver(delivery(document())), "15"),
                (ax.a.deliver(delivery(document(to="000.00.00.H99"))), "18"),
                (ax.b.deliver(delivery(document())), "19"),
                (ax.a.deliver(delivery(b"<edXML><not-closed>")), "22"),
                (ax.b.fetch(RemoteItem(remote_id="no-such-doc", kind="document")), "10"),
            ]
            for call, code in cases:
                before = ax.state.counters["requests"]
                error = await refusal(call)
                assert error.axis_code == code
                # The axis' code is kept in the detail an attempt records: "axis code N: …".
                assert error.message.startswith(f"axis code {code}: ")
                assert error.code == "PEER_REFUSED"
                assert ax.state.counters["requests"] == before + 1, code
            assert nothing_queued(ax.state)

    run(scenario)


def test_the_axis_system_error_code_is_unavailable_without_retrying_inside_the_call() -> None:
    async def scenario() -> None:
        fail_20 = {"status": "FAIL", "ErrorCode": "20", "ErrorDesc": "Lỗi hệ thống"}
        requests = 0

        async def handler(request: web.Request) -> web.Response:
            nonlocal requests
            requests += 1
            return web.json_response(fail_20)

        app = web.Application()
        app.router.add_post("/{operation}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            async with aiohttp.ClientSession() as session:
                connector = a_connector_at(runner.addresses[0][1], session)
                with pytest.raises(PeerUnavailable) as caught:
                    await connector.pending("document")
            assert caught.value.message.startswith("axis code 20: ")
            assert not isinstance(caught.value, PeerRefused)
            assert requests == 1  # an ErrorCode answer: the outbox retries, durably
        finally:
            await runner.cleanup()

    run(scenario)


def test_a_burst_of_503_then_recovery_with_faults_changed_at_run_time() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            single = ax.connector(attempts=1)
            async with ax.session.post(f"{ax.url}/_sim/faults", json={"burst_5xx": 2}) as answer:
                assert answer.status == 200
            for _ in range(2):
                with pytest.raises(PeerUnavailable):
                    await single.deliver(delivery(document()))
            assert (await single.deliver(delivery(document()))).remote_id

            down = {"down_until": time.time() + 60}
            async with ax.session.post(f"{ax.url}/_sim/faults", json=down) as answer:
                assert answer.status == 200
            with pytest.raises(PeerUnavailable):
                await ax.b.pending("document")
            async with ax.session.post(f"{ax.url}/_sim/faults", json={"down_until": None}):
                pass
            assert len(await ax.b.pending("document")) == 1

            async with ax.session.post(f"{ax.url}/_sim/faults", json={"no_such": 1}) as answer:
                assert answer.status == 400
            async with ax.session.get(f"{ax.url}/_sim/state") as answer:
                state = await answer.json()
            assert state["packages"] == 1
            assert state["counters"]["faults_burst_5xx"] == 2
            assert [i["from"] for i in state["queues"][B_UNIT]] == [A_UNIT]

    run(scenario)


def test_a_timeout_after_commit_is_outcome_unknown_and_the_package_is_queued() -> None:
    async def scenario() -> None:
        faults = AxisFaults(timeout_after_commit_rate=1.0, hang_seconds=5.0)
        async with axis(faults, timeout=0.5) as ax:
            started = time.monotonic()
            with pytest.raises(OutcomeUnknown, match="no answer"):
                await ax.a.deliver(delivery(document()))
            assert time.monotonic() - started < 4.0
            # The request used the whole budget (attempt_timeout=None): nothing left to retry.
            assert ax.state.counters["timeouts_after_commit"] == 1
            ax.state.set_faults(AxisFaults())
            (item,) = await ax.b.pending("document")
            verify_document(read_package(await ax.b.fetch(item)), pinned(A_UNIT))

    run(scenario)


@pytest.mark.parametrize("drop_connection", [False, True], ids=["hang", "drop"])
def test_a_send_that_may_have_been_committed_is_resent_and_stays_outcome_unknown(
    drop_connection: bool,
) -> None:
    """Each request is committed and then left unanswered: the call resends (the receiver
    deduplicates), stays within its budget and ends unknown; every copy is the same package."""

    async def scenario() -> None:
        faults = AxisFaults(
            timeout_after_commit_rate=1.0, hang_seconds=5.0, drop_connection=drop_connection
        )
        async with axis(faults, timeout=2.0) as ax:
            impatient = ax.connector(attempt_timeout=0.3, retry_wait=0.05)
            started = time.monotonic()
            with pytest.raises(OutcomeUnknown):
                await impatient.deliver(delivery(document()))
            assert time.monotonic() - started < 3.5
            sends = ax.state.counters["timeouts_after_commit"]
            assert 2 <= sends <= 4 and ax.state.counters["requests"] == sends
            ax.state.set_faults(AxisFaults())
            items = await ax.b.pending("document")
            assert len(items) == sends
            copies = {await ax.b.fetch(item) for item in items}
            assert len({read_package(c).document().header.document_id for c in copies}) == 1

    run(scenario)


def test_a_failed_resend_after_a_possible_commit_is_still_outcome_unknown() -> None:
    """The first request is committed and cut off, the retry meets a 503: the call cannot say
    the axis does not have the package."""

    async def scenario() -> None:
        async with axis(AxisFaults(timeout_after_commit_rate=1.0, drop_connection=True)) as ax:
            original = ax.state.set_faults

            def then_busy(operation: str, body: bytes) -> None:
                if ax.state.counters["timeouts_after_commit"] == 1:
                    original(AxisFaults(burst_5xx=10))

            ax.state.record_bytes = then_busy
            with pytest.raises(OutcomeUnknown, match="may have been committed"):
                await ax.a.deliver(delivery(document()))
            assert ax.state.counters["packages"] == 1
            assert ax.state.counters["faults_burst_5xx"] == 3

    run(scenario)


@pytest.mark.parametrize("refusal_code", ["23", "15"], ids=["receiver-locked", "secret-changed"])
def test_a_refusal_after_a_possible_commit_is_outcome_unknown_not_refused(
    refusal_code: str,
) -> None:
    """The first request is committed and cut off; the resend is refused (the receiver was locked
    meanwhile, or the system's secret changed). The axis holds the package from the first
    request, so the call cannot end as a final refusal: the outbox would mark the recipient
    failed and an operator's resend would deliver it again."""

    async def scenario() -> None:
        async with axis(AxisFaults(timeout_after_commit_rate=1.0, drop_connection=True)) as ax:

            def then_refuse(operation: str, body: bytes) -> None:
                if ax.state.counters["timeouts_after_commit"] == 1:
                    ax.state.set_faults(AxisFaults())
                    if refusal_code == "23":
                        ax.state.locked_units.add(B_UNIT)
                    else:
                        ax.state.add_system(A_SYSTEM, b"rotated", [A_UNIT])

            ax.state.record_bytes = then_refuse
            with pytest.raises(OutcomeUnknown) as caught:
                await ax.a.deliver(delivery(document()))
            error = caught.value
            assert not isinstance(error, PeerRefused)
            assert error.code == "PEER_OUTCOME_UNKNOWN"
            # The refusal is kept as the cause and in the detail the attempt records.
            assert isinstance(error.__cause__, VxpRefused)
            assert error.__cause__.axis_code == refusal_code
            assert error.message.startswith(f"axis code {refusal_code}: ")
            assert error.message.endswith("may have been committed (after 2 requests)")
            assert ax.state.counters["requests"] == 2
            assert ax.state.counters["packages"] == 1  # queued by the first request
            assert [item.from_code for item in ax.state.items.values()] == [A_UNIT]

    run(scenario)


@pytest.mark.parametrize(
    ("status", "answer", "cause"),
    [
        (200, {"status": "FAIL", "ErrorCode": "10", "ErrorDesc": "trùng?"}, VxpRefused),
        (200, {"status": "FAIL", "ErrorCode": "20", "ErrorDesc": "Lỗi hệ thống"}, PeerUnavailable),
        (403, None, VxpRefused),
    ],
    ids=["code-10", "code-20", "bare-403"],
)
def test_any_final_answer_after_a_possible_commit_is_outcome_unknown(
    status: int, answer: dict[str, str] | None, cause: type[Exception]
) -> None:
    """An axis that drops the connection after taking the first request, then answers the resend
    with a business code, its own system error (20) or a bare 4xx: whatever the last answer,
    the call ends unknown (the reviewer's repro, on loopback)."""

    async def scenario() -> None:
        requests = 0

        async def handler(request: web.Request) -> web.StreamResponse:
            nonlocal requests
            await request.read()
            requests += 1
            if requests == 1:
                assert request.transport is not None
                request.transport.abort()  # taken, then cut off before the answer
                return web.Response()
            if answer is None:
                return web.Response(status=status, text="Forbidden")
            return web.json_response(answer, status=status)

        app = web.Application()
        app.router.add_post("/{operation}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with aiohttp.ClientSession() as session:
                connector = a_connector_at(runner.addresses[0][1], session)
                with pytest.raises(OutcomeUnknown, match="may have been committed") as caught:
                    await connector.deliver(delivery(document()))
            assert type(caught.value.__cause__) is cause
            assert caught.value.message.endswith("(after 2 requests)")
            assert requests == 2
        finally:
            await runner.cleanup()

    run(scenario)


def test_a_refused_connection_is_unavailable() -> None:
    async def scenario() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with aiohttp.ClientSession() as session:
            connector = a_connector_at(port, session, timeout=2.0)
            with pytest.raises(PeerUnavailable) as caught:
                await connector.deliver(delivery(document()))
            assert not isinstance(caught.value, OutcomeUnknown)
            with pytest.raises(PeerUnavailable):
                await connector.pending("document")

    run(scenario)


def test_a_duplicated_delivery_reaches_the_receiver_twice_with_the_same_bytes() -> None:
    async def scenario() -> None:
        async with axis(AxisFaults(duplicate_delivery_rate=1.0)) as ax:
            await ax.a.deliver(delivery(document()))
            items = await ax.b.pending("document")  # listed 4 times: 2 docIds, each twice
            assert len(items) == 2 and items[0].remote_id != items[1].remote_id
            first, second = [await ax.b.fetch(item) for item in items]
            assert first == second

    run(scenario)


# ---------------------------------------------------------------------------------- classified


@pytest.mark.parametrize(
    "classification",
    [Classification.MAT, Classification.TOI_MAT, Classification.TUYET_MAT],
)
def test_a_classified_delivery_never_reaches_the_axis(classification: Classification) -> None:
    async def scenario() -> None:
        async with axis() as ax:
            secret_package = document().replace(b"V/v ", "TUYỆT MẬT ".encode())
            opened: list[int] = []
            hooked: list[tuple[str, bytes]] = []
            ax.state.record_bytes = lambda operation, body: hooked.append((operation, body))

            def open_package() -> IO[bytes]:
                opened.append(1)
                return io.BytesIO(secret_package)

            with pytest.raises(ClassifiedRefused):
                await ax.a.deliver(
                    delivery(
                        secret_package, classification=classification, open_package=open_package
                    )
                )
            assert opened == []  # not a byte was read
            assert ax.state.received_bodies == [] and ax.state.counters["requests"] == 0
            assert hooked == []
            assert nothing_queued(ax.state)

            # The recorder does see what does reach the axis.
            await ax.a.deliver(delivery(document()))
            assert ax.state.received_bodies == [document()]
            assert hooked == [("sendEdoc", document())]
            assert all("MẬT".encode() not in body for body in ax.state.received_bodies)

    run(scenario)


def test_the_vxp_connector_cannot_be_configured_as_a_non_axis_channel() -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ValueError):
                VxpConnector(
                    name="x",
                    endpoint="http://127.0.0.1:9",
                    system_id="s",
                    secret=b"k",
                    session=session,
                    is_axis=False,
                )

    run(scenario)


# ---------------------------------------------------------------------------------- directory


def test_a_directory_of_120000_agencies_is_listed_with_its_parents() -> None:
    agencies = generate_directory(120_000, seed=3)
    expected = {a.code: a for a in agencies}

    async def scenario() -> None:
        state = AxisState(seed=7)
        state.load_directory(agencies)
        async with axis(state=state, timeout=120.0) as ax:
            started = time.monotonic()
            entries = await ax.a.agencies()
            assert time.monotonic() - started < 60.0  # loose: it completes
            assert len(entries) == 120_000
            assert {e.code for e in entries} == set(expected)
            for entry in entries:
                assert entry.parent_code == expected[entry.code].parent_code
            by_code = {e.code: e for e in entries}
            assert by_code[A_UNIT].name == "Văn phòng Chính phủ"
            assert sum(1 for e in entries if e.old_code) > 0

            qd20 = {e.code: e for e in await ax.a.agencies_qd20()}
            assert len(qd20) == 120_000
            assert qd20[A_UNIT].code_qd20 == "G22"
            commune = next(a for a in agencies if a.code.startswith("000.01.2"))
            assert qd20[commune.code].parent_code == commune.parent_code

    run(scenario)


def test_the_generated_directory_agrees_with_the_packages_from_the_field(samples: Path) -> None:
    """Where a real package names a province's People's Committee by its code, the simulated
    directory gives that code the same province (H41 is Nghệ An in the field and in the docs)."""
    names = {a.code: a.name.casefold() for a in generate_directory(200)}
    seen = 0
    for path in sorted(samples.glob("*.edxml")):
        text = path.read_text(encoding="utf-8")
        pairs = re.findall(r"OrganId>(000\.00\.00\.H\d\d)<.*?OrganName>([^<]*)<", text, re.S)
        for code, organ_name in pairs:
            if organ_name.casefold().startswith("ubnd"):
                province = organ_name.casefold().split("tỉnh", 1)[-1].strip()
                assert names[code].endswith(province), (path.name, code, organ_name)
                seen += 1
    assert seen >= 2  # H41 Nghệ An and H14 Cao Bằng


def test_register_and_delete_an_agency_round_trip() -> None:
    code = "000.00.01.G22"

    async def scenario() -> None:
        async with axis() as ax:
            await asyncio.sleep(0.01)  # "since" has millisecond precision and is inclusive
            before = dt.datetime.now(dt.UTC)
            await ax.a.register_agency(
                code=code,
                name="Cục Kiểm soát thủ tục hành chính",
                parent_code=A_UNIT,
                mail="vanthu.ksthc@chinhphu.vn",
                mobile="0243000000",
            )
            entry = next(e for e in await ax.a.agencies() if e.code == code)
            assert (entry.name, entry.parent_code) == ("Cục Kiểm soát thủ tục hành chính", A_UNIT)
            assert ax.state.system_of(code) == A_SYSTEM  # it joined the axis behind A
            changes = await ax.b.synchronize_units(before)
            assert [(c.entry.code, c.deleted) for c in changes] == [(code, False)]

            again = ax.a.register_agency(code=code, name="Trùng mã", parent_code=A_UNIT)
            assert (await refusal(again)).axis_code == "22"

            await ax.a.delete_agency(code)
            assert code not in {e.code for e in await ax.a.agencies()}
            assert ax.state.system_of(code) is None
            changes = await ax.b.synchronize_units(before)
            assert [(c.entry.code, c.deleted) for c in changes] == [(code, True)]
            assert (await refusal(ax.a.delete_agency(code))).axis_code == "18"

            requests = ax.state.counters["requests"]
            with pytest.raises(UnitCodeError):
                await ax.a.register_agency(code="vxp.saas.03", name="Mã không chuẩn")
            assert ax.state.counters["requests"] == requests  # refused before any request

    run(scenario)


# ------------------------------------------------------------------ the trace splice, no sockets

TRACE_MOMENT = dt.datetime(2024, 3, 15, 1, 30, tzinfo=dt.UTC)  # 08:30 in Hà Nội


def test_the_trace_header_goes_before_bussiness_with_the_lists_prefix() -> None:
    data = document()
    spliced = append_trace_header(data, organ_id="axis", timestamp=TRACE_MOMENT)
    entry = (
        b"<edXML:TraceHeader><edXML:OrganId>axis</edXML:OrganId>"
        b"<edXML:Timestamp>2024/03/15 08:30:00</edXML:Timestamp></edXML:TraceHeader>"
    )
    assert spliced.index(entry) < spliced.index(b"<edXML:Bussiness")
    traces = read_package(spliced).document().traces
    assert traces[-1].organ_id == "axis" and traces[-1].timestamp == dt.datetime(2024, 3, 15, 8, 30)


def test_the_trace_header_is_spliced_into_unprefixed_and_empty_lists() -> None:
    unprefixed = (
        b'<?xml version="1.0"?><edXML xmlns="urn:x"><edXMLEnvelope><edXMLHeader>'
        b"<TraceHeaderList>\n  <TraceHeader><OrganId>a</OrganId></TraceHeader>\n</TraceHeaderList>"
        b"</edXMLHeader></edXMLEnvelope></edXML>"
    )
    spliced = append_trace_header(unprefixed, organ_id="b&c", timestamp=TRACE_MOMENT)
    assert b"<TraceHeader><OrganId>b&amp;c</OrganId><Timestamp>2024/03/15 08:30:00" in spliced
    assert spliced.endswith(
        b"</TraceHeader>\n</TraceHeaderList></edXMLHeader></edXMLEnvelope></edXML>"
    )
    empty = b"<r><e:TraceHeaderList xmlns:e='urn:x'/></r>"
    assert append_trace_header(empty, organ_id=None, timestamp=TRACE_MOMENT) == (
        b"<r><e:TraceHeaderList xmlns:e='urn:x'><e:TraceHeader>"
        b"<e:Timestamp>2024/03/15 08:30:00</e:Timestamp></e:TraceHeader></e:TraceHeaderList></r>"
    )
    assert append_trace_header(b"<status/>", organ_id="x", timestamp=TRACE_MOMENT) == b"<status/>"


# ------------------------------------------------------------------- getEdoc answers as sent


@pytest.mark.parametrize(
    ("encode", "expected"),
    [
        (lambda data: base64.b64encode(data).decode(), "same"),
        # Other producers wrap base64 at 76 columns (MIME) or use CRLF: tolerated.
        (lambda data: base64.encodebytes(data).decode(), "same"),
        (lambda data: base64.encodebytes(data).decode().replace("\n", "\r\n"), "same"),
        (lambda data: base64.b64encode(data).decode()[:-1] + "*", "refused"),
        (lambda data: base64.b64encode(data).decode() + "Đ", "refused"),
    ],
    ids=["one-line", "wrapped-76", "wrapped-crlf", "bad-character", "not-ascii"],
)
def test_get_edoc_data_is_decoded_strictly_whatever_its_line_breaks(
    encode: Callable[[bytes], str], expected: str
) -> None:
    package = document()

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"status": "OK", "ErrorCode": "0", "data": encode(package)})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/{operation}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                connector = a_connector_at(port, session)
                item = RemoteItem(remote_id="d-1", kind="document", sender=B_UNIT, created_at=None)
                if expected == "same":
                    assert await connector.fetch(item) == package
                else:
                    with pytest.raises(VxpRefused, match="not base64"):
                        await connector.fetch(item)
        finally:
            await runner.cleanup()

    run(scenario)


# ------------------------------------------------- what the official client sends, and answers


async def sdk_call(
    ax: Axis,
    operation: str,
    params: dict[str, str] | None = None,
    *,
    method: str = "POST",
    body: bytes = b"",
    content_type: str = "application/json",
    system: tuple[str, bytes] = (A_SYSTEM, A_SECRET),
    timestamp: dt.datetime | None = None,
) -> tuple[int, str, bytes]:
    """One request as the official SDK makes it (its forms, its method, its headers); the
    answer's HTTP status, Content-Type and body."""
    headers = sign_headers(
        system_id=system[0],
        secret=system[1],
        timestamp=timestamp or dt.datetime.now(dt.UTC),
        params={"Content-Type": content_type, **(params or {})},
    )
    async with ax.session.request(
        method, f"{ax.url}/{operation}", headers=headers, data=body or None
    ) as response:
        return response.status, response.content_type, await response.read()


def sdk_hash(data: bytes) -> str:
    """hash-file as the SDK writes it: each byte of the SHA-256 in hex, leading zero dropped."""
    return "".join(format(byte, "x") for byte in hashlib.sha256(data).digest())


async def sdk_send(ax: Axis, body: bytes, hash_of: bytes, **kwargs: Any) -> dict[str, Any]:
    status, _, answer = await sdk_call(
        ax,
        "sendEdoc",
        {
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "from": A_UNIT,
            "hash-file": sdk_hash(hash_of),
        },
        body=body,
        content_type="application/octet-stream",
        **kwargs,
    )
    payload: dict[str, Any] = json.loads(answer)
    payload["http"] = status
    return payload


def test_send_edoc_with_the_sdks_crlf_after_the_package_queues_the_package_alone() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            data = document()
            answer = await sdk_send(ax, data + b"\r\n", hash_of=data)
            assert (answer["status"], answer["ErrorCode"]) == ("OK", "0") and answer["DocId"]
            (item,) = await ax.b.pending("document")
            got = await ax.b.fetch(item)
            (added,) = re.findall(ADDED_TRACE, got)
            assert got.replace(added, b"", 1) == data  # no CRLF kept: the package alone
            assert verify_document(read_package(got), pinned(A_UNIT))
            # The CRLF is the SDK's trailer, not a licence: a hash of something else is refused.
            wrong = await sdk_send(ax, data + b"\r\n", hash_of=data + b" ")
            assert (wrong["status"], wrong["ErrorCode"]) == ("FAIL", "10")

    run(scenario)


def test_every_send_edoc_answer_carries_a_doc_id_empty_on_fail() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            data = document()
            assert (await sdk_send(ax, data, hash_of=data))["DocId"]
            refusals = [
                await sdk_send(ax, data, hash_of=b"another package"),  # 10
                await sdk_send(ax, document(to="000.00.00.H99"), hash_of=document("000.00.00.H99")),
                await sdk_send(ax, data, hash_of=data, system=(A_SYSTEM, b"wrong secret")),  # 15
            ]
            ax.state.set_faults(AxisFaults(burst_5xx=1))
            refusals.append(await sdk_send(ax, data, hash_of=data))  # 20, a 5xx
            assert [(r["ErrorCode"], r["http"]) for r in refusals] == [
                ("10", 200),
                ("18", 200),
                ("15", 401),
                ("20", 503),
            ]
            assert all(r["status"] == "FAIL" and r["DocId"] == "" for r in refusals)

    run(scenario)


def test_count_receive_edoc_and_status_count_what_is_waiting() -> None:
    async def counted(ax: Axis, operation: str, method: str, system: tuple[str, bytes]) -> int:
        status, _, body = await sdk_call(ax, operation, method=method, system=system)
        answer = json.loads(body)
        assert (status, answer["status"], answer["ErrorCode"]) == (200, "OK", "0")
        count: int = answer["count"]
        return count

    async def scenario() -> None:
        async with axis() as ax:
            b = (B_SYSTEM, B_SECRET)
            assert await counted(ax, "countReceiveEdoc", "GET", b) == 0
            await ax.a.deliver(delivery(document()))
            await ax.a.deliver(delivery(document()))
            await ax.b.deliver(
                delivery(status_from_b(), sender=B_UNIT, recipients=(A_UNIT,), kind="status")
            )
            assert await counted(ax, "countReceiveEdoc", "GET", b) == 2  # as the SDK: GET
            assert await counted(ax, "countReceiveEdoc", "POST", b) == 2
            assert await counted(ax, "countReceiveStatus", "GET", b) == 0
            assert await counted(ax, "countReceiveStatus", "GET", (A_SYSTEM, A_SECRET)) == 1
            assert await counted(ax, "countReceiveEdoc", "GET", (A_SYSTEM, A_SECRET)) == 0
            first, _ = await ax.b.pending("document")
            await ax.b.acknowledge(first, ok=True)
            assert await counted(ax, "countReceiveEdoc", "GET", b) == 1

    run(scenario)


def test_download_edoc_is_a_get_answered_with_the_raw_package() -> None:
    async def scenario() -> None:
        async with axis() as ax:
            await ax.a.deliver(delivery(document()))
            (item,) = await ax.b.pending("document")
            b = (B_SYSTEM, B_SECRET)
            doc_id = {"docId": item.remote_id}
            status, content_type, body = await sdk_call(
                ax, "downloadEdoc", doc_id, method="GET", system=b
            )
            assert (status, content_type) == (200, "application/octet-stream")
            assert body == await ax.b.fetch(item)  # what getEdoc gives in base64
            # Only by GET, only the receiver's own item, only a signed request.
            for method, who, params, code, http in [
                ("POST", b, doc_id, "10", 405),
                ("GET", (A_SYSTEM, A_SECRET), doc_id, "10", 200),
                ("GET", b, {"docId": "no-such-doc"}, "10", 200),
                ("GET", (B_SYSTEM, b"wrong"), doc_id, "15", 401),
            ]:
                status, content_type, body = await sdk_call(
                    ax, "downloadEdoc", params, method=method, system=who
                )
                assert (status, content_type) == (http, "application/json"), (method, who[0])
                assert (json.loads(body)["status"], json.loads(body)["ErrorCode"]) == ("FAIL", code)
            # And the other operations stay POST.
            status, _, body = await sdk_call(ax, "getEdoc", doc_id, method="GET", system=b)
            assert (status, json.loads(body)["ErrorCode"]) == (405, "10")

    run(scenario)


def test_delete_agency_takes_the_unit_as_agency_code_not_code() -> None:
    code = "000.00.01.G22"

    async def scenario() -> None:
        async with axis() as ax:
            await ax.a.register_agency(code=code, name="Cục Kiểm soát", parent_code=A_UNIT)
            status, _, body = await sdk_call(ax, "deleteAgency", {"code": code})
            answer = json.loads(body)
            assert (answer["status"], answer["ErrorCode"]) == ("FAIL", "10")
            assert "AgencyCode" in answer["ErrorDesc"]
            assert code in {e.code for e in await ax.a.agencies()}  # still there
            status, _, body = await sdk_call(ax, "deleteAgency", {"AgencyCode": code})
            assert (status, json.loads(body)["ErrorCode"]) == (200, "0")
            assert code not in {e.code for e in await ax.a.agencies()}

    run(scenario)


@pytest.mark.parametrize(
    ("age_minutes", "accepted"),
    [(0, True), (10, True), (-10, True), (14, True), (16, False), (-16, False)],
)
def test_a_timestamp_reused_for_minutes_still_fits_the_15_minute_window(
    age_minutes: int, accepted: bool
) -> None:
    """The SDK stamps once per service object and reuses the stamp for every call it makes."""

    async def scenario() -> None:
        async with axis() as ax:
            stamp = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=age_minutes)
            status, _, body = await sdk_call(
                ax,
                "getReceivedEdocList",
                {"servicetype": "eDoc", "messagetype": "edoc"},
                timestamp=stamp,
            )
            code = json.loads(body)["ErrorCode"]
            assert (status, code) == ((200, "0") if accepted else (401, "15"))

    run(scenario)


def test_the_simulators_default_windows_are_15_minutes_for_vxp_and_5_for_soap() -> None:
    args = axis_parser().parse_args([])
    assert axis_state_from(args).max_skew == dt.timedelta(minutes=15)
    assert max_skew_from(args) == 300.0  # what the SOAP variant started beside it gets
    args = axis_parser().parse_args(["--max-skew", "60"])
    assert axis_state_from(args).max_skew == dt.timedelta(minutes=1)
    assert max_skew_from(args) == 60.0
    assert axis_state_from(axis_parser().parse_args(["--max-skew", "0"])).max_skew is None

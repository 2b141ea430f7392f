"""The provincial SOAP axis: docgw's zeep connector against the SOAP simulator, over real HTTP on
loopback (the simulator runs on the test's own event loop; the connector's blocking zeep calls
run in threads, so the loop keeps serving).

A package docgw built and signed goes A → simulator → B; B lists it, fetches it with the
platform's TraceHeader appended, and the signature still verifies. Refusals, faults, timeouts and
classified packages each end in their own connector error. The first tests need no sockets: the
WSDL, the zeep client built from package data, the mapping of canned answers, the trace splice.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import io
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import requests
import zeep.exceptions
from aiohttp import web
from lxml import etree
from pki import RECEIVER, SENDER, attachment_sources, sample_header, sample_status, unit
from zeep.transports import Transport

from connectors.base import (
    ClassifiedRefused,
    Delivery,
    DirectoryEntry,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    RemoteItem,
)
from connectors.simulators.faults import AxisFaults
from connectors.simulators.soap_axis import (
    DEFAULT_PATH,
    DEFAULT_RELAY_ID,
    SoapAxisState,
    append_trace,
    create_soap_app,
)
from connectors.soap_axis import (
    BINDING,
    SERVICE_NS,
    SoapAxisConnector,
    load_service_client,
    wsdl_bytes,
)
from envelopes.building import build_document_bytes, build_status
from envelopes.model import Business, Classification, Organization
from envelopes.reading import read_package
from envelopes.signing import Signer, TrustPolicy
from envelopes.verification import verify_document, verify_status
from envelopes.xmlsafe import parse_bytes

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
OPERATIONS = {
    "SendDocument",
    "GetPendingDocumentIds",
    "GetDocument",
    "ConfirmReceived",
    "UpdateStatus",
    "GetOrganizations",
}
PDF = b"%PDF-1.7\n" + b"C\xc3\xb4ng v\xc4\x83n s\xe1\xbb\x91 7816\n" * 200
ORGANIZATIONS = [
    DirectoryEntry(
        code=SENDER, name="Văn phòng Chính phủ", email="vpcp@chinhphu.vn", parent_code=None
    ),
    DirectoryEntry(
        code=RECEIVER, name="UBND tỉnh Thừa Thiên Huế", email="ubnd@thuathienhue.gov.vn"
    ),
    DirectoryEntry(
        code="000.01.44.H44", name="Văn phòng UBND tỉnh Thừa Thiên Huế", parent_code=RECEIVER
    ),
]


# ------------------------------------------------------------------------------------ helpers


def signer(code: str = SENDER) -> Signer:
    issued = unit(code)  # gateway.keystore.create_ca / issue_unit_certificate, once per session
    return Signer(private_key=issued.key, certificate=issued.certificate)


def pinned(code: str = SENDER) -> TrustPolicy:
    return TrustPolicy(pinned=(unit(code).certificate,))


def document(**header_changes: Any) -> bytes:
    header = dataclasses.replace(sample_header(), **header_changes)
    data, _ = build_document_bytes(
        header,
        attachments=attachment_sources({"7816-VPCP-TTDT.pdf": PDF}),
        business=Business(),
        signer=signer(),
    )
    return data


def delivery(
    data: bytes,
    *,
    kind: str = "document",
    sender: str = SENDER,
    recipients: tuple[str, ...] = (RECEIVER,),
    classification: Classification = Classification.THUONG,
    open_package: Callable[[], io.BytesIO] | None = None,
) -> Delivery:
    return Delivery(
        message_id="msg-1",
        document_id=sample_header().document_id,
        kind=kind,
        sender=sender,
        recipients=recipients,
        classification=classification,
        open_package=open_package or functools.partial(io.BytesIO, data),
        package_size=len(data),
        package_sha256=hashlib.sha256(data).hexdigest(),
        attempt=1,
    )


def seeded(**changes: Any) -> SoapAxisState:
    return SoapAxisState(organizations=list(ORGANIZATIONS), seed=7, **changes)


@asynccontextmanager
async def serve(state: SoapAxisState) -> AsyncIterator[str]:
    """The simulator on an ephemeral loopback port; yields the service URL."""
    runner = web.AppRunner(create_soap_app(state))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}{DEFAULT_PATH}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def connector(url: str, **fields: Any) -> AsyncIterator[SoapAxisConnector]:
    made = SoapAxisConnector(name="lgsp", endpoint=url, **{"timeout_seconds": 5.0, **fields})
    try:
        yield made
    finally:
        await made.close()


class NoLoadTransport(Transport):
    """Any attempt to fetch a WSDL or schema through the connector's transport fails the test."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loads: list[str] = []

    def load(self, url: str) -> bytes:
        self.loads.append(url)
        raise AssertionError(f"the WSDL must come from package data, not {url}")


@pytest.fixture
def no_load_transport() -> Iterator[NoLoadTransport]:
    transport = NoLoadTransport(operation_timeout=5)
    yield transport
    transport.session.close()


# ------------------------------------------------------------------ the WSDL (no sockets needed)


def test_the_wsdl_parses_with_the_hardened_parser_and_declares_the_six_operations() -> None:
    root = parse_bytes(wsdl_bytes())
    assert root.get("targetNamespace") == SERVICE_NS
    port_type = {op.get("name") for op in root.iter(f"{{{WSDL_NS}}}operation")}
    assert port_type == OPERATIONS
    binding = root.find(f"{{{WSDL_NS}}}binding")
    assert binding is not None
    assert {op.get("name") for op in binding.findall(f"{{{WSDL_NS}}}operation")} == OPERATIONS
    # Self-contained: nothing to import, so nothing to fetch.
    assert not [e for e in root.iter() if etree.QName(e).localname in ("import", "include")]


def test_zeep_builds_the_client_from_package_data_without_loading_anything(
    no_load_transport: NoLoadTransport,
) -> None:
    client = load_service_client(no_load_transport)
    assert set(client.wsdl.bindings[BINDING]._operations) == OPERATIONS
    assert no_load_transport.loads == []


def test_the_trace_goes_after_the_last_trace_or_before_the_business_block() -> None:
    import datetime as dt

    when = dt.datetime(2024, 3, 15, 9, 0, 0)
    with_business = (
        b'<e:TraceHeaderList xmlns:e="u"><e:Bussiness Id="b"><e:Paper>0</e:Paper></e:Bussiness>'
        b"</e:TraceHeaderList>"
    )
    spliced = append_trace(with_business, "X.1", when)
    assert spliced.startswith(
        b'<e:TraceHeaderList xmlns:e="u"><e:TraceHeader><e:OrganId>X.1</e:OrganId>'
        b"<e:Timestamp>2024/03/15 09:00:00</e:Timestamp></e:TraceHeader><e:Bussiness"
    )
    with_trace = (
        b"<TraceHeaderList><TraceHeader><OrganId>A</OrganId></TraceHeader> </TraceHeaderList>"
    )
    assert append_trace(with_trace, "B&C", when) == (
        b"<TraceHeaderList><TraceHeader><OrganId>A</OrganId></TraceHeader><TraceHeader>"
        b"<OrganId>B&amp;C</OrganId><Timestamp>2024/03/15 09:00:00</Timestamp></TraceHeader>"
        b" </TraceHeaderList>"
    )
    empty = append_trace(b"<x><edXML:TraceHeaderList /></x>", "B", when)
    assert empty.startswith(b"<x><edXML:TraceHeaderList><edXML:TraceHeader>")
    assert empty.endswith(b"</edXML:TraceHeader></edXML:TraceHeaderList></x>")


class CannedTransport(Transport):
    """Answers every call with one canned HTTP response (the mapping of answers to errors)."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/xml") -> None:
        super().__init__()
        self.status, self.body, self.content_type = status, body, content_type

    def post_xml(self, address: str, envelope: Any, headers: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = self.status
        response._content = self.body
        response.headers["Content-Type"] = self.content_type
        return response


def _fault(code: str) -> bytes:
    return (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b"<soap:Fault><faultcode>soap:%s</faultcode><faultstring>no</faultstring></soap:Fault>"
        b"</soap:Body></soap:Envelope>" % code.encode()
    )


def _answer(status: str, code: str) -> bytes:
    return (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<SendDocumentResponse xmlns="urn:docgw:lgsp:document-service:1"><Status>%s</Status>'
        b"<ErrorCode>%s</ErrorCode></SendDocumentResponse></soap:Body></soap:Envelope>"
        % (status.encode(), code.encode())
    )


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (200, _answer("FAIL", "22"), "text/xml", PeerRefused),
        # 20 is the platform's own "system error": worth another try later.
        (200, _answer("FAIL", "20"), "text/xml", PeerUnavailable),
        (500, _fault("Client"), "text/xml", PeerRefused),
        (500, _fault("Server"), "text/xml", PeerUnavailable),
        (503, b"<html>busy</html>", "text/html", PeerUnavailable),
        (502, b"", "text/html", PeerUnavailable),
        (404, b"not found", "text/plain", PeerRefused),
        (429, b"slow down", "text/plain", PeerUnavailable),
        # The platform answered, but not in a way anyone can read: it may have registered it.
        (200, b"<html>welcome</html>", "text/html", OutcomeUnknown),
        (202, b"", "text/xml", OutcomeUnknown),
    ],
)
def test_answers_map_to_connector_errors(
    status: int, body: bytes, content_type: str, expected: type[Exception]
) -> None:
    async def body_() -> None:
        transport = CannedTransport(status, body, content_type)
        async with connector("http://lgsp.invalid/x", transport=transport) as soap:
            with pytest.raises(expected):
                await soap.deliver(delivery(b"<edXML/>"))
        transport.session.close()

    asyncio.run(body_())


# ------------------------------------------------------------------------- over real HTTP


def test_a_signed_document_goes_from_a_through_the_platform_to_b_and_still_verifies(
    no_load_transport: NoLoadTransport,
) -> None:
    data = document()
    state = seeded()

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, transport=no_load_transport) as a,
            connector(url, receivers=(RECEIVER,)) as b,
        ):
            receipt = await a.deliver(delivery(data))
            assert receipt.remote_id and not receipt.duplicate

            items = await b.pending("document")
            assert [item.kind for item in items] == ["document"]
            assert await b.pending("status") == []
            fetched = await b.fetch(items[0])

            # The platform appended its trace; the signed parts did not move by a byte.
            assert fetched != data
            assert DEFAULT_RELAY_ID.encode() in fetched
            verified = verify_document(read_package(fetched), pinned())
            assert verified.package.header == sample_header()
            assert verified.package.attachments[0].sha256 == hashlib.sha256(PDF).hexdigest()
            assert [t.organ_id for t in verified.unsigned_traces] == [DEFAULT_RELAY_ID]

            await b.acknowledge(items[0], ok=True)
            assert await b.pending("document") == []
            await b.acknowledge(items[0], ok=True)  # confirming again is harmless
            assert [(c.remote_id, c.ok) for c in state.confirmations] == [
                (items[0].remote_id, True)
            ]

            # The same package again (a resend after an unknown outcome) is one send.
            again = await a.deliver(delivery(data))
            assert again.remote_id == receipt.remote_id and again.duplicate
            assert await b.pending("document") == []

    asyncio.run(body())
    assert no_load_transport.loads == []


def test_a_status_package_goes_back_to_the_original_sender() -> None:
    status = build_status(sample_status(), signer=signer(RECEIVER))

    async def body() -> None:
        async with (
            serve(seeded()) as url,
            connector(url) as b,
            connector(url, receivers=(SENDER,)) as a,
        ):
            await b.deliver(delivery(status, kind="status", sender=RECEIVER, recipients=(SENDER,)))
            assert await a.pending("document") == []
            (item,) = await a.pending("status")
            fetched = await a.fetch(item)
            assert fetched == status  # status packages have no trace list to append to
            verified = verify_status(read_package(fetched), pinned(RECEIVER))
            assert verified.status.response_for.organ_id == SENDER
            await a.acknowledge(item, ok=False, reason="test")
            assert await a.pending("status") == []

    asyncio.run(body())


def test_an_unknown_receiver_is_a_final_refusal_with_the_platform_code() -> None:
    stranger = Organization(organ_id="000.00.00.H99", organ_name="Không tồn tại")
    data = document(to=(stranger,))
    state = seeded()

    async def body() -> None:
        async with serve(state) as url, connector(url, receivers=(RECEIVER,)) as soap:
            with pytest.raises(PeerRefused, match="axis code 18"):
                await soap.deliver(delivery(data, recipients=("000.00.00.H99",)))
            with pytest.raises(PeerRefused, match="axis code 18"):
                await dataclasses.replace(soap, receivers=("000.00.00.H99",)).pending("document")
            with pytest.raises(PeerRefused, match="axis code 30"):
                await soap.fetch(RemoteItem(remote_id="nope", kind="document"))

    asyncio.run(body())
    assert state.sent == {} and state.queues == {}


def test_a_sender_that_is_not_the_package_sender_is_refused() -> None:
    data = document()

    async def body() -> None:
        async with serve(seeded()) as url, connector(url) as soap:
            with pytest.raises(PeerRefused, match="axis code 22"):
                await soap.deliver(delivery(data, sender=RECEIVER))
            with pytest.raises(PeerRefused, match="axis code 22"):
                await soap.deliver(delivery(b"<edXML>not a package</edXML>"))

    asyncio.run(body())


def test_an_injected_fault_is_a_retryable_unavailability() -> None:
    data = document()
    state = seeded(faults=AxisFaults(error_rate=1.0))

    async def body() -> None:
        async with serve(state) as url, connector(url, receivers=(RECEIVER,)) as soap:
            with pytest.raises(PeerUnavailable, match="SOAP Fault") as caught:
                await soap.deliver(delivery(data))
            assert isinstance(caught.value.__cause__, zeep.exceptions.Fault)  # raise … from
            with pytest.raises(PeerUnavailable):
                await soap.pending("document")
            state.set_faults(AxisFaults())
            await soap.deliver(delivery(data))
            assert len(await soap.pending("document")) == 1

    asyncio.run(body())


def test_a_timeout_after_sending_is_an_unknown_outcome_and_the_resend_is_a_duplicate() -> None:
    data = document()
    state = seeded(faults=AxisFaults(latency_ms=600))

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, timeout_seconds=0.2) as impatient,
            connector(url, receivers=(RECEIVER,)) as b,
        ):
            with pytest.raises(OutcomeUnknown, match="no answer"):
                await impatient.deliver(delivery(data))
            await asyncio.sleep(0.8)  # the platform finishes what it started
            state.set_faults(AxisFaults())
            assert (await b.deliver(delivery(data))).duplicate
            assert len(await b.pending("document")) == 1

    asyncio.run(body())


def test_nobody_listening_is_an_unavailability() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens

    async def body() -> None:
        async with connector(f"http://127.0.0.1:{port}/DocumentService") as soap:
            with pytest.raises(PeerUnavailable, match="could not connect"):
                await soap.deliver(delivery(document()))

    asyncio.run(body())


@asynccontextmanager
async def hang_up() -> AsyncIterator[str]:
    """A server that reads the request and closes the connection without answering."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/DocumentService"
    finally:
        server.close()
        await server.wait_closed()


def test_a_connection_dropped_after_sending_is_unknown_for_a_send_and_retryable_for_a_read() -> (
    None
):
    async def body() -> None:
        async with hang_up() as url, connector(url, receivers=(RECEIVER,)) as soap:
            with pytest.raises(OutcomeUnknown):
                await soap.deliver(delivery(document()))
            with pytest.raises(PeerUnavailable):
                await soap.pending("document")

    asyncio.run(body())


# --------------------------------------------------------------- systems and authentication

A_SYSTEM, B_SYSTEM = "lgsp-he-thong-a", "lgsp-he-thong-b"
A_SECRET, B_SECRET = b"soap-secret-a", b"soap-secret-b"


def with_systems(**changes: Any) -> SoapAxisState:
    state = seeded(**changes)
    state.add_system(A_SYSTEM, A_SECRET, [SENDER])
    state.add_system(B_SYSTEM, B_SECRET, [RECEIVER])
    return state


def test_systems_authenticate_with_a_ws_security_username_token() -> None:
    data = document()
    state = with_systems()

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, system_id=A_SYSTEM, secret=A_SECRET, receivers=(SENDER,)) as a,
            connector(url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)) as b,
            connector(url, system_id=A_SYSTEM, secret=b"wrong") as intruder,
            connector(url) as anonymous,
        ):
            for stranger, why in ((intruder, "bad_digest"), (anonymous, "missing")):
                with pytest.raises(PeerRefused, match="wsse:FailedAuthentication"):
                    await stranger.deliver(delivery(data))
                assert state.counters[f"auth_failures_{why}"] == 1
            assert state.sent == {}  # refused before anything was read

            receipt = await a.deliver(delivery(data))
            (item,) = await b.pending("document")
            assert verify_document(read_package(await b.fetch(item)), pinned())

            # A system acts only for its own units: B cannot send A's package, A cannot list or
            # fetch B's mail (another system's item is as unknown as a missing one).
            with pytest.raises(PeerRefused, match="axis code 19"):
                await b.deliver(delivery(data))
            a_for_b = dataclasses.replace(a, receivers=(RECEIVER,))
            with pytest.raises(PeerRefused, match="axis code 18"):
                await a_for_b.pending("document")
            with pytest.raises(PeerRefused, match="axis code 30"):
                await a.fetch(item)
            with pytest.raises(PeerRefused, match="axis code 30"):
                await a.acknowledge(item, ok=True)
            await b.acknowledge(item, ok=True)
            assert [(c.remote_id, c.ok) for c in state.confirmations] == [(item.remote_id, True)]
            assert receipt.remote_id == state.items[item.remote_id].document_id
            await a_for_b.close()

    asyncio.run(body())
    # The secret never travels: only its digest, a nonce and a timestamp.
    assert all(A_SECRET not in request for request in state.requests)


def test_a_replayed_or_stale_username_token_is_refused() -> None:
    state = with_systems()

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)) as b,
            aiohttp.ClientSession() as http,
        ):
            assert await b.pending("document") == []
            captured = state.requests[-1]
            headers = {"Content-Type": "text/xml; charset=utf-8"}
            async with http.post(url, data=captured, headers=headers) as answer:
                assert answer.status == 500
                assert b"wsse:FailedAuthentication" in await answer.read()
            assert state.counters["auth_failures_replayed"] == 1

            state.epoch = lambda: time.time() + 3600  # the platform's clock an hour ahead
            with pytest.raises(PeerRefused, match="FailedAuthentication"):
                await b.pending("document")
            assert state.counters["auth_failures_expired"] == 1

    asyncio.run(body())


_NONCE = re.compile(rb"(<wsse:Nonce[^>]*>)([^<]*)(</wsse:Nonce>)")
_CREATED = re.compile(rb"(<wsu:Created[^>]*>)([^<]*)(</wsu:Created>)")
_PASSWORD = re.compile(rb"(<wsse:Password[^>]*>)([^<]*)(</wsse:Password>)")
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _replaced(pattern: re.Pattern[bytes], request: bytes, text: bytes) -> bytes:
    replaced, count = pattern.subn(lambda m: m[1] + text + m[3], request, count=1)
    assert count == 1
    return replaced


def nonce_of(request: bytes) -> bytes:
    found = _NONCE.search(request)
    assert found is not None
    return found[2]


def non_canonical(nonce_text: bytes) -> bytes:
    """The same nonce under another text: the character before ``==`` carries four unused bits,
    and one of them set (``…Mqw==`` → ``…Mqx==``) decodes to the same bytes."""
    assert nonce_text.endswith(b"==") and not nonce_text.endswith(b"===")
    flipped = _BASE64.index(nonce_text[-3]) ^ 1
    return nonce_text[:-3] + _BASE64[flipped : flipped + 1] + b"=="


def signed_anew(template: bytes, secret: bytes, nonce: bytes, created: float) -> bytes:
    """``template`` (a captured request) with a UsernameToken of our own nonce and Created."""
    stamp = dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    digest = base64.b64encode(hashlib.sha1(nonce + stamp + secret).digest())
    request = _replaced(_NONCE, template, base64.b64encode(nonce))
    request = _replaced(_CREATED, request, stamp)
    return _replaced(_PASSWORD, request, digest)


async def post_soap(http: aiohttp.ClientSession, url: str, request: bytes) -> tuple[int, bytes]:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    async with http.post(url, data=request, headers=headers) as answer:
        return answer.status, await answer.read()


def test_a_token_replayed_under_a_non_canonical_nonce_is_refused() -> None:
    """Nonces are compared decoded: a captured token whose nonce's last character is changed
    (the same bytes, other unused bits) is no new nonce."""
    state = with_systems()

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)) as b,
            aiohttp.ClientSession() as http,
        ):
            assert await b.pending("document") == []
            captured = state.requests[-1]
            original = nonce_of(captured)
            variant = non_canonical(original)
            assert variant != original
            assert base64.b64decode(variant, validate=True) == base64.b64decode(original)

            status, answer = await post_soap(http, url, _replaced(_NONCE, captured, variant))
            assert status == 500 and b"wsse:FailedAuthentication" in answer
            assert state.counters["auth_failures_malformed"] == 1
            status, answer = await post_soap(http, url, captured)
            assert status == 500 and b"wsse:FailedAuthentication" in answer
            assert state.counters["auth_failures_replayed"] == 1
            assert state.counters["auth_failures"] == 2
            assert await b.pending("document") == []  # a fresh token still passes

    asyncio.run(body())


def test_the_nonces_remembered_are_bounded_by_age_or_by_count() -> None:
    """With a skew, a nonce is forgotten once its token has expired (twice the skew after it
    came); with none (``--max-skew 0``), only the latest ``max_nonces`` are kept."""
    aged = with_systems(max_skew=60.0)
    now = [time.time()]
    aged.epoch = lambda: now[0]
    counted = with_systems(max_skew=None, max_nonces=3)

    async def body() -> None:
        async with (
            serve(aged) as aged_url,
            serve(counted) as counted_url,
            connector(aged_url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)) as b,
            connector(
                counted_url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)
            ) as b_counted,
            aiohttp.ClientSession() as http,
        ):
            await b.pending("document")
            template = aged.requests[-1]
            early = [signed_anew(template, B_SECRET, bytes([i]) * 16, now[0]) for i in range(5)]
            for request in early:
                assert (await post_soap(http, aged_url, request))[0] == 200
            assert len(aged.nonces) == len(aged.nonce_arrivals) == 6

            now[0] += 121  # past twice the skew: every token so far has expired
            late = signed_anew(template, B_SECRET, b"\xff" * 16, now[0])
            assert (await post_soap(http, aged_url, late))[0] == 200
            assert list(aged.nonces) == [b"\xff" * 16]
            assert len(aged.nonce_arrivals) == 1
            # A forgotten nonce's token is refused all the same: it has expired.
            assert (await post_soap(http, aged_url, early[0]))[0] == 500
            assert aged.counters["auth_failures_expired"] == 1
            assert (await post_soap(http, aged_url, late))[0] == 500
            assert aged.counters["auth_failures_replayed"] == 1

            for _ in range(5):
                assert await b_counted.pending("document") == []
            assert len(counted.nonces) == len(counted.nonce_arrivals) == 3
            latest = counted.requests[-1]
            assert base64.b64decode(nonce_of(latest)) in counted.nonces
            assert (await post_soap(http, counted_url, latest))[0] == 500
            assert counted.counters["auth_failures_replayed"] == 1

    asyncio.run(body())


# ------------------------------------------------------------------- faults (shared with VXP)


async def set_faults(url: str, **faults: Any) -> dict[str, Any]:
    control = url.replace(DEFAULT_PATH, "/_sim/faults")
    async with aiohttp.ClientSession() as http, http.post(control, json=faults) as answer:
        assert answer.status == 200, await answer.text()
        settings: dict[str, Any] = await answer.json()
        return settings


def test_bursts_and_down_windows_set_at_run_time_are_soap_server_faults() -> None:
    data = document()
    state = with_systems()

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, system_id=A_SYSTEM, secret=A_SECRET) as a,
            connector(url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)) as b,
        ):
            assert (await set_faults(url, burst_5xx=2))["burst_5xx"] == 2
            for _ in range(2):
                with pytest.raises(PeerUnavailable, match=r"SOAP Fault.*burst"):
                    await a.deliver(delivery(data))
            assert (await a.deliver(delivery(data))).remote_id
            assert state.counters["faults_burst_5xx"] == 2

            await set_faults(url, down_until=time.time() + 60)
            with pytest.raises(PeerUnavailable, match="down"):
                await b.pending("document")
            await set_faults(url, down_until=None, latency_ms=150)
            started = time.monotonic()
            assert len(await b.pending("document")) == 1
            assert time.monotonic() - started >= 0.15

            control = url.replace(DEFAULT_PATH, "/_sim/faults")
            async with aiohttp.ClientSession() as http:
                async with http.post(control, json={"error_rate": 2}) as answer:
                    assert answer.status == 400
                async with http.get(url.replace(DEFAULT_PATH, "/_sim/state")) as answer:
                    snapshot = await answer.json()
            assert snapshot["packages"] == 1
            assert snapshot["counters"]["faults_down"] == 1
            assert snapshot["faults"]["latency_ms"] == 150

    asyncio.run(body())


def test_duplicate_deliveries_reach_the_receiver_twice_with_the_same_package() -> None:
    data = document()
    state = with_systems(faults=AxisFaults(duplicate_delivery_rate=1.0))

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, system_id=A_SYSTEM, secret=A_SECRET) as a,
            connector(url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)) as b,
        ):
            await a.deliver(delivery(data))
            items = await b.pending("document")  # 2 ids, each listed twice: 2 items
            assert len(items) == 2 and items[0].remote_id != items[1].remote_id
            first, second = [await b.fetch(item) for item in items]
            assert first == second
            assert state.counters["duplicate_deliveries"] == 1

    asyncio.run(body())


@pytest.mark.parametrize("drop_connection", [False, True], ids=["hang", "drop"])
def test_a_send_committed_then_left_unanswered_is_unknown_and_queued(
    drop_connection: bool,
) -> None:
    data = document()
    faults = AxisFaults(
        timeout_after_commit_rate=1.0, hang_seconds=3.0, drop_connection=drop_connection
    )
    state = with_systems(faults=faults)

    async def body() -> None:
        async with (
            serve(state) as url,
            connector(url, system_id=A_SYSTEM, secret=A_SECRET, timeout_seconds=0.5) as a,
            connector(url, system_id=B_SYSTEM, secret=B_SECRET, receivers=(RECEIVER,)) as b,
        ):
            with pytest.raises(OutcomeUnknown):
                await a.deliver(delivery(data))
            assert state.counters["timeouts_after_commit"] == 1
            state.set_faults(AxisFaults())
            assert (await a.deliver(delivery(data))).duplicate  # the resend is recognised
            (item,) = await b.pending("document")
            verify_document(read_package(await b.fetch(item)), pinned())

    asyncio.run(body())


@pytest.mark.parametrize(
    "classification", [Classification.MAT, Classification.TOI_MAT, Classification.TUYET_MAT]
)
def test_a_classified_package_is_refused_before_a_byte_is_read_or_sent(
    classification: Classification,
) -> None:
    state = seeded()

    def never_opened() -> io.BytesIO:
        raise AssertionError("the connector read a classified package")

    async def body() -> None:
        async with serve(state) as url, connector(url) as soap:
            with pytest.raises(ClassifiedRefused):
                await soap.deliver(
                    delivery(b"", classification=classification, open_package=never_opened)
                )

    asyncio.run(body())
    assert state.requests == []


def test_get_organizations_returns_the_seeded_directory(no_load_transport: NoLoadTransport) -> None:
    async def body() -> None:
        async with serve(seeded()) as url, connector(url, transport=no_load_transport) as soap:
            assert await soap.organizations() == ORGANIZATIONS

    asyncio.run(body())
    assert no_load_transport.loads == []


def test_the_wsdl_is_served_with_this_servers_address_and_update_status_is_answered() -> None:
    data = document()
    state = seeded()

    async def body() -> None:
        async with serve(state) as url, connector(url, receivers=(RECEIVER,)) as soap:
            async with aiohttp.ClientSession() as http, http.get(url + "?wsdl") as response:
                assert response.status == 200
                served = parse_bytes(await response.read())
            (address,) = served.iter(f"{{{WSDL_SOAP_NS}}}address")
            assert address.get("location") == url

            await soap.deliver(delivery(data))
            (item,) = await soap.pending("document")
            # UpdateStatus is the receiver's transport acknowledgement; the gateway does not
            # use it (ConfirmReceived does the job), so plain zeep calls it here.
            transport = Transport(operation_timeout=5)
            service = load_service_client(transport).create_service(BINDING, url)
            answer = await asyncio.to_thread(
                service.UpdateStatus, DocumentId=item.remote_id, Status="processing"
            )
            assert answer.Status == "OK"
            assert state.transport_statuses == {item.remote_id: "processing"}
            missing = await asyncio.to_thread(service.UpdateStatus, DocumentId="x", Status="done")
            assert (missing.Status, missing.ErrorCode) == ("FAIL", "30")
            transport.session.close()

    asyncio.run(body())


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
        b"not xml",
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<Nope xmlns="urn:docgw:lgsp:document-service:1"/></soap:Body></soap:Envelope>',
        b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body/>'
        b"</soap:Envelope>",
    ],
)
def test_the_simulator_answers_bad_requests_with_a_soap_fault(body: bytes) -> None:
    state = seeded()

    async def run() -> tuple[int, bytes]:
        async with (
            serve(state) as url,
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers={"Content-Type": "text/xml"}) as response,
        ):
            return response.status, await response.read()

    status, answer = asyncio.run(run())
    assert status == 500
    fault = parse_bytes(answer).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") in ("soap:Client", "soap:VersionMismatch")
    assert state.requests == [body]


def test_a_package_over_libxml2s_default_text_limit_travels() -> None:
    """libxml2 refuses a text node over 10,000,000 characters: parsed into a tree, a package over
    about 7.5 MB (a scanned document with appendices) could never be received. GetDocument's
    answer is streamed instead (memory: test_soap_large_packages.py)."""
    big = bytes(range(256)) * (8 << 12)  # 8 MiB of incompressible-looking bytes
    header = sample_header()
    data, _ = build_document_bytes(
        header, attachments=attachment_sources({"big.pdf": PDF + big}), signer=signer()
    )
    assert len(data) > 10_000_000

    async def body() -> bytes:
        async with serve(seeded()) as url, connector(url, receivers=(RECEIVER,)) as soap:
            await soap.deliver(delivery(data))
            (item,) = await soap.pending("document")
            return await soap.fetch(item)

    fetched = asyncio.run(body())
    verified = verify_document(read_package(fetched), pinned())
    (attachment,) = verified.package.attachments
    assert attachment.size == len(PDF + big)


_PACKAGE_TEXT = re.compile(rb"(<(?:[\w.-]+:)?Package>)[^<]*(</(?:[\w.-]+:)?Package>)")
_HOSTILE_DOCTYPES = {
    # Each defines what the Package text then references: expansion, a local file, a URL.
    "billion-laughs": (
        b'<!DOCTYPE Envelope [<!ENTITY l0 "lol">'
        + b"".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">'.encode() for n in range(1, 10))
        + b"]>",
        b"&l9;",
    ),
    "external-file": (b'<!DOCTYPE Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>', b"&x;"),
    "external-dtd": (b'<!DOCTYPE Envelope SYSTEM "http://127.0.0.1:9/x.dtd">', b"&x;"),
}


@asynccontextmanager
async def hostile_answers(upstream: str, doctype: bytes, reference: bytes) -> AsyncIterator[str]:
    """A platform that answers like the simulator, but with a DOCTYPE whose entities the
    package text references."""

    async def handle(request: web.Request) -> web.Response:
        async with (
            aiohttp.ClientSession() as http,
            http.post(upstream, data=await request.read(), headers=dict(request.headers)) as up,
        ):
            answer = await up.read()
        if b"Package>" in answer:
            answer = _PACKAGE_TEXT.sub(rb"\g<1>" + reference + rb"\g<2>", answer)
            answer = doctype + b"\n" + answer.split(b"?>", 1)[-1].lstrip()
        return web.Response(body=answer, content_type="text/xml")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post(DEFAULT_PATH, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{DEFAULT_PATH}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("attack", sorted(_HOSTILE_DOCTYPES))
def test_answers_with_a_dtd_are_refused_and_their_entities_never_expanded(attack: str) -> None:
    """GetDocument's answer, read by the streaming parser: an answer with a DTD is refused, its
    entities never expanded or fetched."""
    doctype, reference = _HOSTILE_DOCTYPES[attack]

    async def body() -> None:
        async with (
            serve(seeded()) as upstream,
            hostile_answers(upstream, doctype, reference) as url,
            connector(url, receivers=(RECEIVER,)) as soap,
        ):
            await soap.deliver(delivery(document()))
            (item,) = await soap.pending("document")
            with pytest.raises(PeerUnavailable, match=r"unreadable answer|Forbidden|DTD"):
                await soap.fetch(item)

    asyncio.run(body())

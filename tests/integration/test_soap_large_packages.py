"""Large packages from a provincial SOAP axis: GetDocument's answer is streamed, the package's
base64 text decoded as it arrives (the hardened streaming parser with the text diverted), so
receiving a package costs about its own size in memory, whatever libxml2's text-node cap.

The fetch runs in a child process that reports its own peak RSS (VmHWM) before and after; the
simulator runs on the test's event loop, over real HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from pki import RECEIVER, SENDER, attachment_sources, sample_header, unit

from connectors.base import Delivery, DirectoryEntry, PeerRefused, PeerUnavailable, RemoteItem
from connectors.simulators.soap_axis import (
    DEFAULT_PATH,
    QueuedItem,
    SentPackage,
    SoapAxisState,
    create_soap_app,
)
from connectors.soap_axis import SoapAxisConnector
from envelopes.building import build_document
from envelopes.model import Classification
from envelopes.reading import read_package
from envelopes.signing import Signer, TrustPolicy
from envelopes.verification import verify_document

MIB = 1 << 20

#: The child: warm the connector up (WSDL parsed, connection pool made), note the peak RSS, fetch,
#: note it again; print the package's size and digest and the growth.
CHILD = """
import asyncio, hashlib, json, sys
from connectors.base import RemoteItem
from connectors.soap_axis import SoapAxisConnector

def peak_kib():
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit("no VmHWM")

async def main(url, remote_id):
    soap = SoapAxisConnector(name="lgsp", endpoint=url, timeout_seconds=300.0)
    try:
        await soap.organizations()
        before = peak_kib()
        data = await soap.fetch(RemoteItem(remote_id=remote_id, kind="document"))
        after = peak_kib()
    finally:
        await soap.close()
    print(json.dumps({
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "growth_mib": (after - before) / 1024,
    }))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def signer() -> Signer:
    issued = unit(SENDER)
    return Signer(private_key=issued.key, certificate=issued.certificate)


def large_package(path: Any, megabytes: int) -> bytes:
    """A signed document whose one attachment has ``megabytes`` MiB of incompressible bytes."""
    content = os.urandom(megabytes * MIB)
    with path.open("w+b") as out:
        build_document(
            sample_header(),
            out=out,
            attachments=attachment_sources({"ban-scan.pdf": b"%PDF-1.7\n" + content}),
            signer=signer(),
        )
        out.seek(0)
        return out.read()


@asynccontextmanager
async def serve(state: SoapAxisState) -> AsyncIterator[str]:
    runner = web.AppRunner(create_soap_app(state))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{DEFAULT_PATH}"
    finally:
        await runner.cleanup()


def queued(state: SoapAxisState, package: bytes) -> str:
    """Put ``package`` on the platform's queue for RECEIVER, as a relayed send would (a 30 MB
    SendDocument through zeep would only measure the sending side); returns the item's id."""
    document_id = state.next_document_id()
    state.sent[document_id] = SentPackage(
        document_id=document_id,
        sender=SENDER,
        kind="document",
        receivers=(RECEIVER,),
        package=package,
        sha256=hashlib.sha256(package).hexdigest(),
    )
    item = QueuedItem(
        remote_id=f"{document_id}.1", receiver=RECEIVER, kind="document", document_id=document_id
    )
    state.items[item.remote_id] = item
    state.queues.setdefault((RECEIVER, "document"), []).append(item.remote_id)
    return item.remote_id


def state(package_form: str = "inline") -> SoapAxisState:
    return SoapAxisState(
        organizations=[DirectoryEntry(code=c, name=c) for c in (SENDER, RECEIVER)],
        seed=3,
        package_form=package_form,
    )


async def fetch_in_child(url: str, remote_id: str) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        url,
        remote_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=300)
    assert child.returncode == 0, err.decode(errors="replace")[-2000:]
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("form", ["inline", "mtom", "swa"])
def test_a_30_mb_package_is_received_in_about_its_own_size_of_memory(
    tmp_path: Any, form: str
) -> None:
    """zeep parsed the whole answer into a tree (the base64 text in libxml2, then in Python, then
    decoded): some six times the package. Streamed, the growth is the package itself, whether it
    comes inline or as a MIME attachment (through a temporary file)."""
    package = large_package(tmp_path / "big.edxml", 30)
    size_mib = len(package) / MIB
    platform = state(form)
    remote_id = queued(platform, package)

    async def body() -> dict[str, Any]:
        async with serve(platform) as url:
            return await fetch_in_child(url, remote_id)

    result = asyncio.run(body())
    assert (result["size"], result["sha256"]) == (len(package), hashlib.sha256(package).hexdigest())
    # The package (bytes returned) plus buffers of a MiB or so; zeep's tree took ~5x.
    assert result["growth_mib"] < 1.5 * size_mib, result
    verified = verify_document(
        read_package(package), TrustPolicy(pinned=(unit(SENDER).certificate,))
    )
    assert verified.package.attachments[0].size > 30 * MIB


@pytest.mark.parametrize("form", ["inline", "mtom", "swa"])
def test_a_package_over_the_configured_limit_is_not_received(tmp_path: Any, form: str) -> None:
    """The limit is on the decoded package ([api] max_upload_bytes, as every other way in): the
    answer is read only until the limit is passed."""
    package = large_package(tmp_path / "big.edxml", 3)
    platform = state(form)
    remote_id = queued(platform, package)

    async def body() -> None:
        async with serve(platform) as url:
            soap = SoapAxisConnector(
                name="lgsp", endpoint=url, timeout_seconds=30.0, max_package_bytes=2 * MIB
            )
            try:
                with pytest.raises(PeerUnavailable, match=r"more than (2097152|\d+) bytes"):
                    await soap.fetch(RemoteItem(remote_id=remote_id, kind="document"))
                exact = dataclasses.replace(soap, max_package_bytes=len(package))
                try:
                    assert await exact.fetch(RemoteItem(remote_id=remote_id, kind="document")) == (
                        package
                    )
                finally:
                    await exact.close()
            finally:
                await soap.close()

    asyncio.run(body())


# ------------------------------------------------- GetDocument's answers, read without zeep

ENVELOPE = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>%s'
    b"</soap:Body></soap:Envelope>"
)


def get_document_answer(package_text: bytes, *, status: bytes = b"OK", code: bytes = b"0") -> bytes:
    return ENVELOPE % (
        b'<r:GetDocumentResponse xmlns:r="urn:docgw:lgsp:document-service:1"><r:Status>%s'
        b"</r:Status><r:ErrorCode>%s</r:ErrorCode><r:Package>%s</r:Package>"
        b"</r:GetDocumentResponse>" % (status, code, package_text)
    )


@asynccontextmanager
async def answering(status: int, body: bytes, content_type: str = "text/xml") -> AsyncIterator[str]:
    """A platform that answers every call with one canned HTTP answer."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_post(DEFAULT_PATH, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{DEFAULT_PATH}"
    finally:
        await runner.cleanup()


def fetched(status: int, body: bytes, content_type: str = "text/xml") -> bytes:
    async def run() -> bytes:
        async with answering(status, body, content_type) as url:
            soap = SoapAxisConnector(name="lgsp", endpoint=url, timeout_seconds=10.0)
            try:
                return await soap.fetch(RemoteItem(remote_id="lgsp-000001.1", kind="document"))
            finally:
                await soap.close()

    return asyncio.run(run())


def test_a_line_wrapped_package_is_decoded() -> None:
    """Other SOAP stacks wrap base64 at 76 characters (MIME's habit)."""
    data = os.urandom(5000)
    text = base64.encodebytes(data).replace(b"\n", b"\r\n")
    assert b"\r\n" in text[:100]
    assert fetched(200, get_document_answer(text)) == data


_FAULT = ENVELOPE % (
    b"<soap:Fault><faultcode>soap:%s</faultcode><faultstring>%s</faultstring></soap:Fault>"
)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected", "match"),
    [
        (200, get_document_answer(b"", status=b"FAIL", code=b"30"), "text/xml", PeerRefused,
         r"axis code 30: lgsp: GetDocument: FAIL"),
        (200, get_document_answer(b"", status=b"FAIL", code=b"20"), "text/xml", PeerUnavailable,
         r"axis code 20"),
        (200, get_document_answer(b""), "text/xml", PeerUnavailable, "OK, no package"),
        (500, _FAULT % (b"Client", b"no such id"), "text/xml", PeerRefused,
         "SOAP Fault soap:Client: no such id"),
        (500, _FAULT % (b"Server", b"busy"), "text/xml", PeerUnavailable, "SOAP Fault soap:Server"),
        (500, ENVELOPE % (
            b'<soap:Fault xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-'
            b'wssecurity-secext-1.0.xsd"><faultcode>wsse:FailedAuthentication</faultcode>'
            b"<faultstring>no</faultstring></soap:Fault>"), "text/xml", PeerRefused,
         "wsse:FailedAuthentication"),
        (503, b"<html>busy</html>", "text/html", PeerUnavailable, "HTTP 503: <html>busy"),
        (404, b"not found", "text/plain", PeerRefused, "HTTP 404: not found"),
        (200, b"<html>welcome</html>", "text/html", PeerUnavailable, "unreadable answer"),
        (200, get_document_answer(b"QUJD!!!!"), "text/xml", PeerUnavailable,
         "unreadable answer: invalid base64"),
        (200, get_document_answer(b"QUJ"), "text/xml", PeerUnavailable, "mid-quantum"),
        (200, get_document_answer(b"QUJD</r:Package><r:Package>QUJD"), "text/xml",
         PeerUnavailable, "more than one Package"),
        (200, b"<!DOCTYPE x [<!ENTITY a 'b'>]>" + get_document_answer(b"&a;"), "text/xml",
         PeerUnavailable, "DOCTYPE is not allowed"),
    ],
    ids=["fail-30", "fail-20", "ok-empty", "client-fault", "server-fault", "wsse-fault",
         "html-503", "404", "html-200", "bad-base64", "truncated-base64", "two-packages",
         "doctype"],
)  # fmt: skip
def test_get_document_answers_map_to_connector_errors(
    status: int, body: bytes, content_type: str, expected: type[Exception], match: str
) -> None:
    with pytest.raises(expected, match=match):
        fetched(status, body, content_type)


# --------------------------------------------------------------- the package as an attachment


@pytest.mark.parametrize("form", ["mtom", "swa"])
def test_a_package_sent_as_a_mime_attachment_is_received_and_verifies(form: str) -> None:
    """MTOM (a binary part named by xop:Include) and SOAP with Attachments (a base64 part named by
    the element's href): DOMAIN.md §5 says platforms send the package "in the body or as
    attachments"."""
    data = large_package_bytes(200 * 1024)
    platform = state(form)

    async def body() -> bytes:
        async with serve(platform) as url:
            soap = SoapAxisConnector(name="lgsp", endpoint=url, receivers=(RECEIVER,))
            try:
                await soap.deliver(delivery_of(data))
                (item,) = await soap.pending("document")
                return await soap.fetch(item)
            finally:
                await soap.close()

    fetched = asyncio.run(body())
    (sent,) = platform.sent.values()
    assert fetched == sent.package  # as relayed: the platform's trace appended
    verified = verify_document(
        read_package(fetched), TrustPolicy(pinned=(unit(SENDER).certificate,))
    )
    assert verified.package.header.document_id == sample_header().document_id


def large_package_bytes(size: int) -> bytes:
    out = io.BytesIO()
    build_document(
        sample_header(),
        out=out,
        attachments=attachment_sources({"ban-scan.pdf": b"%PDF-1.7\n" + os.urandom(size)}),
        signer=signer(),
    )
    return out.getvalue()


def delivery_of(data: bytes) -> Delivery:
    return Delivery(
        message_id="msg-1",
        document_id=sample_header().document_id,
        kind="document",
        sender=SENDER,
        recipients=(RECEIVER,),
        classification=Classification.THUONG,
        open_package=lambda: io.BytesIO(data),
        package_size=len(data),
        package_sha256=hashlib.sha256(data).hexdigest(),
        attempt=1,
    )


def multipart(*parts: tuple[str, bytes], start: str = "<root@x>") -> tuple[bytes, str]:
    """A multipart/related answer of (headers, body) parts; returns (body, Content-Type)."""
    data = b"preamble\r\n"
    for headers, part in parts:
        data += b"--b0undary \r\n" + headers.encode() + b"\r\n\r\n" + part + b"\r\n"
    data += b"--b0undary--\r\nepilogue"
    return data, f'multipart/related; type="text/xml"; start="{start}"; boundary="b0undary"'


_XOP_ROOT = get_document_answer(
    b'<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:p%401"/>'
)


def test_the_attachment_part_is_found_by_its_content_id_and_its_encoding_applied() -> None:
    data = os.urandom(3000)
    # The package part first, the root second: only Content-IDs tie them together.
    body, content_type = multipart(
        ("Content-ID: <p@1>\r\nContent-Transfer-Encoding:\r\n base64", base64.encodebytes(data)),
        ("Content-Type: text/xml\r\nContent-ID: <root@x>", _XOP_ROOT),
    )
    assert fetched(200, body, content_type) == data
    swa_ref, content_type = multipart(
        ("Content-ID: <root@x>", get_document_answer(b"cid:p%401")),
        ("Content-ID: <p@1>\r\nContent-Transfer-Encoding: binary", data),
    )
    assert fetched(200, swa_ref, content_type) == data


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ((("Content-ID: <root@x>", _XOP_ROOT),), "no attachment part 'cid:p%401'"),
        ((("Content-ID: <other@x>", _XOP_ROOT),), "no root part"),
        (
            (
                ("Content-ID: <root@x>", _XOP_ROOT),
                ("Content-ID: <p@1>\r\nContent-Transfer-Encoding: quoted-printable", b"=41"),
            ),
            "Content-Transfer-Encoding 'quoted-printable'",
        ),
        (
            (
                ("Content-ID: <root@x>", _XOP_ROOT),
                ("Content-ID: <p@1>\r\nContent-Transfer-Encoding: base64", b"QUJD!!!!"),
            ),
            "invalid base64",
        ),
    ],
    ids=["part-missing", "root-missing", "quoted-printable", "bad-base64"],
)
def test_a_multipart_answer_that_cannot_be_read_is_an_unavailability(
    parts: tuple[tuple[str, bytes], ...], match: str
) -> None:
    body, content_type = multipart(*parts)
    with pytest.raises(PeerUnavailable, match=match):
        fetched(200, body, content_type)


@pytest.mark.parametrize("content_type", [b"text/xml", b'multipart/related; boundary="b"'])
def test_an_answer_cut_off_midway_is_an_unavailability(content_type: bytes) -> None:
    """The platform announces 1 MB and closes after 64 KB: nothing half-read is returned."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n"
            b"Content-Length: 1000000\r\n\r\n" + get_document_answer(b"QUJD" * 16000)[:65536]
        )
        await writer.drain()
        writer.close()

    async def body() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{DEFAULT_PATH}"
        soap = SoapAxisConnector(name="lgsp", endpoint=url, timeout_seconds=10.0)
        try:
            with pytest.raises(PeerUnavailable, match="lgsp: GetDocument"):
                await soap.fetch(RemoteItem(remote_id="lgsp-000001.1", kind="document"))
        finally:
            await soap.close()
            server.close()
            await server.wait_closed()

    asyncio.run(body())

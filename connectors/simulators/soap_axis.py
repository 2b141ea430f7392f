"""A stand-in for a provincial SOAP platform (LGSP): ``xsd/document_service.wsdl`` served over
HTTP with aiohttp, for tests and demos.

zeep is a client only, so the server side is written by hand with lxml. Each request envelope is
parsed with docgw's hardened parser (``envelopes.xmlsafe``); the ``Package`` text is decoded while
streaming rather than kept in the tree. The platform behaves as the real ones are described
(DOMAIN.md §5):

* ``SendDocument`` routes by ``MessageHeader/To/OrganId`` (a status package: by
  ``ResponseFor/OrganId``) into one queue per receiver and kind, and appends its own
  ``TraceHeader`` to the package *textually*: the bytes around it are untouched, so docgw's
  Id-referenced signature still verifies, as it must after a real axis relayed the package.
  The same bytes sent twice are one send (``Duplicate``), as a receiver that deduplicates.
* Business errors are ``Status FAIL`` answers with the platform's ErrorCode (18 unknown receiver,
  19 sender not registered, 22 package not compliant, 10 invalid file, 30 unknown document id);
  malformed requests are SOAP ``Client`` faults.
* Systems (``add_system``: an id, a secret and the units it serves) authenticate every request
  with a WS-Security UsernameToken in the SOAP header (the id as Username, PasswordDigest =
  Base64(SHA-1(nonce + Created + secret)), Created within ``max_skew``, each nonce once: nonces
  are compared decoded and must be canonical base64, and are forgotten once their tokens have
  expired, or beyond ``max_nonces`` when nothing expires). A
  request that fails is answered with the SOAP fault ``wsse:FailedAuthentication`` (HTTP 500, as
  WS-Security says) and nothing else happens. A system sends only for its own units and lists,
  fetches and confirms only its own units' items (another system's item is as unknown as a
  missing one). With no system registered the platform is open, as it was before systems existed:
  any registered organization may send and receive.
* Faults are the VXP simulator's, from :mod:`connectors.simulators.faults`: latency, down
  windows, 5xx bursts and an error rate (SOAP ``Server`` faults with HTTP 503/500, before
  anything is processed), SendDocument calls that commit and then hang or drop the connection,
  duplicate deliveries (a receiver's copy queued twice under two ids; an id listed twice). Set at
  start, or at run time with ``POST /_sim/faults``; ``GET /_sim/state`` shows counts and queues.
* ``GetDocument`` answers with the package inline, as base64 text (``package_form = "inline"``,
  the default), or as a MIME attachment: ``"mtom"`` (MTOM/XOP, ``<xop:Include href="cid:…"/>``,
  a binary part) or ``"swa"`` (SOAP with Attachments: ``Package href="cid:…"``, a base64 part in
  76-column lines), the forms DOMAIN.md §5 says platforms use.
* Every request body is recorded in ``state.requests`` (its line and headers in
  ``state.request_heads``), so a test can prove what never got here.

``GET <path>?wsdl`` serves the WSDL with the service address rewritten to this server's.
Run it alone with ``python -m connectors.simulators.soap_axis --port 8090 --units A,B``, or with
the VXP simulator as ``docgw axis-sim --soap-port 8089`` (the same systems, secrets and faults).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import itertools
import random
import re
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from aiohttp import web
from lxml import etree

from connectors.base import DirectoryEntry
from connectors.simulators import faults as fault_model
from connectors.simulators.common import (
    AxisSystem,
    add_system_arguments,
    max_skew_from,
    request_head,
)
from connectors.simulators.faults import AxisFaults, add_fault_arguments, faults_from
from connectors.soap_axis import SERVICE_NS, wsdl_bytes
from envelopes.attachments import Base64Decoder
from envelopes.datetimes import format_timestamp
from envelopes.errors import AttachmentError, GatewayError, PackageError
from envelopes.reading import PackageKind, ParsedPackage, read_package
from envelopes.xmlsafe import TextSink, iter_chunks, parse_bytes, parse_stream

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
DEFAULT_PATH = "/DocumentService"
XOP = "http://www.w3.org/2004/08/xop/include"
PACKAGE_FORMS = ("inline", "mtom", "swa")
#: Content-IDs of a multipart answer's parts (the package's needs percent-encoding in a cid: URL).
ROOT_ID = "root.message@lgsp.simulator"
ATTACHMENT_ID = "package 1@lgsp.simulator"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
#: A QĐ 20-form code, so readers see a conforming OrganId in the appended trace.
DEFAULT_RELAY_ID = "LGSP.SIMULATOR"
TRANSPORT_STATUSES = ("done", "fail", "processing")
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)


class ErrorCode(StrEnum):
    """The platform's ErrorCode values (DOMAIN.md §5, probable); 30 is ours."""

    OK = "0"
    INVALID_FILE = "10"
    UNKNOWN_RECEIVER = "18"
    SENDER_NOT_REGISTERED = "19"
    SYSTEM_ERROR = "20"
    NOT_COMPLIANT = "22"
    UNKNOWN_DOCUMENT = "30"


def _tns(local: str) -> str:
    return f"{{{SERVICE_NS}}}{local}"


def _vietnam_now() -> dt.datetime:
    """Trace timestamps are local Vietnamese time without an offset, as edXML writes them."""
    return dt.datetime.now(VIETNAM).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True, kw_only=True)
class SentPackage:
    """One accepted send: the package as relayed (with the platform's trace entry)."""

    document_id: str
    sender: str
    kind: str
    receivers: tuple[str, ...]
    package: bytes
    sha256: str  # of the package as received, to recognise a resend


@dataclass(frozen=True, kw_only=True)
class QueuedItem:
    """One receiver's copy of a send, with its own id (so that one receiver's confirmation does
    not touch another's)."""

    remote_id: str
    receiver: str
    kind: str
    document_id: str


@dataclass(frozen=True, kw_only=True)
class Confirmation:
    remote_id: str
    ok: bool
    reason: str | None


@dataclass(kw_only=True)
class SoapAxisState:
    """The platform's memory, shared with the test that runs it. Touched only on the event loop."""

    organizations: list[DirectoryEntry] = field(default_factory=list)
    relay_organ_id: str = DEFAULT_RELAY_ID
    faults: AxisFaults = field(default_factory=AxisFaults)
    #: Connected systems (see :meth:`add_system`); none: an open platform, no authentication.
    systems: dict[str, AxisSystem] = field(default_factory=dict)
    #: Seconds a UsernameToken's Created may be off; None: any.
    max_skew: float | None = 300.0
    seed: int | None = None
    #: Trace timestamps (Vietnamese local time); ``epoch`` for fault windows and token ages.
    clock: Callable[[], dt.datetime] = _vietnam_now
    epoch: Callable[[], float] = time.time
    max_request_bytes: int = 512 << 20
    #: How GetDocument carries the package: "inline" (base64 text), "mtom" or "swa" (a MIME part).
    package_form: str = "inline"
    #: Every POST body, in arrival order, whatever became of it.
    requests: list[bytes] = field(default_factory=list)
    #: Each request's line and headers, as received, beside ``requests``.
    request_heads: list[bytes] = field(default_factory=list)
    sent: dict[str, SentPackage] = field(default_factory=dict)
    queues: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: Every receiver's copy ever queued, by its id; what is still pending is in ``queues``.
    items: dict[str, QueuedItem] = field(default_factory=dict)
    confirmations: list[Confirmation] = field(default_factory=list)
    transport_statuses: dict[str, str] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(init=False, repr=False)
    _sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    #: SHA-256 of each package as received → its DocumentId, to recognise a resend.
    digests: dict[str, str] = field(default_factory=dict, repr=False)
    #: UsernameToken nonces seen (decoded) → when, to refuse a replay while its Created is still
    #: fresh; ``nonce_arrivals`` holds the same in arrival order, so the oldest go first.
    nonces: dict[bytes, float] = field(default_factory=dict, repr=False)
    nonce_arrivals: deque[tuple[float, bytes]] = field(default_factory=deque, repr=False)
    #: With ``max_skew`` None no token ever expires: only this many latest nonces are remembered.
    max_nonces: int = 100_000

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._codes = {org.code for org in self.organizations}
        for system_id, system in list(self.systems.items()):
            self.add_system(system_id, system.secret, system.units)

    def add_system(self, system_id: str, secret: bytes, units: Sequence[str]) -> None:
        """Connect a system: from now on every request must authenticate as one."""
        self.systems[system_id] = AxisSystem(secret=secret, units=tuple(units))
        for unit in units:
            if unit not in self._codes:
                self.organizations.append(DirectoryEntry(code=unit, name=unit))
                self._codes.add(unit)

    @property
    def authenticates(self) -> bool:
        return bool(self.systems)

    def knows(self, code: str) -> bool:
        return code in self._codes

    def routable(self, code: str) -> bool:
        """Can a package be queued for this unit: some system serves it (an open platform: it is
        a registered organization)."""
        if not self.systems:
            return self.knows(code)
        return any(code in system.units for system in self.systems.values())

    def serves(self, system_id: str | None, code: str) -> bool:
        """May the caller act for this unit (send from it, list and confirm its items)?"""
        if system_id is None:
            return self.knows(code)
        return code in self.systems[system_id].units

    def set_faults(self, faults: AxisFaults) -> None:
        self.faults = faults

    def remember_nonce(self, nonce: bytes, now: float) -> bool:
        """Record a UsernameToken nonce; False when it was seen before (a replay). Nonces older
        than twice ``max_skew`` are forgotten first (their tokens have expired since: a replay is
        refused as stale); with no skew, beyond ``max_nonces`` the oldest are."""
        arrivals = self.nonce_arrivals
        if self.max_skew is not None:
            while arrivals and now - arrivals[0][0] > 2 * self.max_skew:
                self._forget_oldest_nonce()
        if nonce in self.nonces:
            return False
        self.nonces[nonce] = now
        arrivals.append((now, nonce))
        if self.max_skew is None:
            while len(arrivals) > self.max_nonces:
                self._forget_oldest_nonce()
        return True

    def _forget_oldest_nonce(self) -> None:
        _, nonce = self.nonce_arrivals.popleft()
        self.nonces.pop(nonce, None)

    def pending(self, receiver: str, kind: str) -> list[str]:
        return list(self.queues.get((receiver, kind), ()))

    def next_document_id(self) -> str:
        return f"lgsp-{next(self._sequence):06d}"

    def snapshot(self) -> dict[str, Any]:
        return {
            "systems": {k: {"units": list(v.units)} for k, v in self.systems.items()},
            "packages": len(self.sent),
            "counters": dict(self.counters),
            "queues": {f"{unit}/{kind}": list(ids) for (unit, kind), ids in self.queues.items()},
            "requests": len(self.requests),
            "organizations": len(self.organizations),
            "faults": dataclasses.asdict(self.faults),
        }


STATE = web.AppKey("soap_axis_state", SoapAxisState)
STOPPING = web.AppKey("soap_axis_stopping", asyncio.Event)


# ------------------------------------------------------------------------------------ errors


class _SoapFault(Exception):
    """Answered as a SOAP 1.1 Fault (HTTP 500, as SOAP 1.1 over HTTP requires)."""

    def __init__(self, code: str, message: str, *, status: int = 500) -> None:
        super().__init__(message)
        #: Client | Server | VersionMismatch | MustUnderstand (SOAP's), or wsse:… (WS-Security's)
        self.code = code
        self.message = message
        self.status = status


class _Fail(Exception):
    """A business refusal: ``Status FAIL`` in the operation's response element."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ------------------------------------------------------------------------------------ requests


@dataclass(kw_only=True)
class _Request:
    operation: etree._Element
    header: etree._Element | None = None
    #: The authenticated system (None: an open platform).
    system_id: str | None = None
    #: Set by SendDocument when it queued the package (a timeout-after-commit fault may follow).
    committed: bool = False
    #: The decoded SendDocument/Package, or None.
    package: bytes | None = None
    #: Set when the Package text was not valid base64.
    package_error: AttachmentError | None = None
    #: A package to answer with as a MIME attachment (see ``package_form``).
    attachment: bytes | None = None

    @property
    def name(self) -> str:
        local: str = etree.QName(self.operation).localname
        return local

    def text(self, local: str, *, required: bool = True) -> str | None:
        child = self.operation.find(_tns(local))
        value = (child.text or "").strip() if child is not None else None
        if required and not value:
            raise _SoapFault("Client", f"{self.name}: {local} is required")
        return value or None

    def required(self, local: str) -> str:
        value = self.text(local)
        assert value is not None  # text(required=True) faults otherwise
        return value


class _PackageSink:
    """Collects the decoded Package bytes; remembers bad base64 instead of failing the parse."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.error: AttachmentError | None = None
        self._decoder = Base64Decoder(self.out, element="SendDocument/Package")

    def write(self, text: str) -> None:
        if self.error is None:
            try:
                self._decoder.write(text)
            except AttachmentError as exc:
                self.error = exc

    def close(self) -> None:
        if self.error is None:
            try:
                self._decoder.close()
            except AttachmentError as exc:
                self.error = exc


def _check_headers(header: etree._Element | None) -> None:
    """Only WS-Security's header is understood; any other that must be is a fault."""
    for entry in header if header is not None else ():
        if entry.tag == f"{{{WSSE}}}Security":
            continue  # understood: see _authenticate
        if entry.get(f"{{{SOAP_ENV}}}mustUnderstand") in ("1", "true"):
            raise _SoapFault("MustUnderstand", f"header {entry.tag} is not understood")


def _parse_request(body: bytes) -> _Request:
    sinks: list[_PackageSink] = []

    def choose(tag: str, parent: str | None) -> TextSink | None:
        if tag == _tns("Package") and parent == _tns("SendDocument"):
            sinks.append(_PackageSink())
            return sinks[-1]
        return None

    try:
        root = parse_stream(iter_chunks(body), stream=choose).root
    except GatewayError as exc:
        raise _SoapFault("Client", f"not a readable SOAP request: {exc}") from exc
    if etree.QName(root).localname != "Envelope":
        raise _SoapFault("Client", "the root element is not a SOAP Envelope")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise _SoapFault("VersionMismatch", "only SOAP 1.1 envelopes are understood")
    header = root.find(f"{{{SOAP_ENV}}}Header")
    _check_headers(header)
    body_element = root.find(f"{{{SOAP_ENV}}}Body")
    if body_element is None:
        raise _SoapFault("Client", "the SOAP Envelope has no Body")
    operations = [child for child in body_element if isinstance(child.tag, str)]
    if len(operations) != 1:
        raise _SoapFault("Client", "the SOAP Body must hold exactly one operation element")
    if len(sinks) > 1:
        raise _SoapFault("Client", "SendDocument holds more than one Package")
    request = _Request(operation=operations[0], header=header)
    if sinks:
        request.package = sinks[0].out.getvalue()
        request.package_error = sinks[0].error
    return request


# ----------------------------------------------------------------------------------- responses


def _envelope(content: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(content)
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return data


def _soap_response(content: etree._Element, status: int = 200) -> web.Response:
    return web.Response(
        body=_envelope(content), status=status, content_type="text/xml", charset="utf-8"
    )


def _multipart_response(content: etree._Element, package: bytes, form: str) -> web.Response:
    """The envelope and the package as two MIME parts (MTOM/XOP, or SOAP with Attachments)."""
    boundary = "uuid:" + hashlib.sha256(package).hexdigest()[:32]
    if form == "mtom":
        root_type = 'application/xop+xml; charset=UTF-8; type="text/xml"'
        encoding, body = "binary", package
        outer = f'type="application/xop+xml"; start-info="text/xml"; start="<{ROOT_ID}>"'
    else:
        root_type = "text/xml; charset=UTF-8"
        encoding, body = "base64", base64.encodebytes(package).replace(b"\n", b"\r\n")
        outer = f'type="text/xml"; start="<{ROOT_ID}>"'
    parts = [
        (root_type, "binary", ROOT_ID, _envelope(content)),
        ("application/octet-stream", encoding, ATTACHMENT_ID, body),
    ]
    data = bytearray()
    for content_type, transfer, content_id, part in parts:
        data += (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Transfer-Encoding: {transfer}\r\nContent-ID: <{content_id}>\r\n\r\n"
        ).encode()
        data += part + b"\r\n"
    data += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f'multipart/related; {outer}; boundary="{boundary}"'}
    return web.Response(body=bytes(data), headers=headers)


def _fault_response(fault: _SoapFault) -> web.Response:
    element = etree.Element(f"{{{SOAP_ENV}}}Fault", nsmap={"soap": SOAP_ENV, "wsse": WSSE})
    # faultcode and faultstring are unqualified in SOAP 1.1.
    code = fault.code if ":" in fault.code else f"soap:{fault.code}"
    etree.SubElement(element, "faultcode").text = code
    etree.SubElement(element, "faultstring").text = fault.message
    return _soap_response(element, status=fault.status)


def _result(operation: str, code: ErrorCode = ErrorCode.OK, desc: str = "") -> etree._Element:
    element = etree.Element(_tns(f"{operation}Response"), nsmap={"tns": SERVICE_NS})
    etree.SubElement(element, _tns("Status")).text = "OK" if code is ErrorCode.OK else "FAIL"
    etree.SubElement(element, _tns("ErrorCode")).text = code.value
    if desc:
        etree.SubElement(element, _tns("ErrorDesc")).text = desc
    return element


def _add(parent: etree._Element, local: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(parent, _tns(local)).text = value


# ---------------------------------------------------------------------------------- operations


_TRACE_LIST = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?TraceHeaderList(?=[\s/>])[^>]*?(/?)>")
_TRACE_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?TraceHeader\s*>")
_BUSINESS_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Bussiness(?=[\s/>])")


def append_trace(package: bytes, organ_id: str, timestamp: dt.datetime) -> bytes:
    """The package with one more TraceHeader, spliced in as text.

    It goes after the last TraceHeader, or before the Bussiness block (QCVN order: TraceHeader*
    then Bussiness), or at the end of the list, and takes the list's own prefix, so it lands in
    the QCVN namespace whether the sender wrote ``edXML:`` or not. Nothing else changes by a byte.
    The caller re-reads the result to check that it went where it should (see _relay); that also
    catches a package in an encoding the byte search cannot see into (UTF-16).
    """
    match = _TRACE_LIST.search(package)
    if match is None:
        raise PackageError("no TraceHeaderList to append to", element="TraceHeaderList")
    prefix = match.group(1) + b":" if match.group(1) else b""
    p = prefix.decode("ascii")
    trace = (
        f"<{p}TraceHeader><{p}OrganId>{escape(organ_id)}</{p}OrganId>"
        f"<{p}Timestamp>{format_timestamp(timestamp)}</{p}Timestamp></{p}TraceHeader>"
    ).encode()
    if match.group(2):  # <TraceHeaderList/>: open it up
        opened = match.group(0)[:-2].rstrip() + b">"
        closing = b"</%sTraceHeaderList>" % prefix
        return package[: match.start()] + opened + trace + closing + package[match.end() :]
    end = package.find(b"</%sTraceHeaderList>" % prefix, match.end())
    if end < 0:
        raise PackageError("TraceHeaderList is not closed", element="TraceHeaderList")
    region = package[match.end() : end]
    last_trace = None
    for last_trace in _TRACE_END.finditer(region):  # noqa: B007 — the last match is wanted
        pass
    business = _BUSINESS_START.search(region)
    if last_trace is not None:
        at = match.end() + last_trace.end()
    elif business is not None:
        at = match.end() + business.start()
    else:
        at = end
    return package[:at] + trace + package[at:]


def _route(parsed: ParsedPackage) -> tuple[str, tuple[str, ...]]:
    """(the package's sender, its receivers), from the package itself."""
    if parsed.kind is PackageKind.DOCUMENT:
        header = parsed.document().header
        receivers = tuple(dict.fromkeys(org.organ_id for org in header.to))
        return header.from_.organ_id, receivers
    status = parsed.status()
    return status.from_.organ_id, (status.response_for.organ_id,)


def _relay(package: bytes, relay_id: str, now: dt.datetime) -> tuple[ParsedPackage, bytes]:
    """Read the package, append the platform's trace, and check the result (runs in a thread)."""
    try:
        parsed = read_package(package)
    except PackageError as exc:
        raise _Fail(ErrorCode.NOT_COMPLIANT, str(exc)) from exc
    if parsed.kind is not PackageKind.DOCUMENT:
        return parsed, package  # status packages carry no trace list
    before = parsed.document().traces
    try:
        relayed = append_trace(package, relay_id, now)
        after = read_package(relayed).document().traces
    except PackageError as exc:
        raise _Fail(ErrorCode.NOT_COMPLIANT, f"cannot relay the package: {exc}") from exc
    # A TraceHeaderList inside a comment or CDATA would fool the text search: re-reading shows it.
    if len(after) != len(before) + 1 or after[: len(before)] != before:
        raise _Fail(ErrorCode.NOT_COMPLIANT, "cannot append a trace entry to this package")
    return parsed, relayed


async def _send_document(state: SoapAxisState, request: _Request) -> etree._Element:
    operation = "SendDocument"
    sender = request.required("Sender")
    kind = request.required("MessageType")
    if kind not in (PackageKind.DOCUMENT.value, PackageKind.STATUS.value):
        raise _SoapFault("Client", f"MessageType {kind!r} is not document or status")
    if request.package_error is not None:
        raise _Fail(ErrorCode.INVALID_FILE, str(request.package_error))
    if not request.package:
        raise _SoapFault("Client", "SendDocument: Package is required")
    if not state.serves(request.system_id, sender):
        who = f" for {request.system_id}" if request.system_id else ""
        raise _Fail(ErrorCode.SENDER_NOT_REGISTERED, f"sender {sender} is not registered{who}")
    package = request.package
    parsed, relayed = await asyncio.to_thread(_relay, package, state.relay_organ_id, state.clock())
    if parsed.kind.value != kind:
        raise _Fail(ErrorCode.NOT_COMPLIANT, f"MessageType {kind} but a {parsed.kind} package")
    from_, receivers = _route(parsed)
    if from_ != sender:
        raise _Fail(ErrorCode.NOT_COMPLIANT, f"Sender {sender} but the package is from {from_}")
    unknown = [code for code in receivers if not state.routable(code)]
    if unknown:
        raise _Fail(ErrorCode.UNKNOWN_RECEIVER, f"unknown receiver(s): {', '.join(unknown)}")
    digest = hashlib.sha256(package).hexdigest()
    result = _result(operation)
    if digest in state.digests:
        _add(result, "DocumentId", state.digests[digest])
        _add(result, "Duplicate", "true")
        return result
    document_id = state.next_document_id()
    state.digests[digest] = document_id
    state.sent[document_id] = SentPackage(
        document_id=document_id,
        sender=sender,
        kind=kind,
        receivers=receivers,
        package=relayed,
        sha256=digest,
    )
    index = itertools.count(1)
    for receiver in receivers:
        for _ in range(fault_model.copies(state)):  # 2: a simulated duplicate delivery
            item = QueuedItem(
                remote_id=f"{document_id}.{next(index)}",
                receiver=receiver,
                kind=kind,
                document_id=document_id,
            )
            state.items[item.remote_id] = item
            state.queues.setdefault((receiver, kind), []).append(item.remote_id)
    state.counters["packages"] += 1
    request.committed = True
    _add(result, "DocumentId", document_id)
    _add(result, "Duplicate", "false")
    return result


async def _get_pending(state: SoapAxisState, request: _Request) -> etree._Element:
    receiver = request.required("Receiver")
    kind = request.required("MessageType")
    if not state.serves(request.system_id, receiver):
        raise _Fail(ErrorCode.UNKNOWN_RECEIVER, f"unknown receiver {receiver}")
    result = _result("GetPendingDocumentIds")
    for remote_id in state.pending(receiver, kind):
        _add(result, "DocumentId", remote_id)
        if fault_model.chance(state, state.faults.duplicate_delivery_rate):
            _add(result, "DocumentId", remote_id)  # listed twice
    return result


def _item(state: SoapAxisState, request: _Request) -> QueuedItem:
    remote_id = request.required("DocumentId")
    item = state.items.get(remote_id)
    # Another system's item is as unknown as a missing one.
    if item is None or not state.serves(request.system_id, item.receiver):
        raise _Fail(ErrorCode.UNKNOWN_DOCUMENT, f"no document {remote_id}")
    return item


async def _get_document(state: SoapAxisState, request: _Request) -> etree._Element:
    item = _item(state, request)
    result = _result("GetDocument")
    package = state.sent[item.document_id].package
    if state.package_form == "inline":
        _add(result, "Package", base64.b64encode(package).decode())
        return result
    element = etree.SubElement(result, _tns("Package"))
    if state.package_form == "mtom":
        include = etree.SubElement(element, f"{{{XOP}}}Include", nsmap={"xop": XOP})
        include.set("href", f"cid:{urllib.parse.quote(ATTACHMENT_ID)}")
    else:
        element.set("href", f"cid:{urllib.parse.quote(ATTACHMENT_ID)}")
    request.attachment = package
    return result


def _boolean(request: _Request, local: str) -> bool:
    value = request.required(local)
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _SoapFault("Client", f"{request.name}: {local} {value!r} is not an xs:boolean")


async def _confirm_received(state: SoapAxisState, request: _Request) -> etree._Element:
    item = _item(state, request)
    ok = _boolean(request, "Ok")
    queue = state.queues[(item.receiver, item.kind)]
    # Confirming twice is fine: a client that lost the first answer confirms again.
    if item.remote_id in queue:
        # Off the queue either way: ok=false says the receiver refused the package for good.
        queue.remove(item.remote_id)
        reason = request.text("Reason", required=False)
        state.confirmations.append(Confirmation(remote_id=item.remote_id, ok=ok, reason=reason))
    return _result("ConfirmReceived")


async def _update_status(state: SoapAxisState, request: _Request) -> etree._Element:
    """The receiver's processing state of an item as a note for the platform's operators; the
    queue is ConfirmReceived's business (docgw confirms, and does not send this)."""
    status = request.required("Status")
    if status not in TRANSPORT_STATUSES:
        raise _SoapFault("Client", f"UpdateStatus: Status {status!r} is not done/fail/processing")
    item = _item(state, request)
    state.transport_statuses[item.remote_id] = status
    return _result("UpdateStatus")


async def _get_organizations(state: SoapAxisState, request: _Request) -> etree._Element:
    result = _result("GetOrganizations")
    for org in state.organizations:
        element = etree.SubElement(result, _tns("Organization"))
        _add(element, "Code", org.code)
        _add(element, "Name", org.name)
        _add(element, "ParentCode", org.parent_code)
        _add(element, "Email", org.email)
    return result


_Handler = Callable[[SoapAxisState, _Request], Awaitable[etree._Element]]
_OPERATIONS: dict[str, _Handler] = {
    "SendDocument": _send_document,
    "GetPendingDocumentIds": _get_pending,
    "GetDocument": _get_document,
    "ConfirmReceived": _confirm_received,
    "UpdateStatus": _update_status,
    "GetOrganizations": _get_organizations,
}


# ----------------------------------------------------------------------------------------- app


def _authenticate(state: SoapAxisState, header: etree._Element | None) -> str:
    """The system a WS-Security UsernameToken (PasswordDigest) proves; a
    ``wsse:FailedAuthentication`` fault otherwise (one message for every reason, as a server
    that tells nothing to a guesser; the counters tell the tester)."""

    def failed(why: str) -> _SoapFault:
        state.counters["auth_failures"] += 1
        state.counters[f"auth_failures_{why}"] += 1
        return _SoapFault("wsse:FailedAuthentication", "the security token could not be "
                          "authenticated or authorized")  # fmt: skip

    security = header.find(f"{{{WSSE}}}Security") if header is not None else None
    token = security.find(f"{{{WSSE}}}UsernameToken") if security is not None else None
    if token is None:
        raise failed("missing")
    username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
    password = token.find(f"{{{WSSE}}}Password")
    nonce_text = (token.findtext(f"{{{WSSE}}}Nonce") or "").strip()
    created = (token.findtext(f"{{{WSU}}}Created") or "").strip()
    system = state.systems.get(username)
    if system is None:
        raise failed("unknown_system")
    if password is None or password.get("Type") != PASSWORD_DIGEST or not nonce_text:
        raise failed("not_a_digest")
    try:
        nonce = base64.b64decode(nonce_text, validate=True)
        when = dt.datetime.fromisoformat(created)
        moment = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    except (binascii.Error, ValueError):
        raise failed("malformed") from None
    if base64.b64encode(nonce) != nonce_text.encode():
        # Unused trailing bits set (…Mqx== for …Mqw==): the same nonce under another text.
        raise failed("malformed")
    expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + system.secret).digest())
    if not hmac.compare_digest(expected, (password.text or "").strip().encode()):
        raise failed("bad_digest")
    now = state.epoch()
    if state.max_skew is not None and abs(now - moment) > state.max_skew:
        raise failed("expired")
    if not state.remember_nonce(nonce, now):
        raise failed("replayed")
    return username


async def _handle_soap(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.read()
    state.requests.append(body)
    state.request_heads.append(request_head(request))
    state.counters["requests"] += 1
    await fault_model.delay(state)
    try:
        injected = fault_model.request_fault(state, state.epoch())
        if injected is not None:
            raise _SoapFault("Server", injected.reason, status=injected.status)
        soap = _parse_request(body)
        handler = _OPERATIONS.get(soap.name)
        if handler is None or soap.operation.tag != _tns(soap.name):
            raise _SoapFault("Client", f"unknown operation {soap.operation.tag}")
        if state.authenticates:
            soap.system_id = _authenticate(state, soap.header)
        try:
            answer = await handler(state, soap)
        except _Fail as fail:
            return _soap_response(_result(soap.name, fail.code, fail.message))
        if soap.committed:
            await fault_model.after_commit(state, request, request.app[STOPPING])
        if soap.attachment is not None:
            return _multipart_response(answer, soap.attachment, state.package_form)
        return _soap_response(answer)
    except _SoapFault as fault:
        return _fault_response(fault)


async def _handle_wsdl(request: web.Request) -> web.Response:
    if "wsdl" not in request.query:
        raise web.HTTPBadRequest(text="GET serves the WSDL: add ?wsdl")
    root = parse_bytes(wsdl_bytes())
    address = str(request.url.with_query(None))
    for element in root.iter(f"{{{WSDL_SOAP}}}address"):
        element.set("location", address)
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


def create_soap_app(state: SoapAxisState, *, path: str = DEFAULT_PATH) -> web.Application:
    app = web.Application(client_max_size=state.max_request_bytes)
    app[STATE] = state
    app[STOPPING] = asyncio.Event()
    app.router.add_post(path, _handle_soap)
    app.router.add_get(path, _handle_wsdl)
    fault_model.add_fault_control(
        app, lambda request: request.app[STATE], lambda request: request.app[STATE].snapshot()
    )
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STOPPING].set()  # wakes handlers hanging on a simulated timeout


def _organization(spec: str) -> DirectoryEntry:
    """``CODE`` or ``CODE=Name``."""
    code, _, name = spec.partition("=")
    return DirectoryEntry(code=code.strip(), name=name.strip() or code.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.simulators.soap_axis",
        description="A provincial SOAP document-exchange platform, simulated.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--path", default=DEFAULT_PATH)
    parser.add_argument("--units", default="", help="registered units: CODE[=Name],CODE[=Name],…")
    add_system_arguments(
        parser,
        seed=None,
        skewed="a UsernameToken's Created",
        systems_note=" (any: every request authenticates)",
    )
    parser.add_argument("--relay-id", default=DEFAULT_RELAY_ID)
    parser.add_argument(
        "--package-form",
        choices=PACKAGE_FORMS,
        default="inline",
        help="how GetDocument carries the package: base64 text, or an MTOM / SwA attachment",
    )
    add_fault_arguments(parser)
    args = parser.parse_args(argv)
    try:
        faults = faults_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    state = SoapAxisState(
        organizations=[_organization(s) for s in args.units.split(",") if s.strip()],
        relay_organ_id=args.relay_id,
        package_form=args.package_form,
        faults=faults,
        max_skew=max_skew_from(args),
        seed=args.seed,
    )
    for system_id, secret, units in args.systems:
        state.add_system(system_id, secret, units)
    print(f"SOAP axis simulator: http://{args.host}:{args.port}{args.path}?wsdl", flush=True)
    web.run_app(create_soap_app(state, path=args.path), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

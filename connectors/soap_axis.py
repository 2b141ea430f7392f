"""The provincial/legacy SOAP axis (LGSP): ``xsd/document_service.wsdl`` spoken with zeep.

Older provincial platforms expose a SOAP service rather than the national axis' HTTP API
(DOMAIN.md §5). docgw's WSDL describes one (SOAP 1.1, document/literal); element names are ours,
so a real platform with other names needs its own mapping (probable).

The WSDL comes from package data and never from the network: zeep is handed its bytes as a stream
(a path would make zeep read it through ``transport.load()``, the injected transport), the schema
is embedded, and the WSDL document is parsed with a transport that refuses every load, so an import
added to the file one day fails loudly instead of fetching. It is parsed once per connector, lazily,
in a thread (WSDL loading is blocking).

Transport: zeep's default, requests-based :class:`zeep.transports.Transport`, with each call in
``asyncio.to_thread``. zeep's ``AsyncTransport`` needs httpx, which docgw does not otherwise use,
and zeep still loads WSDLs synchronously with it; threads keep one code path and work offline.
The requests timeout bounds the connection and each read, not the whole call.

Authentication: where the platform connects systems, each request carries a WS-Security
UsernameToken in the SOAP header (``system_id`` as Username; PasswordDigest =
Base64(SHA-1(nonce + Created + secret)) with a fresh nonce and Created, so the secret never
travels and a captured request cannot be replayed). The WSDL declares no header for it: as on
the SOAP stacks such platforms are built with, WS-Security is the transport's policy, not the
messages'. Without a ``system_id`` no header is sent (an open platform). A refused token is the
fault ``wsse:FailedAuthentication`` (or another WS-Security fault): final, like the national
axis' code 15, since resending with the same secret cannot help.

Acknowledging: ``ConfirmReceived(DocumentId, Ok, Reason)`` is what the VXP connector's
``updateStatus(done|fail, description)`` is — Ok true for done, false for fail, the reason with
it — and it takes the item off the platform's queue. ``UpdateStatus`` carries only a transport
state (done/fail/processing) without a reason and queues nothing: docgw acknowledges once, after
the package is durably stored or refused for good, so there is no "processing" moment to report,
and a second call per item would say nothing ConfirmReceived did not (the sender learns of the
receipt from docgw's edXML status package anyway). docgw therefore never sends it.

Retries: none inside a call (unlike :mod:`connectors.vxp`); the outbox retries durably, and the
platform recognises a resent package (``Duplicate``).

Outcomes and errors (raised ``from`` the zeep / requests exception)::

    Status OK                               → Receipt(remote_id = DocumentId)
    Status FAIL, ErrorCode in TRANSIENT     → PeerUnavailable   (20 "system error")
    Status FAIL, any other ErrorCode        → PeerRefused       (business error: final)
    SOAP Fault, faultcode Client / Sender   → PeerRefused       (the request itself is wrong)
    SOAP Fault, wsse:FailedAuthentication
      or another WS-Security fault          → PeerRefused       (bad credentials)
    SOAP Fault, other faultcode             → PeerUnavailable
    HTTP 5xx, 408, 425, 429 without a Fault → PeerUnavailable
    HTTP 4xx otherwise                      → PeerRefused
    could not connect                       → PeerUnavailable   (nothing was sent)
    read timeout, dropped connection,
    unreadable answer, no Status            → OutcomeUnknown    on SendDocument (it may have
                                              committed: the gateway resends the same package);
                                              PeerUnavailable   on the read-only calls

Size: a package is sent inline as base64 through zeep (the call holds it in memory a few times
over, as the national axis connector's JSON does). It is received without zeep: GetDocument's
answer is streamed (requests, ``stream=True``) into docgw's hardened streaming parser
(:mod:`envelopes.xmlsafe`), which diverts the ``Package`` text to a base64 decoder writing to a
spooled file, so neither libxml2's 10,000,000-character text-node cap (a package over about
7.5 MB) nor a tree of the whole answer is in the way: receiving costs about the package's own
size (it is returned as bytes, like the national axis connector's), where zeep's tree took some
six times that. The package may also come as a MIME attachment (MTOM or SOAP with Attachments):
:mod:`connectors.soap_answer` reads every form. The package may be at most
``max_package_bytes`` decoded (``[api] max_upload_bytes``, as every other way in); the answer is
read only until that is passed. The other answers are small and go through zeep, with libxml2's
default caps.

Classified packages are refused before their bytes are read, whatever the configuration says:
this is an axis (DOMAIN.md §6).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import io
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import requests
import urllib3.exceptions
import zeep
import zeep.exceptions
import zeep.proxy
import zeep.wsdl
from lxml import etree
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from connectors.base import (
    ClassifiedRefused,
    ConnectorError,
    Delivery,
    DirectoryEntry,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    Receipt,
    RemoteItem,
)
from connectors.soap_answer import StreamedAnswer, read_answer

#: The service's target namespace, and the package data it is described in.
SERVICE_NS = "urn:docgw:lgsp:document-service:1"
WSDL_PACKAGE = "xsd"
WSDL_NAME = "document_service.wsdl"
BINDING = f"{{{SERVICE_NS}}}DocumentServiceSoap11"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
#: The operation whose answer carries a package, and where in it.
GET_DOCUMENT = "GetDocument"
_PACKAGE = f"{{{SERVICE_NS}}}Package"
_GET_DOCUMENT_RESPONSE = f"{{{SERVICE_NS}}}GetDocumentResponse"
#: Decoded package bytes kept in memory before the spool moves to a temporary file.
SPOOL_BYTES = 1 << 20

OK = "OK"
FAIL = "FAIL"
#: FAIL codes that describe the platform's own trouble, not the package: retried.
TRANSIENT_ERROR_CODES = frozenset({"20"})
RETRYABLE_4XX = (408, 425, 429)
MESSAGE_TYPES = ("document", "status")
#: WS-Security 1.1 fault codes (local names): the token or its use was refused — final.
WSSE_FAULTS = frozenset(
    {
        "FailedAuthentication",
        "InvalidSecurityToken",
        "InvalidSecurity",
        "UnsupportedSecurityToken",
        "SecurityTokenUnavailable",
        "FailedCheck",
        "MessageExpired",
    }
)


def wsdl_bytes() -> bytes:
    """The WSDL, from package data."""
    return importlib.resources.files(WSDL_PACKAGE).joinpath(WSDL_NAME).read_bytes()


def zeep_settings() -> zeep.Settings:
    """zeep's hardening: no DTD, no entities, no external fetch, libxml2's size caps kept (the one
    large answer, GetDocument's, does not go through zeep: see the module's "Size")."""
    return zeep.Settings(
        strict=True,
        xml_huge_tree=False,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )


class _NoLoading(Transport):
    """Parses the WSDL: it must be self-contained, so any load is a bug in the file."""

    def __init__(self) -> None:
        # Not Transport.__init__: that opens a requests.Session this transport never uses.
        pass

    def load(self, url: str) -> bytes:
        raise ConnectorError(f"{WSDL_NAME} must be self-contained; it tried to load {url!r}")

    def __del__(self) -> None:
        pass


def username_token(system_id: str, secret: bytes) -> UsernameToken:
    """The WS-Security credential: PasswordDigest, a fresh nonce and Created per request."""
    return UsernameToken(  # type: ignore[no-untyped-call]
        system_id, secret, use_digest=True, zulu_timestamp=True
    )


def load_service_client(transport: Transport, wsse: UsernameToken | None = None) -> zeep.Client:
    """A zeep client for the WSDL in package data, calling through ``transport`` (with the
    WS-Security credential ``wsse`` in every request's header, when given)."""
    settings = zeep_settings()
    # zeep annotates Document's transport as a class and leaves Client untyped.
    document = zeep.wsdl.Document(
        io.BytesIO(wsdl_bytes()),
        _NoLoading(),  # type: ignore[arg-type]
        settings=settings,
    )
    return zeep.Client(  # type: ignore[no-untyped-call]
        document, transport=transport, settings=settings, wsse=wsse
    )


def _read_all(open_package: Callable[[], IO[bytes]]) -> bytes:
    with open_package() as stream:
        return stream.read()


def _excerpt(content: bytes | str | None) -> str:
    if isinstance(content, bytes):
        content = content[:300].decode("utf-8", "replace")
    return (content or "")[:300]


def _is_client_fault(code: str | None) -> bool:
    """``soap:Client``, ``Client.Authentication``, SOAP 1.2 ``Sender``, a WS-Security fault
    (``wsse:FailedAuthentication`` …): the request or its credential is wrong."""
    local = (code or "").rsplit(":", 1)[-1].split(".", 1)[0]
    return local in ("Client", "Sender") or local in WSSE_FAULTS


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the peer: the connection was never made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _http_error(
    where: str, status: int, content: bytes | str | None, unknown: type[ConnectorError]
) -> ConnectorError:
    """An HTTP status without a SOAP Fault: the platform (or a proxy) did not take the call."""
    if status >= 500 or status in RETRYABLE_4XX:
        return PeerUnavailable(f"{where}: HTTP {status}: {_excerpt(content)}")
    if 400 <= status < 500:
        return PeerRefused(f"{where}: HTTP {status}: {_excerpt(content)}")
    return unknown(f"{where}: unreadable answer (HTTP {status})")


def _fault_error(where: str, code: str | None, message: str | None) -> ConnectorError:
    text = f"{where}: SOAP Fault {code}: {message}"
    return PeerRefused(text) if _is_client_fault(code) else PeerUnavailable(text)


@dataclass
class SoapAxisConnector:
    """Connector and Pollable for a provincial SOAP platform.

    ``receivers`` are the local units this connector polls for. ``transport`` is injected (tests,
    the composition root); without one, a requests-based transport with ``timeout_seconds`` is
    made and closed by :meth:`close`. An injected transport keeps its own timeouts.
    ``system_id`` and ``secret``: this system's credential on the platform (see the module's
    "Authentication"); empty: none is sent.
    """

    name: str
    endpoint: str
    receivers: tuple[str, ...] = ()
    system_id: str = ""
    secret: bytes = field(default=b"", repr=False)  # never in logs
    transport: Transport | None = None
    timeout_seconds: float = 60.0
    #: The largest package received (decoded bytes); the composition root passes
    #: ``[api] max_upload_bytes``.
    max_package_bytes: int = 512 << 20
    #: Always True: this is an axis, and no configuration may say otherwise.
    is_axis: bool = field(default=True, init=False)
    _service: zeep.proxy.ServiceProxy | None = field(default=None, init=False, repr=False)
    _client: zeep.Client | None = field(default=None, init=False, repr=False)
    _owned: Transport | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # ------------------------------------------------------------------------------ Connector

    async def deliver(self, delivery: Delivery) -> Receipt:
        # Before anything else, and before the bytes are even read: classified content never
        # enters this process' SOAP stack.
        if delivery.classification.is_classified:
            raise ClassifiedRefused(
                f"{self.name} is an axis channel: classified packages never go there"
            )
        if delivery.kind not in MESSAGE_TYPES:
            raise ValueError(f"unknown delivery kind {delivery.kind!r}")
        package = await asyncio.to_thread(_read_all, delivery.open_package)
        result = await self._call(
            "SendDocument",
            committing=True,
            Package=package,
            Sender=delivery.sender,
            MessageType=delivery.kind,
        )
        return Receipt(
            remote_id=str(result.DocumentId) if result.DocumentId else None,
            duplicate=bool(result.Duplicate),
        )

    async def close(self) -> None:
        owned, self._owned = self._owned, None
        self._service = None
        if owned is not None:
            owned.session.close()

    # ------------------------------------------------------------------------------- Pollable

    async def pending(self, kind: str) -> list[RemoteItem]:
        if kind not in MESSAGE_TYPES:
            raise ValueError(f"unknown kind {kind!r}")
        if not self.receivers:
            raise ConnectorError(f"{self.name}: no receiving units configured to poll for")
        items: dict[str, RemoteItem] = {}
        for receiver in self.receivers:
            result = await self._call("GetPendingDocumentIds", Receiver=receiver, MessageType=kind)
            # An id listed twice is one item (a platform that duplicates its listing).
            for remote_id in result.DocumentId or ():
                items.setdefault(str(remote_id), RemoteItem(remote_id=str(remote_id), kind=kind))
        return list(items.values())

    async def fetch(self, item: RemoteItem) -> bytes:
        # Not through zeep: the answer is streamed (see the module's "Size").
        if self._service is None:
            await asyncio.to_thread(self._build_service)
        try:
            return await asyncio.to_thread(self._get_document, item.remote_id)
        except (zeep.exceptions.Error, requests.RequestException) as exc:
            raise self._translate(GET_DOCUMENT, exc, committing=False) from exc

    async def acknowledge(self, item: RemoteItem, *, ok: bool, reason: str = "") -> None:
        # ConfirmReceived is VXP's updateStatus done|fail (see the module's "Acknowledging").
        await self._call("ConfirmReceived", DocumentId=item.remote_id, Ok=ok, Reason=reason or None)

    # ------------------------------------------------------------------------------ directory

    async def agencies(self) -> list[DirectoryEntry]:
        """The directory, under the name every directory source shares (``organizations``)."""
        return await self.organizations()

    async def organizations(self) -> list[DirectoryEntry]:
        result = await self._call("GetOrganizations")
        return [
            DirectoryEntry(
                code=str(org.Code),
                name=str(org.Name),
                parent_code=str(org.ParentCode) if org.ParentCode else None,
                email=str(org.Email) if org.Email else None,
            )
            for org in result.Organization or ()
        ]

    # -------------------------------------------------------------------------------- calling

    def _build_service(self) -> zeep.proxy.ServiceProxy:
        """Runs in a thread: parsing the WSDL blocks. Once per connector."""
        with self._lock:
            if self._service is None:
                transport = self.transport
                if transport is None:
                    transport = self._owned = Transport(  # type: ignore[no-untyped-call]
                        timeout=self.timeout_seconds, operation_timeout=self.timeout_seconds
                    )
                wsse = username_token(self.system_id, self.secret) if self.system_id else None
                client = self._client = load_service_client(transport, wsse)
                service: zeep.proxy.ServiceProxy = client.create_service(  # type: ignore[no-untyped-call]
                    BINDING, self.endpoint
                )
                self._service = service
            return self._service

    async def _call(self, operation: str, *, committing: bool = False, **params: Any) -> Any:
        """Call one operation; return its answer if Status is OK, raise a ConnectorError if not.

        ``committing``: the call may change the platform's state (SendDocument), so an answer
        lost after sending is an unknown outcome rather than a plain unavailability.
        """
        service = self._service
        if service is None:
            service = await asyncio.to_thread(self._build_service)
        try:
            result = await asyncio.to_thread(service[operation], **params)
        except (zeep.exceptions.Error, requests.RequestException) as exc:
            raise self._translate(operation, exc, committing=committing) from exc
        self._check(result, operation, committing=committing)
        return result

    def _get_document(self, remote_id: str) -> bytes:
        """Runs in a thread: GetDocument, its answer streamed through the hardened parser."""
        client, service = self._client, self._service
        transport = self.transport or self._owned
        assert client is not None and service is not None and transport is not None
        # zeep makes the request (with the WS-Security header, a fresh nonce); SOAP 1.1 headers.
        envelope = client.create_message(  # type: ignore[no-untyped-call]
            service, GET_DOCUMENT, DocumentId=remote_id
        )
        operation = client.wsdl.bindings[BINDING].get(GET_DOCUMENT)  # type: ignore[no-untyped-call]
        action = operation.soapaction
        headers = {"SOAPAction": f'"{action}"', "Content-Type": "text/xml; charset=utf-8"}
        body = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as package:
            with transport.session.post(
                self.endpoint,
                data=body,
                headers=headers,
                timeout=transport.operation_timeout,
                stream=True,
            ) as response:
                answer = read_answer(
                    response,
                    package,
                    limit=self.max_package_bytes,
                    package=_PACKAGE,
                    parent=_GET_DOCUMENT_RESPONSE,
                )
            self._check_streamed(answer)
            package.seek(0)
            return package.read()

    def _check_streamed(self, answer: StreamedAnswer) -> None:
        """GetDocument's answer, mapped as zeep's answers are (see the module's table)."""
        where = f"{self.name}: {GET_DOCUMENT}"
        root = answer.root
        body = root.find(f"{{{SOAP_ENV}}}Body") if root is not None else None
        if root is None or root.tag != f"{{{SOAP_ENV}}}Envelope":
            body = None
        fault = body.find(f"{{{SOAP_ENV}}}Fault") if body is not None else None
        if fault is not None:
            raise _fault_error(where, fault.findtext("faultcode"), fault.findtext("faultstring"))
        if not 200 <= answer.status < 300:
            raise _http_error(where, answer.status, answer.head, PeerUnavailable)
        if answer.error is not None:
            raise PeerUnavailable(f"{where}: unreadable answer: {answer.error.message}")
        result = body.find(_GET_DOCUMENT_RESPONSE) if body is not None else None
        if result is None:
            raise PeerUnavailable(f"{where}: unreadable answer: no GetDocumentResponse")
        tns = f"{{{SERVICE_NS}}}"
        self._verdict(
            result.findtext(f"{tns}Status"),
            result.findtext(f"{tns}ErrorCode"),
            result.findtext(f"{tns}ErrorDesc"),
            GET_DOCUMENT,
            committing=False,
        )
        if not answer.package_size:
            raise PeerUnavailable(f"{where}: OK, no package")

    def _check(self, result: Any, operation: str, *, committing: bool) -> None:
        """A FAIL answer is the platform's business decision about this request."""
        status = getattr(result, "Status", None)
        code = getattr(result, "ErrorCode", None)
        description = getattr(result, "ErrorDesc", None)
        self._verdict(status, code, description, operation, committing=committing)

    def _verdict(
        self,
        status: str | None,
        error_code: str | None,
        description: str | None,
        operation: str,
        *,
        committing: bool,
    ) -> None:
        if status == OK:
            return
        if status != FAIL:
            # An empty 202 or an answer without a Status: the platform did something, or not.
            unknown = OutcomeUnknown if committing else PeerUnavailable
            raise unknown(f"{self.name}: {operation}: an answer without a Status")
        code = str(error_code or "")
        # "axis code N:" first, as the VXP connector: an attempt's detail says which refusal.
        message = f"axis code {code}: {self.name}: {operation}: FAIL: {description or ''}"
        if code in TRANSIENT_ERROR_CODES:
            raise PeerUnavailable(message)
        raise PeerRefused(message)

    def _translate(self, operation: str, exc: Exception, *, committing: bool) -> ConnectorError:
        where = f"{self.name}: {operation}"
        # After the request was (perhaps) sent: only SendDocument can have committed something.
        unknown = OutcomeUnknown if committing else PeerUnavailable
        if isinstance(exc, zeep.exceptions.Fault):
            return _fault_error(where, exc.code, exc.message)
        if isinstance(exc, zeep.exceptions.TransportError):
            return _http_error(where, exc.status_code, exc.content, unknown)
        if isinstance(exc, requests.RequestException):
            if _never_sent(exc):
                return PeerUnavailable(f"{where}: could not connect: {exc}")
            if isinstance(exc, requests.Timeout):
                return unknown(f"{where}: no answer within {self._timeout_text()}")
            return unknown(f"{where}: {exc}")
        # zeep could not read the answer (unexpected elements, invalid values).
        return unknown(f"{where}: unreadable answer: {exc}")

    def _timeout_text(self) -> str:
        transport = self.transport or self._owned
        timeout = getattr(transport, "operation_timeout", None)
        return f"{timeout}s" if timeout is not None else "the transport's timeout"

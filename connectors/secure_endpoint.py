"""Deliver packages to a peer's secure inbox over mutual TLS (the secure network, DOMAIN.md §6).

The peer is another docgw's secure inbox (or any receiver answering like ``http_push``'s peers:
2xx with JSON ``{"id": …, "duplicate": bool}``). Both ends present a certificate from the CA they
trust (the government CA, or the development CA of ``gateway.keystore``); the receiving side ties
the TLS peer to a unit with :func:`peer_unit_from_certificate`.

Classified packages are sealed for their recipient before they are queued, so the database and the
wire only ever hold ciphertext. This connector checks that again (defence in depth): a classified
delivery whose bytes are not a well-formed seal is refused before any connection is opened, and so
is one that does not carry its one recipient's registered secure endpoint — a classified package
goes to that endpoint or nowhere, never to the channel's own ``endpoint`` (which serves unclassified
traffic only), whatever routed it here. A recipient's registered endpoint, whatever the
classification, takes that one recipient's copy only (the gateway delivers one recipient per call
on this channel), and the server there must hold a certificate naming that recipient's unit.

The request carries ``Expect: 100-continue``: the body only starts once the peer has accepted the
connection and the request line. This is what lets a refused client certificate be told apart from
a crash after the upload: under TLS 1.3 the client's handshake completes before the server checks
the client certificate, and a refusal then shows only as a reset connection — before the body was
sent, thanks to 100-continue, so nothing can have been committed. It also lets a peer answer 401 or
413 before hundreds of MB are uploaded.

Failures, translated at this boundary::

    ConnectorError
    ├── PeerUnavailable        safe to retry: refused connection, connect timeout, a TLS failure on
    │                          either side's certificate (configuration: fix it, then retries pass),
    │                          HTTP 5xx / 408 / 425 / 429, anything that broke before the peer could
    │                          have the whole package
    ├── OutcomeUnknown         a timeout or disconnection after the whole package was sent: the
    │                          gateway resends the same package, the peer deduplicates
    ├── PeerRefused            any other 4xx: final
    │   ├── NotSealed          a classified package that is not a seal: final, nothing was sent
    │   ├── SecureEndpointInvalid  the endpoint is not an ``https://`` URL (e.g. an ``http://``
    │   │                      one registered before docgw refused them): final, nothing was sent
    │   └── NoSecureEndpoint   a classified package without its recipient's registered secure
    │                          endpoint (or for several recipients), or a registered endpoint
    │                          handed with several recipients: final, nothing was sent
    ├── ClassifiedRefused      (only if this connector were configured as an axis)
    └── TlsConfigurationError  the certificate, key or CA file cannot be loaded, or a context
                               that does not verify the server's certificate and name
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO, Final
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from connectors.base import (
    ClassifiedRefused,
    ConnectorError,
    Delivery,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    Receipt,
    require_sealed,
)
from envelopes.unit_codes import UnitCodeForm, classify

CHUNK: Final = 1 << 20
RETRYABLE_4XX: Final = (408, 425, 429)
#: The peer's inbox takes both; the content type only spares it a sniff of the first bytes.
SEALED_CONTENT_TYPE: Final = "application/octet-stream"
PLAIN_CONTENT_TYPE: Final = "application/xml"
#: The DNS SAN suffix of unit certificates: ``000.00.00.G22`` → ``000-00-00-g22.unit.docgw``.
UNIT_DNS_SUFFIX: Final = ".unit.docgw"
#: An answer is a small JSON object; a peer streaming more is not read any further.
MAX_ANSWER_BYTES: Final = 64 * 1024

PathLike = str | os.PathLike[str]


class TlsConfigurationError(ConnectorError):
    code = "TLS_CONFIG_INVALID"


class NoSecureEndpoint(PeerRefused):
    """A classified delivery that does not name its one recipient's registered secure endpoint, or
    any delivery that hands one recipient's registered endpoint with several recipients. Final:
    the routing policy and the delivery worker should never have let it through, and no other
    address may stand in."""

    code = "NO_SECURE_ENDPOINT"


class SecureEndpointInvalid(PeerRefused):
    """A secure endpoint that is not ``https://host…``: plain HTTP would carry the package (sealed
    or not), the sender's and recipients' codes and the message id in clear, without mutual TLS.
    The registry refuses such an endpoint (``element`` names the field); the connector refuses it
    again at send time, for one stored before that rule. Final: nothing was sent."""

    code = "SECURE_ENDPOINT_INVALID"


def check_secure_endpoint(url: str, *, element: str = "secure_endpoint") -> str:
    """``url`` if it is an ``https://`` URL with a host and no user name or password in it (a
    credential in a URL ends up in logs), else :class:`SecureEndpointInvalid` naming ``element``.
    The one rule for every secure endpoint: the registry's and the connector's."""
    try:
        parsed = urlsplit(url)
        scheme, host, _ = parsed.scheme, parsed.hostname, parsed.port  # a bad port: ValueError
        userinfo = parsed.username is not None or parsed.password is not None
    except ValueError:
        scheme, host, userinfo = "", None, False
    # Whitespace or control characters: urlsplit drops some of them, a client might not.
    if scheme != "https" or not host or any(c.isspace() or c < " " for c in url):
        raise SecureEndpointInvalid(
            f"a secure endpoint must be an https:// URL (mutual TLS), not {url!r}",
            element=element,
        )
    if userinfo:
        raise SecureEndpointInvalid(
            "a secure endpoint carries no user name or password (mutual TLS authenticates)",
            element=element,
        )
    return url


# ------------------------------------------------------------------------------------ TLS setup


def client_ssl_context(
    cert_file: PathLike, key_file: PathLike, ca_file: PathLike
) -> ssl.SSLContext:
    """The sending side: TLS 1.2+, the server verified against ``ca_file`` only (no system CAs:
    a public web certificate must not pass for a secure-network peer), our unit's certificate
    presented for mutual TLS. Host names are checked (see ``server_hostname`` on the connector)."""
    try:
        # With a cafile, create_default_context loads that CA and not the system store.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.fspath(ca_file))
        context.load_cert_chain(os.fspath(cert_file), os.fspath(key_file))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TlsConfigurationError(
            f"cannot load the TLS client files (cert {cert_file}, key {key_file}, CA {ca_file}): "
            f"{exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def server_ssl_context(
    cert_file: PathLike, key_file: PathLike, client_ca_file: PathLike
) -> ssl.SSLContext:
    """The receiving side (the secure inbox listener): TLS 1.2+, and a client certificate signed by
    ``client_ca_file`` is required — a client without one never gets to send a byte of HTTP.
    OpenSSL also checks the client certificate's purpose (clientAuth when it has an EKU)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(os.fspath(cert_file), os.fspath(key_file))
        context.load_verify_locations(cafile=os.fspath(client_ca_file))
    except (OSError, ValueError) as exc:
        raise TlsConfigurationError(
            f"cannot load the TLS server files (cert {cert_file}, key {key_file}, "
            f"client CA {client_ca_file}): {exc}"
        ) from exc
    return context


def unit_dns_name(unit_code: str) -> str:
    """The DNS SAN a unit certificate carries, e.g. to check a peer gateway by its unit."""
    return unit_code.lower().replace(".", "-") + UNIT_DNS_SUFFIX


def peer_unit_from_certificate(certificate: bytes | x509.Certificate) -> str | None:
    """The unit code a (TLS-verified) client certificate stands for, or None.

    Takes the DER (``ssl_object.getpeercert(binary_form=True)``) or a parsed certificate. The SAN
    ``<code-with-dashes>.unit.docgw`` wins, as SANs do over the CN; a CN that is a unit code is used
    when no such SAN exists. Ambiguity (two units, or a CN naming another unit than the SAN) gives
    None: a listener must not guess who is talking. This does not verify anything — call it only
    on a certificate the TLS layer has verified, and still check that the unit is registered.
    """
    if isinstance(certificate, bytes):
        try:
            certificate = x509.load_der_x509_certificate(certificate)
        except ValueError:
            return None
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    except ValueError:  # malformed or duplicated extensions: nothing here can be relied on
        return None
    from_san = {unit for name in dns_names if (unit := _unit_from_dns(name)) is not None}
    common_names = [
        value
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if isinstance(value := attribute.value, str)
    ]
    from_cn = {name for name in common_names if _is_unit_code(name)}
    if len(from_san) > 1 or len(from_cn) > 1:
        return None
    if from_san:
        return None if from_cn and from_cn != from_san else next(iter(from_san))
    return next(iter(from_cn)) if from_cn else None


def _unit_from_dns(name: str) -> str | None:
    if not name.lower().endswith(UNIT_DNS_SUFFIX):
        return None
    label = name[: -len(UNIT_DNS_SUFFIX)]
    # One label of [a-z0-9-] only: a wildcard or a deeper name does not name one unit.
    if not label or not all(c.isascii() and (c.isalnum() or c == "-") for c in label):
        return None
    code = label.replace("-", ".").upper()
    return code if _is_unit_code(code) else None


def _is_unit_code(value: str) -> bool:
    return classify(value) is not UnitCodeForm.NONCONFORMING


# ----------------------------------------------------------------------------------- the seal


# ---------------------------------------------------------------------------------- connector


@dataclass
class _Progress:
    """How far the body went, to tell "the peer cannot have it" from "the peer may have it"."""

    started: bool = False
    #: The last chunk was handed to the transport: from here on the peer may hold all of it.
    complete: bool = False


async def _body(open_package: Callable[[], IO[bytes]], progress: _Progress) -> AsyncIterator[bytes]:
    with open_package() as stream:
        chunk = await asyncio.to_thread(stream.read, CHUNK)
        while chunk:
            # Read one chunk ahead so the last one is known before it is handed over: marking
            # completion only after it was written would call a delivery the peer may have
            # committed "unavailable" if the connection broke during that last write.
            following = await asyncio.to_thread(stream.read, CHUNK)
            progress.started = True
            progress.complete = not following
            yield chunk
            chunk = following
    progress.complete = True


@dataclass(kw_only=True)
class SecureEndpointConnector:
    name: str
    #: The peer's secure inbox for UNCLASSIFIED deliveries, e.g.
    #: ``https://gw.example.gov.vn:8443/inbox``; a delivery's own ``endpoint`` (the recipient
    #: unit's registered secure endpoint) takes precedence. Classified deliveries go to their own
    #: ``endpoint`` only, never here.
    endpoint: str = ""
    #: From :func:`client_ssl_context`: our unit's certificate and the CA that signs the peers.
    ssl_context: ssl.SSLContext
    #: Injected (tests, a shared pool) or None: the connector then owns one, closed by ``close``.
    session: aiohttp.ClientSession | None = None
    timeout_seconds: float = 60.0
    #: Connecting includes the TLS handshake; failing there is always safe to retry.
    connect_timeout_seconds: float = 10.0
    #: Check the channel's own ``endpoint``'s server certificate against this name instead of
    #: the endpoint's host, e.g. ``unit_dns_name(peer_unit)`` to insist that it is that unit's
    #: gateway. A recipient's registered endpoint is always checked for the recipient's unit.
    server_hostname: str | None = None
    #: Send ``Expect: 100-continue`` (see the module docstring); turn off only for a peer that
    #: does not implement it — TLS refusals of our certificate may then read as OutcomeUnknown.
    expect_continue: bool = True
    is_axis: bool = False
    _owned_session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # What "checks that the server's certificate names the unit" rests on: a context that
        # verifies the chain and the name. (Presenting our certificate rests on the context coming
        # from client_ssl_context, which loads it or fails; ssl has no way to ask a context.)
        if self.ssl_context.verify_mode != ssl.CERT_REQUIRED or not self.ssl_context.check_hostname:
            raise TlsConfigurationError(
                f"{self.name}: the TLS context must verify the server's certificate and host name "
                "(use client_ssl_context)"
            )
        if self.endpoint:  # the channel's own: refused at start rather than at each send
            check_secure_endpoint(self.endpoint, element=f"channels.{self.name}.endpoint")

    async def deliver(self, delivery: Delivery) -> Receipt:
        classified = delivery.classification.is_classified
        if self.is_axis and classified:
            raise ClassifiedRefused(
                f"{self.name} is an axis channel: classified packages never go there"
            )
        if classified:
            await require_sealed(delivery)
            if not delivery.endpoint or len(delivery.recipients) != 1:
                raise NoSecureEndpoint(
                    f"{self.name}: a {delivery.classification.value} package goes only to its one "
                    "recipient's registered secure endpoint"
                    + (
                        f"; {delivery.recipients[0]} has none"
                        if len(delivery.recipients) == 1
                        else f", not to {len(delivery.recipients)} recipients at once"
                    ),
                    element="endpoint",
                )
        elif delivery.endpoint and len(delivery.recipients) != 1:
            # A registered endpoint is one unit's gateway: another unit's copy does not go there.
            raise NoSecureEndpoint(
                f"{self.name}: {delivery.endpoint} is the registered endpoint of one recipient; "
                f"a package for {len(delivery.recipients)} recipients is not sent there at once",
                element="endpoint",
            )
        headers = {
            "Content-Type": SEALED_CONTENT_TYPE if classified else PLAIN_CONTENT_TYPE,
            "Content-Length": str(delivery.package_size),
            "X-Docgw-Message-Id": delivery.message_id,
            "X-Docgw-Sender": delivery.sender,
            "X-Docgw-Recipients": ",".join(delivery.recipients),
            "X-Docgw-Package-Sha256": delivery.package_sha256,
        }
        url = delivery.endpoint or self.endpoint
        if not url:
            raise PeerRefused(f"{self.name}: no secure endpoint is registered for the recipient")
        # Before any connection: an http:// URL would take the bytes in clear, without our
        # certificate (aiohttp ignores the TLS context there).
        check_secure_endpoint(url, element="endpoint")
        # A per-recipient endpoint must be served by that unit's gateway: its certificate must
        # name the unit, whatever host name the endpoint uses and whatever ``server_hostname``
        # says (that is for the channel's own endpoint). The one recipient: checked above.
        expected_server = (
            unit_dns_name(delivery.recipients[0]) if delivery.endpoint else self.server_hostname
        )
        progress = _Progress()
        try:
            async with self._session().post(
                url,
                data=_body(delivery.open_package, progress),
                headers=headers,
                ssl=self.ssl_context,
                server_hostname=expected_server,
                expect100=self.expect_continue,
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout_seconds,
                    connect=min(self.connect_timeout_seconds, self.timeout_seconds),
                ),
            ) as response:
                return await self._receipt(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._translate(exc, progress) from exc

    async def _receipt(self, response: aiohttp.ClientResponse) -> Receipt:
        try:
            raw = await response.content.read(MAX_ANSWER_BYTES)
        except (aiohttp.ClientError, TimeoutError):
            if not 200 <= response.status < 300:
                raise
            raw = b""  # the status already says the peer has the package; the id is a detail
        if 200 <= response.status < 300:
            try:
                payload = json.loads(raw) if raw else {}
            except ValueError:
                payload = {}
            if not isinstance(payload, dict):
                payload = {}
            remote_id = payload.get("id")
            return Receipt(
                remote_id=str(remote_id) if remote_id not in (None, "") else None,
                duplicate=payload.get("duplicate") is True,
            )
        text = raw[:300].decode("utf-8", "replace")
        if 400 <= response.status < 500 and response.status not in RETRYABLE_4XX:
            raise PeerRefused(f"{self.name}: HTTP {response.status}: {text}")
        raise PeerUnavailable(f"{self.name}: HTTP {response.status}: {text}")

    def _translate(self, exc: Exception, progress: _Progress) -> ConnectorError:
        """The outcome of a failed POST. Order matters: aiohttp's classes overlap."""
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return PeerUnavailable(
                f"{self.name}: no connection (TCP + TLS) within {self.connect_timeout_seconds}s"
            )
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return PeerUnavailable(
                f"{self.name}: TLS: the peer's certificate is not trusted "
                f"({exc.certificate_error}); check our CA file and the endpoint's host name"
            )
        if isinstance(exc, aiohttp.ClientSSLError):
            return PeerUnavailable(
                f"{self.name}: TLS handshake failed ({exc}); the peer may not trust our unit's "
                "certificate, or we offer no protocol or cipher in common"
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            where = f"{exc.host}:{exc.port}"
            if isinstance(exc.os_error, ConnectionResetError):
                # Under TLS 1.2 a peer refusing our certificate resets the handshake.
                return PeerUnavailable(
                    f"{self.name}: {where} reset the connection during the TLS handshake; the "
                    "peer may be refusing our client certificate (not signed by a CA it trusts)"
                )
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            return PeerUnavailable(f"{self.name}: cannot connect to {where}: {reason}")
        if progress.complete:
            if isinstance(exc, TimeoutError):
                return OutcomeUnknown(f"{self.name}: no answer within {self.timeout_seconds}s")
            # The peer may have committed before the connection dropped, TLS error or not.
            return OutcomeUnknown(f"{self.name}: connection lost after sending: {exc}")
        if _has_ssl_error(exc):
            # A TLS alert before the whole body was sent: the peer refused the session.
            return PeerUnavailable(
                f"{self.name}: TLS refused ({exc}); the peer may not trust our unit's certificate"
            )
        if not progress.started:
            return PeerUnavailable(
                f"{self.name}: the connection ended before the peer accepted the request ({exc}); "
                "if this persists the peer may be refusing our client certificate (under TLS 1.3 "
                "that shows only as a closed connection)"
            )
        return PeerUnavailable(f"{self.name}: the connection ended during the upload: {exc}")

    def _session(self) -> aiohttp.ClientSession:
        if self.session is not None:
            return self.session
        if self._owned_session is None or self._owned_session.closed:
            self._owned_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=16),
                cookie_jar=aiohttp.DummyCookieJar(),  # as the gateway's own session
            )
        return self._owned_session

    async def close(self) -> None:
        if self._owned_session is not None:
            await self._owned_session.close()
            self._owned_session = None


def _has_ssl_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False

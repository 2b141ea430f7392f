"""Package bytes between the blob store and the rest: spooled files, so large packages stay on
disk, and sealing for classified recipients."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes import sealing
from envelopes.attachments import AttachmentSource
from envelopes.building import build_document
from envelopes.errors import SealError
from envelopes.model import DocumentPackage, MessageHeader
from envelopes.reading import Notice, read_package
from envelopes.signing import Signer, TrustPolicy
from gateway.store import blobs, unit_queries
from gateway.store import current_certificate as store_current
from gateway.usecases.errors import UnknownSender
from gateway.usecases.ports import Config, Configured, Keys

SPOOL_BYTES = 8 << 20


def spool() -> IO[bytes]:
    """In memory up to 8 MiB, then a temporary file."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)


async def load_to_spool(conn: AsyncConnection, sha256: str) -> IO[bytes]:
    out = spool()
    async for chunk in blobs.read_chunks(conn, sha256):
        out.write(chunk)
    out.seek(0)
    return out


def seal_copy(source: IO[bytes], cert: x509.Certificate) -> IO[bytes]:
    """The package sealed for one certificate, as a new spooled stream."""
    source.seek(0)
    out = spool()
    sealing.seal_stream(source, out, cert)  # type: ignore[arg-type]
    out.seek(0)
    return out


@dataclasses.dataclass(frozen=True)
class Rebuildable:
    """A document package read with its attachments decoded into files, ready to be built again
    (in docgw's form: header, trace entries, business block, attachments and their labels)."""

    document: DocumentPackage
    attachments: tuple[AttachmentSource, ...]
    #: What the reader noticed (what docgw does not read is not carried over).
    notices: tuple[Notice, ...] = ()

    def addressed_to(self, unit: str, signer: Signer, out: IO[bytes]) -> None:
        """Build it again into ``out`` with To naming only ``unit`` (as the package named it),
        signed by ``signer``; the DocumentId and everything else are kept."""
        header = self.document.header
        to = tuple(entry for entry in header.to if entry.organ_id == unit)
        self.build(signer, out, header=dataclasses.replace(header, to=to))

    def build(self, signer: Signer, out: IO[bytes], *, header: MessageHeader | None = None) -> None:
        """Build it again into ``out``, signed by ``signer`` (``header``: instead of its own)."""
        build_document(
            header or self.document.header,
            out=out,
            attachments=self.attachments,
            business=self.document.business,
            traces=self.document.traces,
            signer=signer,
        )


def read_rebuildable(package: IO[bytes], folder: Path) -> Rebuildable:
    """Read the document ``package``, each attachment decoded into a file of ``folder`` (which
    must outlive the builds)."""
    paths: list[Path] = []

    def attachment_file() -> IO[bytes]:
        paths.append(folder / str(len(paths)))
        return paths[-1].open("w+b")

    package.seek(0)
    parsed = read_package(package, sink_factory=attachment_file)
    for streamed in parsed.attachments:
        if streamed.content is not None:
            streamed.content.close()
    by_content_id = dict(zip((a.content_id for a in parsed.attachments), paths, strict=True))
    document = parsed.document()
    return Rebuildable(
        document=document,
        attachments=tuple(
            AttachmentSource(
                name=info.name,
                open=_reader_of(by_content_id[info.content_id]),
                content_type=info.content_type,
                description=info.description,
                content_id=info.content_id,
            )
            for info in document.attachments
        ),
        notices=tuple(parsed.notices),
    )


def _reader_of(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


async def sealed_for(
    conn: AsyncConnection,
    sha256: str,
    cert: x509.Certificate,
    first_chunk: bytes | None = None,
) -> bool:
    """Whether the stored copy ``sha256`` is sealed for ``cert``, by its seal header
    (``first_chunk`` when the caller has it already, else its first chunk from the store); False
    when it is no readable seal."""
    head = first_chunk if first_chunk is not None else await blobs.read_first_chunk(conn, sha256)
    try:
        return sealing.read_seal_header(head).is_for(cert)
    except SealError:
        return False


async def registered_certificate(
    conn: AsyncConnection, unit_code: str, fingerprint: str
) -> x509.Certificate | None:
    """The certificate of ``unit_code`` registered with ``fingerprint`` (SHA-256), if any."""
    for record in await unit_queries.certificates(conn, unit_code):
        if record.fingerprint_sha256 == fingerprint:
            return load_certificate(record.pem)
    return None


async def current_certificate(
    conn: AsyncConnection, unit_code: str, now: dt.datetime
) -> x509.Certificate | None:
    """The unit's current certificate (:mod:`gateway.store.current_certificate`), or None."""
    pem = await store_current.current_pem(conn, unit_code, now)
    return None if pem is None else load_certificate(pem)


async def trust_for(gateway: Configured, conn: AsyncConnection, sender: str) -> TrustPolicy:
    """Only the sender's own registered certificates: a valid certificate of another unit does
    not make a package from this sender genuine."""
    found = await unit_queries.sender_certificates(
        conn, sender, now=gateway.clock(), overlap=overlap(gateway)
    )
    if found is None or not found.active:
        raise UnknownSender(f"sender {sender} is not an active unit in the registry")
    # Revoked (by an operator or a CRL) and retired (rollover) certificates verify nothing.
    pinned = tuple(
        load_certificate(c.pem) for c in found.certificates if not (c.revoked or c.retired)
    )
    if not pinned and found.certificates:
        raise UnknownSender(
            f"every certificate registered for sender {sender} is revoked (by an operator or a "
            "CRL) or retired by a newer one"
        )
    if not pinned:
        raise UnknownSender(f"no certificate is registered for sender {sender}")
    return TrustPolicy(pinned=pinned, allow_sha1=sender in gateway.settings.keys.sha1_peers)


def overlap(gateway: Config) -> dt.timedelta:
    """How long a unit's older certificate still verifies after a newer one is added."""
    return dt.timedelta(days=gateway.settings.certificates.overlap_days)


@functools.lru_cache(maxsize=1024)
def load_certificate(pem: str) -> x509.Certificate:
    """A registered certificate, parsed once per process (every package needs its sender's;
    certificate objects are immutable)."""
    return x509.load_pem_x509_certificate(pem.encode())


class _Reopened:
    """A read view of a shared spool; closing it leaves the spool open for the next reader."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        source.seek(0)

    def read(self, size: int = -1) -> bytes:
        return self._source.read(size)

    def tell(self) -> int:
        return self._source.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._source.seek(offset, whence)

    def close(self) -> None:
        return None

    def __enter__(self) -> _Reopened:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def opener(source: IO[bytes]) -> Callable[[], IO[bytes]]:
    """``open_package`` for a connector: each call reads the spool from the start."""
    return lambda: _Reopened(source)  # type: ignore[return-value]


def hands_over_opened(gateway: Config) -> bool:
    """Whether this gateway gives the local system a classified package's plaintext (drop folder,
    downloads): only on the classified side's own network (``profile = "secure"``). A standard
    gateway hands over the sealed copy as stored, so that the plaintext is never written on the
    unclassified side; it is opened where the unit's key is (``docgw package open``)."""
    return gateway.settings.gateway.profile == "secure"


def open_sealed_for_us(gateway: Keys, sealed: IO[bytes]) -> IO[bytes]:
    """The plaintext (a new spool) of a package sealed for one of our units' certificates.

    The caller keeps ``sealed`` (rewound to its start). GCM authenticates only at the end, so on a
    bad seal the partial plaintext is discarded before the error propagates.
    """
    sealed.seek(0)
    header = sealing.read_seal_header(sealed)  # type: ignore[arg-type]
    # The previous keys too: a copy sealed for a certificate replaced by `docgw keys install`
    # still opens during the overlap.
    for signer in (*gateway.signers.values(), *gateway.previous_signers.values()):
        if header.is_for(signer.certificate):
            sealed.seek(0)
            plain = spool()
            try:
                sealing.open_stream(sealed, plain, signer.private_key)  # type: ignore[arg-type]
            except SealError:
                plain.close()
                raise
            plain.seek(0)
            sealed.seek(0)
            return plain
    raise SealError("the package is sealed for a certificate this gateway does not hold")

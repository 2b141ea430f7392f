"""The in-memory form of a container's streaming seal and open — bytes in, bytes out — for both
containers (:mod:`envelopes.sealing`'s CMS and :mod:`envelopes.dgwseal1`'s old one): one place for
the rule that an opening that fails leaves no plaintext behind."""

from __future__ import annotations

import io
from typing import BinaryIO, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class StreamSealer(Protocol):
    def __call__(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        recipient_cert: x509.Certificate,
        *,
        length: int | None = ...,
    ) -> None: ...


class StreamOpener(Protocol):
    def __call__(self, src: BinaryIO, dst: BinaryIO, private_key: PrivateKeyTypes) -> None: ...


def seal_bytes(seal_stream: StreamSealer, data: bytes, recipient_cert: x509.Certificate) -> bytes:
    """``data`` sealed for ``recipient_cert`` by ``seal_stream``."""
    out = io.BytesIO()
    seal_stream(io.BytesIO(data), out, recipient_cert, length=len(data))
    return out.getvalue()


def open_bytes(open_stream: StreamOpener, data: bytes, private_key: PrivateKeyTypes) -> bytes:
    """The plaintext of ``data`` opened by ``open_stream``; on any failure its error and no
    bytes."""
    out = io.BytesIO()
    try:
        open_stream(io.BytesIO(data), out, private_key)
    except BaseException:
        # The traceback keeps this frame, and so ``out``, alive; empty it so that unauthenticated
        # plaintext cannot surface through exception logging that captures locals.
        out.close()
        raise
    return out.getvalue()

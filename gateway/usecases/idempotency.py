"""A repeated ``Idempotency-Key`` must come with the request it was first used for: the IETF
Idempotency-Key draft answers a key reused with another payload with 422, where docgw used to
return the first message and silently drop the new document.

No fingerprint of the first request is stored: the stored package is one. The new request is
built again (unsigned) and both packages are read by the one reader; they are the same request
when the classification, the header, the business block and each attachment's name, type,
description, size and SHA-256 agree. The signature, trace entries and content ids are left out:
they may differ between two builds of one document (a renewed certificate, a new content id).
This costs one build and two reads, on a repeat only.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import IO, NoReturn

from connectors.offload import run_blocking, stream_size
from envelopes.attachments import AttachmentSource
from envelopes.building import build_document
from envelopes.metadata import DocumentRequest
from envelopes.model import Classification
from envelopes.reading import read_package
from gateway.store import message_queries
from gateway.usecases.errors import IdempotencyKeyReused
from gateway.usecases.naming import stored_classification
from gateway.usecases.packages import load_to_spool, open_sealed_for_us, spool
from gateway.usecases.ports import StoreAndKeys


async def check_repeat(
    gateway: StoreAndKeys,
    request: DocumentRequest,
    attachments: Sequence[AttachmentSource],
    *,
    client: str,
    key: str,
) -> None:
    """Nothing when ``key`` is new for ``client`` or came with this same request before; else
    :class:`IdempotencyKeyReused` (the first message is left as it is)."""
    async with gateway.engine.connect() as conn:
        message_id = await message_queries.message_id_for_idempotency_key(conn, client, key)
        if message_id is None:
            return
        message = await message_queries.get_message(conn, message_id)
        assert message is not None
        stored_as = Classification(message.classification)
        # An update of a Tối mật document is stored Tối mật, asked for as what it asked for.
        asked = await stored_classification(
            conn, request.header, request.business, request.classification
        )
        if stored_as is not asked:
            _refuse(key, message.id)
        stored = await load_to_spool(conn, message.package_sha256)
    with contextlib.ExitStack() as packages:
        packages.callback(stored.close)
        if stored_as.is_classified:
            # Only the copy sealed for the sender is stored; the sender is one of our units.
            stored = packages.enter_context(open_sealed_for_us(gateway, stored))
        rebuilt = packages.enter_context(spool())
        await run_blocking(
            None,
            build_document,
            request.header,
            out=rebuilt,
            attachments=attachments,
            business=request.business,
        )
        first = await run_blocking(stream_size(stored), _content, stored)
        again = await run_blocking(stream_size(rebuilt), _content, rebuilt)
    if first != again:
        _refuse(key, message.id)


def _refuse(key: str, message_id: str) -> NoReturn:
    raise IdempotencyKeyReused(
        f"this key was first used for message {message_id}, with another request; "
        "send a new key for a new document",
        element="Idempotency-Key",
    )


def _content(package: IO[bytes]) -> tuple[object, ...]:
    package.seek(0)
    document = read_package(package).document()
    return (
        document.header,
        document.business,
        tuple(dataclasses.replace(a, content_id="") for a in document.attachments),
    )

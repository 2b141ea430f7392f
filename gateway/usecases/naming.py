"""What a package names — stored documents, by DocumentId — and so the classification it is
stored and routed under: submitting, explaining a route and comparing a repeated idempotency key
all ask this one question (its own module: submit and the idempotency check both import it)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.model import Business, BusinessDocType, Classification, MessageHeader
from gateway.domain.routing import strictest
from gateway.store import message_queries


def named_ids(header: MessageHeader, business: Business | None) -> Iterator[str]:
    """The DocumentIds a package names besides its own (which an update, replacement or
    revocation shares with its document): its replies' ResponseFor, its Bussiness block's."""
    for response in header.response_for:
        if response.document_id:
            yield response.document_id
    if business is not None:
        if business.document_id:
            yield business.document_id
        for replacement in business.replacements:
            yield replacement.document_id


def is_new_document(business: Business | None) -> bool:
    """A new document (BussinessDocType 0, or no Bussiness block): its DocumentId is its own, not
    that of a document it revokes, updates or replaces."""
    return business is None or business.doc_type is BusinessDocType.NEW


async def named_classifications(
    conn: AsyncConnection, document_ids: Iterator[str] | Sequence[str]
) -> list[Classification]:
    """The classifications of the stored documents (sent or received) with these DocumentIds."""
    found: list[Classification] = []
    for document_id in dict.fromkeys(document_ids):
        values = await message_queries.classifications_of_document(conn, document_id)
        found.extend(Classification(value) for value in values)
    return found


async def stored_classification(
    conn: AsyncConnection,
    header: MessageHeader,
    business: Business | None,
    requested: Classification,
) -> Classification:
    """The classification a package is stored and routed under: ``requested``, or that of a
    stored document it names when stricter (an update of a Tối mật document is Tối mật).

    A reply names documents by its ResponseFor; a revocation, update or replacement also by its
    own DocumentId, which it shares with its document. A new document's own DocumentId names
    nothing: submit refuses it when stored (DOCUMENT_ID_REUSED), and a repeat with an idempotency
    key finds the key's first message under it, which must not make the repeat ask for less."""
    ids = list(named_ids(header, business))
    if not is_new_document(business):
        ids.append(header.document_id)
    if not ids:
        return requested
    return strictest(requested, await named_classifications(conn, ids))

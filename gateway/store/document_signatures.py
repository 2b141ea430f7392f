"""SQL of the documents' own signatures: one row per PDF attachment of a document message, the
verdict of its signatures (gateway/usecases/document_signatures.py), and the reports' counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import document_signatures, messages

#: A document's verdict over its PDFs: failing if one fails, else unsigned if one is, else valid.
VERDICTS = ("valid", "unsigned", "failing")


@dataclass(frozen=True, kw_only=True)
class DocumentSignatureRow:
    position: int
    attachment: str
    verdict: str
    reason: str | None
    detail: str | None
    signatures: list[dict[str, Any]]
    checked_at: dt.datetime


async def insert(
    conn: AsyncConnection,
    message_id: str,
    rows: Sequence[DocumentSignatureRow],
) -> None:
    if not rows:
        return
    await conn.execute(
        sa.insert(document_signatures),
        [
            {
                "message_id": message_id,
                "position": row.position,
                "attachment": row.attachment[:500],
                "verdict": row.verdict,
                "reason": row.reason,
                "detail": row.detail,
                "signatures": row.signatures,
                "checked_at": row.checked_at,
            }
            for row in rows
        ],
    )


async def for_message(conn: AsyncConnection, message_id: str) -> list[DocumentSignatureRow]:
    query = (
        sa.select(document_signatures)
        .where(document_signatures.c.message_id == message_id)
        .order_by(document_signatures.c.position)
    )
    return [
        DocumentSignatureRow(
            position=row.position,
            attachment=row.attachment,
            verdict=row.verdict,
            reason=row.reason,
            detail=row.detail,
            signatures=list(row.signatures or []),
            checked_at=row.checked_at,
        )
        for row in await conn.execute(query)
    ]


def document_verdict() -> sa.ScalarSelect[Any]:
    """Per message (correlated on ``messages.id``): its documents' verdict, the worst of its PDFs'
    (failing, then unsigned, then valid); NULL for a message without a PDF."""
    rank = sa.case(
        (document_signatures.c.verdict == "failing", 3),
        (document_signatures.c.verdict == "unsigned", 2),
        else_=1,
    )
    worst = sa.func.max(rank)
    return (
        sa.select(sa.case((worst == 3, "failing"), (worst == 2, "unsigned"), else_="valid"))
        .where(document_signatures.c.message_id == messages.c.id)
        .group_by(document_signatures.c.message_id)
        .scalar_subquery()
    )

"""What the store returns: frozen values, never rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState


@dataclass(frozen=True, kw_only=True)
class UnitRecord:
    code: str
    name: str
    code_qd20: str | None = None
    parent_code: str | None = None
    channel: str | None = None
    secure_endpoint: str | None = None
    allows_tuyet_mat: bool = False
    is_local: bool = False
    active: bool = True
    #: Closed by a merger: the code that replaced it.
    replaced_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class CertificateRecord:
    fingerprint_sha256: str
    unit_code: str
    pem: str
    subject: str
    not_after: dt.datetime
    revoked: bool = False
    #: Why it was revoked (an operator's reason, or the CRL that lists it).
    revoked_reason: str | None = None
    added_at: dt.datetime | None = None
    #: A newer certificate of the unit has taken over, past the rollover overlap
    #: (:mod:`gateway.store.current_certificate`): it no longer verifies.
    retired: bool = False


@dataclass(frozen=True, kw_only=True)
class RecipientRecord:
    id: int
    message_id: str
    unit_code: str
    channel: str | None
    state: TransportState
    attempt_count: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    remote_id: str | None
    business_status: str | None
    sent_at: dt.datetime | None
    arrival_due_at: dt.datetime | None
    package_sha256: str | None


@dataclass(frozen=True, kw_only=True)
class MessageRecord:
    id: str
    direction: Direction
    kind: PackageKind
    document_id: str
    sender: str
    classification: Classification
    #: The recipient unit's registered secure endpoint (used by secure channels).
    secure_endpoint: str | None = None
    subject: str | None
    code: str | None
    priority: int
    status_code: str | None
    related_message_id: str | None
    package_sha256: str
    client: str
    idempotency_key: str | None
    route: str | None
    notices: list[Any] | None
    signer_subject: str | None
    send_due_at: dt.datetime | None
    created_at: dt.datetime
    recipients: tuple[RecipientRecord, ...] = field(default=())


@dataclass(frozen=True, kw_only=True)
class Claimed:
    """A recipient a worker has claimed, with what it needs to deliver."""

    recipient_id: int
    message_id: str
    unit_code: str
    channel: str | None
    attempt: int
    package_sha256: str
    kind: PackageKind
    document_id: str
    sender: str
    classification: Classification
    #: The recipient unit's registered secure endpoint (used by secure channels).
    secure_endpoint: str | None = None
    #: Claimed from ``unconfirmed``: an earlier attempt's outcome is unknown (the peer may hold it).
    earlier_outcome_unknown: bool = False
    #: The unit as the registry says at the claim (None: no longer registered), for the policy.
    unit_active: bool | None = None
    allows_tuyet_mat: bool = False
    #: Classified only: the fingerprint of the unit's current certificate (newest registered,
    #: unrevoked, unexpired) at the claim, None when it has none; never read for ``thuong``.
    current_fingerprint: str | None = None


def aware(value: dt.datetime | None) -> Any:
    """SQLite returns naive datetimes: docgw stores UTC, so make them aware again."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


async def dicts(conn: AsyncConnection, query: Any) -> list[dict[str, Any]]:
    """The rows of ``query`` as plain dicts (a message's history, unmatched statuses)."""
    return [dict(row) for row in (await conn.execute(query)).mappings().all()]

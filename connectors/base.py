"""The one Connector protocol every counterparty module implements, and its outcomes.

A connector hands one package to one channel for one or more recipients and says how it went:

* it returns a :class:`Receipt` — the channel accepted the package (transport acknowledgement);
* :class:`PeerUnavailable` — not delivered, safe to retry (refused connection, 5xx, busy);
* :class:`OutcomeUnknown` — the request may have been committed (a timeout after sending): the
  gateway resends the SAME package later and the receiver deduplicates;
* :class:`PeerRefused` — a business error (unknown receiver, package not compliant): final.

Connectors never decide retries; the outbox does, durably (gateway.domain.retry).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol, runtime_checkable

from envelopes.errors import GatewayError, SealError
from envelopes.model import Classification
from envelopes.sealing import SealHeader, read_seal_header


class ConnectorError(GatewayError):
    code = "CONNECTOR_ERROR"


class PeerUnavailable(ConnectorError):
    code = "PEER_UNAVAILABLE"


class OutcomeUnknown(ConnectorError):
    code = "PEER_OUTCOME_UNKNOWN"


class PeerRefused(ConnectorError):
    code = "PEER_REFUSED"


class ClassifiedRefused(ConnectorError):
    """An axis connector was handed a classified package: refused, whatever routed it there."""

    code = "CLASSIFIED_REFUSED"


class NotSealed(PeerRefused):
    """A classified package that is not sealed for its recipient. Final: resending the same bytes
    cannot help, and they must never reach a wire."""

    code = "NOT_SEALED"


@dataclass(frozen=True, kw_only=True)
class Delivery:
    message_id: str
    document_id: str
    kind: str  # "document" | "status"
    sender: str
    recipients: tuple[str, ...]
    classification: Classification
    #: Opens the package bytes (possibly large) as a fresh binary stream.
    open_package: Callable[[], IO[bytes]]
    package_size: int
    package_sha256: str
    attempt: int
    #: The recipient's own endpoint where the channel has one per recipient (secure endpoints).
    endpoint: str | None = None


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """The channel took the package. ``remote_id`` is its id for it (e.g. the axis DocId)."""

    remote_id: str | None = None
    duplicate: bool = False


class Connector(Protocol):
    name: str
    #: True for connectors to an axis: they must refuse classified packages themselves.
    is_axis: bool

    async def deliver(self, delivery: Delivery) -> Receipt: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class RemoteItem:
    """Something waiting for us at a counterparty (e.g. on the axis): a package to fetch."""

    remote_id: str
    kind: str  # "document" | "status"
    sender: str | None = None
    created_at: str | None = None


@runtime_checkable
class Pollable(Protocol):
    """A channel we fetch from (the axis, a SOAP axis, a drop folder). The gateway's scheduled
    job polls, fetches each item, hands it to intake, then acknowledges it — so an item is only
    acknowledged once it is durably stored (or refused for good)."""

    name: str

    async def pending(self, kind: str) -> list[RemoteItem]: ...

    async def fetch(self, item: RemoteItem) -> bytes: ...

    async def acknowledge(self, item: RemoteItem, *, ok: bool, reason: str = "") -> None: ...


@dataclass(frozen=True, kw_only=True)
class RecipientState:
    """A per-recipient state as a channel reports it (the axis' getSentEdocList)."""

    recipient: str
    send_status: str | None = None
    receive_status: str | None = None


@dataclass(frozen=True, kw_only=True)
class DirectoryEntry:
    """One agency from a channel's directory (getAgenciesList, GetOrganizations)."""

    code: str
    name: str
    parent_code: str | None = None
    code_qd20: str | None = None
    email: str | None = None
    old_code: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnitChange:
    """One entry of a directory's change feed (getSynchronizeUnit): an agency created, changed or
    deleted since a moment."""

    entry: DirectoryEntry
    deleted: bool = False
    changed_at: str | None = None


# ---------------------------------------------------------- what a connector can do besides deliver
# Capabilities beyond Connector, each a Protocol: gateway/bootstrap.py finds them once, when it
# wires the connectors (``Capabilities``); nothing else asks a connector what it is.


@runtime_checkable
class SentStates(Protocol):
    """Reports per-recipient states of a send (the axis' getSentEdocList)."""

    async def sent_states(self, doc_id: str) -> list[RecipientState]: ...


@runtime_checkable
class DirectorySource(Protocol):
    """Lists its directory of agencies (getAgenciesList, GetOrganizations)."""

    async def agencies(self) -> list[DirectoryEntry]: ...


@runtime_checkable
class Qd20Source(Protocol):
    """A directory that also lists the Decision 20 codes (the national axis)."""

    async def agencies_qd20(self) -> list[DirectoryEntry]: ...


@runtime_checkable
class ChangeFeed(Protocol):
    """A directory that reports its changes since a moment (the axis' getSynchronizeUnit)."""

    async def synchronize_units(self, since: dt.datetime | None = None) -> list[UnitChange]: ...


# ------------------------------------------------------------------- classified defence in depth


async def require_sealed(delivery: Delivery) -> SealHeader:
    """The seal header of ``delivery``'s package; :class:`NotSealed` if it is not a whole seal.

    Reads only the container prefix (a few hundred bytes), off the event loop. The header is not
    authenticated — only the recipient's key can do that — so this proves the bytes are ciphertext
    in the seal format, not who sealed them.
    """
    return await asyncio.to_thread(_read_seal, delivery)


def _read_seal(delivery: Delivery) -> SealHeader:
    what = f"{delivery.classification.value} package of message {delivery.message_id}"
    with delivery.open_package() as stream:
        try:
            header = read_seal_header(stream)  # type: ignore[arg-type]
        except SealError as exc:
            raise NotSealed(
                f"the {what} is not sealed ({exc.message}); classified packages travel only as "
                "ciphertext sealed for their recipient"
            ) from exc
    expected = header.sealed_length
    if expected is None:
        return header  # a container that does not announce its size (docgw's always do)
    if delivery.package_size != expected:
        raise NotSealed(
            f"the {what} has {delivery.package_size} bytes but its seal header announces "
            f"{expected}: a truncated or padded seal is not sent"
        )
    return header

"""Reading messages as the API shows them: a page of the list, one message with its timelines,
and who may see which. A member token sees what its unit sent or received; staff see all.

"Who may see this message" has one definition, in SQL (:mod:`gateway.store.visibility`): the
list filters with it and one message is looked up through it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState, summarize
from gateway.store import message_queries
from gateway.store.records import MessageRecord
from gateway.usecases import document_signatures
from gateway.usecases.errors import NotFound
from gateway.usecases.parameters import choice, flag, member, moment
from gateway.usecases.ports import Store

#: The message list's filters, as ``GET /api/v1/messages`` and ``docgw queue list`` name them.
FILTERS = (
    "direction",
    "kind",
    "state",
    "recipient",
    "sender",
    "classification",
    "from",
    "to",
    "text",
    "breached",
)
#: The filters that take one of a closed set of values, and that set: :func:`message_filter`
#: reads them with it, the API's parameters and the CLI's options list it.
CHOICES: dict[str, type[StrEnum]] = {
    "direction": Direction,
    "kind": PackageKind,
    "state": TransportState,
    "classification": Classification,
}
KINDS = tuple(kind.value for kind in PackageKind)


def choices_schema(name: str) -> dict[str, Any]:
    """The JSON schema of a filter of :data:`CHOICES` (the API's parameter)."""
    return {"type": "string", "enum": [value.value for value in CHOICES[name]]}


def message_filter(
    query: Mapping[str, str],
    *,
    now: dt.datetime,
    member_unit: str | None,
    channels: Collection[str] = (),
) -> message_queries.MessageFilter:
    """The list's filters from their text (:data:`FILTERS`; a missing or empty one is no
    filter), typed: a value that is not one of the choices (:data:`CHOICES`), a date that is not
    one, is refused with BAD_REQUEST naming the filter — never an empty list. ``channels``: the
    channels a ``channel`` filter may name (the console's; none: it is not read)."""
    return message_queries.MessageFilter(
        direction=member(query, "direction", Direction),
        kind=member(query, "kind", PackageKind),
        state=member(query, "state", TransportState),
        recipient=query.get("recipient") or None,
        sender=query.get("sender") or None,
        classification=member(query, "classification", Classification),
        created_from=moment(query, "from", end_of_day=False),
        created_to=moment(query, "to", end_of_day=True),
        text=query.get("text") or None,
        breached_before=now if flag(query, "breached") else None,
        visible_to_unit=member_unit,
        channel=choice(query, "channel", tuple(sorted(channels))) if channels else None,
    )


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[MessageRecord]
    #: More messages follow the last item.
    more: bool


@dataclass(frozen=True, kw_only=True)
class Detail:
    message: MessageRecord
    #: attempts, audit and status_events, oldest first (message_queries.message_history).
    history: dict[str, list[dict[str, Any]]]
    #: Each PDF attachment's own signatures and their verdict (document_signatures.row_json).
    documents: list[dict[str, Any]]


def transport_state(message: MessageRecord) -> str | None:
    """The message's transport state as the API and the console show it: the least advanced of
    its recipients'; None for a received status message (it has no recipient rows)."""
    if not message.recipients:
        return None
    return summarize([r.state for r in message.recipients]).value


async def list_page(
    gateway: Store,
    selection: message_queries.MessageFilter,
    *,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> Page:
    async with gateway.engine.connect() as conn:
        found = await message_queries.list_messages(conn, selection, after=after, limit=limit + 1)
    return Page(items=found[:limit], more=len(found) > limit)


async def visible_message(
    gateway: Store, message_id: str, *, member_unit: str | None
) -> MessageRecord:
    """The message, or NOT_FOUND when it does not exist or the member may not see it (the same
    answer: a member does not learn that another unit's message exists)."""
    async with gateway.reader.connect() as conn:
        message = await message_queries.get_message(conn, message_id, visible_to_unit=member_unit)
    if message is None:
        raise NotFound(f"no message {message_id}", element="id")
    return message


async def detail(gateway: Store, message_id: str, *, member_unit: str | None) -> Detail:
    async with gateway.engine.connect() as conn:
        message = await message_queries.get_message(conn, message_id, visible_to_unit=member_unit)
        if message is None:
            raise NotFound(f"no message {message_id}")
        history = await message_queries.message_history(conn, message_id)
        documents = await document_signatures.for_message(conn, message_id)
    return Detail(message=message, history=history, documents=documents)

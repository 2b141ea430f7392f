"""Reading messages as the API shows them: a page of the list, one message with its timelines,
and who may see which. A member token sees what its unit sent or received; staff see all.

"Who may see this message" is :func:`visible_to` here and ``MessageFilter.visible_to_unit`` in
the store's list query: the same rule, once in Python (one message) and once in SQL (a page).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gateway.bootstrap import Gateway
from gateway.store import queries
from gateway.store.records import MessageRecord
from gateway.usecases.errors import NotFound


def visible_to(message: MessageRecord, unit: str | None) -> bool:
    """What MessageFilter.visible_to_unit shows a member: what its unit sent or received. None
    (staff) sees everything."""
    return (
        unit is None
        or message.sender == unit
        or any(r.unit_code == unit for r in message.recipients)
    )


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[MessageRecord]
    #: More messages follow the last item.
    more: bool


@dataclass(frozen=True, kw_only=True)
class Detail:
    message: MessageRecord
    #: attempts, audit and status_events, oldest first (queries.message_history).
    history: dict[str, list[dict[str, Any]]]


async def list_page(
    gateway: Gateway,
    selection: queries.MessageFilter,
    *,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> Page:
    async with gateway.engine.connect() as conn:
        found = await queries.list_messages(conn, selection, after=after, limit=limit + 1)
    return Page(items=found[:limit], more=len(found) > limit)


async def visible_message(
    gateway: Gateway, message_id: str, *, member_unit: str | None
) -> MessageRecord:
    """The message, or NOT_FOUND when it does not exist or the member may not see it (the same
    answer: a member does not learn that another unit's message exists)."""
    async with gateway.reader.connect() as conn:
        message = await queries.get_message(conn, message_id)
    if message is None or not visible_to(message, member_unit):
        raise NotFound(f"no message {message_id}", element="id")
    return message


async def detail(gateway: Gateway, message_id: str, *, member_unit: str | None) -> Detail:
    async with gateway.engine.connect() as conn:
        message = await queries.get_message(conn, message_id)
        if message is None or not visible_to(message, member_unit):
            raise NotFound(f"no message {message_id}")
        history = await queries.message_history(conn, message_id)
    return Detail(message=message, history=history)

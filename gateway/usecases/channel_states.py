"""Per-recipient states as the axis sees them (getSentEdocList), polled for recent sends.

They are the transport layer's view (sent to / received by the recipient's system on the axis),
kept beside — never mixed with — the business statuses that travel as status packages.

Only ``sent`` recipients are asked about, by the DocId the axis' answer carried (``remote_id``),
and the poll records the axis' view without moving the recipient's state. A recipient whose
attempt's answer was lost (``unconfirmed``, or failed as ``MAYBE_DELIVERED``) has no DocId, so
this poll cannot settle it: see :mod:`gateway.domain.retry` for why such a recipient fails for an
operator to check rather than waiting here.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from connectors.base import ConnectorError, SentStates
from gateway.store import job_queries
from gateway.usecases.ports import Store


async def refresh_sent_states(
    gateway: Store,
    channel: str,
    connector: SentStates,
    *,
    window: dt.timedelta = dt.timedelta(days=7),
    limit: int = 200,
) -> int:
    """Ask the channel about up to ``limit`` recent sends; returns how many rows were updated."""
    now = gateway.clock()
    async with gateway.engine.connect() as conn:
        candidates = await job_queries.sent_to_check(
            conn, channel=channel, since=now - window, limit=limit
        )
    by_remote: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for recipient_id, unit_code, remote_id in candidates:
        by_remote[remote_id].append((recipient_id, unit_code))
    updated = 0
    for remote_id, rows in by_remote.items():
        try:
            states = {s.recipient: s for s in await connector.sent_states(remote_id)}
        except ConnectorError:
            continue  # asked again next time
        async with gateway.engine.begin() as conn:
            for recipient_id, unit_code in rows:
                state = states.get(unit_code)
                await job_queries.set_channel_state(
                    conn,
                    recipient_id,
                    send_status=state.send_status if state else None,
                    receive_status=state.receive_status if state else None,
                    now=now,
                )
                updated += 1
    return updated

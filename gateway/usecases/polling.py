"""Fetch what waits for us on a pollable channel (the axis, a SOAP axis): each item is fetched,
handed to intake and only then acknowledged, so nothing is acknowledged before it is durable.

* stored (or a duplicate of something stored) → acknowledged ``done``;
* refused for good (bad signature, unknown sender, malformed) → acknowledged ``fail`` with the
  error code, and logged: the axis tells the sender;
* anything else (database down, a crash) → not acknowledged: it is fetched again next tick, and
  intake's deduplication makes that harmless.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass

from connectors.base import ConnectorError, Pollable, RemoteItem
from envelopes.errors import GatewayError
from gateway.bootstrap import Gateway
from gateway.usecases.intake import receive_package

log = logging.getLogger("docgw.polling")


@dataclass(frozen=True, kw_only=True)
class PollReport:
    channel: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    left_for_later: int = 0


async def poll_channel(gateway: Gateway, channel: str, connector: Pollable) -> PollReport:
    counts = {"fetched": 0, "stored": 0, "duplicates": 0, "refused": 0, "left_for_later": 0}
    for kind in ("document", "status"):
        try:
            items = await connector.pending(kind)
        except ConnectorError as exc:
            log.warning("poll_failed", extra={"channel": channel, "kind": kind, "error": exc.code})
            continue
        # Items are taken concurrently, bounded for the whole process (bootstrap.intake_slots):
        # fetching, verifying (in threads) and storing overlap. Each item still commits before it
        # is acknowledged; two copies of one package meet at the deduplication constraint, and
        # statuses may apply in any order.
        taken = [_take_bounded(gateway, channel, connector, item) for item in items]
        for outcome in await asyncio.gather(*taken):
            counts[outcome] += 1
            counts["fetched"] += 1
    return PollReport(channel=channel, **counts)


async def _take_bounded(
    gateway: Gateway, channel: str, connector: Pollable, item: RemoteItem
) -> str:
    async with gateway.intake_slots:
        return await _take(gateway, channel, connector, item)


async def _take(gateway: Gateway, channel: str, connector: Pollable, item: RemoteItem) -> str:
    try:
        data = await connector.fetch(item)
    except ConnectorError as exc:
        log.warning(
            "fetch_failed",
            extra={"channel": channel, "remote_id": item.remote_id, "error": exc.code},
        )
        return "left_for_later"
    try:
        received = await receive_package(gateway, io.BytesIO(data), via=channel)
    except GatewayError as exc:
        if exc.code in _RETRYABLE:
            return "left_for_later"
        log.warning(
            "package_refused",
            extra={
                "channel": channel,
                "remote_id": item.remote_id,
                "error": exc.code,
                "detail": exc.message,
            },
        )
        await _acknowledge(connector, item, ok=False, reason=f"{exc.code}: {exc.message}")
        return "refused"
    await _acknowledge(connector, item, ok=True)
    return "duplicates" if received.duplicate else "stored"


#: Failures of ours, not of the package: leave the item for the next tick.
_RETRYABLE = frozenset({"DATABASE_UNAVAILABLE", "NO_SIGNING_KEY"})


async def _acknowledge(
    connector: Pollable, item: RemoteItem, *, ok: bool, reason: str = ""
) -> None:
    try:
        await connector.acknowledge(item, ok=ok, reason=reason)
    except ConnectorError as exc:
        # Not acknowledged: the item comes again and intake deduplicates it.
        log.warning("acknowledge_failed", extra={"remote_id": item.remote_id, "error": exc.code})

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
import time
from dataclasses import dataclass
from typing import Protocol

from connectors.base import ConnectorError, Pollable, RemoteItem
from envelopes.errors import GatewayError
from gateway.usecases.intake import Intake, receive_package
from gateway.usecases.ports import IntakeSlots

log = logging.getLogger("docgw.polling")


class Polling(Intake, IntakeSlots, Protocol):
    """What a poll uses: what storing a received package uses, and this process's intake slots."""


@dataclass(frozen=True, kw_only=True)
class PollReport:
    channel: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    left_for_later: int = 0


async def poll_channel(gateway: Polling, channel: str, connector: Pollable) -> PollReport:
    """Take what waits of both kinds. A kind whose listing failed is logged (``poll_failed``) and
    the other is still taken; then the poll raises that failure, so that its job run is recorded
    as failed (gateway/usecases/jobs.py) instead of passing for an empty channel."""
    counts = {"fetched": 0, "stored": 0, "duplicates": 0, "refused": 0, "left_for_later": 0}
    failure: ConnectorError | None = None
    for kind in ("document", "status"):
        started = time.perf_counter()
        try:
            items = await connector.pending(kind)
        except ConnectorError as exc:
            log.warning(
                "poll_failed",
                extra={
                    "channel": channel,
                    "operation": "pending",
                    "kind": kind,
                    "error_code": exc.code,
                    "detail": exc.message,
                    "duration_ms": _since(started),
                },
            )
            failure = failure or exc
            continue
        # Most polls find nothing: logged at debug level only.
        log.log(
            logging.INFO if items else logging.DEBUG,
            "poll_listed",
            extra={
                "channel": channel,
                "operation": "pending",
                "kind": kind,
                "outcome": "ok",
                "items": len(items),
                "duration_ms": _since(started),
            },
        )
        # Items are taken concurrently, bounded for the whole process (bootstrap.intake_slots):
        # fetching, verifying (in threads) and storing overlap. Each item still commits before it
        # is acknowledged; two copies of one package meet at the deduplication constraint, and
        # statuses may apply in any order.
        taken = [_take_bounded(gateway, channel, connector, item) for item in items]
        for outcome in await asyncio.gather(*taken):
            counts[outcome] += 1
            counts["fetched"] += 1
    if failure is not None:
        raise failure
    return PollReport(channel=channel, **counts)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def _take_bounded(
    gateway: Polling, channel: str, connector: Pollable, item: RemoteItem
) -> str:
    async with gateway.intake_slots:
        return await _take(gateway, channel, connector, item)


async def _take(gateway: Polling, channel: str, connector: Pollable, item: RemoteItem) -> str:
    started = time.perf_counter()
    try:
        data = await connector.fetch(item)
    except ConnectorError as exc:
        log.warning(
            "fetch_failed",
            extra={
                "channel": channel,
                "operation": "fetch",
                "remote_id": item.remote_id,
                "error_code": exc.code,
                "detail": exc.message,
                "duration_ms": _since(started),
            },
        )
        return "left_for_later"
    log.info(
        "fetched",
        extra={
            "channel": channel,
            "operation": "fetch",
            "remote_id": item.remote_id,
            "outcome": "ok",
            "bytes": len(data),
            "duration_ms": _since(started),
        },
    )
    try:
        received = await receive_package(gateway, io.BytesIO(data), via=channel)
    except GatewayError as exc:
        if exc.code in _RETRYABLE:
            log.warning(
                "receive_deferred",
                extra={
                    "channel": channel,
                    "remote_id": item.remote_id,
                    "error_code": exc.code,
                    "detail": exc.message,
                },
            )
            return "left_for_later"
        log.warning(
            "package_refused",
            extra={
                "channel": channel,
                "remote_id": item.remote_id,
                "error_code": exc.code,
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
    started = time.perf_counter()
    try:
        await connector.acknowledge(item, ok=ok, reason=reason)
    except ConnectorError as exc:
        # Not acknowledged: the item comes again and intake deduplicates it.
        log.warning(
            "acknowledge_failed",
            extra={
                "operation": "acknowledge",
                "remote_id": item.remote_id,
                "error_code": exc.code,
                "detail": exc.message,
                "duration_ms": _since(started),
            },
        )
        return
    log.info(
        "acknowledged",
        extra={
            "operation": "acknowledge",
            "remote_id": item.remote_id,
            "outcome": "done" if ok else "fail",
            "duration_ms": _since(started),
        },
    )

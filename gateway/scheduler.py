"""Scheduled jobs (APScheduler), thin wiring over use cases.

With several processes on one PostgreSQL, a job that must run once per tick takes a transaction-
level advisory lock first; the others skip that tick. A job that fails is logged and runs again
at its next tick.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zlib
from collections.abc import Awaitable, Callable
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text

from connectors.drop_folder import DropFolder
from gateway.bootstrap import Gateway
from gateway.store import queries
from gateway.store.database import checkpoint_wal, is_sqlite
from gateway.usecases.channel_states import refresh_sent_states
from gateway.usecases.delivery import recover_expired
from gateway.usecases.directory import sync_directory
from gateway.usecases.handoff import hand_over, pick_up
from gateway.usecases.polling import poll_channel

log = logging.getLogger("docgw.scheduler")


async def run_once(gateway: Gateway, name: str, job: Callable[[], Awaitable[object]]) -> bool:
    """Run ``job`` unless another process holds this job's lock (PostgreSQL); True if it ran."""
    if is_sqlite(gateway.engine):
        await job()
        return True
    key = zlib.crc32(f"docgw:{name}".encode())
    async with gateway.engine.begin() as conn:
        got = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
        if not got:
            return False
        # The lock lives as long as this transaction: hold it while the job runs.
        await job()
        return True


def _guarded(
    gateway: Gateway, name: str, job: Callable[[], Awaitable[object]]
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await run_once(gateway, name, job)
        except asyncio.CancelledError:
            # Shutting down mid-job: what it did not commit runs again at the next start. Not
            # re-raised: APScheduler would log the cancellation as a job error with a traceback.
            log.info("job_cancelled", extra={"event": "job_cancelled", "job": name})
        except Exception:
            log.exception("job_failed", extra={"event": "job_failed", "job": name})

    return run


async def heartbeat(gateway: Gateway) -> None:
    async with gateway.engine.begin() as conn:
        await queries.heartbeat(conn, gateway.instance, now=gateway.clock())


def create_scheduler(gateway: Gateway) -> AsyncIOScheduler:
    # A poll that outlasts its interval makes APScheduler warn at every skipped tick; that is
    # the intended back-pressure (max_instances=1), not news for the log.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    lease = gateway.settings.delivery.lease_seconds
    scheduler.add_job(
        _guarded(gateway, "recover_expired", lambda: recover_expired(gateway)),
        "interval",
        seconds=max(1.0, lease / 2),
        id="recover_expired",
        max_instances=1,
        coalesce=True,
    )

    async def beat() -> None:  # every process beats for itself: no lock
        try:
            await heartbeat(gateway)
        except Exception:
            log.exception("heartbeat_failed")

    scheduler.add_job(beat, "interval", seconds=5, id="heartbeat", max_instances=1, coalesce=True)
    if is_sqlite(gateway.engine):
        scheduler.add_job(
            _guarded(gateway, "checkpoint", lambda: checkpoint_wal(gateway.engine)),
            "interval",
            seconds=1,
            id="checkpoint",
            max_instances=1,
            coalesce=True,
        )
    _add_channel_jobs(gateway, scheduler)
    return scheduler


def _add_channel_jobs(gateway: Gateway, scheduler: AsyncIOScheduler) -> None:
    """Per channel: poll what waits for us, ask for recent sends' states, re-sync the directory."""
    configured = {c.name: c for c in gateway.settings.channels}
    for name, connector in gateway.connectors.items():
        channel = configured.get(name)
        if channel is None:
            continue
        jobs: list[tuple[str, float, Callable[[], Awaitable[object]]]] = []
        pollable = gateway.pollables.get(name)
        if pollable is not None and channel.poll_seconds > 0:
            jobs.append(
                (
                    f"poll:{name}",
                    channel.poll_seconds,
                    partial(poll_channel, gateway, name, pollable),
                )
            )
        if hasattr(connector, "sent_states") and channel.sent_states_seconds > 0:
            jobs.append(
                (
                    f"sent_states:{name}",
                    channel.sent_states_seconds,
                    partial(refresh_sent_states, gateway, name, connector),  # type: ignore[arg-type]
                )
            )
        if hasattr(connector, "agencies") and channel.directory_sync_hours > 0:
            jobs.append(
                (
                    f"directory:{name}",
                    channel.directory_sync_hours * 3600,
                    partial(sync_directory, gateway, name, connector),  # type: ignore[arg-type]
                )
            )
        if channel.kind == "drop_folder" and channel.root is not None and channel.poll_seconds > 0:
            folder = DropFolder(root=gateway.settings.resolve(channel.root))
            jobs.append(
                (f"pickup:{name}", channel.poll_seconds, partial(pick_up, gateway, name, folder))
            )
            jobs.append(
                (f"handover:{name}", channel.poll_seconds, partial(hand_over, gateway, folder))
            )
        for job_id, seconds, job in jobs:
            scheduler.add_job(
                _guarded(gateway, job_id, job),
                "interval",
                seconds=seconds,
                id=job_id,
                max_instances=1,
                coalesce=True,
                next_run_time=dt.datetime.now(dt.UTC),  # first run at start, then every interval
            )

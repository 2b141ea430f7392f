"""Scheduled jobs (APScheduler), thin wiring over use cases.

With several processes on one PostgreSQL, a job that must run once per tick takes a transaction-
level advisory lock first; the others skip that tick. A job that fails is logged and runs again
at its next tick.
"""

from __future__ import annotations

import datetime as dt
import logging
import zlib
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text

from gateway.bootstrap import Gateway
from gateway.store import queries
from gateway.store.database import is_sqlite
from gateway.usecases.delivery import recover_expired

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
        except Exception:
            log.exception("job_failed", extra={"event": "job_failed", "job": name})

    return run


async def heartbeat(gateway: Gateway) -> None:
    async with gateway.engine.begin() as conn:
        await queries.heartbeat(conn, gateway.instance, now=gateway.clock())


def create_scheduler(gateway: Gateway) -> AsyncIOScheduler:
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
    return scheduler

"""Scheduled jobs (APScheduler), thin wiring over use cases.

Every job runs on **wall-clock ticks**: tick N of a job with an interval of I seconds starts at
N × I seconds after the Unix epoch (UTC), shifted by the gateway's **phase** (below), so all
processes of one gateway agree on the ticks without talking to each other, and a job fires at the
start of each of its ticks (channel jobs also once at start).

The phase is a fixed offset within the interval, taken from the gateway's local unit codes (the
same in every process of one gateway, different from one agency to the next): without it every
docgw in the country would poll the national axis at the same instants — a load spike at the axis
at each tick — and two gateways exchanging with each other would wait nearly a whole interval for
each other's answers (measured: the round trip at 10 documents/s went 50-80 → 80-105 ms with 50 ms
polls on the unshifted grid).

With several processes on one PostgreSQL, a job runs **once per tick**:

1. a transaction-level advisory lock per job, taken with ``pg_try_advisory_xact_lock`` on a
   connection of its own and held while the job runs: two runs of one job never overlap, and a
   process that finds the lock taken skips at once;
2. in the same transaction, a claim of the tick in ``job_ticks`` (one row per job: the last tick
   claimed). ``tick_at`` only moves forward, so a process that comes later in the same tick — its
   tick fired a little later, or its clock is a little behind — finds the tick taken and skips.
   The lock alone did not do this: processes whose ticks were not aligned each ran the job once
   per interval, one after the other. A process claims its own clock's tick, or the database's
   where that is earlier (logged ``clock_ahead``): a host whose clock ran ahead cannot claim
   ticks the others reach only later and make them skip theirs.

The claim commits when the job ends. A job that fails keeps it: it is logged (``job_failed``) and
runs again at its next tick, not again in the same tick from another process. A process killed or
shut down mid-run (``job_cancelled``) takes its claim with it: its next start runs the tick again
(channel jobs run at start; the others at their next tick); the other processes fired for that tick
already and run the job at the next one. The price: the transaction holds a transaction id while the
job runs, which holds back vacuum for that long — seconds for a poll, longer only for the daily
directory sync. The job's own work is not inside this transaction: it opens its own connections, as
on SQLite.

SQLite is one process (``docgw serve``): no lock and no claim; APScheduler's ``max_instances=1``
keeps a job from overlapping itself.

Delivery is not a scheduled job: ``delivery.run_worker`` is a loop in every process that sleeps
until new work is announced or ``delivery.idle_poll_seconds`` passes, and claims due recipients
with ``FOR UPDATE SKIP LOCKED``. A tick would make every submission wait up to an interval, and
running it once per tick across processes would leave all but one process idle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.drop_folder import DropFolder
from gateway.bootstrap import Gateway
from gateway.settings import DirectoryChannel, DropFolderChannel, PolledChannel, VxpChannel
from gateway.store import job_queries
from gateway.store.database import checkpoint_wal, is_sqlite
from gateway.usecases import archive, backup, users, webhooks
from gateway.usecases.channel_states import refresh_sent_states
from gateway.usecases.delivery import recover_expired
from gateway.usecases.directory import sync_channel
from gateway.usecases.handoff import hand_over, pick_up
from gateway.usecases.polling import poll_channel
from gateway.usecases.report_files import produce_due_reports
from gateway.usecases.webhooks import deliver_webhooks

log = logging.getLogger("docgw.scheduler")

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)
#: The drop folder's ``.tmp`` leftovers (a writer killed mid-write) are removed hourly, once
#: untouched for a day. An inbox ``.tmp`` still being written is locked and never removed
#: whatever its age; a day without a byte written is abandoned, not slow.
CLEANUP_SECONDS: Final = 3600.0
STALE_TMP_SECONDS: Final = 86_400.0

Job = Callable[[], Awaitable[object]]


def tick_start(
    now: dt.datetime, seconds: float, phase: dt.timedelta = dt.timedelta(0)
) -> dt.datetime:
    """The start of the tick ``now`` falls in, for a job every ``seconds`` on a grid shifted by
    ``phase`` (whole microseconds, as APScheduler and every other process compute it)."""
    step = _step(seconds)
    elapsed = (now - EPOCH - phase) // _MICROSECOND
    return EPOCH + phase + (elapsed - elapsed % step) * _MICROSECOND


def tick_phase(gateway: Gateway, seconds: float) -> dt.timedelta:
    """This gateway's offset within a ``seconds`` interval: the same in all of its processes (it
    depends only on the configured local units), spread across gateways."""
    units = ",".join(sorted(gateway.settings.gateway.local_units))
    return (zlib.crc32(units.encode()) % _step(seconds)) * _MICROSECOND


def _step(seconds: float) -> int:
    return max(1, dt.timedelta(seconds=seconds) // _MICROSECOND)


class WallClockTicks(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """Fires at the start of every tick (:func:`tick_start`). After a run off the grid (the run at
    start) the next fire is the next tick's start, not the run plus the interval."""

    __slots__ = ("phase", "seconds")

    def __init__(self, seconds: float, phase: dt.timedelta = dt.timedelta(0)) -> None:
        self.seconds = seconds
        self.phase = phase

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime:
        after = previous_fire_time or now
        return tick_start(after, self.seconds, self.phase) + _step(self.seconds) * _MICROSECOND

    def __str__(self) -> str:
        return f"wall-clock ticks of {self.seconds:g} s"


async def run_once(gateway: Gateway, name: str, seconds: float, job: Job) -> bool:
    """Run ``job`` for the current tick unless it ran (or is running) for it already; True if it
    ran. On SQLite (one process) it always runs."""
    if is_sqlite(gateway.engine):
        await job()
        return True
    failure: Exception | None = None
    async with gateway.engine.begin() as lock:
        got, database_now = await job_queries.try_lock_job(
            lock, zlib.crc32(f"docgw:{name}".encode())
        )
        if not got:
            return False  # running in another process (or still running here)
        tick = _current_tick(gateway, name, seconds, database_now)
        if not await claim_tick(lock, gateway, name, tick):
            return False  # this tick ran already
        # The lock and the claim live in this transaction while the job runs. A job that fails
        # commits its claim (it runs again at the next tick, not again in this one); a process
        # that dies or shuts down mid-run leaves nothing: its next start runs the tick again.
        try:
            await job()
        except Exception as exc:
            failure = exc
    if failure is not None:
        raise failure
    return True


#: A stored claim this far ahead of the database's clock is taken over: the database's clock went
#: back (or a claim came from before claims followed it). Claims never run ahead of it otherwise.
CLOCK_TOLERANCE: Final = dt.timedelta(seconds=5)
#: A host's clock ahead of the database's is logged at most this often per job.
_SKEW_LOG_SECONDS: Final = 60.0
_skew_logged: dict[str, float] = {}


def _current_tick(
    gateway: Gateway, name: str, seconds: float, database_now: dt.datetime
) -> dt.datetime:
    """The tick this process runs: its own clock's, or the database's where that is earlier.
    Why the database's: a claim only moves forward, so a host whose clock ran ahead would claim
    ticks the others reach only later — they would skip every tick until real time caught up
    with it. A host whose clock is behind claims its own earlier tick, which a process on time
    has claimed already: it skips."""
    phase = tick_phase(gateway, seconds)
    own = tick_start(gateway.clock(), seconds, phase)
    reference = tick_start(database_now, seconds, phase)
    if own <= reference:
        return own
    now = time.monotonic()
    if now - _skew_logged.get(name, -_SKEW_LOG_SECONDS) >= _SKEW_LOG_SECONDS:
        _skew_logged[name] = now
        log.warning(
            "clock_ahead",
            extra={
                "event": "clock_ahead",
                "job": name,
                "ahead_seconds": round((gateway.clock() - database_now).total_seconds(), 3),
            },
        )
    return reference


async def claim_tick(
    lock: AsyncConnection, gateway: Gateway, name: str, tick_at: dt.datetime
) -> bool:
    """Record ``tick_at`` as ``name``'s last tick, in the caller's transaction, if it is later
    than the one recorded (or that one is beyond :data:`CLOCK_TOLERANCE` ahead of the database's
    clock); True if it was."""
    return await job_queries.claim_job_tick(
        lock,
        job=name,
        tick_at=tick_at,
        claimed_by=gateway.instance,
        now=gateway.clock(),
        tolerance=CLOCK_TOLERANCE,
    )


def _guarded(
    gateway: Gateway, name: str, seconds: float, job: Job
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await run_once(gateway, name, seconds, job)
        except asyncio.CancelledError:
            # Shutting down mid-job: the tick's claim is rolled back with the lock, so the job
            # runs again at the next start (what it committed stays; each job is idempotent). Not
            # re-raised: APScheduler would log the cancellation as a job error with a traceback.
            log.info("job_cancelled", extra={"event": "job_cancelled", "job": name})
        except Exception:
            log.exception("job_failed", extra={"event": "job_failed", "job": name})

    return run


def add_job(
    scheduler: AsyncIOScheduler,
    gateway: Gateway,
    name: str,
    seconds: float,
    job: Job,
    *,
    at_start: bool = False,
) -> None:
    """Schedule ``job`` as ``name`` on wall-clock ticks of ``seconds``, once per tick across
    processes, logged when it fails; ``at_start``: also run it as soon as the scheduler starts."""
    # APScheduler's next_run_time must be left out, not None (None adds the job paused).
    first = {"next_run_time": dt.datetime.now(dt.UTC)} if at_start else {}
    scheduler.add_job(
        _guarded(gateway, name, seconds, job),
        WallClockTicks(seconds, tick_phase(gateway, seconds)),
        id=name,
        max_instances=1,
        coalesce=True,
        # A tick fired late (a busy loop) still runs: APScheduler's default grace of 1 s would
        # drop it, and with a daily job that is a day.
        misfire_grace_time=None,
        **first,
    )


async def heartbeat(gateway: Gateway) -> None:
    async with gateway.engine.begin() as conn:
        await job_queries.heartbeat(conn, gateway.instance, now=gateway.clock())


def create_scheduler(gateway: Gateway) -> AsyncIOScheduler:
    # A poll that outlasts its interval makes APScheduler warn at every skipped tick; that is
    # the intended back-pressure (max_instances=1), not news for the log.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    lease = gateway.settings.delivery.lease_seconds
    add_job(
        scheduler,
        gateway,
        "recover_expired",
        max(1.0, lease / 2),
        partial(recover_expired, gateway),
    )

    async def beat() -> None:  # every process beats for itself: no lock, no claim
        try:
            await heartbeat(gateway)
        except Exception:
            log.exception("heartbeat_failed")

    scheduler.add_job(beat, "interval", seconds=5, id="heartbeat", max_instances=1, coalesce=True)
    if is_sqlite(gateway.engine):
        add_job(scheduler, gateway, "checkpoint", 1.0, partial(checkpoint_wal, gateway.engine))
    add_job(
        scheduler, gateway, "webhooks", webhooks.TICK_SECONDS, partial(deliver_webhooks, gateway)
    )
    if (check_minutes := gateway.settings.reports.check_minutes) > 0:
        add_job(
            scheduler, gateway, "reports", check_minutes * 60, partial(produce_due_reports, gateway)
        )
    if gateway.settings.backup.interval_hours > 0:
        add_job(
            scheduler,
            gateway,
            "backup",
            gateway.settings.backup.interval_hours * 3600,
            partial(backup.scheduled_backup, gateway),
        )
    add_job(scheduler, gateway, "console_sessions", 3600.0, partial(users.end_expired, gateway))
    _add_channel_jobs(gateway, scheduler)
    if gateway.settings.gateway.local_units:  # a container is signed by a local unit's key
        archive_seconds = gateway.settings.archive.interval_seconds
        add_job(scheduler, gateway, "archive", archive_seconds, partial(archive.run_job, gateway))
    return scheduler


def _add_channel_jobs(gateway: Gateway, scheduler: AsyncIOScheduler) -> None:
    """Per channel: poll what waits for us, ask for recent sends' states, re-sync the directory;
    per drop folder: pick up, hand over, and clear crash leftovers."""
    configured = {c.name: c for c in gateway.settings.channels}
    for name, can in gateway.capabilities.items():
        channel = configured.get(name)
        if channel is None:
            continue
        jobs: list[tuple[str, float, Job]] = []
        poll_seconds = channel.poll_seconds if isinstance(channel, PolledChannel) else 0.0
        if can.pollable is not None and poll_seconds > 0:
            jobs.append(
                (f"poll:{name}", poll_seconds, partial(poll_channel, gateway, name, can.pollable))
            )
        states = channel.sent_states_seconds if isinstance(channel, VxpChannel) else 0.0
        if can.sent_states is not None and states > 0:
            refresh = partial(refresh_sent_states, gateway, name, can.sent_states)
            jobs.append((f"sent_states:{name}", states, refresh))
        sync_hours = channel.directory_sync_hours if isinstance(channel, DirectoryChannel) else 0.0
        if can.directory is not None and sync_hours > 0:
            jobs.append(
                (f"directory:{name}", sync_hours * 3600, partial(sync_channel, gateway, name))
            )
        if isinstance(channel, DropFolderChannel):
            folder = DropFolder(
                root=gateway.settings.resolve(channel.root),
                sign_ready_packages=channel.sign_ready_packages,
            )
            if channel.poll_seconds > 0:
                jobs.append(
                    (
                        f"pickup:{name}",
                        channel.poll_seconds,
                        partial(pick_up, gateway, name, folder),
                    )
                )
                jobs.append(
                    (f"handover:{name}", channel.poll_seconds, partial(hand_over, gateway, folder))
                )
            # Not at start: a leftover is stale only a day after its writer died.
            add_job(
                scheduler,
                gateway,
                f"cleanup:{name}",
                CLEANUP_SECONDS,
                partial(folder.cleanup_stale_tmp, STALE_TMP_SECONDS),
            )
        for job_id, seconds, job in jobs:
            # First run at start (a restart polls at once), then at the start of every tick.
            add_job(scheduler, gateway, job_id, seconds, job, at_start=True)

"""Scheduled jobs (APScheduler): runs the jobs it is given (gateway/usecases/jobs.py lists them,
gateway/service.py wires them) at their ticks, each run recorded. It builds no objects of its own.

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

The claim commits when the job ends. A job that fails keeps it: the failure is recorded and logged
(gateway/usecases/jobs.py: ``job_runs``, ``job_failing`` once) and it runs again at its next tick,
not again in the same tick from another process. A process killed or shut down mid-run
(``job_cancelled``) takes its claim with it: its next start runs the tick again (channel jobs run at
start; the others at their next tick); the other processes fired for that tick already and run the
job at the next one. The price: the transaction holds a transaction id while the job runs, which
holds back vacuum for that long — seconds for a poll, longer only for the daily directory sync. The
job's own work is not inside this transaction: it opens its own connections, as on SQLite.

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
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.bootstrap import Gateway
from gateway.domain.ticks import next_tick, phase_of
from gateway.domain.ticks import tick_start as tick_start  # its old home; used below too
from gateway.store import job_queries
from gateway.store.database import is_sqlite
from gateway.store.job_runs import lock_key
from gateway.usecases.jobs import JobDefinition, run_recorded

log = logging.getLogger("docgw.scheduler")

Job = Callable[[], Awaitable[object]]


def tick_phase(gateway: Gateway, seconds: float) -> dt.timedelta:
    """This gateway's offset within a ``seconds`` interval (:func:`~gateway.domain.ticks.phase_of`
    of its local units)."""
    return phase_of(gateway.settings.gateway.local_units, seconds)


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
        return next_tick(previous_fire_time or now, self.seconds, self.phase)

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
        got, database_now = await job_queries.try_lock_job(lock, lock_key(name))
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
        except Exception as exc:
            # The run's own failures are recorded and logged by run_recorded; this is the
            # scheduling around it failing (the database unreachable for the lock or the record).
            log.warning(
                "job_not_run",
                extra={
                    "event": "job_not_run",
                    "job": name,
                    "error_code": getattr(exc, "code", type(exc).__name__),
                    "detail": str(exc)[:500],
                },
            )

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


def create_scheduler(gateway: Gateway, jobs: Sequence[JobDefinition]) -> AsyncIOScheduler:
    """A scheduler running ``jobs`` (:func:`gateway.usecases.jobs.scheduled_jobs`, wired by the
    caller), each run recorded (:func:`~gateway.usecases.jobs.run_recorded`), and this process's
    heartbeat."""
    # A poll that outlasts its interval makes APScheduler warn at every skipped tick; that is
    # the intended back-pressure (max_instances=1), not news for the log.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    scheduler = AsyncIOScheduler(timezone=dt.UTC)

    async def beat() -> None:  # every process beats for itself: no lock, no claim, no record
        try:
            await heartbeat(gateway)
        except Exception as exc:
            log.warning(
                "heartbeat_failed",
                extra={
                    "event": "heartbeat_failed",
                    "error_code": type(exc).__name__,
                    "detail": str(exc)[:500],
                },
            )

    scheduler.add_job(beat, "interval", seconds=5, id="heartbeat", max_instances=1, coalesce=True)
    for job in jobs:
        add_job(
            scheduler,
            gateway,
            job.name,
            job.seconds,
            partial(run_recorded, gateway, job),
            at_start=job.at_start,
        )
    return scheduler

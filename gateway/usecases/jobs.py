"""The scheduled jobs: which this gateway runs (from its configuration and its wired objects),
running one with its run recorded and logged, and what an operator sees of them.

Every run is recorded (``job_runs``, on SQLite and PostgreSQL alike) and logged once. A job that
keeps failing says so once: ``job_failing`` when its first failed run ends a success (with the
error and the traceback), ``job_recovered`` when a run succeeds again; the runs in between log
``job_run`` with their failure count in a row (:func:`consecutive_failures`, what health checks and
alerts read), not a traceback each tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Final, Protocol

from envelopes.errors import GatewayError
from gateway.bootstrap import Gateway
from gateway.domain.ticks import next_tick, phase_of
from gateway.settings import DirectoryChannel, DropFolderChannel, PolledChannel, VxpChannel
from gateway.store import audit_queries
from gateway.store import job_runs as store
from gateway.store.database import checkpoint_wal, is_sqlite
from gateway.store.job_runs import JobRun
from gateway.usecases import archive, backup, users, webhooks
from gateway.usecases.certificates import CrlRefresh, refresh_crls
from gateway.usecases.channel_states import refresh_sent_states
from gateway.usecases.delivery import recover_expired
from gateway.usecases.directory import SyncReport, sync_channel
from gateway.usecases.errors import Conflict, NotFound
from gateway.usecases.handoff import PickUpReport, hand_over, pick_up
from gateway.usecases.polling import PollReport, poll_channel
from gateway.usecases.ports import Config, Instance, Store
from gateway.usecases.report_files import produce_due_reports


class Runs(Store, Config, Instance, Protocol):
    """What running a job recorded uses: the store, the settings (its next tick) and this
    process (the run's instance)."""


log = logging.getLogger("docgw.jobs")

Job = Callable[[], Awaitable[object]]

#: The drop folder's ``.tmp`` leftovers (a writer killed mid-write) are removed hourly, once
#: untouched for a day. An inbox ``.tmp`` still being written is locked and never removed
#: whatever its age; a day without a byte written is abandoned, not slow.
CLEANUP_SECONDS: Final = 3600.0
STALE_TMP_SECONDS: Final = 86_400.0
#: A run's error detail is cut to this many characters in the record.
DETAIL_CHARS: Final = 2000
#: Scheduled runs of a job ticking faster than this (a 50 ms poll, the 1 s checkpoint) are
#: recorded when they end, in one transaction, and an idle success (nothing handled, after a
#: success) at most this often: recording every tick cost two transactions and six statements per
#: tick (docs/performance.md, "What docgw adds"). A failure, a recovery and a run that handled
#: something are always recorded.
QUIET_SECONDS: Final = 60.0


@dataclass(kw_only=True)
class _Recorded:
    """What this process last recorded of a frequent job's scheduled runs."""

    at: float | None = None  # time.monotonic()
    ok: bool = False


@dataclass(frozen=True, kw_only=True)
class JobDefinition:
    """A job this gateway runs every ``seconds`` (and at start when ``at_start``)."""

    name: str
    seconds: float
    run: Job
    at_start: bool = False
    recorded: _Recorded = field(default_factory=_Recorded, compare=False, repr=False)

    @property
    def frequent(self) -> bool:
        return self.seconds < QUIET_SECONDS


@dataclass(frozen=True, kw_only=True)
class RunResult:
    job: str
    outcome: str
    error_code: str | None
    detail: str | None
    items: int | None
    duration_ms: float
    consecutive_failures: int


@dataclass(frozen=True, kw_only=True)
class JobView:
    """A job as the operator sees it (``docgw jobs list``, ``GET /api/v1/jobs``)."""

    name: str
    interval_seconds: float | None  # None: recorded here, not configured in this process
    next_run_at: dt.datetime | None
    last_run: JobRun | None
    consecutive_failures: int
    failures_total: int
    last_success_at: dt.datetime | None


def scheduled_jobs(gateway: Gateway) -> list[JobDefinition]:
    """The jobs of this gateway, over the objects ``bootstrap`` built (connectors, drop folders)."""
    settings = gateway.settings
    jobs = [
        JobDefinition(
            name="recover_expired",
            seconds=max(1.0, settings.delivery.lease_seconds / 2),
            run=partial(recover_expired, gateway),
        )
    ]
    if is_sqlite(gateway.engine):
        jobs.append(
            JobDefinition(
                name="checkpoint", seconds=1.0, run=partial(checkpoint_wal, gateway.engine)
            )
        )
    jobs.append(
        JobDefinition(
            name="webhooks",
            seconds=webhooks.TICK_SECONDS,
            run=partial(webhooks.deliver_webhooks, gateway),
        )
    )
    if (check_minutes := settings.reports.check_minutes) > 0:
        jobs.append(
            JobDefinition(
                name="reports",
                seconds=check_minutes * 60,
                run=partial(produce_due_reports, gateway),
            )
        )
    if settings.backup.interval_hours > 0:
        jobs.append(
            JobDefinition(
                name="backup",
                seconds=settings.backup.interval_hours * 3600,
                run=partial(backup.scheduled_backup, gateway),
            )
        )
    if (alert_seconds := settings.alerts.evaluate_seconds) > 0:
        # Imported here: the alert rules read the health, which reads these jobs' runs.
        from gateway.usecases import alerts

        jobs.append(
            JobDefinition(
                name="alerts", seconds=alert_seconds, run=partial(alerts.evaluate, gateway)
            )
        )
    if (crl_hours := settings.certificates.crl_refresh_hours) > 0:
        # At start too: a gateway down for days must not wait hours for a revocation.
        jobs.append(
            JobDefinition(
                name="crls",
                seconds=crl_hours * 3600,
                run=partial(refresh_crls, gateway),
                at_start=True,
            )
        )
    # The console's sessions past their lifetime are deleted (docs/howto/console.md).
    jobs.append(
        JobDefinition(
            name="console_sessions", seconds=3600.0, run=partial(users.end_expired, gateway)
        )
    )
    jobs.extend(_channel_jobs(gateway))
    if settings.gateway.local_units:  # a container is signed by a local unit's key
        jobs.append(
            JobDefinition(
                name="archive",
                seconds=settings.archive.interval_seconds,
                run=partial(archive.run_job, gateway),
            )
        )
    return jobs


def _channel_jobs(gateway: Gateway) -> list[JobDefinition]:
    """Per channel: poll what waits for us, ask for recent sends' states, re-sync the directory
    (what its connector can do was found at wiring: ``gateway.capabilities``); per drop folder
    (``gateway.drop_folders``): pick up, hand over, and clear crash leftovers. Channel jobs run at
    start (a restart polls at once), then at every tick; the cleanup not at start (a leftover is
    stale only a day after its writer died)."""
    configured = {c.name: c for c in gateway.settings.channels}
    jobs = []
    for name, can in gateway.capabilities.items():
        channel = configured.get(name)
        if channel is None:
            continue
        poll_seconds = channel.poll_seconds if isinstance(channel, PolledChannel) else 0.0
        if can.pollable is not None and poll_seconds > 0:
            jobs.append(
                JobDefinition(
                    name=f"poll:{name}",
                    seconds=poll_seconds,
                    run=partial(poll_channel, gateway, name, can.pollable),
                    at_start=True,
                )
            )
        states = channel.sent_states_seconds if isinstance(channel, VxpChannel) else 0.0
        if can.sent_states is not None and states > 0:
            jobs.append(
                JobDefinition(
                    name=f"sent_states:{name}",
                    seconds=states,
                    run=partial(refresh_sent_states, gateway, name, can.sent_states),
                    at_start=True,
                )
            )
        sync_hours = channel.directory_sync_hours if isinstance(channel, DirectoryChannel) else 0.0
        if can.directory is not None and sync_hours > 0:
            jobs.append(
                JobDefinition(
                    name=f"directory:{name}",
                    seconds=sync_hours * 3600,
                    run=partial(sync_channel, gateway, name),
                    at_start=True,
                )
            )
        folder = gateway.drop_folders.get(name)
        if folder is None or not isinstance(channel, DropFolderChannel):
            continue
        if channel.poll_seconds > 0:
            jobs.append(
                JobDefinition(
                    name=f"pickup:{name}",
                    seconds=channel.poll_seconds,
                    run=partial(pick_up, gateway, name, folder),
                    at_start=True,
                )
            )
            jobs.append(
                JobDefinition(
                    name=f"handover:{name}",
                    seconds=channel.poll_seconds,
                    run=partial(hand_over, gateway, folder),
                    at_start=True,
                )
            )
        jobs.append(
            JobDefinition(
                name=f"cleanup:{name}",
                seconds=CLEANUP_SECONDS,
                run=partial(folder.cleanup_stale_tmp, STALE_TMP_SECONDS),
            )
        )
    return jobs


def next_run(gateway: Config, job: JobDefinition, after: dt.datetime) -> dt.datetime:
    """When ``job`` next fires after ``after`` (its next wall-clock tick)."""
    return next_tick(
        after, job.seconds, phase_of(gateway.settings.gateway.local_units, job.seconds)
    )


def items_handled(result: object) -> int | None:
    """What a job's return value says it handled, where it says so."""
    if isinstance(result, bool):
        return None
    if isinstance(result, int):
        return result
    if isinstance(result, list | tuple | set):
        return len(result)
    if isinstance(result, PollReport):
        return result.fetched
    if isinstance(result, PickUpReport):
        return result.submitted + result.rejected
    if isinstance(result, SyncReport):
        return result.listed
    if isinstance(result, CrlRefresh):
        return len(result.read)
    return None


def error_of(exc: BaseException) -> tuple[str, str]:
    """A failed run's code and detail: docgw's own code, ``IO_ERROR`` for a file system failure
    (a drop folder's root gone), else ``JOB_CRASHED`` with the exception."""
    if isinstance(exc, GatewayError):
        return exc.code, exc.message[:DETAIL_CHARS]
    if isinstance(exc, OSError):
        return "IO_ERROR", str(exc)[:DETAIL_CHARS]
    return "JOB_CRASHED", repr(exc)[:DETAIL_CHARS]


async def run_recorded(
    gateway: Runs, job: JobDefinition, *, trigger: str = "schedule"
) -> RunResult:
    """Run ``job`` once, recording the run and logging it; a failure is recorded and logged,
    not raised (a cancellation is raised)."""
    frequent = job.frequent and trigger == "schedule"
    run_id = None
    if not frequent:  # marked running while it runs, so a run cut short shows as interrupted
        async with gateway.engine.begin() as conn:
            run_id = await store.start(
                conn, job=job.name, trigger=trigger, instance=gateway.instance, now=gateway.clock()
            )
    started_at, started = gateway.clock(), time.perf_counter()
    outcome, code, detail, items = store.OK, None, None, None
    failure: BaseException | None = None
    try:
        items = items_handled(await job.run())
    except asyncio.CancelledError:
        # The process is stopping: nothing more is written now (the loop may be closing). The run
        # stays "running" until the job's next start marks it "interrupted".
        log.info("job_cancelled", extra={"event": "job_cancelled", "job": job.name})
        raise
    except Exception as exc:
        failure = exc
        outcome = store.FAILED
        code, detail = error_of(exc)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    now = gateway.clock()
    ending = store.Ending(
        outcome=outcome,
        now=now,
        error_code=code,
        detail=detail,
        items=items,
        next_run_at=next_run(gateway, job, now),
    )
    if frequent and _quiet(job, ending):
        streak = store.Streak(before=0, after=0)
    else:
        async with gateway.engine.begin() as conn:
            if run_id is None:
                streak = await store.record(
                    conn, job=job.name, trigger=trigger, instance=gateway.instance,
                    started_at=started_at, ending=ending,
                )  # fmt: skip
            else:
                streak = await store.finish(conn, run_id, job=job.name, ending=ending)
        job.recorded.at, job.recorded.ok = time.monotonic(), outcome == store.OK
    result = RunResult(
        job=job.name,
        outcome=outcome,
        error_code=code,
        detail=detail,
        items=items,
        duration_ms=duration_ms,
        consecutive_failures=streak.after,
    )
    _log_run(result, trigger, streak, failure)
    return result


def _quiet(job: JobDefinition, ending: store.Ending) -> bool:
    """Whether this run of a frequent job goes unrecorded: an idle success after a recorded
    success, within QUIET_SECONDS of it."""
    last = job.recorded
    return (
        ending.outcome == store.OK
        and not ending.items
        and last.ok
        and last.at is not None
        and time.monotonic() - last.at < QUIET_SECONDS
    )


def _log_run(
    result: RunResult, trigger: str, streak: store.Streak, failure: BaseException | None
) -> None:
    fields = {
        "job": result.job,
        "trigger": trigger,
        "outcome": result.outcome,
        "items": result.items,
        "duration_ms": result.duration_ms,
        "consecutive_failures": result.consecutive_failures,
    }
    if failure is not None:
        fields |= {"error_code": result.error_code, "detail": result.detail}
        if streak.before == 0:  # the job starts failing: said once
            # The traceback only for a failure docgw has no code for: a coded one says it all.
            trace = None if isinstance(failure, GatewayError) else failure
            log.error("job_failing", extra={"event": "job_failing", **fields}, exc_info=trace)
            return
    elif streak.before > 0:
        log.warning(
            "job_recovered",
            extra={"event": "job_recovered", "failed_runs": streak.before, **fields},
        )
        return
    # A run that did nothing (most ticks of a frequent job) is logged at debug level only.
    idle = failure is None and not result.items and trigger == "schedule"
    log.log(
        logging.DEBUG if idle else logging.INFO, "job_run", extra={"event": "job_run", **fields}
    )


async def consecutive_failures(gateway: Store) -> dict[str, int]:
    """How many runs in a row of each job have failed (0: the last one succeeded), by job name,
    across every process of this gateway; a job that never finished a run is absent."""
    async with gateway.reader.connect() as conn:
        return await store.consecutive_failures(conn)


async def list_jobs(gateway: Gateway) -> list[JobView]:
    """Every job configured here, then any other with recorded runs (another process's)."""
    async with gateway.reader.connect() as conn:
        latest = await store.latest_runs(conn)
        counted = await store.latest_finished(conn)
    now = gateway.clock()
    views = []
    configured = scheduled_jobs(gateway)
    for job in configured:
        views.append(_view(job.name, job.seconds, next_run(gateway, job, now), latest, counted))
    names = {job.name for job in configured}
    for name in sorted(latest.keys() - names):
        views.append(_view(name, None, None, latest, counted))
    return views


def _view(
    name: str,
    seconds: float | None,
    next_at: dt.datetime | None,
    latest: dict[str, JobRun],
    counted: dict[str, JobRun],
) -> JobView:
    last = latest.get(name)
    ended = counted.get(name)
    return JobView(
        name=name,
        interval_seconds=seconds,
        next_run_at=next_at,
        last_run=last,
        consecutive_failures=ended.consecutive_failures if ended else 0,
        failures_total=ended.failures_total if ended else 0,
        last_success_at=ended.last_success_at if ended else None,
    )


async def job_history(gateway: Store, name: str, *, limit: int = 20) -> list[JobRun]:
    async with gateway.reader.connect() as conn:
        return await store.history(conn, name, limit=limit)


def find_job(gateway: Gateway, name: str) -> JobDefinition:
    for job in scheduled_jobs(gateway):
        if job.name == name:
            return job
    raise NotFound(f"no scheduled job named {name!r} on this gateway", element="name")


RUN_ACTION: Final = "job_run_requested"


async def run_now(
    gateway: Gateway, name: str, *, actor: str, reason: str | None = None
) -> RunResult:
    """An operator runs job ``name`` now (``docgw jobs run``, ``POST /api/v1/jobs/{name}/run``,
    the console), outside its ticks, recorded as a ``manual`` run and audited with ``actor`` and
    ``reason``. On PostgreSQL it takes the job's lock as a scheduled run does, so the two never
    overlap (Conflict while a run is going on)."""
    job = find_job(gateway, name)
    log.info("job_run_requested", extra={"event": "job_run_requested", "job": name, "actor": actor})
    async with gateway.engine.begin() as conn:
        await audit_queries.audit(
            conn,
            now=gateway.clock(),
            actor=actor,
            action=RUN_ACTION,
            reason=f"{name}: {reason}" if reason else name,
        )
    async with _job_lock(gateway, name):
        return await run_recorded(gateway, job, trigger="manual")


@contextlib.asynccontextmanager
async def _job_lock(gateway: Store, name: str) -> AsyncIterator[None]:
    if is_sqlite(gateway.engine):  # one process: nothing to take
        yield
        return
    async with gateway.engine.connect() as conn:
        if not await store.try_lock(conn, name):
            raise Conflict(
                f"job {name} is running now (another run holds its lock)", element="name"
            )
        try:
            yield
        finally:
            await store.unlock(conn, name)

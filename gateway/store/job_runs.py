"""Runs of the scheduled jobs (``job_runs``): one row per run, the last :data:`KEEP_RUNS` per job.

A run's row is written when it starts (``running``) and completed when it ends. What must outlive
the pruning — how many runs in a row failed, failures ever, the last success — is carried from each
finished run to the next, so the latest finished row of a job says it all.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import job_runs

#: Runs kept per job (older ones are deleted as new ones finish).
KEEP_RUNS: Final = 100
RUNNING: Final = "running"
OK: Final = "ok"
FAILED: Final = "failed"
#: Outcomes that end a run for the failure count; an interrupted one (its process stopped mid-run)
#: changes nothing.
_COUNTED: Final = (OK, FAILED)


@dataclass(frozen=True, kw_only=True)
class JobRun:
    id: int
    job: str
    trigger: str
    instance: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    error_code: str | None
    detail: str | None
    items: int | None
    consecutive_failures: int
    failures_total: int
    last_success_at: dt.datetime | None
    next_run_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class Streak:
    """A job's failures in a row before and after a run ended."""

    before: int
    after: int


@dataclass(frozen=True, kw_only=True)
class Ending:
    """How a run ended."""

    outcome: str
    now: dt.datetime
    error_code: str | None = None
    detail: str | None = None
    items: int | None = None
    next_run_at: dt.datetime | None = None


def _run(row: Any) -> JobRun:
    return JobRun(**{column: getattr(row, column) for column in JobRun.__dataclass_fields__})


async def start(
    conn: AsyncConnection, *, job: str, trigger: str, instance: str, now: dt.datetime
) -> int:
    """Record that ``job`` starts; its run's id. A run of it still marked running is from a
    process that ended mid-run (runs of one job do not overlap): it is marked ``interrupted``."""
    await conn.execute(
        job_runs.update()
        .where(job_runs.c.job == job, job_runs.c.outcome == RUNNING)
        .values(outcome="interrupted", finished_at=now)
    )
    previous = await _last_finished(conn, job, before=None)
    inserted = await conn.execute(
        job_runs.insert()
        .values(
            job=job,
            trigger=trigger,
            instance=instance,
            started_at=now,
            outcome=RUNNING,
            consecutive_failures=previous.consecutive_failures if previous else 0,
            failures_total=previous.failures_total if previous else 0,
            last_success_at=previous.last_success_at if previous else None,
        )
        .returning(job_runs.c.id)
    )
    run_id: int = inserted.scalar_one()
    return run_id


async def finish(conn: AsyncConnection, run_id: int, *, job: str, ending: Ending) -> Streak:
    """Record how run ``run_id`` of ``job`` ended, carry the counts forward, prune old runs."""
    previous = await _last_finished(conn, job, before=run_id)
    streak, counts = _carried(previous, ending)
    await conn.execute(
        job_runs.update().where(job_runs.c.id == run_id).values(**_ended(ending), **counts)
    )
    await _prune(conn, job)
    return streak


async def record(
    conn: AsyncConnection,
    *,
    job: str,
    trigger: str,
    instance: str,
    started_at: dt.datetime,
    ending: Ending,
) -> Streak:
    """Record a whole run of ``job`` once it has ended (a frequent job's: never marked running)."""
    previous = await _last_finished(conn, job, before=None)
    streak, counts = _carried(previous, ending)
    await conn.execute(
        job_runs.insert().values(
            job=job,
            trigger=trigger,
            instance=instance,
            started_at=started_at,
            **_ended(ending),
            **counts,
        )
    )
    await _prune(conn, job)
    return streak


def _ended(ending: Ending) -> dict[str, Any]:
    return {
        "finished_at": ending.now,
        "outcome": ending.outcome,
        "error_code": ending.error_code,
        "detail": ending.detail,
        "items": ending.items,
        "next_run_at": ending.next_run_at,
    }


def _carried(previous: JobRun | None, ending: Ending) -> tuple[Streak, dict[str, Any]]:
    """The counts a run carries on from the last finished one."""
    before = previous.consecutive_failures if previous else 0
    total = previous.failures_total if previous else 0
    last_success = previous.last_success_at if previous else None
    after = before
    if ending.outcome == FAILED:
        after, total = before + 1, total + 1
    elif ending.outcome == OK:
        after, last_success = 0, ending.now
    counts = {
        "consecutive_failures": after,
        "failures_total": total,
        "last_success_at": last_success,
    }
    return Streak(before=before, after=after), counts


async def _last_finished(conn: AsyncConnection, job: str, *, before: int | None) -> JobRun | None:
    query = sa.select(job_runs).where(job_runs.c.job == job, job_runs.c.outcome.in_(_COUNTED))
    if before is not None:
        query = query.where(job_runs.c.id < before)
    row = (await conn.execute(query.order_by(job_runs.c.id.desc()).limit(1))).first()
    return _run(row) if row is not None else None


async def _prune(conn: AsyncConnection, job: str) -> None:
    oldest_kept = (
        sa.select(job_runs.c.id)
        .where(job_runs.c.job == job)
        .order_by(job_runs.c.id.desc())
        .limit(1)
        .offset(KEEP_RUNS - 1)
        .scalar_subquery()
    )
    await conn.execute(job_runs.delete().where(job_runs.c.job == job, job_runs.c.id < oldest_kept))


async def latest_runs(conn: AsyncConnection) -> dict[str, JobRun]:
    """Each job's latest run (running or ended), by job name."""
    last = sa.select(sa.func.max(job_runs.c.id)).group_by(job_runs.c.job)
    rows = await conn.execute(sa.select(job_runs).where(job_runs.c.id.in_(last)))
    return {row.job: _run(row) for row in rows}


async def latest_finished(conn: AsyncConnection) -> dict[str, JobRun]:
    """Each job's latest run that succeeded or failed: its counts are the job's."""
    last = (
        sa.select(sa.func.max(job_runs.c.id))
        .where(job_runs.c.outcome.in_(_COUNTED))
        .group_by(job_runs.c.job)
    )
    rows = await conn.execute(sa.select(job_runs).where(job_runs.c.id.in_(last)))
    return {row.job: _run(row) for row in rows}


async def consecutive_failures(conn: AsyncConnection) -> dict[str, int]:
    """How many runs in a row of each job have failed (0: its last run succeeded), by job name;
    a job that never ended a run is absent."""
    return {job: run.consecutive_failures for job, run in (await latest_finished(conn)).items()}


async def history(conn: AsyncConnection, job: str, *, limit: int = 20) -> list[JobRun]:
    """``job``'s latest runs, newest first."""
    rows = await conn.execute(
        sa.select(job_runs).where(job_runs.c.job == job).order_by(job_runs.c.id.desc()).limit(limit)
    )
    return [_run(row) for row in rows]


def lock_key(job: str) -> int:
    """The PostgreSQL advisory lock key of ``job``: a scheduled run holds it (transaction-level,
    gateway/scheduler.py), a manual run too (session-level; the two kinds conflict)."""
    return zlib.crc32(f"docgw:{job}".encode())


async def try_lock(conn: AsyncConnection, job: str) -> bool:
    """PostgreSQL: take ``job``'s lock on this connection unless another holds it."""
    got = await conn.execute(sa.select(sa.func.pg_try_advisory_lock(lock_key(job))))
    return bool(got.scalar_one())


async def unlock(conn: AsyncConnection, job: str) -> None:
    await conn.execute(sa.select(sa.func.pg_advisory_unlock(lock_key(job))))
    await conn.commit()

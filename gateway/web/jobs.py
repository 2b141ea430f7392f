"""The scheduled jobs over HTTP (the same use cases as ``docgw jobs``).

method  path                          roles   calls
GET     /api/v1/jobs                  admin   jobs.list_jobs
POST    /api/v1/jobs/{name}/run       admin   jobs.run_now
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import Field

from gateway.store.job_runs import JobRun
from gateway.usecases import jobs
from gateway.web.auth import ADMIN, PRINCIPAL, allow
from gateway.web.bodies import Reply, render
from gateway.web.common import API, GATEWAY
from gateway.web.routes import CONFLICT, NOT_FOUND, Routes, path_parameter

ROUTES = Routes(tag="service")
JOB_NAME = path_parameter("name", "the job's name (`docgw jobs list`: `poll:axis`, `archive`, …)")


class Run(Reply):
    """One recorded run of a job"""

    id: int
    job: str
    trigger: Literal["schedule", "manual"]
    instance: str = Field(description="the process (host:pid)")
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: Literal["running", "ok", "failed", "interrupted"]
    error_code: str | None
    detail: str | None
    items: int | None = Field(description="what the run handled, where it says")


class Job(Reply):
    name: str
    interval_seconds: float | None = Field(
        description="null: recorded here, not run by this process"
    )
    next_run_at: dt.datetime | None
    consecutive_failures: int = Field(description="failed runs in a row")
    failures_total: int
    last_success_at: dt.datetime | None
    last_run: Run | None


class Jobs(Reply):
    """Every job of this gateway"""

    items: list[Job]


class RunResult(Reply):
    """The run ended (ok or failed)"""

    job: str
    outcome: Literal["ok", "failed"]
    error_code: str | None
    detail: str | None
    items: int | None
    duration_ms: float
    consecutive_failures: int


def run_reply(run: JobRun | None) -> Run | None:
    """A run as the API and ``docgw jobs history --json`` show it (the job's own counts are shown
    with the job)."""
    if run is None:
        return None
    return Run.model_validate(
        {name: getattr(run, name) for name in Run.model_fields}, from_attributes=False
    )


def job_reply(job: jobs.JobView) -> Job:
    return Job(
        name=job.name,
        interval_seconds=job.interval_seconds,
        next_run_at=job.next_run_at,
        consecutive_failures=job.consecutive_failures,
        failures_total=job.failures_total,
        last_success_at=job.last_success_at,
        last_run=run_reply(job.last_run),
    )


@ROUTES.get(
    f"{API}/jobs",
    name="list_jobs",
    summary="The scheduled jobs, their last run and failures in a row",
    ok={200: Jobs},
)
@allow(ADMIN)
async def list_jobs(request: web.Request) -> web.Response:
    found = await jobs.list_jobs(request.app[GATEWAY])
    return render(Jobs(items=[job_reply(job) for job in found]))


@ROUTES.post(
    f"{API}/jobs/{{name}}/run",
    name="run_job",
    summary="Run a scheduled job now (recorded as a manual run)",
    ok={200: RunResult},
    errors=(NOT_FOUND, CONFLICT),
    parameters=[JOB_NAME],
)
@allow(ADMIN)
async def run_job(request: web.Request) -> web.Response:
    result = await jobs.run_now(
        request.app[GATEWAY], request.match_info["name"], actor=request[PRINCIPAL].name
    )
    return render(RunResult.model_validate(dataclasses.asdict(result)))

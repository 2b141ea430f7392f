"""The scheduled jobs over HTTP (the same use cases as ``docgw jobs``).

    method  path                          roles   calls
    GET     /api/v1/jobs                  admin   jobs.list_jobs
    POST    /api/v1/jobs/{name}/run       admin   jobs.run_now

Registered by ``app.create_app`` through :func:`add_routes`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from gateway.store.job_runs import JobRun
from gateway.usecases import jobs
from gateway.web.auth import ADMIN, PRINCIPAL, allow


def add_routes(router: web.UrlDispatcher) -> None:
    from gateway.web.app import API  # app.py imports this module to route to it

    router.add_get(f"{API}/jobs", list_jobs, name="jobs")
    router.add_post(f"{API}/jobs/{{name}}/run", run_job, name="run_job")


def run_view(run: JobRun | None) -> dict[str, Any] | None:
    """A run as the API and ``docgw jobs list --json`` show it."""
    if run is None:
        return None
    shown = dataclasses.asdict(run)
    for name in ("consecutive_failures", "failures_total", "last_success_at", "next_run_at"):
        shown.pop(name)  # the job's, shown with the job
    return shown


def job_view(job: jobs.JobView) -> dict[str, Any]:
    return {
        "name": job.name,
        "interval_seconds": job.interval_seconds,
        "next_run_at": job.next_run_at,
        "consecutive_failures": job.consecutive_failures,
        "failures_total": job.failures_total,
        "last_success_at": job.last_success_at,
        "last_run": run_view(job.last_run),
    }


@allow(ADMIN)
async def list_jobs(request: web.Request) -> web.Response:
    from gateway.web.app import GATEWAY, _json

    return _json({"items": [job_view(job) for job in await jobs.list_jobs(request.app[GATEWAY])]})


@allow(ADMIN)
async def run_job(request: web.Request) -> web.Response:
    from gateway.web.app import GATEWAY, _json

    result = await jobs.run_now(
        request.app[GATEWAY], request.match_info["name"], actor=request[PRINCIPAL].name
    )
    return _json(dataclasses.asdict(result))

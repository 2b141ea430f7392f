"""``docgw jobs list|run|history``: the scheduled jobs, their last runs, and running one now (the
same use cases as ``/api/v1/jobs``). Times are Vietnam time."""

from __future__ import annotations

import argparse
import datetime as dt

from gateway.bootstrap import Gateway
from gateway.cli.common import VIETNAM, print_json, with_gateway
from gateway.store.job_runs import JobRun
from gateway.usecases import jobs
from gateway.usecases.jobs import JobView, RunResult
from gateway.web.jobs import job_reply, run_reply

CLI_ACTOR = "cli"


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _run_text(run: JobRun | None) -> str:
    if run is None:
        return "chưa chạy / never ran"
    text = f"{_time(run.started_at)} {run.outcome}"
    if run.items is not None:
        text += f" ({run.items})"
    if run.error_code:
        text += f" {run.error_code}: {run.detail or ''}"
    return text


def _line(job: JobView) -> str:
    every = f"{job.interval_seconds:g}s" if job.interval_seconds is not None else "-"
    state = (
        f"LỖI LIÊN TIẾP / FAILING ×{job.consecutive_failures}" if job.consecutive_failures else "ok"
    )
    return (
        f"{job.name:<24} {every:>8}  {state:<28} lần cuối / last: {_run_text(job.last_run)}"
        f"  tiếp / next: {_time(job.next_run_at)}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    found = with_gateway(args, jobs.list_jobs)
    if args.json:
        print_json([job_reply(job).model_dump() for job in found])
        return 0
    for job in found:
        print(_line(job))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> list[JobRun]:
        return await jobs.job_history(gateway, args.name, limit=args.limit)

    runs = with_gateway(args, work)
    if args.json:
        print_json([run.model_dump() for run in map(run_reply, runs) if run is not None])
        return 0
    if not runs:
        print(f"công việc {args.name} chưa chạy lần nào / job {args.name} has no recorded run")
    for run in runs:
        print(f"{run.trigger:<8} {run.instance:<24} {_run_text(run)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> RunResult:
        return await jobs.run_now(gateway, args.name, actor=CLI_ACTOR)

    result = with_gateway(args, work)
    if args.json:
        print_json(result)
    elif result.outcome == "ok":
        handled = f", {result.items} mục / items" if result.items is not None else ""
        print(f"đã chạy / ran {result.job}: ok ({result.duration_ms:g} ms{handled})")
    else:
        print(
            f"đã chạy / ran {result.job}: LỖI / FAILED {result.error_code}: {result.detail} "
            f"(lỗi liên tiếp / failures in a row: {result.consecutive_failures})"
        )
    return 0 if result.outcome == "ok" else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("jobs", help="scheduled jobs: their runs, and running one now")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every job, its last run and its next")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    history = actions.add_parser("history", help="a job's latest runs, newest first")
    history.add_argument("name")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=cmd_history)
    run = actions.add_parser("run", help="run a job now (recorded as a manual run)")
    run.add_argument("name")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=cmd_run)

"""Scheduled job runs as an operator sees them: a drop folder whose root disappears makes its
pick-up job fail at every tick; each run is recorded (both databases), the failure is logged once
when it starts and once when it ends, and ``GET /api/v1/jobs``, ``POST …/run``, ``docgw jobs`` and
``/metrics`` show it. Through a real ``docgw serve``: its JSON-lines log carries the facts."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from integration_support import write_config

from gateway.scheduler import create_scheduler
from gateway.usecases import jobs, tokens
from gateway.web.app import create_app

DOCGW = Path(sys.executable).with_name("docgw")
JOB = "pickup:dms"


def drop_folder(root: Path, poll_seconds: float = 0.2) -> str:
    return f'[channels.dms]\nkind = "drop_folder"\nroot = "{root}"\npoll_seconds = {poll_seconds}\n'


async def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.05)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name and r.job == JOB]  # type: ignore[attr-defined]


def test_a_failing_job_is_recorded_shown_and_recovers(
    make_gateway: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "dms"
    root.mkdir()

    async def scenario() -> None:
        async with make_gateway(extra=drop_folder(root)) as gateway:
            shutil.rmtree(root)  # unmounted under the running gateway
            pickup = [job for job in jobs.scheduled_jobs(gateway) if job.name == JOB]
            scheduler = create_scheduler(gateway, pickup)
            scheduler.start()

            async def failed_three_times() -> bool:
                return (await jobs.consecutive_failures(gateway)).get(JOB, 0) >= 3

            try:
                await eventually(failed_three_times, "three failed runs")
            finally:
                scheduler.shutdown(wait=False)
            await asyncio.sleep(0.3)  # a run under way ends
            runs = await jobs.job_history(gateway, JOB)
            finished = [run for run in runs if run.finished_at is not None]
            assert len(finished) >= 3
            for run in finished:
                assert (run.outcome, run.error_code, run.trigger) == (
                    "failed",
                    "DROP_FOLDER_MISSING",
                    "schedule",
                )
                assert str(root) in (run.detail or "")
                assert run.next_run_at is not None and run.next_run_at > run.started_at
            streak = (await jobs.consecutive_failures(gateway))[JOB]
            assert streak == len(finished)

            admin = await tokens.create_token(gateway, name="admin", role="admin")
            operator = await tokens.create_token(gateway, name="op", role="operator")
            async with TestClient(TestServer(create_app(gateway))) as client:
                as_admin = {"Authorization": f"Bearer {admin}"}
                refused = await client.get(
                    "/api/v1/jobs", headers={"Authorization": f"Bearer {operator}"}
                )
                assert refused.status == 403
                listed = await client.get("/api/v1/jobs", headers=as_admin)
                assert listed.status == 200
                shown = {job["name"]: job for job in (await listed.json())["items"]}
                assert shown[JOB]["consecutive_failures"] == streak
                assert shown[JOB]["failures_total"] == streak
                assert shown[JOB]["last_success_at"] is None
                assert shown[JOB]["interval_seconds"] == 0.2
                assert shown[JOB]["last_run"]["outcome"] == "failed"
                assert shown[JOB]["last_run"]["error_code"] == "DROP_FOLDER_MISSING"
                assert shown["recover_expired"]["last_run"] is None  # configured, not run

                again = await client.post(f"/api/v1/jobs/{JOB}/run", headers=as_admin)
                assert again.status == 200
                body = await again.json()
                assert body["outcome"] == "failed"
                assert body["consecutive_failures"] == streak + 1

                text = await (await client.get("/metrics")).text()
                assert f'docgw_job_failures_total{{job="{JOB}"}} {float(streak + 1)}' in text
                assert f'docgw_job_consecutive_failures{{job="{JOB}"}} {float(streak + 1)}' in text
                assert f'docgw_job_last_success_timestamp{{job="{JOB}"}} 0.0' in text

                root.mkdir()  # mounted again
                recovered = await client.post(f"/api/v1/jobs/{JOB}/run", headers=as_admin)
                body = await recovered.json()
                assert (body["outcome"], body["consecutive_failures"], body["items"]) == (
                    "ok",
                    0,
                    0,
                )
                listed = await (await client.get("/api/v1/jobs", headers=as_admin)).json()
                shown = {job["name"]: job for job in listed["items"]}
                assert shown[JOB]["consecutive_failures"] == 0
                assert shown[JOB]["failures_total"] == streak + 1
                assert shown[JOB]["last_success_at"] is not None
                assert shown[JOB]["last_run"]["trigger"] == "manual"

                unknown = await client.post("/api/v1/jobs/nope/run", headers=as_admin)
                assert unknown.status == 404
                assert (await unknown.json())["code"] == "NOT_FOUND"

    with caplog.at_level(logging.DEBUG, logger="docgw.jobs"):
        asyncio.run(scenario())
    # Said once when it started failing, once when it recovered; the runs in between each logged
    # one line, without a traceback.
    [failing] = events(caplog, "job_failing")
    # A failure with docgw's own code needs no traceback (JOB_CRASHED has one: test_scheduler).
    assert failing.levelno == logging.ERROR and failing.exc_info is None
    assert failing.error_code == "DROP_FOLDER_MISSING"  # type: ignore[attr-defined]
    [recovered] = events(caplog, "job_recovered")
    assert recovered.failed_runs >= 4  # type: ignore[attr-defined]
    repeated = [r for r in events(caplog, "job_run") if r.outcome == "failed"]  # type: ignore[attr-defined]
    assert repeated and all(r.exc_info is None for r in repeated)


def test_failure_counts_survive_the_pruning_of_old_runs(make_gateway: Any, tmp_path: Path) -> None:
    """Only the last KEEP_RUNS runs of a job are kept; its counts are carried from run to run."""
    root = tmp_path / "gone"

    async def scenario() -> None:
        async with make_gateway(extra=drop_folder(root)) as gateway:
            job = jobs.find_job(gateway, JOB)
            keep = jobs.store.KEEP_RUNS
            for _ in range(keep + 5):
                await jobs.run_recorded(gateway, job)
            assert len(await jobs.job_history(gateway, JOB, limit=keep * 2)) == keep
            assert (await jobs.consecutive_failures(gateway))[JOB] == keep + 5
            [view] = [v for v in await jobs.list_jobs(gateway) if v.name == JOB]
            assert view.failures_total == keep + 5

    asyncio.run(scenario())


def test_a_frequent_job_records_its_idle_ticks_once_in_a_while(make_gateway: Any) -> None:
    """A job ticking faster than QUIET_SECONDS: an idle success after a recorded success is not
    written again within QUIET_SECONDS; a run that handled something, a failure and the recovery
    after it always are."""
    outcomes: list[object] = []

    async def tick() -> object:
        result = outcomes.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    async def scenario() -> None:
        async with make_gateway() as gateway:
            job = jobs.JobDefinition(name="poll:quiet", seconds=0.05, run=tick)
            assert job.frequent
            outcomes.extend([0, 0, 0, 2, 0, RuntimeError("down"), RuntimeError("down"), 0, 0])
            for _ in range(len(outcomes)):
                await jobs.run_recorded(gateway, job)
            history = await jobs.job_history(gateway, "poll:quiet", limit=50)
            # Newest first: the recovery, two failures, the run with items, the first idle one.
            assert [(r.outcome, r.items) for r in history] == [
                ("ok", 0), ("failed", None), ("failed", None), ("ok", 2), ("ok", 0)
            ]  # fmt: skip
            assert all(r.finished_at is not None for r in history)
            [view] = [v for v in await jobs.list_jobs(gateway) if v.name == "poll:quiet"]
            assert view.consecutive_failures == 0 and view.failures_total == 2
            # Once QUIET_SECONDS have passed, an idle tick is written again.
            assert job.recorded.at is not None
            job.recorded.at -= jobs.QUIET_SECONDS
            outcomes.append(0)
            await jobs.run_recorded(gateway, job)
            assert len(await jobs.job_history(gateway, "poll:quiet", limit=50)) == 6
            # A run asked for by an operator is recorded, running first, whatever its outcome.
            outcomes.append(0)
            await jobs.run_recorded(gateway, job, trigger="manual")
            assert len(await jobs.job_history(gateway, "poll:quiet", limit=50)) == 7

    asyncio.run(scenario())


# ------------------------------------------------------------------ a real `docgw serve`


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def docgw(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    }
    return subprocess.run(
        [str(DOCGW), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.slow
def test_docgw_serve_logs_json_lines_with_the_facts(tmp_path: Path, keys_dir: Path) -> None:
    root = tmp_path / "dms"
    root.mkdir()
    log_file = tmp_path / "docgw.log"
    config = write_config(
        tmp_path / "docgw.toml",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        keys_dir=keys_dir,
        local_units=(),
        extra=f'[api]\nport = {_free_port()}\n[logging]\nformat = "json"\nfile = "docgw.log"\n'
        + drop_folder(root),
    )

    def logged() -> list[dict[str, Any]]:
        if not log_file.exists():
            return []
        return [json.loads(line) for line in log_file.read_text().splitlines()]

    def named(name: str) -> list[dict[str, Any]]:
        return [line for line in logged() if line["event"] == name and line.get("job") == JOB]

    async def scenario() -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
        }
        serve = await asyncio.create_subprocess_exec(
            str(DOCGW),
            "--config",
            str(config),
            "serve",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:

            async def serving() -> bool:
                return any(line["event"] == "serving" for line in logged())

            await eventually(serving, "docgw serving", timeout=60)
            shutil.rmtree(root)

            async def failing() -> bool:
                return bool(named("job_failing"))

            await eventually(failing, "job_failing logged")
            await asyncio.sleep(1.0)  # a few more failed ticks

            listed = await asyncio.to_thread(docgw, config, "jobs", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            shown = {job["name"]: job for job in json.loads(listed.stdout)}
            assert shown[JOB]["consecutive_failures"] >= 2
            assert shown[JOB]["last_run"]["error_code"] == "DROP_FOLDER_MISSING"
            ran = await asyncio.to_thread(docgw, config, "jobs", "run", JOB)
            assert ran.returncode == 1 and "DROP_FOLDER_MISSING" in ran.stdout, ran

            root.mkdir()

            async def recovered() -> bool:
                return bool(named("job_recovered"))

            await eventually(recovered, "job_recovered logged")
        finally:
            serve.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(serve.communicate(), 30)
        assert serve.returncode == 0, stderr.decode()
        # With a file set, `serve` writes its log there only.
        assert stderr.decode() == ""

    asyncio.run(scenario())
    lines = logged()
    assert all({"event", "level", "logger", "timestamp"} <= line.keys() for line in lines)
    [failing] = named("job_failing")  # once, however many ticks failed
    assert failing["level"] == "error"
    assert failing["error_code"] == "DROP_FOLDER_MISSING"
    assert str(root) in failing["detail"]
    assert failing["consecutive_failures"] == 1
    assert "duration_ms" in failing and "exception" not in failing  # a coded failure
    [recovered] = named("job_recovered")
    assert recovered["failed_runs"] >= 3 and recovered["level"] == "warning"
    # The operator's manual run through the CLI is in the same log (the CLI writes to the file).
    requested = [line for line in lines if line["event"] == "job_run_requested"]
    assert requested and requested[0]["job"] == JOB and requested[0]["actor"] == "cli"


def test_a_manual_run_does_not_overlap_a_running_one_on_postgresql(
    make_gateway: Any, tmp_path: Path, database_url: str
) -> None:
    """PostgreSQL: a manual run takes the job's lock, as a scheduled run does; while another
    process holds it the manual run is refused (CONFLICT) and nothing is recorded."""
    if database_url.startswith("sqlite"):
        pytest.skip("one process on SQLite: no lock to take")
    root = tmp_path / "dms"
    root.mkdir()

    async def scenario() -> None:
        async with make_gateway(extra=drop_folder(root)) as gateway:
            async with gateway.engine.connect() as other:  # another process's run
                assert await jobs.store.try_lock(other, JOB)
                with pytest.raises(jobs.Conflict):
                    await jobs.run_now(gateway, JOB, actor="test")
                await jobs.store.unlock(other, JOB)
            assert await jobs.job_history(gateway, JOB) == []
            result = await jobs.run_now(gateway, JOB, actor="test")
            assert result.outcome == "ok"

    asyncio.run(scenario())


def test_a_run_cut_short_is_marked_interrupted_when_the_job_next_starts(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            ok = 0

            async def stopping() -> int:
                nonlocal ok
                if not ok:
                    ok = 1
                    raise asyncio.CancelledError  # the process stops mid-run
                return 2

            job = jobs.JobDefinition(name="archive", seconds=60, run=stopping)
            with pytest.raises(asyncio.CancelledError):
                await jobs.run_recorded(gateway, job)
            [cut] = await jobs.job_history(gateway, "archive")
            assert (cut.outcome, cut.finished_at) == ("running", None)
            result = await jobs.run_recorded(gateway, job)
            assert (result.outcome, result.items) == ("ok", 2)
            latest, earlier = await jobs.job_history(gateway, "archive")
            assert latest.outcome == "ok" and earlier.outcome == "interrupted"
            assert earlier.finished_at is not None
            assert (await jobs.consecutive_failures(gateway))["archive"] == 0

    asyncio.run(scenario())

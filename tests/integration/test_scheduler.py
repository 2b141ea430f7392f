"""The scheduled jobs on real databases: with several gateways on one PostgreSQL a job runs once
per wall-clock tick (and never twice at once); a job that fails is logged and runs again at its
next tick; ``create_scheduler`` wires the configured jobs with their intervals, the drop folder's
cleanup included. Delivery is not among them: it is ``delivery.run_worker``, a loop in every
process (see gateway/scheduler.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import RECIPIENT, SENDER, _admin, postgres_url, write_config

from gateway import scheduler as scheduler_module
from gateway.bootstrap import Gateway, build
from gateway.scheduler import (
    WallClockTicks,
    add_job,
    create_scheduler,
    run_once,
    tick_phase,
    tick_start,
)
from gateway.settings import load_settings
from gateway.store.database import migrate
from gateway.store.tables import job_ticks
from gateway.usecases.jobs import (
    CLEANUP_SECONDS,
    STALE_TMP_SECONDS,
    JobDefinition,
    scheduled_jobs,
)

T0 = dt.datetime(2026, 11, 25, 9, 0, 0, tzinfo=dt.UTC)  # a tick start for 10 s and 3600 s


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database: the once-per-tick rule is about several processes on one."""
    base = postgres_url()
    if base is None:
        pytest.skip("needs TEST_POSTGRES_URL (scripts/test.sh sets it)")
    name = f"docgw_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def gateways(url: str, keys_dir: Path, tmp_path: Path, extra: str = "") -> Any:
    """``async with gateways(...)(2) as (a, b)``: gateways on one database, each with its own
    engine (its own connections, as separate processes have), named ``g0``, ``g1`` …"""

    @asynccontextmanager
    async def open_(count: int) -> AsyncIterator[list[Gateway]]:
        config = write_config(
            tmp_path / f"docgw-{uuid.uuid4().hex[:6]}.toml",
            database_url=url,
            keys_dir=keys_dir,
            local_units=(SENDER,),
            extra=extra,
        )
        built: list[Gateway] = []
        try:
            for n in range(count):
                gateway = await build(load_settings(config, {}))
                gateway.instance = f"g{n}"
                built.append(gateway)
            await migrate(built[0].engine)
            yield built
        finally:
            for gateway in built:
                await gateway.close()

    return open_


# ------------------------------------------------------------------------------- once per tick


def test_tick_starts_are_multiples_of_the_interval_since_the_epoch() -> None:
    assert tick_start(T0 + dt.timedelta(seconds=9.999), 10) == T0
    assert tick_start(T0 + dt.timedelta(seconds=10), 10) == T0 + dt.timedelta(seconds=10)
    assert tick_start(T0 + dt.timedelta(milliseconds=120), 0.05) == T0 + dt.timedelta(
        milliseconds=100
    )
    ticks = WallClockTicks(10)
    # After the run at start (off the grid) the next fire is the next tick's start.
    off_grid = T0 + dt.timedelta(seconds=3.2)
    assert ticks.get_next_fire_time(off_grid, off_grid) == T0 + dt.timedelta(seconds=10)
    assert ticks.get_next_fire_time(None, off_grid) == T0 + dt.timedelta(seconds=10)
    assert ticks.get_next_fire_time(T0, T0) == T0 + dt.timedelta(seconds=10)


def test_a_phase_shifts_the_grid() -> None:
    phase = dt.timedelta(seconds=4)
    assert tick_start(T0 + dt.timedelta(seconds=3.9), 10, phase) == T0 - dt.timedelta(seconds=6)
    assert tick_start(T0 + dt.timedelta(seconds=4), 10, phase) == T0 + phase
    assert tick_start(T0 + dt.timedelta(seconds=13.9), 10, phase) == T0 + phase
    ticks = WallClockTicks(10, phase)
    assert ticks.get_next_fire_time(None, T0) == T0 + phase
    assert ticks.get_next_fire_time(T0 + phase, T0 + phase) == T0 + dt.timedelta(seconds=14)


def test_gateways_of_other_units_tick_at_other_phases(keys_dir: Path, tmp_path: Path) -> None:
    """The phase depends on the local units only: every process of one gateway shares it, and
    gateways of other agencies are spread across the interval instead of polling the axis at the
    same instants."""

    def phase_of(units: tuple[str, ...], name: str) -> dt.timedelta:
        config = write_config(
            tmp_path / name,
            database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db",
            keys_dir=keys_dir,
            local_units=units,
        )

        async def built() -> dt.timedelta:
            gateway = await build(load_settings(config, {}))
            try:
                return tick_phase(gateway, 0.05)
            finally:
                await gateway.close()

        return asyncio.run(built())

    one = phase_of((SENDER,), "a1.toml")
    assert phase_of((SENDER,), "a2.toml") == one  # another process of the same gateway
    assert phase_of((RECIPIENT,), "b.toml") != one
    assert phase_of((SENDER, RECIPIENT), "ab.toml") == phase_of((RECIPIENT, SENDER), "ba.toml")
    assert dt.timedelta(0) <= one < dt.timedelta(seconds=0.05)


def test_a_job_runs_once_per_tick_across_gateways(
    postgres_database: str, keys_dir: Path, tmp_path: Path
) -> None:
    ran: list[str] = []
    clock = Clock(T0 + dt.timedelta(seconds=1))

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(2) as (a, b):
            a.clock = b.clock = clock
            phase = tick_phase(a, 10)  # b's too: the same units
            assert phase == tick_phase(b, 10)
            clock.now += phase  # one second into a tick

            def job(who: str) -> Callable[[], Any]:
                async def run() -> None:
                    ran.append(who)

                return run

            assert await run_once(a, "poll:axis", 10, job("a"))
            assert not await run_once(b, "poll:axis", 10, job("b"))  # the same tick
            clock.now += dt.timedelta(seconds=8)  # later, still the same tick
            assert not await run_once(b, "poll:axis", 10, job("b"))
            assert not await run_once(a, "poll:axis", 10, job("a"))
            clock.now += dt.timedelta(seconds=2)  # the next tick: runs again, once
            assert await run_once(b, "poll:axis", 10, job("b"))
            assert not await run_once(a, "poll:axis", 10, job("a"))
            # Another job has ticks of its own.
            assert await run_once(a, "sent_states:axis", 10, job("a-states"))
            # A process whose clock is behind does not run a tick that was run already.
            clock.now -= dt.timedelta(seconds=10)
            assert not await run_once(a, "poll:axis", 10, job("a"))
            async with a.engine.connect() as conn:
                claims = (
                    await conn.execute(
                        sa.select(
                            job_ticks.c.job, job_ticks.c.tick_at, job_ticks.c.claimed_by
                        ).order_by(job_ticks.c.job)
                    )
                ).all()
            assert claims == [
                ("poll:axis", T0 + phase + dt.timedelta(seconds=10), "g1"),
                ("sent_states:axis", T0 + phase + dt.timedelta(seconds=10), "g0"),
            ]

    asyncio.run(scenario())
    assert ran == ["a", "b", "a-states"]


def test_a_clock_far_ahead_cannot_hold_the_ticks(
    postgres_database: str, keys_dir: Path, tmp_path: Path
) -> None:
    """A host whose clock runs an hour ahead claims the database clock's tick, not its own: the
    job runs once per tick as before, and nothing stored makes the others skip an hour of ticks.
    A claim stored that far ahead (the database's clock went back, say) is taken over."""
    real = dt.datetime.now(dt.UTC)
    ahead = Clock(real + dt.timedelta(hours=1))
    ran: list[str] = []

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(2) as (fast, right):

            async def job() -> None:
                ran.append("ran")

            fast.clock = ahead
            assert await run_once(fast, "poll:axis", 3600, job)
            async with right.engine.connect() as conn:
                stored = await conn.scalar(
                    sa.select(job_ticks.c.tick_at).where(job_ticks.c.job == "poll:axis")
                )
            assert stored is not None and stored <= real  # the database's tick, not an hour on
            assert not await run_once(right, "poll:axis", 3600, job)  # that tick ran
            async with right.engine.begin() as conn:
                await conn.execute(job_ticks.delete())
                await conn.execute(
                    job_ticks.insert().values(
                        job="poll:axis",
                        tick_at=real + dt.timedelta(hours=1),
                        claimed_by="g0",
                        claimed_at=real,
                    )
                )
            assert await run_once(right, "poll:axis", 10, job)
            assert not await run_once(right, "poll:axis", 10, job)  # and once per tick again

    asyncio.run(scenario())
    assert ran == ["ran", "ran"]


def test_a_long_job_outlives_a_servers_idle_transaction_timeout(
    postgres_database: str, keys_dir: Path, tmp_path: Path
) -> None:
    """The lock's transaction stays idle while the job runs; a server hardened with
    idle_in_transaction_session_timeout must not end it (and free the lock) mid-job."""
    name = postgres_database.rsplit("/", 1)[1]
    asyncio.run(_admin(f'ALTER DATABASE "{name}" SET idle_in_transaction_session_timeout = 200'))

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(2) as (a, b):

            async def longer_than_the_timeout() -> None:
                await asyncio.sleep(0.8)
                assert not await run_once(b, "directory:axis", 10, longer_than_the_timeout)

            assert await run_once(a, "directory:axis", 10, longer_than_the_timeout)
            async with a.engine.connect() as conn:
                claims = await conn.scalar(sa.select(sa.func.count()).select_from(job_ticks))
            assert claims == 1  # committed at the end of the run

    asyncio.run(scenario())


def test_a_run_cut_short_frees_its_tick(
    postgres_database: str, keys_dir: Path, tmp_path: Path
) -> None:
    """Shut down mid-run (cancelled): the claim goes with the run, and the tick runs again —
    at the next start, or in another process."""
    clock = Clock(T0)

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(2) as (a, b):
            a.clock = b.clock = clock
            started = asyncio.Event()

            async def endless() -> None:
                started.set()
                await asyncio.Event().wait()

            async def quick() -> None:
                return None

            cut = asyncio.create_task(run_once(a, "directory:axis", 10, endless))
            await asyncio.wait_for(started.wait(), 10)
            cut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cut
            assert await run_once(b, "directory:axis", 10, quick)  # the same tick

    asyncio.run(scenario())


#: Runs one job in its own process until killed: it builds the gateway from a config file, as
#: ``docgw worker`` does, and says when the job has started.
KILLED_RUN = """
import asyncio, sys
from pathlib import Path
from gateway.bootstrap import build
from gateway.scheduler import run_once
from gateway.settings import load_settings

async def main() -> None:
    gateway = await build(load_settings(Path(sys.argv[1]), {}))
    async def endless() -> None:
        Path(sys.argv[2]).write_text("started")
        await asyncio.Event().wait()
    await run_once(gateway, "directory:axis", 86400, endless)

asyncio.run(main())
"""


def test_a_process_killed_mid_run_frees_its_tick(
    postgres_database: str, keys_dir: Path, tmp_path: Path
) -> None:
    """kill -9 in the middle of a daily job: the job runs again in this same tick (from another
    process, or the killed one restarted) instead of waiting a day."""
    ran: list[str] = []

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(1) as (survivor,):
            config = next(tmp_path.glob("docgw-*.toml"))
            marker = tmp_path / "started"
            process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(config), str(marker)])
            try:
                deadline = time.monotonic() + 30
                while not marker.exists():
                    assert process.poll() is None, "the job's process ended before its job"
                    assert time.monotonic() < deadline, "the job did not start"
                    await asyncio.sleep(0.05)

                async def again() -> None:
                    ran.append("again")

                # Killed mid-run: its lock and claim go with its connection.
                assert not await run_once(survivor, "directory:axis", 86400, again)
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                deadline = time.monotonic() + 10
                while not await run_once(survivor, "directory:axis", 86400, again):
                    assert time.monotonic() < deadline, "the killed run kept its tick"
                    await asyncio.sleep(0.1)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()

    asyncio.run(scenario())
    assert ran == ["again"]


def test_a_job_still_running_is_not_started_again_elsewhere(
    postgres_database: str, keys_dir: Path, tmp_path: Path
) -> None:
    """A run that outlasts its tick: the next tick finds the job's advisory lock taken and skips,
    instead of running the job twice at once."""
    clock = Clock(T0)

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(2) as (a, b):
            a.clock = b.clock = clock
            started, release = asyncio.Event(), asyncio.Event()
            runs: list[str] = []

            async def slow() -> None:
                runs.append("a")
                started.set()
                await release.wait()

            async def quick() -> None:
                runs.append("b")

            first = asyncio.create_task(run_once(a, "directory:axis", 10, slow))
            await asyncio.wait_for(started.wait(), 10)
            clock.now += dt.timedelta(seconds=10)
            assert not await run_once(b, "directory:axis", 10, quick)  # a still runs it
            release.set()
            assert await first
            clock.now += dt.timedelta(seconds=10)
            assert await run_once(b, "directory:axis", 10, quick)
            assert runs == ["a", "b"]

    asyncio.run(scenario())


def test_two_schedulers_on_one_database_run_each_tick_once(
    postgres_database: str, keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two running schedulers (as two `docgw worker` processes), started off each other's phase:
    every tick of the job runs once, by one of them. The ticks are those claimed (watched on
    their way to the database), so a run that starts late in its tick still counts as its."""
    interval = 0.4
    claimed: list[tuple[str, dt.datetime]] = []
    runs: list[str] = []
    claim = scheduler_module.claim_tick

    async def watched_claim(lock: Any, gateway: Gateway, name: str, tick_at: dt.datetime) -> bool:
        won = await claim(lock, gateway, name, tick_at)
        if won:
            claimed.append((gateway.instance, tick_at))
        return won

    monkeypatch.setattr(scheduler_module, "claim_tick", watched_claim)

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(2) as (a, b):
            schedulers = []
            for gateway in (a, b):

                async def job(gateway: Gateway = gateway) -> None:
                    runs.append(gateway.instance)

                scheduler = create_empty_scheduler()
                add_job(scheduler, gateway, "poll:axis", interval, job, at_start=True)
                schedulers.append(scheduler)
            schedulers[0].start()
            await asyncio.sleep(interval * 0.55)  # the other one starts mid-tick
            schedulers[1].start()
            await asyncio.sleep(interval * 8)
            for scheduler in schedulers:
                scheduler.shutdown(wait=False)

    asyncio.run(scenario())
    assert [who for who, _ in claimed] == runs  # each run had claimed its tick
    ticks = [tick for _, tick in claimed]
    assert len(ticks) == len(set(ticks)), claimed  # no tick ran twice
    assert len(ticks) >= 4, claimed  # and the job kept running, tick after tick (~8 expected)
    assert ticks == sorted(ticks)


def create_empty_scheduler() -> Any:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    return AsyncIOScheduler(timezone=dt.UTC)


# ------------------------------------------------------------------------------------ failures


def test_a_failing_job_is_logged_and_runs_again_at_its_next_tick(
    database_url: str, keys_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    interval = 0.3
    attempts: list[dt.datetime] = []

    async def scenario() -> None:
        async with gateways(database_url, keys_dir, tmp_path)(1) as (gateway,):

            async def flaky() -> None:
                attempts.append(
                    tick_start(gateway.clock(), interval, tick_phase(gateway, interval))
                )
                if len(attempts) == 1:
                    raise RuntimeError("the axis said no")

            job = JobDefinition(name="poll:axis", seconds=interval, run=flaky, at_start=True)
            scheduler = create_scheduler(gateway, [job])
            scheduler.start()
            deadline = time.monotonic() + 10
            while len(attempts) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            scheduler.shutdown(wait=False)

    with caplog.at_level(logging.ERROR, logger="docgw.jobs"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if getattr(r, "event", None) == "job_failing"]
    assert len(failures) == 1
    assert failures[0].job == "poll:axis"  # type: ignore[attr-defined]
    assert failures[0].exc_info is not None and "the axis said no" in str(failures[0].exc_info[1])
    assert len(attempts) >= 2, "the job did not run again after failing"
    assert attempts[1] > attempts[0], "it ran again at a later tick"


def test_a_failed_run_keeps_its_tick(
    postgres_database: str, keys_dir: Path, tmp_path: Path
) -> None:
    """A failure is retried at the next tick, not at once by the next process of the same tick."""
    clock = Clock(T0)

    async def scenario() -> None:
        async with gateways(postgres_database, keys_dir, tmp_path)(2) as (a, b):
            a.clock = b.clock = clock

            async def fail() -> None:
                raise RuntimeError("boom")

            async def succeed() -> None:
                return None

            with pytest.raises(RuntimeError):
                await run_once(a, "handover:dms", 10, fail)
            assert not await run_once(b, "handover:dms", 10, succeed)
            clock.now += dt.timedelta(seconds=10)
            assert await run_once(b, "handover:dms", 10, succeed)

    asyncio.run(scenario())


# -------------------------------------------------------------------------------------- wiring


def test_the_scheduler_wires_the_configured_jobs(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "dms"
    extra = (
        '[channels.axis]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9/"\n'
        'system_id = "sys"\nsecret = "test-only"\n'
        "poll_seconds = 7\nsent_states_seconds = 120\ndirectory_sync_hours = 24\n"
        f'[channels.dms]\nkind = "drop_folder"\nroot = "{root}"\npoll_seconds = 3\n'
        f'[channels.archive]\nkind = "drop_folder"\nroot = "{tmp_path / "archive"}"\n'
        "poll_seconds = 0\n"
    )

    phases: dict[str, dt.timedelta] = {}

    async def scenario() -> tuple[dict[str, float], dict[str, dt.datetime], dt.datetime]:
        async with gateways(database_url, keys_dir, tmp_path, extra)(1) as (gateway,):
            scheduler = create_scheduler(gateway, scheduled_jobs(gateway))
            started = dt.datetime.now(dt.UTC)
            scheduler.start(paused=True)  # next run times computed, nothing run
            try:
                jobs = scheduler.get_jobs()
                intervals = {
                    job.id: job.trigger.seconds
                    for job in jobs
                    if isinstance(job.trigger, WallClockTicks)
                }
                firsts = {job.id: job.next_run_time for job in jobs}
                for job in jobs:
                    if isinstance(job.trigger, WallClockTicks):
                        phases[job.id] = tick_phase(gateway, job.trigger.seconds)
                        assert job.trigger.phase == phases[job.id], job.id
                assert "heartbeat" in firsts  # every process beats for itself, untied to ticks
            finally:
                scheduler.shutdown(wait=False)
            return intervals, firsts, started

    intervals, firsts, started = asyncio.run(scenario())
    expected = {
        "recover_expired": 2.5,  # lease_seconds / 2
        "poll:axis": 7,
        "sent_states:axis": 120,
        "directory:axis": 24 * 3600,
        "pickup:dms": 3,
        "handover:dms": 3,
        "cleanup:dms": CLEANUP_SECONDS,
        "cleanup:archive": CLEANUP_SECONDS,  # a delivery-only drop folder is cleaned up too
        "webhooks": 1.0,
        "alerts": 60.0,  # [alerts] evaluate_seconds: the alert rules
        "reports": 3600.0,  # [reports] check_minutes = 60
        "archive": 300.0,  # [archive] interval_seconds: ASiC-E containers, retention
        "console_sessions": 3600.0,  # expired console sessions are deleted
    }
    if database_url.startswith("sqlite"):
        expected["checkpoint"] = 1.0
    assert intervals == expected
    # Channel polls run at start; the others at the start of their next tick.
    for job_id in ("poll:axis", "sent_states:axis", "directory:axis", "pickup:dms"):
        assert firsts[job_id] - started < dt.timedelta(seconds=1), job_id
    for job_id in ("recover_expired", "cleanup:dms"):
        interval = intervals[job_id]
        assert firsts[job_id] == tick_start(started, interval, phases[job_id]) + dt.timedelta(
            seconds=interval
        ), job_id
    assert not any("deliver" in job_id for job_id in firsts)  # delivery is a worker loop


def test_the_cleanup_job_removes_only_stale_leftovers(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    """What a writer killed mid-write left, a day old, goes; a recent one and one whose writer is
    alive (locked) stay; complete items are not touched."""
    root = tmp_path / "dms"
    inbox, outbox = root / "inbox", root / "outbox"
    inbox.mkdir(parents=True)
    outbox.mkdir()
    dead_writer = inbox / "m-1.edxml.tmp"
    dead_writer.write_bytes(b"half a package")
    abandoned = outbox / "cv-1.tmp"
    abandoned.mkdir()
    (abandoned / "metadata.json").write_text("{}")
    recent = inbox / "m-2.edxml.tmp"
    recent.write_bytes(b"being written")
    live = inbox / "m-3.edxml.tmp"
    live.write_bytes(b"being written slowly")
    complete = inbox / "m-4.edxml"
    complete.write_bytes(b"<edXMLEnvelope/>")
    stale = time.time() - STALE_TMP_SECONDS - 60
    almost = time.time() - STALE_TMP_SECONDS + 600
    for path in (dead_writer, abandoned / "metadata.json", abandoned, live, complete):
        os.utime(path, (stale, stale))
    os.utime(recent, (almost, almost))
    extra = f'[channels.dms]\nkind = "drop_folder"\nroot = "{root}"\npoll_seconds = 0\n'

    async def scenario() -> None:
        async with gateways(database_url, keys_dir, tmp_path, extra)(1) as (gateway,):
            scheduler = create_scheduler(gateway, scheduled_jobs(gateway))
            job = scheduler.get_job("cleanup:dms")
            assert job is not None
            with live.open("rb+") as writer:
                fcntl.flock(writer, fcntl.LOCK_EX)
                await job.func()

    asyncio.run(scenario())
    assert sorted(p.name for p in inbox.iterdir()) == [
        "m-2.edxml.tmp",
        "m-3.edxml.tmp",
        "m-4.edxml",
    ]
    assert list(outbox.iterdir()) == []  # removed, nothing hidden left behind

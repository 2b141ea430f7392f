"""``docgw serve``: one process running the HTTP API, the delivery workers and the scheduler;
``docgw worker``: the workers and the scheduler only (scale-out: N of them on one PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from gateway.bootstrap import Gateway, build
from gateway.logs import configure_logging
from gateway.scheduler import create_scheduler, heartbeat
from gateway.settings import Settings
from gateway.store.database import migrate
from gateway.usecases.delivery import recover_expired, run_worker
from gateway.usecases.jobs import scheduled_jobs
from gateway.web.app import create_app
from gateway.web.problems import ProblemAppRunner
from gateway.web.secure_inbox import create_secure_inbox_app, secure_inbox_ssl_context

log = logging.getLogger("docgw")


async def serve(settings: Settings, *, api: bool = True) -> None:
    configure_logging(settings, service=True)
    gateway = await build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await _run(gateway, stop, api)
    finally:
        await gateway.close()


async def start_secure_inbox(gateway: Gateway, host: str, port: int) -> web.AppRunner:
    """The secure inbox's own listener: mutual TLS, and a request aiohttp cannot parse (a header
    over the limit, a bad request line) answered as a problem, as the API answers it."""
    runner = ProblemAppRunner(create_secure_inbox_app(gateway), access_log=None)
    await runner.setup()
    context = secure_inbox_ssl_context(gateway.settings)
    await web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True).start()
    return runner


async def _run(gateway: Gateway, stop: asyncio.Event, with_api: bool) -> None:
    await migrate(gateway.engine)
    # Claims left by a previous process that died are recovered before new work starts.
    await recover_expired(gateway)
    await heartbeat(gateway)
    api = gateway.settings.api
    runners = []
    if with_api:
        runner: web.AppRunner = ProblemAppRunner(create_app(gateway), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, api.host, api.port, reuse_address=True).start()
        runners.append(runner)
    inbox = gateway.settings.secure_inbox
    if inbox.enabled:
        runners.append(await start_secure_inbox(gateway, inbox.host, inbox.port))
    scheduler = create_scheduler(gateway, scheduled_jobs(gateway))
    scheduler.start()
    workers = [
        asyncio.create_task(run_worker(gateway, f"{gateway.instance}/w{i}", stop))
        for i in range(gateway.settings.delivery.workers)
    ]
    where = f"http://{api.host}:{api.port}" if with_api else "no API"
    if inbox.enabled:
        where += f", secure inbox https://{inbox.host}:{inbox.port}/inbox"
    log.info("serving", extra={"event": "serving", "api": where, "workers": len(workers)})
    print(f"docgw serving ({where}) with {len(workers)} workers", flush=True)
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        gateway.work_available.set()
        await asyncio.gather(*workers, return_exceptions=True)
        for runner in runners:
            await runner.cleanup()

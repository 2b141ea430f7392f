"""A receiving peer for process-level tests: a real HTTP server on loopback, in its own thread,
that registers each (sender, document, recipient) once, however often it is delivered, like a
receiver that deduplicates. It can fail a share of requests (503) before or after registering.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Receiver:
    fail_rate: float = 0.0
    #: Share of requests that register the package and then answer 503 (outcome unknown).
    fail_after_commit_rate: float = 0.0
    seed: int = 7
    deliveries: Counter[tuple[str, str]] = field(default_factory=Counter)
    port: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/inbox"

    @property
    def registered(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self.deliveries)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        message = request.headers.get("X-Docgw-Message-Id", "")
        recipients = request.headers.get("X-Docgw-Recipients", "").split(",")
        if not body or not message:
            return web.json_response({"error": "empty"}, status=400)
        roll = self._rng.random()
        if roll < self.fail_rate:
            return web.json_response({"error": "busy"}, status=503)
        with self._lock:
            duplicate = any((message, r) in self.deliveries for r in recipients)
            for recipient in recipients:
                self.deliveries[(message, recipient)] += 1
        if roll < self.fail_rate + self.fail_after_commit_rate:
            return web.json_response({"error": "lost the answer"}, status=503)
        return web.json_response({"id": message, "duplicate": duplicate})

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/inbox", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def start(self) -> Receiver:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

"""The gateway's HTTP client session (every connector's but the secure endpoint's) keeps nothing
between calls: a peer that sets a cookie does not get it back."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


def test_a_cookie_a_peer_sets_is_not_sent_back(make_gateway: Any) -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.Response(text="ok")
        response.set_cookie("session", "abc")
        return response

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        # A host name: aiohttp's default jar ignores cookies from IP addresses anyway.
        url = f"http://localhost:{runner.addresses[0][1]}/"
        try:
            async with make_gateway() as gateway:
                assert gateway.http is not None
                for _ in range(2):
                    async with gateway.http.get(url) as response:
                        assert response.cookies["session"].value == "abc"
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    assert seen == [None, None]

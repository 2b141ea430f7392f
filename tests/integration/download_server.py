"""A child process for the download memory test: the API of the gateway configured by argv[1],
alone (no workers), on a loopback port it prints, until it is terminated."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from gateway.bootstrap import build
from gateway.settings import load_settings
from gateway.web.app import create_app


async def main(config: str) -> None:
    gateway = await build(load_settings(Path(config), {}))
    runner = web.AppRunner(create_app(gateway))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await gateway.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

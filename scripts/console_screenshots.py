"""Regenerate the screenshots of docs/howto/console.md: a throw-away gateway (SQLite, in a
temporary folder) with the console tests' sample messages, served on loopback, photographed by
Debian's chromium through Playwright at desktop and phone width.

    .venv/bin/python scripts/console_screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from console_support import (  # noqa: E402
    LOCAL_UNITS,
    PASSWORD,
    add_people,
    axis,
    seed,
    submit_many,
)
from integration_support import UNITS, register_all, write_config  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from gateway.bootstrap import build  # noqa: E402
from gateway.keystore import init_keys  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from gateway.store.database import migrate  # noqa: E402
from gateway.usecases import alerts  # noqa: E402
from gateway.web.app import create_app  # noqa: E402

OUT = REPO / "docs" / "howto" / "img"
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 320, "height": 720}}


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        init_keys(home / "keys", list(UNITS))
        config = write_config(
            home / "docgw.toml",
            database_url=f"sqlite+aiosqlite:///{home}/docgw-{uuid.uuid4().hex[:6]}.db",
            keys_dir=home / "keys",
            local_units=LOCAL_UNITS,
        )
        connector = axis()
        gateway = await build(load_settings(config, {}), connectors={"axis": connector})
        try:
            await migrate(gateway.engine)
            await register_all(gateway, home / "keys")
            async with TestClient(TestServer(create_app(gateway), host="127.0.0.1")) as client:
                seeded = await seed(gateway, client, connector)
                many = await submit_many(client, seeded.operator_token)
                await alerts.evaluate(gateway)
                await add_people(gateway)
                base = str(client.make_url("")).rstrip("/")
                pages = {
                    "now": "/console/",
                    "messages": "/console/messages",
                    "message": f"/console/messages/{seeded.failed}",
                    "attachments": f"/console/messages/{many}",
                    "units": "/console/units",
                    "channels": "/console/channels",
                    "alerts": "/console/alerts",
                    "jobs": "/console/jobs",
                }
                await shoot(base, pages)
        finally:
            await gateway.close()


async def shoot(base: str, pages: dict[str, str]) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        for size_name, viewport in SIZES.items():
            context = await browser.new_context(viewport=viewport)
            page = await context.new_page()
            await page.goto(f"{base}/console/login")
            await page.fill("#name", "quan-tri")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/console/")
            for name, path in pages.items():
                await page.goto(base + path)
                target = OUT / f"console-{name}-{size_name}.png"
                await page.screenshot(path=str(target), full_page=size_name == "desktop")
                print(target.relative_to(REPO))
            await context.close()
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())

"""The operator console in a real headless browser: Debian's chromium driven by Playwright for
Python (launched from /usr/bin/chromium; nothing is downloaded), against the gateway's app on
real loopback HTTP, on SQLite and PostgreSQL. It clicks through what an operator does, checks a
member's limits, escaping, CSRF, the phone layout and accessibility (vendored axe-core)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from console_support import (
    BULK_SUBJECT,
    FAILED_SUBJECT,
    HOSTILE_SUBJECT,
    LOCAL_UNITS,
    PASSWORD,
    add_people,
    axis,
    seed,
)
from integration_support import OTHER

from gateway.store import message_queries
from gateway.web.app import create_app

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE = {"width": 320, "height": 640}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is missing"),
]


def _debian_chromium_version() -> str:
    """The system browser's version: the test drives it, not a downloaded one."""
    return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout


async def log_in(page: Any, base: str, name: str) -> None:
    await page.goto(f"{base}/console/login")
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/")
    assert await page.locator("#now-panel #stuck").count() == 1  # the Now page, not an error


async def axe_violations(page: Any) -> list[str]:
    """Serious and critical axe-core violations of the page (evaluated through the DevTools
    protocol: the page's CSP, which forbids inline script, stays on)."""
    await page.evaluate(AXE.read_text(encoding="utf-8"))
    found = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)


async def no_horizontal_scroll(page: Any) -> bool:
    return bool(
        await page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def test_an_operator_and_a_member_use_the_console_in_a_browser(make_gateway: Any) -> None:
    connector = axis()

    async def scenario() -> None:
        async with (
            make_gateway(local_units=LOCAL_UNITS, connectors={"axis": connector}) as gateway,
            TestClient(TestServer(create_app(gateway), host="127.0.0.1")) as client,
            playwright_api.async_playwright() as playwright,
        ):
            seeded = await seed(gateway, client, connector)
            await add_people(gateway)
            base = str(client.make_url("")).rstrip("/")
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            assert browser.version.split(".")[0] in _debian_chromium_version()
            try:
                await operator_journey(browser, base, gateway, seeded)
                await member_limits(browser, base, seeded)
                await phone_and_accessibility(browser, base, seeded)
            finally:
                await browser.close()

    asyncio.run(scenario())


async def operator_journey(browser: Any, base: str, gateway: Any, seeded: Any) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await log_in(page, base, "quan-tri")
    # Now: the failed recipient, with the axis' reason.
    stuck = await page.inner_text("#stuck")
    assert FAILED_SUBJECT in stuck and "Lỗi" in stuck, stuck  # failed, in Vietnamese

    # Find the failed message by its subject typed without accents, lower case.
    await page.click("text=Văn bản")
    await page.fill("#f-text", "lien thong van ban")
    await page.click("form.filters button[type=submit]")
    # htmx swaps the list in place; expect() waits for it.
    await playwright_api.expect(page.locator("#message-list tbody tr")).to_have_count(1)
    await page.click(f"#message-list a:has-text('{FAILED_SUBJECT}')")
    await page.wait_for_url(f"{base}/console/messages/{seeded.failed}")
    assert await page.get_attribute("#message-state", "data-state") == "failed"
    assert await page.inner_text("#message-state") == "Lỗi"

    # Resend it with a reason: the state changes on the page, which is not reloaded.
    await page.evaluate("() => { window.__same_page = true; }")
    resend = page.locator("form[action$='/resend']")
    await resend.locator("input[name=reason]").fill("Trục đã hoạt động lại")
    await resend.locator("input[name=confirm]").check()
    await resend.locator("button").click()
    await page.wait_for_function(
        "() => document.querySelector('#message-state').dataset.state === 'queued'"
    )
    assert await page.evaluate("() => window.__same_page") is True
    audit = await page.inner_text("#audit")
    assert re.search(r"quan-tri\s+resend\s+failed → queued\s+Trục đã hoạt động lại", audit), audit

    # Bulk-cancel a selection.
    await page.goto(f"{base}/console/messages?text=bao+tri")
    for message_id in seeded.bulk:
        await page.check(f"input[name=id][value='{message_id}']")
    await page.select_option("#bulk-action", "cancel")
    await page.fill("#bulk-reason", "Gửi nhầm")
    await page.check("fieldset input[name=confirm]")
    await page.click("fieldset button[type=submit]")
    outcome = await page.inner_text("#bulk-results")
    assert outcome.count("Đã thực hiện") == 2 and outcome.count("Đã hủy") == 2
    async with gateway.engine.connect() as conn:
        for message_id in seeded.bulk:
            message = await message_queries.get_message(conn, message_id)
            assert message is not None and {r.state for r in message.recipients} == {"cancelled"}
    assert BULK_SUBJECT  # the two were found by their unaccented subject

    # Reply 03 (accepted) to the received document.
    await page.goto(f"{base}/console/messages/{seeded.received}")
    reply = page.locator("form[action$='/reply']")
    await reply.locator("select[name=code]").select_option("03")
    await reply.locator("input[name=reason]").fill("Đã tiếp nhận")
    await reply.locator("input[name=confirm]").check()
    await reply.locator("button").click()
    await page.wait_for_function(
        "() => (document.querySelector('#status-events') || document.body).textContent"
        ".includes('Đã tiếp nhận')"
    )
    async with gateway.engine.connect() as conn:
        found = await message_queries.list_messages(
            conn, message_queries.MessageFilter(kind="status", direction="out")
        )
    assert any(m.status_code == "03" and m.related_message_id == seeded.received for m in found)

    # A hostile subject is shown as text: no script ran, no element was made of it.
    await page.goto(f"{base}/console/messages/{seeded.hostile}")
    assert await page.inner_text("h1") == HOSTILE_SUBJECT
    assert await page.evaluate("() => window.__pwned") is None
    assert await page.locator("#pwned").count() == 0

    # A form posted without its CSRF token is refused (the session cookie alone is not enough).
    refused = await page.request.post(
        f"{base}/console/messages/{seeded.failed}/cancel",
        form={"reason": "x", "confirm": "yes"},
    )
    assert refused.status == 403 and "CSRF_INVALID" in await refused.text()
    async with gateway.engine.connect() as conn:
        message = await message_queries.get_message(conn, seeded.failed)
    assert message is not None and message.recipients[0].state != "cancelled"
    assert not [e for e in errors if "Content Security Policy" in e], errors
    for path in ("/console/users", "/console/tokens", "/console/messages?text=lien"):
        await page.goto(base + path)
        assert await axe_violations(page) == [], path
    await context.close()


async def member_limits(browser: Any, base: str, seeded: Any) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, base, "h14")
    await page.goto(f"{base}/console/units")
    tree = await page.inner_text("#unit-tree")
    assert OTHER in tree and LOCAL_UNITS[0] not in tree and LOCAL_UNITS[1] not in tree
    await page.goto(f"{base}/console/messages")
    assert "lien" not in (await page.inner_text("main")).lower()
    assert await page.locator("#message-list").count() == 0  # nothing of its unit
    for path in (f"/console/messages/{seeded.failed}", f"/console/units/{LOCAL_UNITS[0]}"):
        response = await page.goto(base + path)
        assert response is not None and response.status == 404, path
        assert "NOT_FOUND" in await page.inner_text("main")
    response = await page.goto(f"{base}/console/users")
    assert response is not None and response.status == 403
    await context.close()


async def phone_and_accessibility(browser: Any, base: str, seeded: Any) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await log_in(page, base, "van-hanh")
    pages = (
        "/console/",
        "/console/messages",
        f"/console/messages/{seeded.failed}",
        "/console/units",
        f"/console/units/{LOCAL_UNITS[0]}",
        "/console/account",
    )
    for path in pages:
        await page.goto(base + path)
        assert await no_horizontal_scroll(page), f"{path} scrolls sideways at 320 px"
        assert await axe_violations(page) == [], path
    await context.close()
    login = await browser.new_page()
    await login.goto(f"{base}/console/login")
    assert await axe_violations(login) == []
    await login.close()

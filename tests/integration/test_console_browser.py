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
    MANY_FILES,
    PASSWORD,
    add_people,
    axis,
    seed,
    submit_many,
)
from integration_support import OTHER

from gateway.store import message_queries
from gateway.usecases import alerts
from gateway.web.app import create_app

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE = {"width": 320, "height": 640}
#: Failed sign-ins from one address before it is refused (the browser's run sets it low).
IP_FAILURES = 3

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
            make_gateway(
                local_units=LOCAL_UNITS,
                connectors={"axis": connector},
                extra=f"[console]\nip_failures = {IP_FAILURES}\n",
            ) as gateway,
            TestClient(TestServer(create_app(gateway), host="127.0.0.1")) as client,
            playwright_api.async_playwright() as playwright,
        ):
            seeded = await seed(gateway, client, connector)
            many = await submit_many(client, seeded.operator_token)
            await alerts.evaluate(gateway)  # the failed recipient raises an alert
            await add_people(gateway)
            base = str(client.make_url("")).rstrip("/")
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            assert browser.version.split(".")[0] in _debian_chromium_version()
            try:
                await operator_journey(browser, base, gateway, seeded)
                await operations_journey(browser, base, seeded, many)
                await member_limits(browser, base, seeded, many)
                await unit_request_on_a_phone(browser, base)
                await phone_and_accessibility(browser, base, seeded, many)
                await address_throttled(browser, base)
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


async def act_with_reason(page: Any, row: Any, summary: str, reason: str) -> None:
    """Open the row's action, give the reason, confirm, submit (the page is reloaded)."""
    details = row.locator("details").filter(has=page.locator(f"summary:has-text('{summary}')"))
    if not await details.evaluate("d => d.open"):  # a paused channel's resume is open already
        await details.locator("summary").click()
    form = details.locator("form.reason-form")
    await form.locator("input[name=reason]").fill(reason)
    await form.locator("input[name=confirm]").check()
    async with page.expect_navigation():
        await form.locator("button").click()


async def operations_journey(browser: Any, base: str, seeded: Any, many: str) -> None:
    """An admin opens Jobs, Alerts and Channels, pauses and resumes a channel with a reason and
    sees it; a message page shows its signer, its PDF's verdict and every attachment."""
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, base, "quan-tri")
    assert "RECIPIENTS_FAILED" in await page.inner_text("#now-alerts")

    await page.click("nav.main >> text=Kênh")
    await page.wait_for_url(f"{base}/console/channels")
    axis_row = page.locator("tr[data-channel='axis']")
    assert await axis_row.locator("[data-state]").get_attribute("data-state") == "closed"
    await act_with_reason(page, axis_row, "Tạm dừng kênh", "Bảo trì trục đêm nay")
    assert await axis_row.locator("[data-state]").get_attribute("data-state") == "paused"
    assert "bởi quan-tri" in await axis_row.inner_text()
    assert "axis: Bảo trì trục đêm nay" in await page.inner_text("#recent-actions")
    await page.goto(f"{base}/console/")
    assert "Tạm dừng" in await page.inner_text("#now-channels")
    await page.goto(f"{base}/console/channels")
    await act_with_reason(page, axis_row, "Cho gửi lại", "Bảo trì xong")
    assert await axis_row.locator("[data-state]").get_attribute("data-state") == "recovering"
    recent = await page.inner_text("#recent-actions")
    assert "axis: Bảo trì xong" in recent and "axis: Bảo trì trục đêm nay" in recent
    assert await axe_violations(page) == [], "/console/channels"

    await page.click("nav.main >> text=Tác vụ định kỳ")
    job_row = page.locator("tr[data-job='console_sessions']")
    await act_with_reason(page, job_row, "Chạy ngay", "Dọn phiên cũ")
    assert "console_sessions" in await page.inner_text("#job-ran")
    assert await job_row.locator("[data-outcome]").get_attribute("data-outcome") == "ok"
    assert await axe_violations(page) == [], "/console/jobs"

    await page.click("nav.main >> text=Cảnh báo")
    alert_row = page.locator("#alert-list tr[data-alert]").first
    await act_with_reason(page, alert_row, "Ghi nhận", "Đang gọi trục")
    assert "đã ghi nhận bởi quan-tri" in await page.inner_text("#alert-list")
    assert await axe_violations(page) == [], "/console/alerts"

    # The received document: its signer, checked again, and its PDF's own verdict.
    await page.goto(f"{base}/console/messages/{seeded.received}")
    assert await page.get_attribute("#package-verdict", "data-valid") == "true"
    assert "CN=" in await page.inner_text("#signer")
    assert await page.locator("#documents [data-verdict]").count() >= 1
    # Every attachment of a document, each with its download; a view for the PDF and image.
    await page.goto(f"{base}/console/messages/{many}")
    listed = page.locator("#attachments tbody tr")
    await playwright_api.expect(listed).to_have_count(len(MANY_FILES))
    for number, (name, _, _) in enumerate(MANY_FILES, start=1):
        row = listed.nth(number - 1)
        assert name in await row.inner_text()
        link = row.locator("a[download]")
        assert await link.get_attribute("href") == f"/console/messages/{many}/attachments/{number}"
    assert await page.locator("#attachments a[href$='/view']").count() == 2
    image = await page.request.get(f"{base}/console/messages/{many}/attachments/2/view")
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"] == "inline"
    assert await axe_violations(page) == [], "message page"
    await context.close()


async def address_throttled(browser: Any, base: str) -> None:
    """Failed sign-ins from one address, whatever names are tried, refuse that address."""
    page = await browser.new_page()
    for n in range(IP_FAILURES):
        await page.goto(f"{base}/console/login")
        await page.fill("#name", f"khong-co-{n}")
        await page.fill("#password", "sai mat khau")
        await page.click("button[type=submit]")
        assert "LOGIN_FAILED" in await page.inner_text("[role=alert]")
    await page.goto(f"{base}/console/login")
    await page.fill("#name", "quan-tri")
    await page.fill("#password", PASSWORD)
    async with page.expect_response(f"{base}/console/login") as answer:
        await page.click("button[type=submit]")
    assert (await answer.value).status == 429
    assert "LOGIN_THROTTLED" in await page.inner_text("[role=alert]")
    await page.close()


async def member_limits(browser: Any, base: str, seeded: Any, many: str) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, base, "h14")
    await page.goto(f"{base}/console/units")
    tree = await page.inner_text("#unit-tree")
    assert OTHER in tree and LOCAL_UNITS[0] not in tree and LOCAL_UNITS[1] not in tree
    await page.goto(f"{base}/console/messages")
    assert "lien" not in (await page.inner_text("main")).lower()
    assert await page.locator("#message-list").count() == 0  # nothing of its unit
    for path in (
        f"/console/messages/{seeded.failed}",
        f"/console/units/{LOCAL_UNITS[0]}",
        f"/console/messages/{many}/attachments/1",
        f"/console/messages/{many}/attachments/2/view",
    ):
        response = await page.goto(base + path)
        assert response is not None and response.status == 404, path
        assert "NOT_FOUND" in await page.inner_text("main")
    response = await page.goto(f"{base}/console/users")
    assert response is not None and response.status == 403
    await context.close()


async def unit_request_on_a_phone(browser: Any, base: str) -> None:
    """A member asks for a unit under its own at 320 px; an admin approves it with a reason."""
    code = "000.01.00.H14"
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await log_in(page, base, "h14")
    await page.click("nav.main >> text=Yêu cầu đăng ký")
    await page.wait_for_url(f"{base}/console/requests")
    assert await no_horizontal_scroll(page), "/console/requests scrolls sideways at 320 px"
    assert await axe_violations(page) == [], "/console/requests"
    assert await page.input_value("#req-parent") == OTHER  # its own unit, prefilled
    await page.fill("#req-code", code)
    await page.fill("#req-name", "Phòng Tổng hợp")
    await page.click("#new-request button[type=submit]")
    await page.wait_for_url(re.compile(r".*/console/requests/[0-9]+$"))
    assert await page.get_attribute("#request [data-state]", "data-state") == "pending"
    assert await no_horizontal_scroll(page), "a request's page scrolls sideways at 320 px"
    assert await axe_violations(page) == [], "a request's page"
    url = page.url
    await context.close()

    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await log_in(page, base, "quan-tri")
    await page.goto(url)
    await page.fill("#approve-reason", "Đúng đơn vị trực thuộc")
    await page.check("#decide form[action$='/approve'] input[name=confirm]")
    await page.click("#decide form[action$='/approve'] button[type=submit]")
    await page.wait_for_selector("#decision")
    assert await page.get_attribute("#request [data-state]", "data-state") == "approved"
    assert "quan-tri" in await page.inner_text("#decision")
    await page.goto(f"{base}/console/units/{code}")
    assert "Duyệt yêu cầu" in await page.inner_text("#unit-history")
    for path in (f"/console/units/{code}", "/console/certificates", "/console/requests"):
        await page.goto(base + path)
        assert await no_horizontal_scroll(page), f"{path} scrolls sideways at 320 px"
        assert await axe_violations(page) == [], path
    await context.close()


async def on_a_phone(browser: Any, base: str, name: str, pages: tuple[str, ...]) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await log_in(page, base, name)
    for path in pages:
        await page.goto(base + path)
        assert await no_horizontal_scroll(page), f"{path} scrolls sideways at 320 px"
        assert await axe_violations(page) == [], path
    await context.close()


async def phone_and_accessibility(browser: Any, base: str, seeded: Any, many: str) -> None:
    await on_a_phone(browser, base, "quan-tri", ("/console/jobs", f"/console/messages/{many}"))
    await on_a_phone(browser, base, "van-hanh", (
        "/console/",
        "/console/messages",
        f"/console/messages/{seeded.failed}",
        "/console/units",
        f"/console/units/{LOCAL_UNITS[0]}",
        "/console/account",
        "/console/channels",
        "/console/alerts",
    ))  # fmt: skip
    login = await browser.new_page()
    await login.goto(f"{base}/console/login")
    assert await axe_violations(login) == []
    await login.close()

"""The console over real HTTP on loopback, on SQLite and PostgreSQL: sign-in, sessions (expiry,
idle time, logout, password change), throttling, CSRF, security headers, the member rule, the
CSV export and the accent-insensitive search; the ``docgw users`` command."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from console_support import (
    FAILED_SUBJECT,
    LOCAL_UNITS,
    MANY_FILES,
    PASSWORD,
    PNG,
    Client,
    add_people,
    axis,
    seed,
    submit_many,
)
from integration_support import EXAMPLES, SENDER, write_config

from gateway.cli import main
from gateway.store.tables import audit_events
from gateway.usecases import alerts, tokens, users
from gateway.web.app import create_app


@asynccontextmanager
async def console(make_gateway: Any, extra: str = "") -> AsyncIterator[tuple[Any, Client, Any]]:
    connector = axis()
    async with (
        make_gateway(
            local_units=LOCAL_UNITS, connectors={"axis": connector}, extra=extra
        ) as gateway,
        TestClient(TestServer(create_app(gateway))) as client,
    ):
        seeded = await seed(gateway, client, connector)
        await add_people(gateway)
        yield gateway, client, seeded


async def login_token(client: Client) -> str:
    page = await client.get("/console/login")
    found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert found is not None
    return found.group(1)


async def log_in(client: Client, name: str, password: str = PASSWORD) -> Any:
    token = await login_token(client)
    return await client.post(
        "/console/login",
        data={"csrf": token, "name": name, "password": password},
        allow_redirects=False,
    )


async def csrf_of(client: Client) -> str:
    page = await client.get("/console/account")
    found = re.search(r'name="csrf-token" content="([^"]+)"', await page.text())
    assert found is not None
    return found.group(1)


def test_sign_in_sessions_and_headers(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            # Not signed in: every page sends to the login page.
            response = await client.get("/console/messages", allow_redirects=False)
            assert response.status == 303 and response.headers["Location"] == "/console/login"
            # The login form itself needs its CSRF token (double-submit cookie).
            refused = await client.post(
                "/console/login", data={"name": "quan-tri", "password": PASSWORD}
            )
            assert refused.status == 403 and "CSRF_INVALID" in await refused.text()

            wrong = await log_in(client, "quan-tri", "not the password")
            assert wrong.status == 401 and "LOGIN_FAILED" in await wrong.text()
            unknown = await log_in(client, "nobody")
            assert unknown.status == 401 and "LOGIN_FAILED" in await unknown.text()

            signed = await log_in(client, "quan-tri")
            assert signed.status == 303
            cookie = next(c for c in signed.headers.getall("Set-Cookie") if "docgw_console=" in c)
            assert (
                "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
            )
            page = await client.get("/console/")
            assert page.status == 200
            headers = page.headers
            csp = headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp and headers["X-Frame-Options"] == "DENY"
            assert headers["Cache-Control"] == "no-store"
            assert "<script>" not in (await page.text()).split("</head>")[1]  # no inline script
            # The chart of attempts per hour: one sent (the document received later), one
            # refused (the failed one).
            assert "1 thành công · 1 không thành công" in await page.text()
            # Submission → sent per hour: the one recipient sent, its mean and longest time.
            latency = (await page.text()).split('id="latency"')[1]
            assert "1 nơi nhận đã gửi · trung bình" in latency and "lâu nhất" in latency

            # Idle for longer than [console] session_idle_minutes: the session has ended.
            idle = users.session_idle(gateway.settings.console)
            later = gateway.clock() + idle + dt.timedelta(seconds=1)
            gateway.clock = lambda: later
            response = await client.get("/console/", allow_redirects=False)
            assert response.status == 303 and response.headers["Location"] == "/console/login"

    asyncio.run(scenario())


def test_wrong_passwords_lock_the_account_for_a_while(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            limits = gateway.settings.console
            for _ in range(limits.lock_after):
                assert (await log_in(client, "van-hanh", "wrong password!")).status == 401
            # Locked: even the right password is refused, with its own code.
            locked = await log_in(client, "van-hanh")
            assert locked.status == 429 and "LOGIN_THROTTLED" in await locked.text()
            later = gateway.clock() + users.lock_for(limits) + dt.timedelta(seconds=1)
            gateway.clock = lambda: later
            assert (await log_in(client, "van-hanh")).status == 303
            async with gateway.engine.connect() as conn:
                failures = await conn.scalar(
                    sa.select(sa.func.count()).where(
                        audit_events.c.action == "login_failed",
                        audit_events.c.actor == "van-hanh",
                    )
                )
            assert failures == limits.lock_after

    asyncio.run(scenario())


def test_password_change_and_logout(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            await log_in(client, "van-hanh")
            token = await csrf_of(client)
            short = await client.post(
                "/console/account/password",
                data={"csrf": token, "current": PASSWORD, "new": "short"},
            )
            assert short.status == 422 and "PASSWORD_INVALID" in await short.text()
            changed = await client.post(
                "/console/account/password",
                data={"csrf": token, "current": PASSWORD, "new": "mot-mat-khau-moi-12"},
                allow_redirects=False,
            )
            assert changed.status == 303
            assert (await client.get("/console/", allow_redirects=False)).status == 200
            out = await client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
            assert out.status == 303
            assert (await client.get("/console/", allow_redirects=False)).status == 303
            assert (await log_in(client, "van-hanh")).status == 401
            assert (await log_in(client, "van-hanh", "mot-mat-khau-moi-12")).status == 303

            # A reset password must be changed before anything else.
            await users.reset_password(gateway, "h14", "dat-lai-mat-khau-12", actor="cli")
            client.session.cookie_jar.clear()
            assert (await log_in(client, "h14", "dat-lai-mat-khau-12")).status == 303
            response = await client.get("/console/messages", allow_redirects=False)
            assert response.status == 303 and response.headers["Location"] == "/console/account"
            # Past their lifetime, sessions are deleted by the scheduled job.
            later = gateway.clock() + users.session_lifetime(gateway.settings.console)
            gateway.clock = lambda: later
            assert await users.end_expired(gateway) >= 1
            assert (await client.get("/console/", allow_redirects=False)).status == 303

    asyncio.run(scenario())


def test_members_see_their_units_only_and_may_not_act(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (_, client, seeded):
            await log_in(client, "h14")
            token = await csrf_of(client)
            for path in (
                f"/console/messages/{seeded.failed}",
                f"/console/messages/{seeded.failed}/package",
                f"/console/messages/{seeded.failed}/state",
            ):
                response = await client.get(path)
                assert response.status == 404 and "NOT_FOUND" in await response.text(), path
            forbidden = await client.post(
                f"/console/messages/{seeded.failed}/resend",
                data={"csrf": token, "reason": "x", "confirm": "yes"},
            )
            assert forbidden.status == 403
            reply = await client.post(
                f"/console/messages/{seeded.received}/reply",
                data={"csrf": token, "code": "03", "reason": "x", "confirm": "yes"},
            )
            assert reply.status == 404
            exported = await client.get("/console/messages.csv")
            rows = list(csv.reader(io.StringIO((await exported.text()).lstrip("\ufeff"))))
            assert len(rows) == 1  # the header only: nothing of its unit

    asyncio.run(scenario())


def test_search_folds_accents_and_the_csv_export_follows_the_filter(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (_, client, seeded):
            await log_in(client, "van-hanh")
            found = await client.get("/console/messages", params={"text": "LIEN THONG"})
            text = await found.text()
            assert FAILED_SUBJECT in text and "Bảo trì" not in text
            # The hostile subject is escaped in the HTML.
            page = await client.get(f"/console/messages/{seeded.hostile}")
            assert "&lt;script&gt;window.__pwned" in await page.text()
            assert "<script>window.__pwned" not in await page.text()
            exported = await client.get("/console/messages.csv", params={"text": "bao tri"})
            assert exported.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO((await exported.text()).lstrip("\ufeff"))))
            assert sorted(r["id"] for r in rows) == sorted(seeded.bulk)
            assert all(r["state"] == "queued" for r in rows)
            bad = await client.get("/console/messages", params={"state": "nope"})
            assert bad.status == 400 and "BAD_REQUEST" in await bad.text()
            confirm = await client.post(
                f"/console/messages/{seeded.failed}/resend",
                data={"csrf": await csrf_of(client), "reason": "x"},
            )
            assert confirm.status == 400 and "confirm" in await confirm.text()
            # Bulk over everything the filter matches (not ticked one by one).
            bulk = await client.post(
                "/console/messages/bulk",
                data={
                    "csrf": await csrf_of(client),
                    "scope": "filter",
                    "filter": "text=bao+tri",
                    "action": "cancel",
                    "reason": "Gửi nhầm",
                    "confirm": "yes",
                },
            )
            page_text = await bulk.text()
            assert bulk.status == 200 and page_text.count("Đã thực hiện") == 2
            assert all(message_id in page_text for message_id in seeded.bulk)

    asyncio.run(scenario())


def test_the_users_command(
    tmp_path: Path, database_url: str, keys_dir: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``docgw users …`` through the command's own entry point (in this process: each run of the
    installed command would load docgw again, seconds per call on a busy machine)."""
    config = write_config(
        tmp_path / "docgw.toml", database_url=database_url, keys_dir=keys_dir, local_units=()
    )

    def docgw(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["--config", str(config), "users", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = docgw("add", "an", "--role", "member", "--unit", "000.00.00.H41")
    assert code == 0, err
    assert re.search(r"password \(shown once\): \S{12,}", out)
    code, out, _ = docgw(
        "add", "binh", "--role", "operator", "--password-stdin", stdin="mat-khau-12345\n"
    )
    assert code == 0 and "shown once" not in out
    code, _, err = docgw("add", "binh", "--role", "operator")
    assert code == 1 and "exists already" in err
    code, _, err = docgw("add", "chi", "--role", "member")
    assert code == 1 and "[unit]" in err
    assert docgw("disable", "binh")[0] == 0
    assert docgw("reset", "an")[0] == 0
    listing = docgw("list")[1]
    assert "an  member  000.00.00.H41  vi  active" in listing
    assert "binh  operator  -  vi  disabled" in listing
    code, _, err = docgw("disable", "nobody")
    assert code == 1 and "NOT_FOUND" in err


def test_an_admin_creates_and_revokes_api_tokens_in_the_console(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            await log_in(client, "quan-tri")
            token = await csrf_of(client)
            made = await client.post(
                "/console/tokens", data={"csrf": token, "name": "dms", "role": "operator"}
            )
            assert made.status == 201
            found = re.search(r"<code>(dgw_[^<]+)</code>", await made.text())
            assert found is not None
            api = {"Authorization": f"Bearer {found.group(1)}"}
            assert (await client.get("/api/v1/messages", headers=api)).status == 200
            revoked = await client.post("/console/tokens/dms/revoke", data={"csrf": token})
            assert revoked.status == 200 and "dms" in await revoked.text()
            assert (await client.get("/api/v1/messages", headers=api)).status == 401
            async with gateway.engine.connect() as conn:
                actors = set(
                    (
                        await conn.execute(
                            sa.select(audit_events.c.actor).where(
                                audit_events.c.action.in_(("token_created", "token_revoked")),
                                audit_events.c.reason == "dms",
                            )
                        )
                    ).scalars()
                )
            assert actors == {"quan-tri"}
            # An operator may not open the admin pages.
            client.session.cookie_jar.clear()
            await log_in(client, "van-hanh")
            assert (await client.get("/console/tokens")).status == 403

    asyncio.run(scenario())


def test_a_member_in_english_answers_for_its_own_unit(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, seeded):
            await log_in(client, "nghe-an")  # a member of the recipient unit, language en
            page = await client.get("/console/")
            text = await page.text()
            assert '<html lang="en">' in text and "Needs a person" in text
            listed = await client.get("/console/messages", params={"direction": "in"})
            assert seeded.received in await listed.text()
            token = await csrf_of(client)
            replied = await client.post(
                f"/console/messages/{seeded.received}/reply",
                data={"csrf": token, "code": "05", "reason": "Đang xử lý", "confirm": "yes"},
                allow_redirects=False,
            )
            assert replied.status == 303
            wrong_side = await client.post(
                f"/console/messages/{seeded.received}/reply",
                data={"csrf": token, "code": "13", "reason": "x", "confirm": "yes"},
            )
            assert wrong_side.status == 409 and "CONFLICT" in await wrong_side.text()
            async with gateway.engine.connect() as conn:
                actors = set(
                    (
                        await conn.execute(
                            sa.select(audit_events.c.actor).where(
                                audit_events.c.reason.like("status 05:%")
                            )
                        )
                    ).scalars()
                )
            assert actors == {"nghe-an"}

    asyncio.run(scenario())


async def _audited(gateway: Any, action: str) -> list[tuple[str, str]]:
    async with gateway.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_events.c.actor, audit_events.c.reason).where(
                audit_events.c.action == action
            )
        )
        return [(row.actor, row.reason) for row in rows]


def test_jobs_alerts_and_channels_pages_act_with_a_reason(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            await alerts.evaluate(gateway)  # the failed recipient raises RECIPIENTS_FAILED
            await log_in(client, "quan-tri")
            token = await csrf_of(client)
            now = await (await client.get("/console/")).text()
            assert 'id="now-channels"' in now and "Mọi kênh đều bình thường." in now
            assert 'id="now-alerts"' in now and "RECIPIENTS_FAILED" in now
            assert 'id="now-jobs"' in now

            # Without the session's CSRF token nothing is changed.
            forged = await client.post(
                "/console/channels/axis/pause", data={"reason": "x", "confirm": "yes"}
            )
            assert forged.status == 403 and "CSRF_INVALID" in await forged.text()
            assert await _audited(gateway, "channel_paused") == []
            # A channel paused needs a reason and the confirmation; then it is audited.
            no_reason = await client.post(
                "/console/channels/axis/pause", data={"csrf": token, "confirm": "yes"}
            )
            assert no_reason.status == 422 and "REASON_REQUIRED" in await no_reason.text()
            paused = await client.post(
                "/console/channels/axis/pause",
                data={"csrf": token, "reason": "Bảo trì trục", "confirm": "yes"},
            )
            page = await paused.text()
            assert paused.status == 200 and 'data-state="paused"' in page
            assert "axis: Bảo trì trục" in page  # the recent actions
            assert await _audited(gateway, "channel_paused") == [("quan-tri", "axis: Bảo trì trục")]
            now = await (await client.get("/console/now/panel")).text()
            assert "Tạm dừng" in now and "bởi quan-tri" in now
            unit = await client.post(
                "/console/channels/axis/pause",
                data={"csrf": token, "reason": "x", "confirm": "yes", "unit": "000.00.00.H41"},
            )
            assert unit.status == 400 and "unit" in await unit.text()
            resumed = await client.post(
                "/console/channels/axis/resume",
                data={"csrf": token, "reason": "Trục chạy lại", "confirm": "yes"},
            )
            assert 'data-state="recovering"' in await resumed.text()
            assert await _audited(gateway, "channel_resumed") == [
                ("quan-tri", "axis: Trục chạy lại")
            ]

            # A job run now, with its outcome and the audit event.
            jobs_page = await (await client.get("/console/jobs")).text()
            assert 'data-job="recover_expired"' in jobs_page
            ran = await client.post(
                "/console/jobs/console_sessions/run",
                data={"csrf": token, "reason": "Dọn phiên", "confirm": "yes"},
            )
            text = await ran.text()
            assert ran.status == 200 and 'id="job-ran"' in text and "Thành công" in text
            assert await _audited(gateway, "job_run_requested") == [
                ("quan-tri", "console_sessions: Dọn phiên")
            ]
            unknown = await client.post(
                "/console/jobs/nope/run", data={"csrf": token, "reason": "x", "confirm": "yes"}
            )
            assert unknown.status == 404

            # An open alert acknowledged.
            listed = await client.get("/console/alerts")
            found = re.search(r'data-alert="([^"]+)"', await listed.text())
            assert found is not None
            acked = await client.post(
                f"/console/alerts/{found.group(1)}/ack",
                data={"csrf": token, "reason": "Đang xử lý", "confirm": "yes"},
            )
            assert acked.status == 200 and "đã ghi nhận bởi quan-tri" in await acked.text()
            assert await _audited(gateway, "alert_acknowledged") == [
                ("quan-tri", f"{found.group(1)}: Đang xử lý")
            ]
            resolved = await client.get("/console/alerts", params={"state": "resolved"})
            assert resolved.status == 200
            bad = await client.get("/console/alerts", params={"state": "nope"})
            assert bad.status == 400

            # The API's roles: an operator has channels and alerts, not jobs; a member none.
            client.session.cookie_jar.clear()
            await log_in(client, "van-hanh")
            assert (await client.get("/console/channels")).status == 200
            assert (await client.get("/console/alerts")).status == 200
            assert (await client.get("/console/jobs")).status == 403
            client.session.cookie_jar.clear()
            await log_in(client, "h14")
            for path in ("/console/channels", "/console/alerts", "/console/jobs"):
                assert (await client.get(path)).status == 403, path
            assert 'id="now-alerts"' not in await (await client.get("/console/")).text()

    asyncio.run(scenario())


def test_the_message_page_shows_the_signature_and_every_attachment(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with console(make_gateway) as (_, client, seeded):
            many = await submit_many(client, seeded.operator_token)
            await log_in(client, "van-hanh")
            page = await (await client.get(f"/console/messages/{seeded.received}")).text()
            assert 'id="package-verdict" data-valid="true"' in page
            signer = page.split('id="signer"')[1].split("</dl>")[0]
            assert "CN=" in signer and "Thuật toán" in signer
            assert "Chứng thư đã đăng ký của đơn vị" in signer
            assert 'data-verdict="' in page.split('id="documents"')[1]

            page = await (await client.get(f"/console/messages/{many}")).text()
            listed = page.split('id="attachments"')[1].split("</section>")[0]
            for number, (name, _, _) in enumerate(MANY_FILES, start=1):
                assert name in listed
                assert f"/console/messages/{many}/attachments/{number}" in listed
            assert "attachments/1/view" in listed and "attachments/2/view" in listed
            assert "attachments/3/view" not in listed  # not a type a browser may show
            image = await client.get(f"/console/messages/{many}/attachments/2/view")
            assert image.headers["Content-Type"] == "image/png"
            assert image.headers["Content-Disposition"] == "inline"
            assert "default-src 'none'" in image.headers["Content-Security-Policy"]
            assert await image.read() == PNG
            pdf = await client.get(f"/console/messages/{many}/attachments/1/view")
            assert pdf.headers["Content-Type"] == "application/pdf"
            # HTML asked to be shown is downloaded instead, as bytes of no type.
            html = await client.get(f"/console/messages/{many}/attachments/3/view")
            assert html.headers["Content-Type"] == "application/octet-stream"
            assert html.headers["Content-Disposition"].startswith("attachment")

            # A member of another unit gets the API's 404 for each of them.
            client.session.cookie_jar.clear()
            await log_in(client, "h14")
            for path in ("attachments/2", "attachments/2/view", "attachments/1/view"):
                response = await client.get(f"/console/messages/{many}/{path}")
                assert response.status == 404, path

    asyncio.run(scenario())


def test_sign_ins_are_throttled_per_address(make_gateway: Any) -> None:
    extra = '[console]\nip_failures = 3\ntrusted_proxies = ["127.0.0.1"]\n'

    async def scenario() -> None:
        async with console(make_gateway, extra) as (_, client, _):
            first = {"X-Forwarded-For": "203.0.113.5"}

            async def attempt(name: str, password: str, headers: dict[str, str]) -> Any:
                token = await login_token(client)
                return await client.post(
                    "/console/login",
                    data={"csrf": token, "name": name, "password": password},
                    headers=headers,
                    allow_redirects=False,
                )

            # Names that do not exist: no account is locked, the address is counted.
            for n in range(3):
                assert (await attempt(f"khong-co-{n}", "sai mat khau", first)).status == 401
            refused = await attempt("quan-tri", PASSWORD, first)
            assert refused.status == 429 and "LOGIN_THROTTLED" in await refused.text()
            # Another address (through the trusted proxy) is not.
            other = await attempt("quan-tri", PASSWORD, {"X-Forwarded-For": "203.0.113.6"})
            assert other.status == 303

    asyncio.run(scenario())


def test_a_classified_document_shows_its_content_to_its_own_unit_only(make_gateway: Any) -> None:
    """Staff see that a classified document exists, not its attachments (their names are
    content) nor its re-checked package; its own unit sees them where the gateway opens its
    sealed copy (profile secure), as the API serves them (downloads.py)."""

    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            own = await tokens.create_token(gateway, name="g22", role="member", unit_code=SENDER)
            meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
            meta["classification"] = "mat"
            data = aiohttp.FormData()
            data.add_field("metadata", json.dumps(meta, ensure_ascii=False))
            name, content, content_type = MANY_FILES[1]
            data.add_field("attachment", content, filename=name, content_type=content_type)
            submitted = await client.post(
                "/api/v1/messages", data=data, headers={"Authorization": f"Bearer {own}"}
            )
            assert submitted.status == 201, await submitted.text()
            secret = str((await submitted.json())["id"])
            await users.add_user(
                gateway, name="g22", role="member", units=[SENDER], password=PASSWORD, actor="t"
            )

            await log_in(client, "van-hanh")
            page = await (await client.get(f"/console/messages/{secret}")).text()
            assert "Nội dung văn bản mật chỉ dành cho đơn vị nhận." in page
            assert name not in page and 'id="package-verdict"' not in page
            view = await client.get(f"/console/messages/{secret}/attachments/1/view")
            assert view.status == 403 and "CLASSIFIED_READER_REFUSED" in await view.text()

            client.session.cookie_jar.clear()
            await log_in(client, "g22")
            page = await (await client.get(f"/console/messages/{secret}")).text()
            assert name not in page  # a standard gateway does not open it, even for its unit
            gateway.settings = gateway.settings.model_copy(
                update={
                    "gateway": gateway.settings.gateway.model_copy(update={"profile": "secure"})
                }
            )
            page = await (await client.get(f"/console/messages/{secret}")).text()
            assert name in page and 'id="package-verdict" data-valid="true"' in page
            view = await client.get(f"/console/messages/{secret}/attachments/1/view")
            assert view.headers["Content-Type"] == "image/png" and await view.read() == PNG

    asyncio.run(scenario())

"""Health reasons, alerts and the channels' circuit breakers, with real parts: SQLite and
PostgreSQL, docgw's VxpConnector against a closed port and then the axis simulator, an aiosmtpd
SMTP server and an aiohttp webhook receiver on loopback, and ``docgw`` run as a process.

* A channel pointing at a closed port: its breaker opens after ``breaker_failures`` transport
  failures and later rounds burn no attempt; ``/healthz`` says degraded (CHANNEL_DOWN, 200); the
  alert is stored once however often the rules run, mailed and POSTed (signed). The axis comes up
  on that port: a probe, the backlog drains, health is ok again, the alert resolves and the
  resolution is mailed and POSTed.
* A simulator outage (``down_until``) with a backlog: nothing is claimed while the breaker is
  open; after recovery the backlog drains in slices of ``drain_batch``.
* A scheduled job failing in a row (a drop folder whose root is gone): JOB_FAILING.
* Operators pause and resume a channel over the API and the CLI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from integration_support import OTHER, RECIPIENT, SENDER, write_config
from secure_peers import send

from connectors.base import Delivery, PeerUnavailable, Receipt
from connectors.fake import FakeConnector, Scripted
from connectors.simulators.axis import AxisFaults, AxisState, running_axis
from connectors.vxp import VxpConnector
from gateway.bootstrap import Gateway
from gateway.keystore import create_ca, issue_unit_certificate
from gateway.scheduler import create_scheduler
from gateway.store import job_queries
from gateway.store.records import UnitRecord
from gateway.store.tables import attempts, job_ticks, recipients
from gateway.usecases import alerts, breakers, delivery, registry, tokens
from gateway.usecases.jobs import scheduled_jobs
from gateway.web.app import create_app

A_SYSTEM, B_SYSTEM = "he-thong-a", "he-thong-b"
A_SECRET, B_SECRET = b"secret-of-a", b"secret-of-b"
HOOK_SECRET = "alert-hook-secret"
DOCGW = Path(sys.executable).with_name("docgw")


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- receivers on loopback


@dataclass
class Inbox:
    """aiosmtpd's handler: every message the SMTP server accepted."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@dataclass
class Hooks:
    """What the webhook receiver got, each checked as docs/howto/operate.md says."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    forged: int = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers["Docgw-Timestamp"]
        mac = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest("v1=" + mac.hexdigest(), request.headers["Docgw-Signature"]):
            self.forged += 1
            return web.Response(status=401)
        self.bodies.append(json.loads(body))
        return web.Response(status=204)


@asynccontextmanager
async def receivers() -> AsyncIterator[tuple[Inbox, Hooks, int, str]]:
    """An SMTP server and a webhook receiver; (inbox, hooks, SMTP port, hook URL)."""
    inbox, hooks = Inbox(), Hooks()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    app = web.Application()
    app.router.add_post("/alerts", hooks.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield inbox, hooks, smtp_port, f"http://127.0.0.1:{port}/alerts"
    finally:
        await runner.cleanup()
        smtp.stop()


def alert_settings(smtp_port: int, **alerts_extra: object) -> str:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in alerts_extra.items())
    return (
        f'[reports]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_starttls = false\n'
        f'mail_from = "docgw@example.vn"\nmail_to = ["bao-cao@example.vn"]\n'
        f'[alerts]\nmail_to = ["truc-ban@example.vn"]\n{lines}'
    )


def with_hook(gateway: Gateway, url: str) -> None:
    """The alert webhook, with its secret as the environment gives it
    (DOCGW_ALERTS__WEBHOOK_SECRET: the test's gateways read no environment)."""
    settings = gateway.settings
    hook = settings.alerts.model_copy(update={"webhook_url": url, "webhook_secret": HOOK_SECRET})
    gateway.settings = settings.model_copy(update={"alerts": hook})


def vxp(url: str, session: aiohttp.ClientSession) -> VxpConnector:
    return VxpConnector(
        name="axis", endpoint=url, system_id=A_SYSTEM, secret=A_SECRET, session=session,
        timeout=2.0, attempts=1,
    )  # fmt: skip


def axis_state() -> AxisState:
    state = AxisState(seed=3)
    state.add_system(A_SYSTEM, A_SECRET, [SENDER])
    state.add_system(B_SYSTEM, B_SECRET, [RECIPIENT])
    return state


def shift(gateway: Gateway, seconds: float) -> None:
    """The gateway's clock runs ``seconds`` ahead of real time from now on."""
    gateway.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


async def beat(gateway: Gateway) -> None:
    async with gateway.engine.begin() as conn:
        await job_queries.heartbeat(conn, "w", now=gateway.clock())


async def attempt_counts(gateway: Gateway) -> dict[str, tuple[str, int]]:
    async with gateway.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(recipients.c.message_id, recipients.c.state, recipients.c.attempt_count)
        )
        return {row.message_id: (row.state, row.attempt_count) for row in rows}


async def rounds(gateway: Gateway, n: int) -> int:
    claimed = 0
    for _ in range(n):
        claimed += await delivery.deliver_due(gateway, "w")
        await asyncio.sleep(0.06)  # past the retry delay: every failed recipient is due again
    return claimed


# ------------------------------------------------------------------------------------- tests


def test_a_channel_down_degrades_health_and_alerts_by_mail_and_webhook_then_both_clear(
    make_gateway: Any,
) -> None:
    axis_port = free_port()  # nothing listens there yet

    async def scenario() -> None:
        async with (
            receivers() as (inbox, hooks, smtp_port, hook_url),
            aiohttp.ClientSession() as session,
            make_gateway(
                connectors={"axis": vxp(f"http://127.0.0.1:{axis_port}", session)},
                extra=alert_settings(smtp_port, breaker_failures=2, disk_full_ratio=1.0),
            ) as gw,
        ):
            with_hook(gw, hook_url)
            operator = await tokens.create_token(gw, name="truc-ban", role="operator")
            sent = [await send(gw, "thuong", f"9{i}") for i in range(3)]
            await beat(gw)
            client = TestClient(TestServer(create_app(gw)))
            await client.start_server()
            try:
                health = await client.get("/healthz")
                assert (await health.json())["status"] == "ok"

                # Three sends fail on the closed port: the breaker opens; later rounds claim
                # nothing, so no recipient burns more than that one attempt.
                assert await rounds(gw, 1) == 3
                assert await rounds(gw, 4) == 0
                assert {s: n for s, n in (await attempt_counts(gw)).values()} == {
                    "retry_scheduled": 1
                }
                async with gw.engine.connect() as conn:
                    assert await conn.scalar(sa.select(sa.func.count()).select_from(attempts)) == 3

                health = await client.get("/healthz")
                assert health.status == 200  # serving: the API stays in rotation
                body = await health.json()
                assert body["status"] == "degraded"
                [reason] = body["reasons"]
                assert reason["code"] == "CHANNEL_DOWN" and reason["subject"] == "axis"
                assert "Kênh axis không gửi được" in reason["vi"]
                assert body["channels"][0]["state"] == "open"

                # The rules run twice: one alert, told once each way.
                for _ in range(2):
                    await alerts.evaluate(gw)
                [mail] = inbox.messages
                assert mail["Subject"] == "[docgw] CẢNH BÁO / ALERT CHANNEL_DOWN: axis"
                assert mail["To"] == "truc-ban@example.vn"
                assert "Kênh axis không gửi được" in mail.get_content()
                [posted] = hooks.bodies
                assert posted["type"] == "alert.open" and hooks.forged == 0
                assert posted["alert"]["rule"] == "CHANNEL_DOWN"
                listed = await client.get(
                    "/api/v1/alerts?state=open", headers={"Authorization": f"Bearer {operator}"}
                )
                [item] = (await listed.json())["items"]
                assert item["id"] == posted["alert"]["id"] and item["severity"] == "critical"

                # The axis comes up on that port; the next probe is due.
                async with running_axis(axis_state(), port=axis_port):
                    shift(gw, 120)
                    await beat(gw)
                    assert await rounds(gw, 1) == 1  # the probe only
                    assert await rounds(gw, 1) == 2  # the backlog, in one drain slice
                    assert await rounds(gw, 1) == 0
                states = await attempt_counts(gw)
                assert {m: states[m] for m in sent} == dict.fromkeys(sent, ("sent", 2))

                body = await (await client.get("/healthz")).json()
                assert (body["status"], body["reasons"]) == ("ok", [])
                assert body["channels"] == []  # closed, nothing counted: no row
                assert await alerts.evaluate(gw) == []
                assert [m["Subject"] for m in inbox.messages][1:] == [
                    "[docgw] ĐÃ HẾT / RESOLVED CHANNEL_DOWN: axis"
                ]
                assert [b["type"] for b in hooks.bodies] == ["alert.open", "alert.resolved"]
                assert hooks.bodies[1]["alert"]["resolved_at"] is not None
            finally:
                await client.close()

    run(scenario)


def test_an_axis_outage_opens_the_breaker_and_the_backlog_drains_at_a_bounded_rate(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        state = axis_state()
        state.set_faults(AxisFaults(down_until=time.time() + 3600))
        async with (
            running_axis(state) as url,
            aiohttp.ClientSession() as session,
            make_gateway(
                connectors={"axis": vxp(url, session)},
                extra="[alerts]\nbreaker_failures = 1\ndrain_batch = 4\n"
                "drain_interval_seconds = 30\n",
            ) as gw,
        ):
            first = await send(gw, "thuong", "100")
            assert await rounds(gw, 1) == 1  # 503: the breaker opens
            backlog = [await send(gw, "thuong", f"2{i:02}") for i in range(9)]
            assert await rounds(gw, 3) == 0
            counts = await attempt_counts(gw)
            assert counts[first] == ("retry_scheduled", 1)
            assert {counts[m] for m in backlog} == {("queued", 0)}  # no attempt burned
            assert state.counters["faults_down"] == 1

            state.set_faults(AxisFaults())  # the axis is back
            shift(gw, 120)  # the probe is due
            assert await rounds(gw, 1) == 1  # the probe
            # Slices of drain_batch, one per drain interval, until one finds less.
            slices = []
            for step in range(4):
                shift(gw, 120 + 30 * (step + 1))
                slices.append(await rounds(gw, 1))
            assert slices == [4, 4, 1, 0]
            assert {s for s, _ in (await attempt_counts(gw)).values()} == {"sent"}
            assert len(state.sent) == 10

    run(scenario)


def test_a_job_failing_in_a_row_makes_health_degraded(make_gateway: Any) -> None:
    """The axis' directory sync, against a closed port, then against the simulator there."""
    axis_port = free_port()
    url = f"http://127.0.0.1:{axis_port}"

    async def scenario() -> None:
        async with (
            aiohttp.ClientSession() as session,
            make_gateway(
                connectors={"axis": vxp(url, session)},
                extra=f'[channels.axis]\nkind = "vxp"\nendpoint = "{url}"\n'
                'system_id = "he-thong-a"\nsecret = "only-for-this-test"\n'
                "directory_sync_hours = 24\n[alerts]\njob_failures = 2\ndisk_full_ratio = 1.0\n",
            ) as gw,
        ):
            await beat(gw)
            job = create_scheduler(gw, scheduled_jobs(gw)).get_job("directory:axis").func

            async def sync() -> None:
                """The job at its next (daily) tick: on PostgreSQL a tick runs once across
                processes, so the test forgets the claim of the last one."""
                async with gw.engine.begin() as conn:
                    await conn.execute(job_ticks.delete())
                await job()

            await sync()
            client = TestClient(TestServer(create_app(gw)))
            await client.start_server()
            try:
                assert (await (await client.get("/healthz")).json())["reasons"] == []
                await sync()  # the second failure in a row
                body = await (await client.get("/healthz")).json()
                [reason] = body["reasons"]
                assert (reason["code"], reason["subject"]) == ("JOB_FAILING", "directory:axis")
                assert "failed 2 times in a row" in reason["en"]
                assert "lỗi 2 lần liên tiếp" in reason["vi"]
                [alert] = await alerts.evaluate(gw)
                assert (alert.rule, alert.subject) == ("JOB_FAILING", "directory:axis")

                async with running_axis(axis_state(), port=axis_port):
                    await sync()  # succeeds: the streak ends
                assert (await (await client.get("/healthz")).json())["status"] == "ok"
                assert await alerts.evaluate(gw) == []
            finally:
                await client.close()

    run(scenario)


def test_operators_pause_and_resume_a_channel_over_the_api_and_the_cli(
    make_gateway: Any, tmp_path: Path, keys_dir: Path, database_url: str
) -> None:
    async def scenario() -> None:
        async with make_gateway(extra='[channels.axis]\nkind = "fake"\n') as gw:
            admin = await tokens.create_token(gw, name="admin", role="admin")
            auth = {"Authorization": f"Bearer {admin}"}
            message = await send(gw, "thuong", "200")
            async with TestClient(TestServer(create_app(gw))) as client:
                paused = await client.post("/api/v1/channels/axis/pause", headers=auth)
                assert (await paused.json())["state"] == "paused"
                assert await delivery.deliver_due(gw, "w") == 0
                assert (await attempt_counts(gw))[message] == ("queued", 0)
                body = await (await client.get("/healthz")).json()
                assert [r["code"] for r in body["reasons"]] == ["NO_WORKER_ALIVE", "CHANNEL_PAUSED"]
                metrics = await (await client.get("/metrics")).text()
                assert 'docgw_channel_breaker{channel="axis",state="paused",unit=""} 1.0' in metrics
                assert 'docgw_channel_breaker{channel="axis",state="closed",unit=""} 0.0' in metrics
                unknown = await client.post("/api/v1/channels/nowhere/pause", headers=auth)
                assert (unknown.status, (await unknown.json())["code"]) == (404, "NOT_FOUND")
                bad = await client.post(
                    "/api/v1/channels/axis/pause", json={"unit": RECIPIENT}, headers=auth
                )
                assert (bad.status, (await bad.json())["code"]) == (400, "BAD_REQUEST")
                resumed = await client.post("/api/v1/channels/axis/resume", headers=auth)
                assert (await resumed.json())["state"] == "recovering"
                assert await delivery.deliver_due(gw, "w") == 1
                assert (await attempt_counts(gw))[message] == ("sent", 1)

    run(scenario)

    # The CLI: the same use cases, on the same database.
    config = write_config(
        tmp_path / "cli.toml", database_url=database_url, keys_dir=keys_dir,
        local_units=(SENDER,), extra='[channels.axis]\nkind = "fake"\n',
    )  # fmt: skip

    def docgw(*args: str) -> str:
        done = subprocess.run(
            [str(DOCGW), "--config", str(config), *args],
            capture_output=True, text=True, timeout=60, env={**os.environ, "USER": "lan"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "tạm dừng / paused" in docgw("channels", "pause", "axis", "--as", "lan")
    listed = json.loads(docgw("channels", "list", "--json"))
    assert (listed[0]["state"], listed[0]["changed_by"]) == ("paused", "cli:lan")
    assert "axis  tạm dừng / paused" in docgw("channels", "list")
    assert "đang phục hồi / recovering" in docgw("channels", "resume", "axis")
    assert "Không có cảnh báo nào" in docgw("alerts")
    # No worker beats here: the rules, run from the CLI, raise that alert; an operator acks it.
    [alert] = json.loads(docgw("alerts", "--evaluate", "--json"))
    assert (alert["rule"], alert["state"], alert["severity"]) == (
        "NO_WORKER_ALIVE",
        "open",
        "critical",
    )
    assert "Đã ghi nhận" in docgw("alerts", "ack", alert["id"], "--as", "lan")
    listed_text = docgw("alerts")
    assert "đang mở / open" in listed_text and "acked by cli:lan" in listed_text
    assert "Không có tiến trình gửi nào đang chạy." in listed_text


def test_the_other_rules_raise_dedupe_and_a_webhook_down_is_told_later(make_gateway: Any) -> None:
    """A recipient refused for good, a partner certificate expiring within 30 days, a disk over
    the ratio; the webhook receiver down at first: the alert is stored and mailed, its POST waits
    (notify_error) and goes at the next evaluation once the receiver is up."""
    partner = "000.00.00.H53"
    fake = FakeConnector(name="axis", script=[Scripted.REFUSED])
    ca = create_ca()
    short_lived = issue_unit_certificate(ca, partner, days=20)
    hook_port = free_port()

    async def scenario() -> None:
        async with (
            receivers() as (inbox, _, smtp_port, _url),
            make_gateway(
                connectors={"axis": fake},
                extra=alert_settings(smtp_port, disk_full_ratio=0.000001),
            ) as gw,
        ):
            with_hook(gw, f"http://127.0.0.1:{hook_port}/alerts")  # nothing listens yet
            await beat(gw)
            await registry.register_unit(
                gw,
                UnitRecord(code=partner, name="Sở Nội vụ", channel="axis"),
                certificate_pem=short_lived.cert_pem.decode(),
                actor="test",
            )
            await send(gw, "thuong", "300")
            await delivery.deliver_due(gw, "w")  # refused: failed for good

            await alerts.evaluate(gw)
            opened = {(a.rule, a.subject): a for a in await alerts.evaluate(gw)}
            assert (("RECIPIENTS_FAILED", "failed")) in opened
            assert ("CERTIFICATE_EXPIRING", f"partner {partner} ≤30d") in opened
            assert any(rule == "DISK_NEARLY_FULL" for rule, _ in opened)
            assert "1 người nhận gửi lỗi" in opened["RECIPIENTS_FAILED", "failed"].text_vi
            # Deduplicated: two evaluations, one alert and one mail each.
            assert len(inbox.messages) == len(opened)
            waiting = [a for a in opened.values() if a.notify_error]
            assert waiting and all("Cannot connect" in (a.notify_error or "") for a in waiting)

            hooks = Hooks()
            app = web.Application()
            app.router.add_post("/alerts", hooks.receive)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", hook_port).start()
            try:
                await alerts.evaluate(gw)
            finally:
                await runner.cleanup()
            assert sorted(b["alert"]["rule"] for b in hooks.bodies) == sorted(
                rule for rule, _ in opened
            )
            assert len(inbox.messages) == len(opened)  # no mail twice

    run(scenario)


class OneUnitDown(FakeConnector):
    """A secure channel's peers: ``down``'s endpoint refuses connections, the others answer."""

    down: str = RECIPIENT

    async def deliver(self, delivery: Delivery) -> Receipt:
        if self.down in delivery.recipients:
            raise PeerUnavailable(f"{self.down}: connection refused")
        return await super().deliver(delivery)


def test_on_a_secure_channel_each_unit_has_its_own_breaker(make_gateway: Any) -> None:
    """One unit's endpoint down opens that unit's breaker only: the other unit's copies still go,
    and an operator pauses and resumes one unit."""
    connector = OneUnitDown(name="sec")

    async def scenario() -> None:
        async with make_gateway(
            connectors={"sec": connector},
            extra='[channels.sec]\nkind = "secure"\nsecure = true\n'
            "[alerts]\nbreaker_failures = 1\n",
        ) as gw:
            for code in (RECIPIENT, OTHER):
                await registry.register_unit(
                    gw, UnitRecord(code=code, name=f"Đơn vị {code}", channel="sec"),
                    certificate_pem=None, actor="test", given={"channel"},
                )  # fmt: skip
            first = await send(gw, "thuong", "400", RECIPIENT, OTHER)
            await rounds(gw, 1)
            listed = {(b.channel, b.unit_code): b.state for b in await breakers.listing(gw)}
            assert listed == {("sec", ""): "closed", ("sec", RECIPIENT): "open"}
            second = await send(gw, "thuong", "401", RECIPIENT, OTHER)
            await rounds(gw, 2)
            async with gw.engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(recipients.c.message_id, recipients.c.unit_code, recipients.c.state,
                              recipients.c.attempt_count)
                )  # fmt: skip
                by = {(r.message_id, r.unit_code): (r.state, r.attempt_count) for r in rows}
            assert by[first, OTHER] == by[second, OTHER] == ("sent", 1)
            assert by[first, RECIPIENT] == ("retry_scheduled", 1)
            assert by[second, RECIPIENT] == ("queued", 0)  # its unit's breaker is open

            paused = await breakers.pause(gw, "sec", unit=OTHER, actor="lan")
            assert (paused.unit_code, paused.state) == (OTHER, "paused")
            third = await send(gw, "thuong", "402", OTHER)
            assert await rounds(gw, 1) == 0
            await breakers.resume(gw, "sec", unit=OTHER, actor="lan")
            assert await rounds(gw, 1) == 1
            assert (await attempt_counts(gw))[third] == ("sent", 1)

    run(scenario)


def test_a_flaky_channel_keeps_its_breaker_closed(make_gateway: Any) -> None:
    """Two of a round's three sends fail, then one of two: an answer in each round resets the
    count, so the breaker (2 failures in a row) stays closed; then a round of failures only."""
    flaky = FakeConnector(
        name="axis",
        script=[
            *(Scripted.UNAVAILABLE, Scripted.UNAVAILABLE, Scripted.OK),  # round 1
            *(Scripted.UNAVAILABLE, Scripted.OK),  # round 2
            *(Scripted.UNAVAILABLE, Scripted.UNAVAILABLE),  # round 3
        ],
    )

    async def scenario() -> None:
        async with make_gateway(
            connectors={"axis": flaky}, extra="[alerts]\nbreaker_failures = 2\n"
        ) as gw:
            for i in range(3):
                await send(gw, "thuong", f"50{i}")
            assert await rounds(gw, 1) == 3
            assert await rounds(gw, 1) == 2
            assert [b.state for b in await breakers.listing(gw)] == ["closed"]
            await send(gw, "thuong", "510")
            await asyncio.sleep(0.2)  # the one left: its second retry waits up to 0.1 s
            assert await rounds(gw, 1) == 2  # the one left and the new one: both fail
            [breaker] = await breakers.listing(gw)
            assert (breaker.state, breaker.failures) == ("open", 2)

    run(scenario)

"""Webhooks with a real HTTP receiver on loopback, on SQLite and PostgreSQL: a receiver down for a
while gets every event once it is back, in order; the failures are visible; a forged, altered or
replayed request is caught by the check docs/howto/integrate.md gives; endpoints are managed by
an admin over the API and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from integration_support import (
    EXAMPLES,
    OTHER,
    RECIPIENT,
    SENDER,
    register_all,
    write_config,
)

from connectors.fake import FakeConnector
from envelopes.building import build_document_bytes
from envelopes.metadata import parse_metadata
from gateway.bootstrap import Gateway, build, load_signers
from gateway.scheduler import create_scheduler
from gateway.settings import load_settings
from gateway.store.database import migrate
from gateway.usecases import intake, tokens, webhooks
from gateway.usecases.jobs import scheduled_jobs

Client = TestClient[web.Request, web.Application]
HOOKS = "/api/v1/webhooks"
DOCGW = Path(sys.executable).with_name("docgw")


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float, seen: set[str]
) -> str:
    """The receiver's check, as docs/howto/integrate.md gives it: "ok", or why not."""
    timestamp = headers.get("Docgw-Timestamp", "")
    signature = headers.get("Docgw-Signature", "")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest("v1=" + expected.hexdigest(), signature):
        return "forged"
    if not timestamp.isdigit() or abs(now - int(timestamp)) > 300:
        return "stale"
    event_id = headers.get("Docgw-Event-Id", "")
    if event_id != json.loads(body)["event_id"]:
        return "forged"
    if event_id in seen:
        return "duplicate"
    seen.add(event_id)
    return "ok"


class Receiver:
    """A webhook receiver on a fixed loopback port, started and stopped at will."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        #: Answer 503 once when this many requests have been taken.
        self.fail_when_taken: int | None = None
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_next or self.fail_when_taken == len(self.requests):
            self.fail_next = max(0, self.fail_next - 1)
            self.fail_when_taken = None
            return web.Response(status=503)
        self.requests.append((dict(request.headers), body))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def package(gateway: Gateway, number: int) -> bytes:
    meta = json.loads((EXAMPLES / "new-document.json").read_bytes())
    meta["code"]["number"] = str(number)
    request = parse_metadata(json.dumps(meta).encode(), today=gateway.clock().date())
    data, _ = build_document_bytes(
        request.header, business=request.business, signer=gateway.signer(SENDER)
    )
    return data


async def receive(gateway: Gateway, number: int) -> str:
    data = package(gateway, number)
    return (await intake.receive_package(gateway, io.BytesIO(data), via="test")).message_id


@asynccontextmanager
async def receiving_gateway(make_gateway: Any) -> AsyncIterator[tuple[Gateway, Clock]]:
    async with make_gateway(
        local_units=(SENDER, RECIPIENT), connectors={"axis": FakeConnector(name="axis")}
    ) as gateway:
        clock = Clock()
        gateway.clock = clock
        yield gateway, clock


def test_a_receiver_down_for_a_while_gets_every_event_in_order(make_gateway: Any) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        async with receiving_gateway(make_gateway) as (gateway, clock):
            endpoint, secret = await webhooks.add(
                gateway, url=receiver.url, unit_code=RECIPIENT, actor="t"
            )
            assert secret.startswith("whsec_") and len(secret) > 40
            messages = [await receive(gateway, number) for number in (1, 2, 3)]

            # Down: nothing listens. The failure is kept, with a backoff, and nothing is lost.
            assert await webhooks.deliver_webhooks(gateway) == 0
            (state,) = await webhooks.listing(gateway)
            assert state.failures == 1 and state.pending == 3 and state.last_error
            assert state.next_attempt_at == clock.now + webhooks.backoff(1)
            assert await webhooks.deliver_webhooks(gateway) == 0  # not due yet: no attempt
            assert (await webhooks.listing(gateway))[0].failures == 1
            clock.advance(webhooks.backoff(1).total_seconds())
            assert await webhooks.deliver_webhooks(gateway) == 0
            (state,) = await webhooks.listing(gateway)
            assert state.failures == 2
            assert state.next_attempt_at == clock.now + webhooks.backoff(2)
            messages.append(await receive(gateway, 4))  # meanwhile, more arrives

            await receiver.start()
            try:
                # Back, but it stumbles once after two: the count of failures starts again.
                receiver.fail_when_taken = 2
                clock.advance(webhooks.backoff(2).total_seconds())
                assert await webhooks.deliver_webhooks(gateway) == 2
                (state,) = await webhooks.listing(gateway)
                assert (state.failures, state.pending) == (1, 2), state
                clock.advance(webhooks.backoff(1).total_seconds())
                assert await webhooks.deliver_webhooks(gateway) == 2
                (state,) = await webhooks.listing(gateway)
                assert (state.failures, state.pending, state.last_error) == (0, 0, None)

                # A receiver answering 503 once: the same event again, then the next ones.
                messages.append(await receive(gateway, 5))
                messages.append(await receive(gateway, 6))
                receiver.fail_next = 1
                assert await webhooks.deliver_webhooks(gateway) == 0
                clock.advance(webhooks.backoff(1).total_seconds())
                assert await webhooks.deliver_webhooks(gateway) == 2

                seen: set[str] = set()
                now = clock.now.timestamp()
                bodies = [json.loads(body) for _, body in receiver.requests]
                assert [
                    verify(secret, headers, body, now=now, seen=seen)
                    for headers, body in receiver.requests
                ] == ["ok"] * 6
                assert [b["message_id"] for b in bodies] == messages
                assert {b["type"] for b in bodies} == {"document.received"}
                cursors = [int(b["cursor"]) for b in bodies]
                assert cursors == sorted(cursors)

                # Replay: every event after a cursor again, same ids (the receiver dedups).
                await webhooks.replay(gateway, endpoint.id, after=cursors[2])
                assert await webhooks.deliver_webhooks(gateway) == 3
                again = receiver.requests[6:]
                assert [json.loads(b)["event_id"] for _, b in again] == [
                    b["event_id"] for b in bodies[3:]
                ]
                assert {verify(secret, h, b, now=now, seen=seen) for h, b in again} == {"duplicate"}
            finally:
                await receiver.stop()

    run(scenario)


def test_a_forged_altered_or_replayed_webhook_is_detected(make_gateway: Any) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        try:
            async with receiving_gateway(make_gateway) as (gateway, clock):
                _, secret = await webhooks.add(gateway, url=receiver.url, unit_code=None, actor="t")
                await receive(gateway, 1)
                assert await webhooks.deliver_webhooks(gateway) >= 1
                headers, body = receiver.requests[0]
                now = clock.now.timestamp()
                assert verify(secret, headers, body, now=now, seen=set()) == "ok"
                altered = body.replace(b"document.received", b"document.revoked")
                assert verify(secret, headers, altered, now=now, seen=set()) == "forged"
                other_key = {**headers, "Docgw-Signature": webhooks.sign("x", 1, body)}
                assert verify(secret, other_key, body, now=now, seen=set()) == "forged"
                moved = {**headers, "Docgw-Timestamp": str(int(now) + 1)}
                assert verify(secret, moved, body, now=now, seen=set()) == "forged"
                # The same request sent again later: its old timestamp gives it away...
                assert verify(secret, headers, body, now=now + 600, seen=set()) == "stale"
                # ...and within the window, its event id.
                seen: set[str] = set()
                assert verify(secret, headers, body, now=now, seen=seen) == "ok"
                assert verify(secret, headers, body, now=now, seen=seen) == "duplicate"
                # A secret of another endpoint does not verify it.
                _, second = await webhooks.add(gateway, url=receiver.url, unit_code=None, actor="t")
                assert verify(second, headers, body, now=now, seen=set()) == "forged"
        finally:
            await receiver.stop()

    run(scenario)


def test_the_scheduler_runs_the_webhook_job(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            scheduler = create_scheduler(gateway, scheduled_jobs(gateway))
            job = scheduler.get_job("webhooks")
            assert job is not None and str(job.trigger) == "wall-clock ticks of 1 s"

    run(scenario)


# ----------------------------------------------------------------------------- API and CLI


async def problem(response: Any, status: int, code: str, element: str | None) -> None:
    text = await response.text()
    assert response.status == status, text
    body = json.loads(text)
    assert (body["code"], body["element"]) == (code, element), body


def test_admins_manage_endpoints_over_the_api(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(local_units=(SENDER, RECIPIENT)) as gateway,
            TestClient(TestServer(_app(gateway))) as client,
        ):
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            operator = bearer(await tokens.create_token(gateway, name="op", role="operator"))
            member = bearer(
                await tokens.create_token(gateway, name="h41", role="member", unit_code=RECIPIENT)
            )
            body = {"url": "https://dms.example.vn/hooks/docgw", "unit": RECIPIENT}
            for who in (operator, member):
                await problem(
                    await client.post(HOOKS, json=body, headers=who), 403, "FORBIDDEN", None
                )
                await problem(await client.get(HOOKS, headers=who), 403, "FORBIDDEN", None)
            for bad, code, element in (
                ({"url": "ftp://x/"}, "WEBHOOK_URL_INVALID", "url"),
                ({"url": "https://user:pw@x/"}, "WEBHOOK_URL_INVALID", "url"),
                ({"url": "https://x/", "unit": OTHER}, "UNKNOWN_UNIT", "unit"),
                ({"unit": RECIPIENT}, "BAD_REQUEST", "url"),
                ({"url": "https://x/", "secret": "mine"}, "BAD_REQUEST", "secret"),
            ):
                response = await client.post(HOOKS, json=bad, headers=admin)
                await problem(response, 422 if code != "BAD_REQUEST" else 400, code, element)
            assert (await (await client.get(HOOKS, headers=admin)).json())["items"] == []

            response = await client.post(HOOKS, json=body, headers=admin)
            assert response.status == 201, await response.text()
            added = await response.json()
            assert added["secret"].startswith("whsec_") and added["unit"] == RECIPIENT
            listed = (await (await client.get(HOOKS, headers=admin)).json())["items"]
            assert [e["id"] for e in listed] == [added["id"]]
            assert "secret" not in listed[0] and added["secret"] not in json.dumps(listed)
            assert listed[0]["failures"] == 0 and listed[0]["pending"] == 0

            replay = f"{HOOKS}/{added['id']}/replay"
            response = await client.post(replay, json={"after": "0"}, headers=admin)
            assert response.status == 200, await response.text()
            await problem(
                await client.post(replay, json={"after": 0}, headers=admin),
                400, "BAD_REQUEST", "after",
            )  # fmt: skip
            await problem(
                await client.post(f"{HOOKS}/nope/replay", json={"after": "0"}, headers=admin),
                404, "NOT_FOUND", "id",
            )  # fmt: skip
            assert (await client.delete(f"{HOOKS}/{added['id']}", headers=admin)).status == 204
            await problem(
                await client.delete(f"{HOOKS}/{added['id']}", headers=admin), 404, "NOT_FOUND", "id"
            )
            assert (await (await client.get(HOOKS, headers=admin)).json())["items"] == []

    run(scenario)


def _app(gateway: Gateway) -> web.Application:
    from gateway.web.app import create_app

    return create_app(gateway)


def docgw(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), "--config", str(config), "webhooks", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_adds_lists_replays_and_removes(tmp_path: Path, keys_dir: Path) -> None:
    config = write_config(
        tmp_path / "docgw.toml",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/docgw.db",
        keys_dir=keys_dir,
        local_units=(SENDER,),
    )
    added = docgw(config, "add", "https://dms.example.vn/hook", "--unit", SENDER)
    assert added.returncode == 0, added.stderr
    endpoint_id = added.stdout.split()[1]
    secret = added.stdout.split("secret", 1)[1].split()[-1]
    assert secret.startswith("whsec_")
    listed = docgw(config, "list")
    assert endpoint_id in listed.stdout and "pending 0" in listed.stdout
    assert secret not in listed.stdout
    as_json = json.loads(docgw(config, "list", "--json").stdout)
    assert as_json[0]["id"] == endpoint_id and "secret" not in as_json[0]
    assert docgw(config, "replay", endpoint_id, "--after", "0").returncode == 0
    bad = docgw(config, "add", "file:///etc/passwd")
    assert bad.returncode == 1 and bad.stderr.startswith("error: WEBHOOK_URL_INVALID")
    assert "Traceback" not in bad.stderr
    assert docgw(config, "remove", endpoint_id).returncode == 0
    gone = docgw(config, "remove", endpoint_id)
    assert gone.returncode == 1 and gone.stderr.startswith("error: NOT_FOUND")


# ------------------------------------------------------------ through `docgw serve`, killed


async def _start_serve(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    }
    started = log.read_bytes().count(b"docgw serving") if log.exists() else 0
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            str(DOCGW), "--config", str(config), "serve", stdout=out, stderr=out, env=env
        )
    await _eventually(
        lambda: log.read_bytes().count(b"docgw serving") > started, "docgw serve started"
    )
    return process


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.1)


async def _prepare(config: Path, keys_dir: Path) -> dict[str, dict[str, str]]:
    gateway = await build(load_settings(config, {}))
    try:
        await migrate(gateway.engine)
        await register_all(gateway, keys_dir)
        return {
            role: bearer(await tokens.create_token(gateway, name=role, role=role))
            for role in ("admin", "operator")
        }
    finally:
        await gateway.close()


@pytest.mark.slow
def test_docgw_serve_delivers_webhooks_and_resumes_after_a_kill(
    tmp_path: Path, keys_dir: Path
) -> None:
    """The job as `docgw serve` runs it: events reach a real receiver; with the receiver down the
    failure shows in the API; the gateway killed (SIGKILL) and started again, everything that
    waited reaches the receiver once it is back, in order."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(
        tmp_path / "docgw.toml",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/docgw.db",
        keys_dir=keys_dir,
        local_units=(RECIPIENT,),
        extra=f'[api]\nhost = "127.0.0.1"\nport = {port}\n'
        '[channels.axis]\nkind = "fake"\naxis = true\n',
    )
    log = tmp_path / "serve.log"
    sender = load_signers(keys_dir, (SENDER,))[SENDER]

    def signed(number: int) -> bytes:
        meta = json.loads((EXAMPLES / "new-document.json").read_bytes())
        meta["code"]["number"] = str(number)
        request = parse_metadata(json.dumps(meta).encode(), today=dt.date.today())
        return build_document_bytes(request.header, business=request.business, signer=sender)[0]

    async def scenario() -> None:
        who = await _prepare(config, keys_dir)
        base = f"http://127.0.0.1:{port}/api/v1"
        receiver = Receiver()
        await receiver.start()
        serve = await _start_serve(config, log)
        try:
            async with aiohttp.ClientSession() as http:
                response = await http.post(
                    f"{base}/webhooks",
                    json={"url": receiver.url, "unit": RECIPIENT},
                    headers=who["admin"],
                )
                assert response.status == 201, await response.text()
                secret = (await response.json())["secret"]
                xml = {**who["operator"], "Content-Type": "application/xml"}

                async def deliver(number: int) -> str:
                    response = await http.post(f"{base}/inbox", data=signed(number), headers=xml)
                    assert response.status == 201, await response.text()
                    return str((await response.json())["id"])

                async def failing() -> bool:
                    listed = await http.get(f"{base}/webhooks", headers=who["admin"])
                    items = (await listed.json())["items"]
                    return bool(items[0]["failures"]) and items[0]["pending"] == 1

                sent = [await deliver(1)]
                await _eventually(lambda: len(receiver.requests) == 1, "the first event")
                await receiver.stop()
                sent.append(await deliver(2))
                deadline = time.monotonic() + 60
                while not await failing():
                    assert time.monotonic() < deadline, "the failure did not show"
                    await asyncio.sleep(0.2)
                serve.kill()  # SIGKILL: no clean shutdown
                await serve.wait()
                serve = await _start_serve(config, log)
                sent.append(await deliver(3))
                await receiver.start()
                await _eventually(lambda: len(receiver.requests) >= 3, "every event after")
        finally:
            if serve.returncode is None:
                serve.terminate()
                await serve.wait()
            await receiver.stop()
        seen: set[str] = set()
        checks = [
            verify(secret, headers, body, now=time.time(), seen=seen)
            for headers, body in receiver.requests
        ]
        assert checks == ["ok"] * 3, checks
        assert [json.loads(body)["message_id"] for _, body in receiver.requests] == sent

    run(scenario)

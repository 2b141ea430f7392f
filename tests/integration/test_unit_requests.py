"""Registration with approval, over real HTTP on both databases: a member asks for a unit under
its own, an admin approves it (two admins at once decide once), the registry keeps every version;
deactivating a unit holds the documents queued for it at their next claim, with the reason;
revoking a certificate; a member cannot touch another unit's registration; the CLI as a real
process does the same."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer
from integration_support import EXAMPLES, OTHER, RECIPIENT, SENDER

from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.domain.lifecycle import TransportState
from gateway.store import message_queries, unit_queries
from gateway.usecases import delivery, submit, tokens
from gateway.web.app import create_app

NEW_UNIT = "000.01.00.G22"  # under SENDER (000.00.00.G22)
TODAY = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
DOCGW = Path(sys.executable).parent / "docgw"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_member_asks_an_admin_decides_once_and_the_registry_remembers(
    make_gateway: Any, keys_dir: Path
) -> None:
    pem = (keys_dir / f"{OTHER}.cert.pem").read_text()

    async def scenario() -> None:
        async with (
            make_gateway(extra='[channels.axis]\nkind = "fake"\n') as gateway,
            TestClient(TestServer(create_app(gateway))) as client,
        ):
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            admin2 = bearer(await tokens.create_token(gateway, name="admin2", role="admin"))
            member = bearer(
                await tokens.create_token(gateway, name="vpcp", role="member", unit_code=SENDER)
            )
            other = bearer(
                await tokens.create_token(gateway, name="h14", role="member", unit_code=OTHER)
            )
            body = {
                "code": NEW_UNIT,
                "name": "Vụ Hành chính",
                "parent_code": SENDER,
                "channel": "axis",
                "mail": "vuhc@chinhphu.vn",
            }
            # Another unit's member may not ask for a unit under SENDER.
            answer = await client.post("/api/v1/unit-requests", json=body, headers=other)
            assert answer.status == 403, await answer.text()
            answer = await client.post(
                "/api/v1/unit-requests", json={**body, "allows_tuyet_mat": True}, headers=member
            )
            assert answer.status == 400
            assert (await answer.json())["element"] == "allows_tuyet_mat"
            answer = await client.post(
                "/api/v1/unit-requests", json={**body, "channel": "nowhere"}, headers=member
            )
            assert answer.status == 422 and (await answer.json())["element"] == "channel"
            answer = await client.post(
                "/api/v1/unit-requests", json={**body, "certificates": [pem]}, headers=member
            )
            assert answer.status == 201, await answer.text()
            made = await answer.json()
            assert made["state"] == "pending" and made["requested_for"] == SENDER
            assert "pem" not in made["certificates"][0]
            # Pending: nothing in the registry yet; a second request for the code waits.
            async with gateway.engine.connect() as conn:
                assert await unit_queries.get_unit(conn, NEW_UNIT) is None
            again = await client.post("/api/v1/unit-requests", json=body, headers=member)
            assert again.status == 409
            # The other unit's member sees nothing of it.
            seen = await client.get(f"/api/v1/unit-requests/{made['id']}", headers=other)
            assert seen.status == 404
            listed = await (await client.get("/api/v1/unit-requests", headers=other)).json()
            assert listed["items"] == []
            # Members and operators do not decide.
            answer = await client.post(
                f"/api/v1/unit-requests/{made['id']}/approve",
                json={"reason": "ok"},
                headers=member,
            )
            assert answer.status == 403
            answer = await client.post(
                f"/api/v1/unit-requests/{made['id']}/approve", json={}, headers=admin
            )
            assert answer.status == 422 and (await answer.json())["code"] == "REASON_REQUIRED"

            # Two admins at once, one approving and one refusing: one decides.
            answers = await asyncio.gather(
                client.post(
                    f"/api/v1/unit-requests/{made['id']}/approve",
                    json={"reason": "đúng đơn vị trực thuộc"},
                    headers=admin,
                ),
                client.post(
                    f"/api/v1/unit-requests/{made['id']}/refuse",
                    json={"reason": "trùng"},
                    headers=admin2,
                ),
            )
            statuses = sorted(a.status for a in answers)
            assert statuses == [200, 409], statuses
            decided = await (
                await client.get(f"/api/v1/unit-requests/{made['id']}", headers=member)
            ).json()
            async with gateway.engine.connect() as conn:
                unit = await unit_queries.get_unit(conn, NEW_UNIT)
                certificates = await unit_queries.certificates(conn, NEW_UNIT)
            if decided["state"] == "approved":
                assert unit is not None and unit.channel == "axis" and unit.active
                assert [c.fingerprint_sha256 for c in certificates] == [
                    made["certificates"][0]["fingerprint_sha256"]
                ]
                history = await (
                    await client.get(f"/api/v1/units/{NEW_UNIT}/history", headers=admin)
                ).json()
                assert [v["action"] for v in history["items"]] == ["approved"]
                assert history["items"][0]["changed_by"] == decided["decided_by"]
            else:
                assert decided["state"] == "refused" and unit is None

    asyncio.run(scenario())


def _document(to: str, number: str) -> Any:
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta["to"] = [{"organ_id": to, "organ_name": "Đơn vị"}]
    meta["code"] = {"number": number, "notation": "DV-VP"}
    return parse_metadata(meta, today=TODAY)


def test_deactivating_holds_queued_documents_and_revoking_a_certificate(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(extra='[channels.axis]\nkind = "fake"\n') as gateway,
            TestClient(TestServer(create_app(gateway))) as client,
        ):
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            member = bearer(
                await tokens.create_token(gateway, name="vpcp", role="member", unit_code=SENDER)
            )
            made = await submit.submit_document(
                gateway,
                _document(RECIPIENT, "12"),
                [AttachmentSource(name="vb.pdf", open=lambda: io.BytesIO(b"%PDF-1.7"))],
                client="test",
                actor="test",
            )
            answer = await client.post(
                f"/api/v1/units/{RECIPIENT}/deactivate", json={"reason": "x"}, headers=member
            )
            assert answer.status == 403
            answer = await client.post(
                f"/api/v1/units/{RECIPIENT}/deactivate",
                json={"reason": "đơn vị đã giải thể"},
                headers=admin,
            )
            assert answer.status == 200 and (await answer.json())["active"] is False
            again = await client.post(
                f"/api/v1/units/{RECIPIENT}/deactivate", json={"reason": "x"}, headers=admin
            )
            assert again.status == 409
            await delivery.deliver_due(gateway, "w")
            async with gateway.engine.connect() as conn:
                message = await message_queries.get_message(conn, made.message_id)
            assert message is not None
            held = message.recipients[0]
            assert held.state is TransportState.HELD
            assert f"unit {RECIPIENT} is not active in the registry" in (held.last_error or "")
            # A member sees its own unit's history only.
            answer = await client.get(f"/api/v1/units/{RECIPIENT}/history", headers=member)
            assert answer.status == 404
            history = await (
                await client.get(f"/api/v1/units/{RECIPIENT}/history", headers=admin)
            ).json()
            assert history["items"][0]["action"] == "deactivated"
            assert history["items"][0]["reason"] == "đơn vị đã giải thể"
            assert history["items"][0]["changed_by"] == "admin"
            answer = await client.post(
                f"/api/v1/units/{RECIPIENT}/activate", json={"reason": "lập lại"}, headers=admin
            )
            assert answer.status == 200 and (await answer.json())["active"] is True

            async with gateway.engine.connect() as conn:
                [certificate] = await unit_queries.certificates(conn, RECIPIENT)
            url = f"/api/v1/certificates/{certificate.fingerprint_sha256}/revoke"
            answer = await client.post(url, json={"reason": "lộ khoá"}, headers=admin)
            assert answer.status == 200 and (await answer.json())["unit_code"] == RECIPIENT
            answer = await client.post(url, json={"reason": "lộ khoá"}, headers=admin)
            assert answer.status == 404
            async with gateway.engine.connect() as conn:
                [certificate] = await unit_queries.certificates(conn, RECIPIENT)
            assert certificate.revoked
            shown = await (await client.get(f"/api/v1/units/{RECIPIENT}", headers=admin)).json()
            assert shown["certificates"][0]["revoked"] is True

    asyncio.run(scenario())


def test_the_cli_requests_approves_and_lists_history(tmp_path: Path) -> None:
    home = tmp_path / "home"

    def docgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DOCGW), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "USER": "thu-ky"},
        )

    assert docgw("init", "--dir", str(home), "--unit", SENDER).returncode == 0
    config = str(home / "docgw.toml")
    made = docgw(
        "--config", config, "units", "request", NEW_UNIT,
        "--name", "Vụ Tổng hợp", "--parent", SENDER, "--for", SENDER,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("requested: #1 ") and "pending" in made.stdout
    listed = docgw("--config", config, "units", "requests", "--state", "pending")
    assert NEW_UNIT in listed.stdout
    refused = docgw("--config", config, "units", "approve", "1")
    assert refused.returncode == 2 and "--reason" in refused.stderr
    approved = docgw(
        "--config", config, "units", "approve", "1", "--reason", "hợp lệ", "--as", "Nguyễn Văn A"
    )
    assert approved.returncode == 0, approved.stderr
    assert "approved" in approved.stdout and "Nguyễn Văn A: hợp lệ" in approved.stdout
    twice = docgw("--config", config, "units", "refuse", "1", "--reason", "muộn")
    assert twice.returncode == 1 and twice.stderr.startswith("error: CONFLICT"), twice.stderr
    off = docgw("--config", config, "units", "deactivate", NEW_UNIT, "--reason", "sáp nhập")
    assert off.returncode == 0 and "inactive" in off.stdout
    history = docgw("--config", config, "units", "history", NEW_UNIT)
    lines = history.stdout.splitlines()
    assert lines[0].startswith("v2") and "deactivated" in lines[0]
    assert "cli:" in lines[0] and "sáp nhập" in lines[0]
    assert lines[1].startswith("v1") and "approved" in lines[1] and "Nguyễn Văn A" in lines[1]
    bad = docgw("--config", config, "units", "requests", "--state", "waiting")
    assert bad.returncode == 2

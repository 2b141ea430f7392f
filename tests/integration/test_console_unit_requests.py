"""The console's unit requests and expiry list over real HTTP on loopback, on SQLite and
PostgreSQL (issue 17): a member asks for a unit under its own (the certificate uploaded as a
file) and sees it pending; another unit's member neither sees nor decides it (the API's 404 and
403); an admin's decision needs a reason and the confirmation, is audited with the person's name,
and the approved unit is in the registry with its history; the certificate expiring soon is on
the expiry list."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
from integration_support import OTHER, SENDER
from test_console_pages import _audited, console, csrf_of, log_in

from gateway import keystore
from gateway.keystore import issue_unit_certificate, load_issued
from gateway.usecases import registry

NEW_UNIT = "000.01.00.H14"  # under OTHER (000.00.00.H14), h14's unit


def _form(token: str, pem: bytes | None = None, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("csrf", token)
    for name, value in fields.items():
        data.add_field(name, value)
    if pem is not None:
        data.add_field(
            "certificate_file", pem, filename="h14.pem", content_type="application/x-pem-file"
        )
    return data


def _request_id(location: str) -> str:
    found = re.fullmatch(r"/console/requests/([0-9]+)", location)
    assert found is not None, location
    return found.group(1)


def test_a_member_asks_for_a_unit_and_an_admin_decides_with_a_reason(
    make_gateway: Any, keys_dir: Path
) -> None:
    ca = load_issued(keys_dir / keystore.CA_KEY, keys_dir / keystore.CA_CERT)
    soon = issue_unit_certificate(ca, NEW_UNIT, days=20)

    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            await log_in(client, "h14")
            token = await csrf_of(client)
            page = await client.get("/console/requests")
            text = await page.text()
            assert page.status == 200 and 'id="new-request"' in text
            assert 'href="/console/requests" aria-current="page"' in text
            assert "/console/certificates" not in text  # the expiry list is staff's
            fields = {"code": NEW_UNIT, "name": "Phòng Tổng hợp", "parent_code": OTHER,
                      "mail": "tonghop@h14.gov.vn"}  # fmt: skip
            # The use case's refusals, with their codes: a unit under another unit…
            refused = await client.post(
                "/console/requests", data=_form(token, **{**fields, "parent_code": SENDER})
            )
            assert refused.status == 403 and 'data-code="FORBIDDEN"' in await refused.text()
            # …a channel not configured here, named by its field.
            refused = await client.post(
                "/console/requests", data=_form(token, **{**fields, "channel": "nowhere"})
            )
            text = await refused.text()
            assert refused.status == 422 and 'data-code="GATEWAY_ERROR"' in text
            # The refused form keeps what was typed, beside the code and message.
            assert 'id="new-request"' in text and 'value="Phòng Tổng hợp"' in text
            assert "[channel]" in text
            # Without the session's CSRF token nothing is asked.
            forged = await client.post("/console/requests", data=fields)
            assert forged.status == 403 and "CSRF_INVALID" in await forged.text()

            asked = await client.post(
                "/console/requests", data=_form(token, soon.cert_pem, **fields),
                allow_redirects=False,
            )  # fmt: skip
            assert asked.status == 303, await asked.text()
            request_id = _request_id(asked.headers["Location"])
            shown = await (await client.get(f"/console/requests/{request_id}")).text()
            assert 'data-state="pending"' in shown and "Chờ duyệt" in shown
            assert "Phòng Tổng hợp" in shown and f"CN={NEW_UNIT}" in shown
            assert 'id="decide"' not in shown  # a member does not decide
            listed = await (await client.get("/console/requests")).text()
            assert f'data-request="{request_id}"' in listed
            again = await client.post("/console/requests", data=_form(token, **fields))
            assert again.status == 409 and "CONFLICT" in await again.text()
            assert (
                await client.post(
                    f"/console/requests/{request_id}/approve",
                    data={"csrf": token, "reason": "tự duyệt", "confirm": "yes"},
                )
            ).status == 403
            assert (await registry.list_units(gateway, text=NEW_UNIT, limit=5)) == []

            # Another unit's member: the API's 404 to read, 403 to decide, nothing listed.
            client.session.cookie_jar.clear()
            await log_in(client, "nghe-an")
            token = await csrf_of(client)
            assert (await client.get(f"/console/requests/{request_id}")).status == 404
            listed = await (await client.get("/console/requests?state=all")).text()
            assert f'data-request="{request_id}"' not in listed and "Unit requests" in listed
            decided = await client.post(
                f"/console/requests/{request_id}/refuse",
                data={"csrf": token, "reason": "không phải của tôi", "confirm": "yes"},
            )
            assert decided.status == 403
            assert (await client.get("/console/certificates")).status == 403

            # The admin: pending requests listed; no reason, no decision.
            client.session.cookie_jar.clear()
            await log_in(client, "quan-tri")
            token = await csrf_of(client)
            listed = await (await client.get("/console/requests")).text()
            assert f'data-request="{request_id}"' in listed
            assert f'action="/console/requests/{request_id}/approve"' in listed
            no_reason = await client.post(
                f"/console/requests/{request_id}/refuse", data={"csrf": token, "confirm": "yes"}
            )
            assert no_reason.status == 422 and "REASON_REQUIRED" in await no_reason.text()
            unconfirmed = await client.post(
                f"/console/requests/{request_id}/approve", data={"csrf": token, "reason": "x"}
            )
            assert unconfirmed.status == 400 and "confirm" in await unconfirmed.text()
            forged = await client.post(
                f"/console/requests/{request_id}/approve", data={"reason": "x", "confirm": "yes"}
            )
            assert forged.status == 403 and "CSRF_INVALID" in await forged.text()
            still = await (await client.get(f"/console/requests/{request_id}")).text()
            assert 'data-state="pending"' in still and 'id="decide"' in still

            approved = await client.post(
                f"/console/requests/{request_id}/approve",
                data={"csrf": token, "reason": "Đúng đơn vị trực thuộc", "confirm": "yes"},
            )
            text = await approved.text()
            assert approved.status == 200 and 'data-state="approved"' in text
            assert "Đã duyệt bởi quan-tri" in text and "Đúng đơn vị trực thuộc" in text
            assert await _audited(gateway, "unit_request_approved") == [
                ("quan-tri", f"{NEW_UNIT} #{request_id}: Đúng đơn vị trực thuộc")
            ]
            detail = await registry.get_unit(gateway, NEW_UNIT)
            assert detail.unit.parent_code == OTHER and detail.unit.name == "Phòng Tổng hợp"
            again = await client.post(
                f"/console/requests/{request_id}/refuse",
                data={"csrf": token, "reason": "muộn", "confirm": "yes"},
            )
            assert again.status == 409 and "CONFLICT" in await again.text()
            # The unit's page lists its history: who, when, why.
            unit_page = await (await client.get(f"/console/units/{NEW_UNIT}")).text()
            history = unit_page.split('id="unit-history"')[1]
            assert "Duyệt yêu cầu" in history and "quan-tri" in history
            assert f"request #{request_id}: Đúng đơn vị trực thuộc" in history

            # The expiry list: the new unit's certificate expires within the default 60 days.
            expiring = await client.get("/console/certificates")
            text = await expiring.text()
            assert expiring.status == 200 and 'value="60"' in text
            row = text.split(f"/console/units/{NEW_UNIT}")[1].split("</tr>")[0]
            assert "Đơn vị đối tác" in row and re.search(r">(19|20)</span>", row)
            within_ten = await (await client.get("/console/certificates?days=10")).text()
            assert NEW_UNIT not in within_ten and "Không có gì." in within_ten
            bad = await client.get("/console/certificates?days=tuần")
            assert bad.status == 400 and "days" in await bad.text()

            # The member sees its request decided; an operator sees the expiry list too.
            client.session.cookie_jar.clear()
            await log_in(client, "h14")
            mine = await (await client.get(f"/console/requests/{request_id}")).text()
            assert 'data-state="approved"' in mine
            client.session.cookie_jar.clear()
            await log_in(client, "van-hanh")
            assert NEW_UNIT in await (await client.get("/console/certificates")).text()
            assert (
                await client.post("/console/requests", data=_form(await csrf_of(client), **fields))
            ).status == 403

    asyncio.run(scenario())


def test_an_admin_refuses_a_request_with_a_reason(make_gateway: Any, keys_dir: Path) -> None:
    ca = load_issued(keys_dir / keystore.CA_KEY, keys_dir / keystore.CA_CERT)
    pasted = issue_unit_certificate(ca, NEW_UNIT).cert_pem.decode()

    async def scenario() -> None:
        async with console(make_gateway) as (gateway, client, _):
            await log_in(client, "h14")
            token = await csrf_of(client)
            asked = await client.post(
                "/console/requests",
                data=_form(token, code=NEW_UNIT, name="Phòng Hành chính", parent_code=OTHER,
                           certificate_pem=pasted),
                allow_redirects=False,
            )  # fmt: skip
            assert asked.status == 303, await asked.text()
            request_id = _request_id(asked.headers["Location"])
            # The certificate pasted in the text box went with the request.
            shown = await (await client.get(f"/console/requests/{request_id}")).text()
            assert f"CN={NEW_UNIT}" in shown
            client.session.cookie_jar.clear()
            await log_in(client, "quan-tri")
            token = await csrf_of(client)
            refused = await client.post(
                f"/console/requests/{request_id}/refuse",
                data={"csrf": token, "reason": "Trùng tên đơn vị", "confirm": "yes"},
            )
            text = await refused.text()
            assert 'data-state="refused"' in text and "Trùng tên đơn vị" in text
            assert await _audited(gateway, "unit_request_refused") == [
                ("quan-tri", f"{NEW_UNIT} #{request_id}: Trùng tên đơn vị")
            ]
            assert await registry.list_units(gateway, text=NEW_UNIT, limit=5) == []
            pending = await (await client.get("/console/requests")).text()
            assert f'data-request="{request_id}"' not in pending
            refused_tab = await (await client.get("/console/requests?state=refused")).text()
            assert f'data-request="{request_id}"' in refused_tab
            assert (await client.get("/console/requests?state=nope")).status == 400

    asyncio.run(scenario())

"""API tokens that expire: ``docgw tokens create --expires-days`` as a real process, the API
over real HTTP refusing the token once its moment has passed (401, nothing done), on both
databases; ``tokens list`` shows the expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from envelopes.errors import GatewayError
from gateway.usecases import tokens
from gateway.web.app import create_app


def test_a_token_stops_authenticating_when_it_expires(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway, TestClient(TestServer(create_app(gateway))) as client:
            lasting = await tokens.create_token(
                gateway, name="lasting", role="operator", expires_in=dt.timedelta(days=30)
            )
            brief = await tokens.create_token(
                gateway, name="brief", role="operator", expires_in=dt.timedelta(seconds=1)
            )
            forever = await tokens.create_token(gateway, name="forever", role="operator")
            for token in (lasting, brief, forever):
                answer = await client.get(
                    "/api/v1/units", headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status == 200, await answer.text()
            await asyncio.sleep(1.2)
            answer = await client.get("/api/v1/units", headers={"Authorization": f"Bearer {brief}"})
            problem = await answer.json()
            assert answer.status == 401 and problem["code"] == "UNAUTHORIZED"
            for token in (lasting, forever):
                answer = await client.get(
                    "/api/v1/units", headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status == 200
            listed = {t.name: t for t in await tokens.list_tokens(gateway)}
            assert listed["forever"].expires_at is None
            lasting_expiry = listed["lasting"].expires_at
            assert lasting_expiry is not None
            assert dt.timedelta(days=29) < lasting_expiry - gateway.clock() <= dt.timedelta(days=30)
            try:
                await tokens.create_token(
                    gateway, name="past", role="operator", expires_in=dt.timedelta(0)
                )
            except GatewayError as exc:
                assert exc.element == "expires"
            else:
                raise AssertionError("an expiry now or before is refused")

    asyncio.run(scenario())

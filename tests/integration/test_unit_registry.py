"""Registering units on real databases (SQLite file and PostgreSQL) through the three ways an
admin has — the ``docgw units`` CLI (a real process), the HTTP API and a CSV import:
``allows_tuyet_mat`` is explicit (off unless set), and an update changes only what it names —
never the Tuyệt mật permission, the secure endpoint, ``is_local`` or ``active`` it did not name."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from integration_support import OTHER, RECIPIENT

from connectors.fake import FakeConnector
from envelopes.errors import GatewayError
from gateway.bootstrap import Gateway
from gateway.store.database import create_engine
from gateway.store.tables import audit_events, units
from gateway.usecases import registry, tokens
from gateway.web.app import create_app

DOCGW = Path(sys.executable).parent / "docgw"
NEW = "000.00.00.H99"
ENDPOINT = "https://gw-h41.example.gov.vn:8443/inbox"
ROW = ("name", "channel", "secure_endpoint", "allows_tuyet_mat", "is_local", "active")


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


async def unit_row(url_or_gateway: str | Gateway, code: str) -> dict[str, Any] | None:
    if isinstance(url_or_gateway, str):
        engine = create_engine(url_or_gateway)
        try:
            return await unit_row_on(engine, code)
        finally:
            await engine.dispose()
    return await unit_row_on(url_or_gateway.engine, code)


async def unit_row_on(engine: Any, code: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(*(units.c[name] for name in ROW)).where(units.c.code == code)
            )
        ).one_or_none()
    return dict(row._mapping) if row is not None else None


async def set_columns(url_or_gateway: str | Gateway, code: str, **values: Any) -> None:
    """What the gateway itself or the directory sync sets: is_local, active."""
    engine = (
        create_engine(url_or_gateway) if isinstance(url_or_gateway, str) else url_or_gateway.engine
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(units.update().where(units.c.code == code).values(**values))
    finally:
        if isinstance(url_or_gateway, str):
            await engine.dispose()


# ------------------------------------------------------------------------------------ the CLI


def docgw(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,
    )


def test_units_add_sets_tuyet_mat_explicitly_and_updates_only_what_it_is_given(
    database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")

    def row() -> dict[str, Any] | None:
        return run(lambda: unit_row(database_url, RECIPIENT))

    added = docgw(
        config, "units", "add", RECIPIENT, "--name", "UBND tỉnh Nghệ An",
        "--channel", "axis", "--secure-endpoint", ENDPOINT,
    )  # fmt: skip
    assert added.returncode == 0 and added.stdout.strip() == f"added {RECIPIENT}", added.stderr
    assert row() == {
        "name": "UBND tỉnh Nghệ An", "channel": "axis", "secure_endpoint": ENDPOINT,
        "allows_tuyet_mat": False, "is_local": False, "active": True,
    }  # fmt: skip

    # The permission alone, without repeating the rest (no --name needed for an update).
    allowed = docgw(config, "units", "add", RECIPIENT, "--allows-tuyet-mat")
    assert allowed.returncode == 0 and allowed.stdout.strip() == f"updated {RECIPIENT}"
    assert row() == {
        "name": "UBND tỉnh Nghệ An", "channel": "axis", "secure_endpoint": ENDPOINT,
        "allows_tuyet_mat": True, "is_local": False, "active": True,
    }  # fmt: skip
    shown = json.loads(docgw(config, "units", "show", RECIPIENT).stdout)
    assert shown["unit"]["allows_tuyet_mat"] is True

    # What the gateway or the directory sync set is not the CLI's to reset.
    run(lambda: set_columns(database_url, RECIPIENT, is_local=True, active=False))
    renamed = docgw(config, "units", "add", RECIPIENT, "--name", "Nghệ An", "--channel", "lgsp")
    assert renamed.returncode == 0, renamed.stderr
    assert row() == {
        "name": "Nghệ An", "channel": "lgsp", "secure_endpoint": ENDPOINT,
        "allows_tuyet_mat": True, "is_local": True, "active": False,
    }  # fmt: skip

    # Taking the permission back and clearing the endpoint are explicit too.
    taken = docgw(
        config, "units", "add", RECIPIENT, "--no-allows-tuyet-mat", "--secure-endpoint", ""
    )
    assert taken.returncode == 0, taken.stderr
    after = row()
    assert after is not None
    assert (after["allows_tuyet_mat"], after["secure_endpoint"], after["channel"]) == (
        False,
        None,
        "lgsp",
    )

    # A new unit still needs its name; nothing is created without one.
    nameless = docgw(config, "units", "add", NEW, "--allows-tuyet-mat")
    assert nameless.returncode == 1 and "Traceback" not in nameless.stderr
    assert nameless.stderr.startswith("error: GATEWAY_ERROR: a unit needs a name"), nameless.stderr
    assert run(lambda: unit_row(database_url, NEW)) is None


def test_units_import_reads_the_allows_tuyet_mat_column(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    data = tmp_path / "units.csv"
    data.write_text(
        "code,name,channel,secure_endpoint,allows_tuyet_mat\n"
        f"{RECIPIENT},UBND tỉnh Nghệ An,axis,{ENDPOINT},true\n"
        f"{NEW},UBND tỉnh Thử,axis,,\n",
        encoding="utf-8",
    )
    imported = docgw(config, "units", "import", str(data))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "imported: 2 added, 0 updated"
    first = run(lambda: unit_row(database_url, RECIPIENT))
    second = run(lambda: unit_row(database_url, NEW))
    assert first is not None and second is not None
    assert (first["allows_tuyet_mat"], first["secure_endpoint"]) == (True, ENDPOINT)
    assert (second["allows_tuyet_mat"], second["secure_endpoint"]) == (False, None)


# ------------------------------------------------------------------------------------ the API


def test_the_api_sets_allows_tuyet_mat_as_an_admin_decision(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            admin = {
                "Authorization": "Bearer "
                + await tokens.create_token(gateway, name="admin", role="admin")
            }
            member = {
                "Authorization": "Bearer "
                + await tokens.create_token(gateway, name="h41", role="member", unit_code=RECIPIENT)
            }
            async with TestClient(TestServer(create_app(gateway))) as client:

                async def post(body: dict[str, Any], headers: dict[str, str]) -> Any:
                    response = await client.post("/api/v1/units", json=body, headers=headers)
                    return response.status, await response.json()

                # A new unit: off unless given.
                status, created = await post({"code": NEW, "name": "UBND tỉnh Thử"}, admin)
                assert (status, created["allows_tuyet_mat"]) == (201, False)

                await set_columns(gateway, RECIPIENT, active=False)
                status, body = await post(
                    {"code": RECIPIENT, "secure_endpoint": ENDPOINT, "allows_tuyet_mat": True},
                    admin,
                )
                assert status == 200, body
                assert (body["allows_tuyet_mat"], body["secure_endpoint"]) == (True, ENDPOINT)
                # Another update names neither: both stay, and so does active.
                status, body = await post({"code": RECIPIENT, "channel": "lgsp"}, admin)
                assert status == 200
                assert await unit_row(gateway, RECIPIENT) == {
                    "name": f"Đơn vị {RECIPIENT}", "channel": "lgsp", "secure_endpoint": ENDPOINT,
                    "allows_tuyet_mat": True, "is_local": False, "active": False,
                }  # fmt: skip

                before = await unit_row(gateway, RECIPIENT)
                for body, headers, expected, code in (
                    ({"allows_tuyet_mat": "yes"}, admin, 400, "BAD_REQUEST"),
                    ({"allows_tuyet_mat": None}, admin, 400, "BAD_REQUEST"),
                    ({"allows_tuyet_mat": False}, member, 403, "FORBIDDEN"),
                ):
                    status, problem = await post({"code": RECIPIENT, **body}, headers)
                    assert (status, problem["code"]) == (expected, code), problem
                    assert problem["element"] == "allows_tuyet_mat"
                    assert await unit_row(gateway, RECIPIENT) == before
                # The member still renames its own unit; the permission stays.
                status, body = await post({"code": RECIPIENT, "name": "Nghệ An"}, member)
                assert (status, body["allows_tuyet_mat"]) == (200, True)

    run(scenario)


# -------------------------------------------------------------------------------- CSV import


def test_a_csv_import_changes_only_its_columns_and_is_all_or_nothing(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            await registry.import_csv(
                gateway,
                "code,name,secure_endpoint,allows_tuyet_mat\n"
                f"{RECIPIENT},UBND tỉnh Nghệ An,{ENDPOINT},yes\n"
                f"{OTHER},UBND tỉnh Cao Bằng,,\n",
                actor="admin",
            )
            await set_columns(gateway, RECIPIENT, active=False)
            assert await unit_row(gateway, RECIPIENT) == {
                "name": "UBND tỉnh Nghệ An", "channel": "axis", "secure_endpoint": ENDPOINT,
                "allows_tuyet_mat": True, "is_local": False, "active": False,
            }  # fmt: skip
            other = await unit_row(gateway, OTHER)
            assert other is not None and other["allows_tuyet_mat"] is False

            # A re-import of names and channels only (a directory export) leaves the rest.
            created, updated = await registry.import_csv(
                gateway, f"code,name,channel\n{RECIPIENT},Nghệ An,lgsp\n", actor="admin"
            )
            assert (created, updated) == (0, 1)
            assert await unit_row(gateway, RECIPIENT) == {
                "name": "Nghệ An", "channel": "lgsp", "secure_endpoint": ENDPOINT,
                "allows_tuyet_mat": True, "is_local": False, "active": False,
            }  # fmt: skip

            # An empty cell of a column that is there means no.
            await registry.import_csv(
                gateway, f"code,name,allows_tuyet_mat\n{RECIPIENT},Nghệ An,\n", actor="admin"
            )
            after = await unit_row(gateway, RECIPIENT)
            assert after is not None and after["allows_tuyet_mat"] is False

            async def audit_count() -> int:
                async with gateway.engine.connect() as conn:
                    count = await conn.scalar(sa.select(sa.func.count()).select_from(audit_events))
                return int(count or 0)

            before, events = after, await audit_count()
            for csv, message, element in (
                (
                    f"code,name,allows_tuyet_mat\n{OTHER},Cao Bằng,true\n{RECIPIENT},x,maybe\n",
                    "line 3: must be true or false, not 'maybe'",
                    "allows_tuyet_mat",
                ),
                (
                    f"code,name,allow_tuyet_mat\n{RECIPIENT},x,true\n",
                    "unknown column 'allow_tuyet_mat'",
                    "header",
                ),
            ):
                with pytest.raises(GatewayError) as refused:
                    await registry.import_csv(gateway, csv, actor="admin")
                assert message in refused.value.message
                assert refused.value.element == element
                assert await unit_row(gateway, RECIPIENT) == before
                other = await unit_row(gateway, OTHER)
                assert other is not None and other["allows_tuyet_mat"] is False
                assert await audit_count() == events

    run(scenario)


def test_a_unit_on_a_channel_the_gateway_does_not_have_is_refused(make_gateway: Any) -> None:
    """The API's registration and update take only a configured channel (UNKNOWN_CHANNEL, 422,
    naming it); nothing changes. The gateway's own set-up (the fixture's register_all on "axis")
    is not an operator's choice and is not checked."""

    async def scenario() -> None:
        connectors = {"axis": FakeConnector(name="axis", is_axis=True)}
        async with make_gateway(connectors=connectors) as gateway:
            admin = {
                "Authorization": "Bearer "
                + await tokens.create_token(gateway, name="admin", role="admin")
            }
            async with TestClient(TestServer(create_app(gateway))) as client:
                before = await unit_row(gateway, RECIPIENT)
                refused = (
                    {"code": RECIPIENT, "channel": "axsi"},
                    {"code": NEW, "name": "UBND tỉnh Thử", "channel": "lgsp"},
                )
                for body in refused:
                    response = await client.post("/api/v1/units", json=body, headers=admin)
                    problem = await response.json()
                    assert response.status == 422, problem
                    assert (problem["code"], problem["element"]) == ("UNKNOWN_CHANNEL", "channel")
                    assert "axis" in problem["detail"]
                assert await unit_row(gateway, RECIPIENT) == before
                response = await client.post(
                    "/api/v1/units", json={"code": RECIPIENT, "channel": "axis"}, headers=admin
                )
                assert response.status == 200

    run(scenario)

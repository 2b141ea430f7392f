"""The directory sync as people reach it: ``docgw directory sync|runs`` and ``docgw units
list|tree`` as real processes against the axis simulator over loopback HTTP, and
``/api/v1/directory/syncs`` and ``/api/v1/units?q=…&parent=…`` over real HTTP — the same use
cases, the same counts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from integration_support import SENDER

from connectors.simulators.axis import AxisState, generate_directory, running_axis
from gateway.usecases import tokens
from gateway.web.app import create_app

DOCGW = Path(sys.executable).parent / "docgw"
SYSTEM, SECRET = "he-thong-a", "bi-mat-danh-ba"


async def docgw(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(DOCGW), "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DOCGW_CHANNELS__AXIS__SECRET": SECRET},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_the_cli_syncs_lists_runs_and_walks_the_tree(tmp_path: Path) -> None:
    agencies = generate_directory(600, seed=3)
    state = AxisState(seed=3)
    state.load_directory(agencies)
    state.add_system(SYSTEM, SECRET.encode(), ["000.00.00.G22"])
    province = agencies[0]
    children = [a for a in agencies if a.parent_code == province.code]
    assert children

    async def scenario() -> None:
        async with running_axis(state) as url:
            config = tmp_path / "docgw.toml"
            config.write_text(
                f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/docgw.db"\n'
                f'[channels.axis]\nkind = "vxp"\nendpoint = "{url}"\nsystem_id = "{SYSTEM}"\n',
                encoding="utf-8",
            )
            code, out, err = await docgw(config, "directory", "sync", "axis")
            assert code == 0, err
            assert out.startswith(f"axis: full sync, {len(agencies) + 0} listed"), out
            assert f"{len(state.directory)} added" in out

            state.change_agency(children[0].code, name="Phòng Văn thư Lưu trữ Điện tử")
            state.remove_agency(children[1].code)
            code, out, err = await docgw(config, "directory", "sync", "axis", "--json")
            assert code == 0, err
            report = json.loads(out)
            assert report["mode"] == "incremental"
            assert {k: v for k, v in report["counts"].items() if v} == {"renamed": 1, "closed": 1}

            code, out, err = await docgw(config, "directory", "runs")
            assert code == 0, err
            lines = out.splitlines()
            assert len(lines) == 2 and "incremental" in lines[0] and "full" in lines[1]
            assert "1 renamed, 1 closed" in lines[0]

            code, out, err = await docgw(config, "units", "list", "--q", "VAN THU LUU TRU")
            assert code == 0, err
            assert [line.split()[0] for line in out.splitlines()] == [children[0].code]

            code, out, err = await docgw(config, "units", "tree", province.code)
            assert code == 0, err
            tree = out.splitlines()
            assert tree[0].startswith(province.code)
            listed = {line.split()[0] for line in tree[1:]}
            assert listed == {c.code for c in children}
            assert all(line.startswith("  ") for line in tree[1:])
            closed = next(line for line in tree if line.split()[0] == children[1].code)
            assert "inactive" in closed

            code, out, err = await docgw(config, "directory", "sync", "nowhere")
            assert code == 1 and err.startswith("error: CHANNEL_HAS_NO_DIRECTORY"), err

    asyncio.run(scenario())


def test_the_api_syncs_and_searches(make_gateway: Any) -> None:
    agencies = generate_directory(400, seed=4)
    state = AxisState(seed=4)
    state.load_directory(agencies)
    state.add_system(SYSTEM, SECRET.encode(), ["000.00.00.G22"])
    province = agencies[0]

    async def scenario() -> None:
        async with running_axis(state) as url:
            import aiohttp

            from connectors.vxp import VxpConnector

            async with aiohttp.ClientSession() as session:
                axis = VxpConnector(
                    name="axis",
                    endpoint=url,
                    system_id=SYSTEM,
                    secret=SECRET.encode(),
                    session=session,
                )
                async with (
                    make_gateway(
                        connectors={"axis": axis}, extra='[channels.axis]\nkind = "fake"\n'
                    ) as gateway,
                    TestClient(TestServer(create_app(gateway))) as client,
                ):
                    admin = {
                        "Authorization": "Bearer "
                        + await tokens.create_token(gateway, name="a", role="admin")
                    }
                    member = {
                        "Authorization": "Bearer "
                        + await tokens.create_token(
                            gateway, name="m", role="member", unit_code=SENDER
                        )
                    }
                    answer = await client.post(
                        "/api/v1/directory/syncs", json={"channel": "axis"}, headers=member
                    )
                    assert answer.status == 403
                    answer = await client.post(
                        "/api/v1/directory/syncs", json={"channel": "axis"}, headers=admin
                    )
                    assert answer.status == 201, await answer.text()
                    synced = await answer.json()
                    assert synced["mode"] == "full" and synced["counts"]["added"] > 300
                    answer = await client.post(
                        "/api/v1/directory/syncs", json={"channel": "nowhere"}, headers=admin
                    )
                    problem = await answer.json()
                    assert answer.status == 422 and problem["code"] == "CHANNEL_HAS_NO_DIRECTORY"
                    answer = await client.post(
                        "/api/v1/directory/syncs", json={"chanel": "axis"}, headers=admin
                    )
                    assert answer.status == 400 and (await answer.json())["element"] == "chanel"

                    runs = await (await client.get("/api/v1/directory/syncs", headers=admin)).json()
                    assert [r["id"] for r in runs["items"]] == [synced["id"]]

                    name = province.name  # e.g. "UBND tỉnh An Giang"
                    from gateway.domain.text_search import fold

                    answer = await client.get(
                        "/api/v1/units", params={"q": fold(name).upper()}, headers=member
                    )
                    items = (await answer.json())["items"]
                    assert province.code in {u["code"] for u in items}
                    answer = await client.get(
                        "/api/v1/units", params={"parent": province.code}, headers=member
                    )
                    children = {u["code"] for u in (await answer.json())["items"]}
                    assert children == {a.code for a in agencies if a.parent_code == province.code}

    asyncio.run(scenario())

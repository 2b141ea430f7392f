"""The directory kept in step: a full listing first, then only the changes (getSynchronizeUnit)
from the national axis simulator over real HTTP, on SQLite and PostgreSQL — renamed, re-parented,
merged, closed and new agencies, each counted and recorded; a closed code with documents still
waiting for it named; the whole listing again agreeing with what the changes made; and search
that finds Vietnamese names without their accents."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from integration_support import EXAMPLES, UNITS

from connectors.simulators.axis import AxisState, generate_directory, running_axis
from connectors.vxp import VxpConnector
from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.store import unit_queries
from gateway.usecases import directory, registry, submit
from gateway.usecases.errors import NoDirectory

SYSTEM, SECRET, UNIT = "docgw-test", b"directory-secret", "000.00.00.G22"
RENAMED = "Trường Đào tạo Nghiệp vụ Thư Lưu Ứng Dụng"
TODAY = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()


def _document_to(code: str) -> Any:
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta["to"] = [{"organ_id": code, "organ_name": "Đơn vị sắp đóng"}]
    meta["code"] = {"number": "41", "notation": "SN-VP"}
    return parse_metadata(meta, today=TODAY)


def test_changes_between_full_listings(make_gateway: Any) -> None:
    agencies = generate_directory(2000, seed=7)
    state = AxisState(seed=7)
    state.load_directory(agencies)
    state.add_system(SYSTEM, SECRET, [UNIT])
    children = [a for a in agencies if a.parent_code and not a.old_code]
    renamed, moved, merged_a, merged_b, closed = children[10:15]
    new_parent = children[100]

    async def scenario() -> None:
        async with running_axis(state) as url, aiohttp.ClientSession() as session:
            axis = VxpConnector(
                name="axis", endpoint=url, system_id=SYSTEM, secret=SECRET, session=session
            )
            # The channel as configured (a vxp channel: its directory_full_sync_hours apply),
            # with the connector built here on the test's session.
            channel = (
                f'[channels.axis]\nkind = "vxp"\nendpoint = "{url}"\n'
                f'system_id = "{SYSTEM}"\nsecret = "{SECRET.decode()}"\n'
            )
            async with make_gateway(connectors={"axis": axis}, extra=channel) as gateway:
                first = await directory.sync_channel(gateway, "axis")
                assert first.mode == "full"
                # Every agency is new but the test's units, registered before.
                already = set(state.directory) & set(UNITS)
                assert first.listed == len(state.directory)
                assert first.counts["added"] == first.listed - len(already)
                assert first.counts["closed"] == first.counts["merged"] == 0

                # A document still waits for the unit the directory is about to close.
                await submit.submit_document(
                    gateway,
                    _document_to(merged_b.code),
                    [AttachmentSource(name="vb.pdf", open=lambda: io.BytesIO(b"%PDF-1.7"))],
                    client="test",
                    actor="test",
                )
                # The axis changes: a rename, a move, two units merged into a new one (which
                # names one of them as its old code), a closure and a new unit.
                state.change_agency(renamed.code, name=RENAMED)
                state.change_agency(moved.code, parent_code=new_parent.code)
                merged = state.add_agency(
                    code="000.99.01.H99", name="Sở Nội vụ sau sáp nhập",
                    parent_code=merged_a.parent_code,
                )  # fmt: skip
                state.change_agency(merged.code, old_code=merged_a.code)
                for code in (merged_a.code, merged_b.code, closed.code):
                    state.remove_agency(code)
                state.add_agency(code="000.99.02.H99", name="Trung tâm mới")
                requests = state.counters["requests"]

                second = await directory.sync_channel(gateway, "axis")
                assert second.mode == "incremental" and second.since is not None
                assert state.counters["requests"] == requests + 1  # getSynchronizeUnit only
                counts = {kind: n for kind, n in second.counts.items() if n}
                assert counts == {
                    "added": 2,
                    "renamed": 1,
                    "reparented": 1,
                    "merged": 1,
                    "closed": 2,
                }, second.changes
                assert second.stranded == {merged_b.code: 1}
                assert {c["code"] for c in second.changes["merged"]} == {merged_a.code}

                async with gateway.engine.connect() as conn:
                    units = await unit_queries.get_units(
                        conn, [renamed.code, moved.code, merged_a.code, closed.code, merged.code]
                    )
                assert units[renamed.code].name == RENAMED
                assert units[moved.code].parent_code == new_parent.code
                assert not units[merged_a.code].active
                assert units[merged_a.code].replaced_by == merged.code
                assert not units[closed.code].active and units[closed.code].replaced_by is None
                assert units[merged.code].active and units[merged.code].code_qd20

                # The whole listing agrees with what the changes made: nothing left to change.
                third = await directory.sync_channel(gateway, "axis", full=True)
                assert third.mode == "full" and not any(third.counts.values()), third.changes

                runs = await directory.list_syncs(gateway, channel="axis")
                assert [r["mode"] for r in runs] == ["full", "incremental", "full"]
                assert runs[1]["counts"]["merged"] == 1
                assert runs[1]["changes"]["stranded"] == {merged_b.code: 1}

                # Search fits Vietnamese: no accents, any case, or a code prefix.
                for text in ("lưu ứng dụng", "LUU UNG DUNG", "dao tao nghiep vu thu luu"):
                    found = await registry.list_units(gateway, text=text)
                    assert [u.code for u in found] == [renamed.code], text
                found = await registry.list_units(gateway, text="000.99.0")
                assert {u.code for u in found} == {"000.99.01.H99", "000.99.02.H99"}
                found = await registry.list_units(gateway, parent=new_parent.code)
                assert moved.code in {u.code for u in found}

                with pytest.raises(NoDirectory):
                    await directory.sync_channel(gateway, "nowhere")

    asyncio.run(scenario())


def test_a_full_listing_that_drops_units_closes_only_this_channels_directory(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            from connectors.base import DirectoryEntry

            listed = [
                DirectoryEntry(code=f"000.{i:02d}.01.H41", name=f"Đơn vị {i}") for i in range(30)
            ]
            await directory.store_directory(gateway, "axis", listed)
            # The test units are registered on "axis" too, the local one among them.
            report = await directory.store_directory(gateway, "axis", listed[:20])
            async with gateway.engine.connect() as conn:
                local = await unit_queries.get_unit(conn, UNIT)
            assert local is not None and local.active
            assert report.counts["closed"] >= 10
            closed_codes = {c["code"] for c in report.changes["closed"]}
            assert {e.code for e in listed[20:]} <= closed_codes
            assert UNIT not in closed_codes

    asyncio.run(scenario())


def test_units_registered_by_hand_are_found_without_accents(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            from gateway.store.records import UnitRecord

            unit = UnitRecord(code="000.00.12.H29", name="Sở Nội vụ tỉnh Điện Biên")
            await registry.register_unit(gateway, unit, certificate_pem=None, actor="test")
            assert [u.code for u in await registry.list_units(gateway, text="so noi vu dien")]
            # Renamed: the folded name follows (an update names only the name).
            renamed = UnitRecord(code=unit.code, name="Sở Nội vụ và Lao động Điện Biên")
            await registry.register_unit(
                gateway, renamed, certificate_pem=None, actor="test", given=("name",)
            )
            assert not await registry.list_units(gateway, text="noi vu tinh")
            found = await registry.list_units(gateway, text="LAO ĐỘNG")
            assert [u.code for u in found] == [unit.code]
            await registry.import_csv(
                gateway, "code,name\n000.00.13.H29,Trung tâm Lưu trữ Ước Lễ\n", actor="test"
            )
            found = await registry.list_units(gateway, text="uoc le")
            assert [u.code for u in found] == ["000.00.13.H29"]

    asyncio.run(scenario())

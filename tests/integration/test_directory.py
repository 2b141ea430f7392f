"""Directory sync into the unit registry, on both databases: bulk upsert, lenient codes flagged,
units the directory no longer lists deactivated, local units and routing kept."""

from __future__ import annotations

import asyncio
from typing import Any

from integration_support import SENDER

from connectors.base import DirectoryEntry
from gateway.store import unit_queries
from gateway.usecases.directory import store_directory


def test_directory_sync_upserts_flags_and_deactivates(make_gateway: Any) -> None:
    listed = [
        DirectoryEntry(code=f"000.{i // 100:02d}.{i % 100:02d}.H41", name=f"Đơn vị {i}")
        for i in range(1, 1001)
    ]

    async def scenario() -> None:
        async with make_gateway() as gateway:
            first = await store_directory(
                gateway, "axis", [*listed, DirectoryEntry(code="vxp.saas.03", name="odd")]
            )
            assert first.listed == 1001 and first.nonconforming == 1
            second = await store_directory(gateway, "axis", listed[:900])
            assert second.deactivated == 101  # 100 dropped agencies and the odd code
            async with gateway.engine.connect() as conn:
                dropped = await unit_queries.get_unit(conn, listed[950].code)
                kept = await unit_queries.get_unit(conn, listed[10].code)
                local = await unit_queries.get_unit(conn, SENDER)
            assert dropped is not None and not dropped.active
            assert kept is not None and kept.active and kept.name == "Đơn vị 11"
            assert kept.parent_code is not None  # derived from the QCVN 102 form
            assert local is not None and local.active and local.is_local

    asyncio.run(scenario())

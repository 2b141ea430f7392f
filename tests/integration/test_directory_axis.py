"""Directory sync from the national axis simulator, over real HTTP on loopback, into a real
database (SQLite and PostgreSQL): both lists are fetched (getAgenciesList and
getAgenciesListQD20) and every unit is stored with its QCVN 102 code, its explicit parent and its
QĐ 20 code (DOMAIN.md §2: store both). A sync that cannot get the QĐ 20 list stores nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from connectors.base import DirectoryEntry, PeerUnavailable, Qd20Source
from connectors.simulators.axis import AxisFaults, AxisState, generate_directory, running_axis
from connectors.vxp import VxpConnector
from envelopes.unit_codes import parse_lenient
from gateway.store import unit_queries
from gateway.usecases.directory import sync_directory, with_qd20_codes

SYSTEM, SECRET, UNIT = "docgw-test", b"directory-secret", "000.00.00.G22"
AGENCIES = 3000


def test_the_sync_stores_both_codes_of_every_agency(make_gateway: Any) -> None:
    agencies = generate_directory(AGENCIES, seed=5)
    state = AxisState(seed=5)
    state.load_directory(agencies)
    state.add_system(SYSTEM, SECRET, [UNIT])
    sample = [a for a in agencies if a.code.startswith("000.01.")][:50]
    # Re-parented after a merger: the code no longer says the parent.
    reparented = [
        a
        for a in agencies
        if a.parent_code and parse_lenient(a.code).derived_parent != a.parent_code
    ]
    assert reparented

    async def scenario() -> None:
        async with (
            running_axis(state) as url,
            aiohttp.ClientSession() as session,
            make_gateway() as gateway,
        ):
            axis = VxpConnector(
                name="axis", endpoint=url, system_id=SYSTEM, secret=SECRET, session=session
            )
            assert isinstance(axis, Qd20Source)
            report = await sync_directory(gateway, "axis", axis, qd20=axis)
            assert report.listed == AGENCIES
            assert report.with_qd20 == AGENCIES
            assert state.counters["requests"] == 2  # getAgenciesList, getAgenciesListQD20
            async with gateway.engine.connect() as conn:
                units = await unit_queries.get_units(conn, [a.code for a in sample + reparented])
            for agency in sample + reparented:
                unit = units[agency.code]
                assert unit.code_qd20 == agency.code_qd20 and unit.code_qd20
                assert unit.parent_code == agency.parent_code  # explicit, not derived
                assert unit.name == agency.name and unit.active
            async with gateway.engine.connect() as conn:
                government_office = await unit_queries.get_unit(conn, UNIT)
            assert government_office is not None and government_office.code_qd20 == "G22"

            # The QĐ 20 list cannot be had: the sync fails whole and the stored codes stay.
            single = VxpConnector(
                name="axis",
                endpoint=url,
                system_id=SYSTEM,
                secret=SECRET,
                session=session,
                attempts=1,
            )

            def busy_for_qd20(operation: str, body: bytes) -> None:
                if operation == "getAgenciesListQD20":
                    state.set_faults(AxisFaults(burst_5xx=1))

            state.record_bytes = busy_for_qd20
            with pytest.raises(PeerUnavailable):
                await sync_directory(gateway, "axis", single, qd20=single)
            async with gateway.engine.connect() as conn:
                kept = await unit_queries.get_unit(conn, sample[0].code)
            assert kept is not None and kept.code_qd20 == sample[0].code_qd20 and kept.active

    asyncio.run(scenario())


def test_merging_the_two_lists() -> None:
    main = [
        DirectoryEntry(code="000.00.00.H41", name="UBND tỉnh Nghệ An"),
        DirectoryEntry(code="000.01.00.H41", name="Sở Nội vụ", parent_code="000.00.00.H41"),
        DirectoryEntry(code="vxp.saas.03", name="Hệ thống", code_qd20="VXP.SAAS.03"),
    ]
    qd20 = [
        DirectoryEntry(code="000.00.00.H41", name="UBND tỉnh Nghệ An", code_qd20="H41"),
        DirectoryEntry(code="000.01.00.H41", name="x", parent_code="y", code_qd20="H41.01"),
        DirectoryEntry(code="vxp.saas.03", name="Hệ thống", code_qd20="OTHER"),
        DirectoryEntry(code="H41.99.01", name="Chỉ có mã QĐ 20", code_qd20="H41.99.01"),
    ]
    merged = with_qd20_codes(main, qd20)
    assert [(e.code, e.code_qd20) for e in merged] == [
        ("000.00.00.H41", "H41"),
        ("000.01.00.H41", "H41.01"),
        ("vxp.saas.03", "VXP.SAAS.03"),  # a code the main list already gives is kept
        ("H41.99.01", "H41.99.01"),  # only in the QĐ 20 list: added
    ]
    # The main list's names and parents win.
    assert merged[1].name == "Sở Nội vụ" and merged[1].parent_code == "000.00.00.H41"

"""Directory sync: the national directory (≈110–125 thousand agencies, re-parented and closed
after mergers) is copied into the local unit registry, regularly.

Codes are taken leniently (real directories carry non-conforming ones) and flagged in the report;
units the directory no longer lists are deactivated, not deleted (their history stays).

Both codes (DOMAIN.md §2): a source that also lists Decision 20 codes (the national axis'
getAgenciesListQD20, :meth:`connectors.vxp.VxpConnector.agencies_qd20`, whose entries carry the
QCVN 102 code as ``code102``) is asked for both lists, and each unit is stored with its QĐ 20 code
beside its QCVN 102 code (``units.code_qd20``). getAgenciesList stays the main list — it has the
parents by id and the old codes —; an agency only the QĐ 20 list has is added under its QCVN 102
code or, lacking one, its QĐ 20 code. Both lists are fetched before anything is stored: a sync
that cannot get the second fails whole rather than store the units without their QĐ 20 codes
(which would erase the codes the last sync stored).

getSynchronizeUnit (the axis' incremental changes) is not used for the periodic sync: the sync
must see the whole directory anyway to find the units that were closed or merged — a unit that
disappears from the listing is deactivated, whereas a change feed must be trusted to report every
deletion, and how it reports them is only probable (DOMAIN.md §5) —, and a full sync of about
120,000 agencies every few hours is cheap. The connector keeps ``synchronize_units`` for an
operator who wants to see what changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.base import DirectoryEntry, DirectorySource, Qd20Source
from envelopes.unit_codes import parse_lenient
from gateway.bootstrap import Gateway
from gateway.store import audit_queries, unit_queries
from gateway.store.records import UnitRecord


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    channel: str
    listed: int
    nonconforming: int
    deactivated: int
    #: Units stored with a QĐ 20 code.
    with_qd20: int = 0


async def sync_directory(
    gateway: Gateway, channel: str, source: DirectorySource, qd20: Qd20Source | None = None
) -> SyncReport:
    """Store ``source``'s directory; with ``qd20`` (the same axis, where it lists them: the
    wiring says so, gateway.bootstrap.Capabilities) each unit's Decision 20 code too."""
    entries = await source.agencies()
    if qd20 is not None:
        entries = with_qd20_codes(entries, await qd20.agencies_qd20())
    return await store_directory(gateway, channel, entries)


def with_qd20_codes(
    entries: Sequence[DirectoryEntry], qd20: Sequence[DirectoryEntry]
) -> list[DirectoryEntry]:
    """``entries`` (getAgenciesList) with each unit's QĐ 20 code from ``qd20``
    (getAgenciesListQD20, keyed by the QCVN 102 code), and the agencies only ``qd20`` lists."""
    by_code = {entry.code: entry for entry in qd20 if entry.code_qd20}
    merged = []
    for entry in entries:
        other = by_code.pop(entry.code, None)
        if other is not None and entry.code_qd20 is None:
            entry = dataclasses.replace(entry, code_qd20=other.code_qd20)
        merged.append(entry)
    merged.extend(by_code.values())
    return merged


async def store_directory(
    gateway: Gateway, channel: str, entries: Sequence[DirectoryEntry]
) -> SyncReport:
    started = gateway.clock()
    records = []
    nonconforming = 0
    seen: set[str] = set()
    for entry in entries:
        code = parse_lenient(entry.code)
        if not code.value or code.value in seen:
            continue
        seen.add(code.value)
        nonconforming += not code.is_conforming
        records.append(
            UnitRecord(
                code=code.value,
                name=entry.name or code.value,
                parent_code=entry.parent_code or code.derived_parent,
                code_qd20=entry.code_qd20,
                channel=channel,
            )
        )
    with_qd20 = sum(1 for record in records if record.code_qd20)
    async with gateway.engine.begin() as conn:
        await unit_queries.upsert_directory(conn, records, channel=channel, now=started)
        deactivated = await unit_queries.deactivate_missing(
            conn, channel=channel, synced_before=started
        )
        await audit_queries.audit(
            conn,
            now=started,
            actor="directory_sync",
            action="directory_synced",
            reason=f"{channel}: {len(records)} listed "
            f"({with_qd20} with a QĐ 20 code), "
            f"{deactivated} deactivated",
        )
    return SyncReport(
        channel=channel,
        listed=len(records),
        nonconforming=nonconforming,
        deactivated=deactivated,
        with_qd20=with_qd20,
    )

"""Directory sync: the national directory (≈110–125 thousand agencies, re-parented and closed
after mergers) is copied into the local unit registry, regularly.

Codes are taken leniently (real directories carry non-conforming ones) and flagged in the report;
units the directory no longer lists are deactivated, not deleted (their history stays).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.base import DirectoryEntry
from envelopes.unit_codes import parse_lenient
from gateway.bootstrap import Gateway
from gateway.store import queries
from gateway.store.records import UnitRecord


class DirectorySource(Protocol):
    async def agencies(self) -> list[DirectoryEntry]: ...


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    channel: str
    listed: int
    nonconforming: int
    deactivated: int


async def sync_directory(gateway: Gateway, channel: str, source: DirectorySource) -> SyncReport:
    entries = await source.agencies()
    return await store_directory(gateway, channel, entries)


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
    async with gateway.engine.begin() as conn:
        await queries.upsert_directory(conn, records, channel=channel, now=started)
        deactivated = await queries.deactivate_missing(conn, channel=channel, synced_before=started)
        await queries.audit(
            conn,
            now=started,
            actor="directory_sync",
            action="directory_synced",
            reason=f"{channel}: {len(records)} listed, {deactivated} deactivated",
        )
    return SyncReport(
        channel=channel, listed=len(records), nonconforming=nonconforming, deactivated=deactivated
    )

"""Directory sync: the national directory (≈110–125 thousand agencies, re-parented, merged and
closed after the 2025 mergers) kept in step with the local unit registry.

Two ways to ask, one way to apply. A *full* sync reads the whole listing (getAgenciesList, with
getAgenciesListQD20 where the source has it) and compares it with the registry: a unit of this
channel's directory that the listing no longer has is closed. An *incremental* sync asks the
source's change feed (getSynchronizeUnit) for what changed since the last sync began, less
:data:`OVERLAP` (the axis' clock and ours differ; applying a change twice changes nothing), and
applies those changes alone. A channel syncs incrementally between full syncs, and fully when its
last full sync is older than ``full_every`` (or it has none, or its source has no change feed):
the listing is the only way to notice a closure that the feed failed to report.

Both compare each listed agency with the registry and count what changed: ``added``, ``renamed``,
``reparented``, ``recoded`` (a new QĐ 20 code), ``reopened`` (listed again after a closure),
``closed`` (gone from the listing, or reported deleted) and ``merged`` (closed, and another
agency now lists its code as ``oldCode``: its ``replaced_by``). Only what changed is written. Each
run is recorded (``directory_syncs``) with its counts and the first changes of each kind, and a
closed code that still has documents waiting to be sent to it is named in the report and logged
as a warning (``directory_closed_code_has_queue``): those documents will be held.

Codes are taken leniently (real directories carry non-conforming ones) and counted; both code
forms are kept (DOMAIN.md §2: ``units.code_qd20`` beside the QCVN 102 code). An agency only the
QĐ 20 list has is added under its QCVN 102 code or, lacking one, its QĐ 20 code; both lists are
fetched before anything is stored. Local units are never closed by a sync, and units registered
on another channel are not closed by this one's directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import ChangeFeed, DirectoryEntry, DirectorySource, Qd20Source, UnitChange
from envelopes.unit_codes import parse_lenient
from gateway.bootstrap import Gateway
from gateway.domain.directory import SyncMode
from gateway.store import audit_queries
from gateway.store import directory as store
from gateway.store.directory import Closure, DirectoryUnit, RegisteredUnit
from gateway.usecases.errors import NoDirectory

log = logging.getLogger("docgw.directory")

FULL, INCREMENTAL = SyncMode.FULL, SyncMode.INCREMENTAL
#: An incremental sync asks for the changes since the last sync began, less this much.
OVERLAP = dt.timedelta(minutes=10)
#: How many changes of each kind a sync's record keeps (the counts are whole).
SAMPLE = 50
#: The kinds of change, in the order reports list them.
CHANGE_KINDS = ("added", "renamed", "reparented", "recoded", "reopened", "closed", "merged")


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    channel: str
    mode: str
    #: Agencies the listing (or the change feed) named, codes repeated or empty left out.
    listed: int
    nonconforming: int
    #: Per kind of change (:data:`CHANGE_KINDS`), how many units.
    counts: Mapping[str, int]
    #: Per kind, the first :data:`SAMPLE` changes ({"code": …, and what changed}).
    changes: Mapping[str, Sequence[Mapping[str, Any]]]
    #: Closed (or merged) codes that still have documents waiting for them: code → recipients.
    stranded: Mapping[str, int] = field(default_factory=dict)
    #: Units stored with a QĐ 20 code (full syncs).
    with_qd20: int = 0
    since: dt.datetime | None = None
    id: int | None = None

    @property
    def deactivated(self) -> int:
        return self.counts.get("closed", 0) + self.counts.get("merged", 0)


async def sync_channel(gateway: Gateway, channel: str, *, full: bool = False) -> SyncReport:
    """Sync the directory of the configured channel named ``channel`` (what its connector can do
    was found at wiring: ``gateway.capabilities``; ``[channels.NAME] directory_full_sync_hours``
    says when a whole listing is due)."""
    can = gateway.capabilities.get(channel)
    if can is None or can.directory is None:
        raise NoDirectory(
            f"channel {channel!r} has no directory to sync (an axis channel: vxp or soap)",
            element="channel",
        )
    hours = getattr(gateway.settings.channel(channel), "directory_full_sync_hours", 0.0)
    return await sync_directory(
        gateway,
        channel,
        can.directory,
        can.qd20,
        can.changes,
        full_every=dt.timedelta(hours=hours),
        full=full,
    )


async def sync_directory(
    gateway: Gateway,
    channel: str,
    source: DirectorySource,
    qd20: Qd20Source | None = None,
    changes: ChangeFeed | None = None,
    *,
    full_every: dt.timedelta | None = None,
    full: bool = False,
) -> SyncReport:
    """Sync ``channel``'s directory: incrementally from ``changes`` when it is given, the last
    full sync is younger than ``full_every`` and ``full`` is not asked; else the whole listing of
    ``source`` (with ``qd20``, each unit's Decision 20 code too)."""
    started = gateway.clock()
    since = None
    if not full and full_every is not None and changes is not None:
        async with gateway.engine.connect() as conn:
            last_full = await store.last_sync(conn, channel, mode=FULL)
            last = await store.last_sync(conn, channel)
        if last_full is not None and started - last_full.started_at < full_every:
            since = last.started_at - OVERLAP
    if since is not None and changes is not None:
        feed = await changes.synchronize_units(since)
        return await apply_changes(gateway, channel, feed, since=since, started=started)
    entries = await source.agencies()
    if qd20 is not None:
        entries = with_qd20_codes(entries, await qd20.agencies_qd20())
    return await store_directory(gateway, channel, entries, started=started)


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
            # Built, not dataclasses.replace()d: this runs for each of 120,000 agencies.
            entry = DirectoryEntry(
                code=entry.code,
                name=entry.name,
                parent_code=entry.parent_code,
                code_qd20=other.code_qd20,
                email=entry.email,
                old_code=entry.old_code,
            )
        merged.append(entry)
    merged.extend(by_code.values())
    return merged


async def store_directory(
    gateway: Gateway,
    channel: str,
    entries: Sequence[DirectoryEntry],
    *,
    started: dt.datetime | None = None,
) -> SyncReport:
    """Apply a full listing: what it has is added or updated, what it lacks is closed."""
    started = started or gateway.clock()
    listing = _Listing.of(entries)
    async with gateway.engine.begin() as conn:
        registry = await store.registered_units(conn)
        gone = [
            row.code
            for row in registry.values()
            if row.channel == channel and row.code not in listing.codes
        ]
        diff = _compare(registry, listing, gone, channel=channel)
        return await _apply(conn, gateway, channel, FULL, listing, diff, started=started)


async def apply_changes(
    gateway: Gateway,
    channel: str,
    changes: Sequence[UnitChange],
    *,
    since: dt.datetime | None,
    started: dt.datetime | None = None,
) -> SyncReport:
    """Apply a change feed: agencies reported deleted are closed, the others added or updated."""
    started = started or gateway.clock()
    listing = _Listing.of([change.entry for change in changes if not change.deleted])
    deleted = {parse_lenient(c.entry.code).value for c in changes if c.deleted} - listing.codes
    async with gateway.engine.begin() as conn:
        registry = await store.registered_units(
            conn, {*listing.codes, *deleted, *listing.replaced_by}
        )
        diff = _compare(registry, listing, sorted(deleted), channel=channel)
        return await _apply(
            conn, gateway, channel, INCREMENTAL, listing, diff, started=started, since=since
        )


# ------------------------------------------------------------------------------------ compare


@dataclass(frozen=True, kw_only=True)
class _Listing:
    units: tuple[DirectoryUnit, ...]
    codes: frozenset[str]
    nonconforming: int
    #: old code → the code now listed in its place (a merger, or a new code).
    replaced_by: Mapping[str, str]

    @classmethod
    def of(cls, entries: Iterable[DirectoryEntry]) -> _Listing:
        found: list[DirectoryUnit] = []
        seen: set[str] = set()
        nonconforming = 0
        replaced_by: dict[str, str] = {}
        for entry in entries:
            code = parse_lenient(entry.code)
            if not code.value or code.value in seen:
                continue
            seen.add(code.value)
            nonconforming += not code.is_conforming
            found.append(
                DirectoryUnit(
                    code=code.value,
                    name=entry.name or code.value,
                    parent_code=entry.parent_code or code.derived_parent,
                    code_qd20=entry.code_qd20,
                )
            )
            old = parse_lenient(entry.old_code).value if entry.old_code else ""
            if old and old != code.value:
                replaced_by[old] = code.value
        codes = frozenset(seen)
        return cls(
            units=tuple(found),
            codes=codes,
            nonconforming=nonconforming,
            replaced_by={old: new for old, new in replaced_by.items() if old not in codes},
        )


@dataclass
class _Diff:
    added: list[DirectoryUnit] = field(default_factory=list)
    changed: list[DirectoryUnit] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def note(self, kind: str, **change: Any) -> None:
        self.counts[kind] += 1
        kept = self.samples.setdefault(kind, [])
        if len(kept) < SAMPLE:
            kept.append(change)


def _compare(
    registry: Mapping[str, RegisteredUnit],
    listing: _Listing,
    gone: Iterable[str],
    *,
    channel: str,
) -> _Diff:
    diff = _Diff()
    for unit in listing.units:
        row = registry.get(unit.code)
        if row is None:
            diff.added.append(unit)
            diff.note("added", code=unit.code, name=unit.name)
            continue
        # A listing without QĐ 20 codes (a SOAP directory) leaves the stored one as it is.
        unit = dataclasses.replace(unit, code_qd20=unit.code_qd20 or row.code_qd20)
        kinds: list[tuple[str, dict[str, Any]]] = []
        if row.name != unit.name:
            kinds.append(("renamed", {"from": row.name, "to": unit.name}))
        if row.parent_code != unit.parent_code:
            kinds.append(("reparented", {"from": row.parent_code, "to": unit.parent_code}))
        if row.code_qd20 != unit.code_qd20:
            kinds.append(("recoded", {"from": row.code_qd20, "to": unit.code_qd20}))
        if not row.active and not row.is_local:
            kinds.append(("reopened", {"replaced_by": row.replaced_by}))
        if kinds:
            diff.changed.append(unit)
            for kind, change in kinds:
                diff.note(kind, code=unit.code, **change)
    for code in sorted({*gone, *listing.replaced_by}):
        row = registry.get(code)
        if row is None or not row.active or row.is_local or row.channel != channel:
            continue
        replaced_by = listing.replaced_by.get(code)
        diff.closures.append(Closure(code=code, replaced_by=replaced_by))
        if replaced_by is None:
            diff.note("closed", code=code, name=row.name)
        else:
            diff.note("merged", code=code, name=row.name, replaced_by=replaced_by)
    return diff


async def _apply(
    conn: Any,
    gateway: Gateway,
    channel: str,
    mode: str,
    listing: _Listing,
    diff: _Diff,
    *,
    started: dt.datetime,
    since: dt.datetime | None = None,
) -> SyncReport:
    await store.write_directory_units(conn, diff.added, diff.changed, channel=channel, now=started)
    await store.close_units(conn, diff.closures, now=started)
    stranded = await store.queued_for(conn, (closure.code for closure in diff.closures))
    counts = {kind: diff.counts[kind] for kind in CHANGE_KINDS}
    changes: dict[str, Any] = {kind: diff.samples.get(kind, []) for kind in CHANGE_KINDS}
    changes["stranded"] = stranded
    with_qd20 = sum(1 for unit in listing.units if unit.code_qd20)
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no change"
    sync_id = await store.record_sync(
        conn,
        channel=channel,
        mode=mode,
        since=since,
        started_at=started,
        finished_at=gateway.clock(),
        listed=len(listing.units),
        counts=counts,
        changes=changes,
    )
    await audit_queries.audit(
        conn,
        now=started,
        actor="directory_sync",
        action="directory_synced",
        reason=f"{channel} ({mode}): {len(listing.units)} listed, {summary}",
    )
    for code, waiting in stranded.items():
        log.warning(
            "directory_closed_code_has_queue",
            extra={"channel": channel, "unit": code, "recipients": waiting},
        )
    return SyncReport(
        channel=channel,
        mode=mode,
        listed=len(listing.units),
        nonconforming=listing.nonconforming,
        counts=counts,
        changes=changes,
        stranded=stranded,
        with_qd20=with_qd20,
        since=since,
        id=sync_id,
    )


async def list_syncs(
    gateway: Gateway, *, channel: str | None = None, limit: int = 20
) -> list[Mapping[str, Any]]:
    """The latest directory syncs, newest first (what each changed)."""
    async with gateway.engine.connect() as conn:
        return await store.list_syncs(conn, channel=channel, limit=limit)

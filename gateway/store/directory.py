"""The national directory in the unit registry: what the registry holds of it (to compare a
listing or a change feed against), the changes a sync writes, and the record of each sync."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.lifecycle import TransportState
from gateway.domain.text_search import fold
from gateway.store.tables import directory_syncs, recipients, units

#: Rows are written in batches of this many (one compiled statement each).
_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class RegisteredUnit:
    """What a directory sync compares: the directory's fields of one registered unit (in the
    order :func:`registered_units` selects them: 120,000 are built positionally)."""

    code: str
    name: str
    parent_code: str | None
    code_qd20: str | None
    channel: str | None
    is_local: bool
    active: bool
    replaced_by: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class DirectoryUnit:
    """A unit as the directory lists it, to be written (added, or changed)."""

    code: str
    name: str
    parent_code: str | None
    code_qd20: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Closure:
    code: str
    replaced_by: str | None


async def registered_units(
    conn: AsyncConnection, codes: Iterable[str] | None = None
) -> dict[str, RegisteredUnit]:
    """The registry by code: every unit (a full listing is compared against all of them), or the
    ``codes`` given (a change feed names a few)."""
    columns = (
        units.c.code,
        units.c.name,
        units.c.parent_code,
        units.c.code_qd20,
        units.c.channel,
        units.c.is_local,
        units.c.active,
        units.c.replaced_by,
    )
    if codes is None:
        rows: list[Any] = list((await conn.execute(sa.select(*columns))).all())
    else:
        wanted = sorted(set(codes))
        rows = []
        for start in range(0, len(wanted), _CHUNK):
            query = sa.select(*columns).where(units.c.code.in_(wanted[start : start + _CHUNK]))
            rows.extend((await conn.execute(query)).all())
    return {row[0]: RegisteredUnit(*row) for row in rows}


async def write_directory_units(
    conn: AsyncConnection,
    added: Sequence[DirectoryUnit],
    changed: Sequence[DirectoryUnit],
    *,
    channel: str,
    now: dt.datetime,
) -> None:
    """Insert the units new to the registry (on ``channel``, not local, no Tuyệt mật) and write
    the directory's fields of the changed ones (active again, replaced by nothing). A unit's
    channel, secure endpoint and local flag are the registry's own and stay."""
    for start in range(0, len(added), _CHUNK):
        await conn.execute(
            units.insert(),
            [
                {
                    "code": unit.code,
                    "name": unit.name,
                    "name_folded": fold(unit.name),
                    "parent_code": unit.parent_code,
                    "code_qd20": unit.code_qd20,
                    "channel": channel,
                    "is_local": False,
                    "active": True,
                    "allows_tuyet_mat": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for unit in added[start : start + _CHUNK]
            ],
        )
    update = (
        units.update()
        .where(units.c.code == sa.bindparam("b_code"))
        .values(
            name=sa.bindparam("b_name"),
            name_folded=sa.bindparam("b_folded"),
            parent_code=sa.bindparam("b_parent"),
            code_qd20=sa.bindparam("b_qd20"),
            active=True,
            replaced_by=None,
            updated_at=now,
        )
    )
    for start in range(0, len(changed), _CHUNK):
        await conn.execute(
            update,
            [
                {
                    "b_code": unit.code,
                    "b_name": unit.name,
                    "b_folded": fold(unit.name),
                    "b_parent": unit.parent_code,
                    "b_qd20": unit.code_qd20,
                }
                for unit in changed[start : start + _CHUNK]
            ],
        )


async def close_units(
    conn: AsyncConnection, closures: Sequence[Closure], *, now: dt.datetime
) -> None:
    """Deactivate units the directory closed (and say which code replaced a merged one); their
    rows and history stay."""
    update = (
        units.update()
        .where(units.c.code == sa.bindparam("b_code"))
        .values(active=False, replaced_by=sa.bindparam("b_replaced_by"), updated_at=now)
    )
    for start in range(0, len(closures), _CHUNK):
        await conn.execute(
            update,
            [
                {"b_code": closure.code, "b_replaced_by": closure.replaced_by}
                for closure in closures[start : start + _CHUNK]
            ],
        )


async def queued_for(conn: AsyncConnection, codes: Iterable[str]) -> dict[str, int]:
    """Per unit code, how many recipients still wait to be sent to it (not sent, failed or
    cancelled): documents a closed code would strand."""
    wanted = sorted(set(codes))
    pending = [state.value for state in TransportState if not state.is_final]
    counts: dict[str, int] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = (
            sa.select(recipients.c.unit_code, sa.func.count())
            .where(
                recipients.c.unit_code.in_(wanted[start : start + _CHUNK]),
                recipients.c.state.in_(pending),
            )
            .group_by(recipients.c.unit_code)
        )
        counts.update({code: int(n) for code, n in (await conn.execute(query)).all()})
    return counts


async def record_sync(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(directory_syncs.insert().values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def last_sync(conn: AsyncConnection, channel: str, *, mode: str | None = None) -> Any:
    """The channel's latest sync (of that ``mode``), or None."""
    query = sa.select(directory_syncs).where(directory_syncs.c.channel == channel)
    if mode is not None:
        query = query.where(directory_syncs.c.mode == mode)
    return (await conn.execute(query.order_by(directory_syncs.c.id.desc()).limit(1))).first()


async def list_syncs(
    conn: AsyncConnection, *, channel: str | None, limit: int
) -> list[Mapping[str, Any]]:
    """The latest syncs, newest first."""
    query = sa.select(directory_syncs).order_by(directory_syncs.c.id.desc()).limit(limit)
    if channel is not None:
        query = query.where(directory_syncs.c.channel == channel)
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]

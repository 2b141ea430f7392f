"""The enumerated columns (directions, kinds, classifications, transport states) hold only the
code's enum values: the database itself refuses another (CHECK constraints, migration 0011), on
SQLite and on PostgreSQL; migration 0011 goes down and up again over stored rows, keeping them
and the tables' other constraints."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState
from gateway.store.database import create_engine, downgrade, migrate
from gateway.store.tables import audit_events, blobs, messages, recipients, status_events

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)

#: (table, column, its enum) for every constrained column.
ENUMERATED: list[tuple[sa.Table, str, type[Any]]] = [
    (messages, "direction", Direction),
    (messages, "kind", PackageKind),
    (messages, "classification", Classification),
    (recipients, "state", TransportState),
    (status_events, "direction", Direction),
    (audit_events, "from_state", TransportState),
    (audit_events, "to_state", TransportState),
]


async def seed(conn: Any) -> None:
    """One row in each table concerned, with valid values."""
    await conn.execute(blobs.insert().values(sha256="a" * 64, size=1, data=b"x", created_at=NOW))
    await conn.execute(
        messages.insert().values(
            id="m1",
            direction=Direction.OUT,
            kind=PackageKind.DOCUMENT,
            document_id="000.00.00.G01,2026/12/07,1/QĐ-X",
            sender="000.00.00.G01",
            classification=Classification.THUONG,
            package_sha256="a" * 64,
            client="test",
            priority=0,
            created_at=NOW,
            business_doc_type=0,
        )
    )
    await conn.execute(
        recipients.insert().values(
            id=1,
            message_id="m1",
            unit_code="000.00.00.G02",
            state=TransportState.QUEUED,
            attempt_count=0,
            updated_at=NOW,
        )
    )
    await conn.execute(
        status_events.insert().values(
            direction=Direction.IN,
            message_id="m1",
            reporter="000.00.00.G02",
            status_code="01",
            recorded_at=NOW,
            out_of_order=False,
        )
    )
    await conn.execute(
        audit_events.insert().values(
            at=NOW, actor="t", action="created", message_id="m1", to_state=TransportState.QUEUED
        )
    )


async def refused(engine: Any, table: sa.Table, column: str, value: str) -> bool:
    """Whether the database refuses setting ``column`` of the seeded row to ``value``."""
    try:
        async with engine.begin() as conn:
            await conn.execute(table.update().values({column: value}))
    except sa.exc.IntegrityError:
        return True
    return False


def run(database_url: str, scenario: Any) -> Any:
    async def main() -> Any:
        engine = create_engine(database_url)
        try:
            return await scenario(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("table", "column", "enum"), ENUMERATED, ids=lambda x: getattr(x, "name", x)
)
def test_the_database_refuses_a_value_the_enum_does_not_have(
    database_url: str, table: sa.Table, column: str, enum: type[Any]
) -> None:
    async def scenario(engine: Any) -> None:
        await migrate(engine)
        async with engine.begin() as conn:
            await seed(conn)
        assert await refused(engine, table, column, "zz")  # short enough for every column
        assert await refused(engine, table, column, next(iter(enum)).value.upper())
        for member in enum:  # every value the code has is taken
            assert not await refused(engine, table, column, member)

    run(database_url, scenario)


def test_migration_0011_goes_down_and_up_over_stored_rows(database_url: str) -> None:
    async def scenario(engine: Any) -> None:
        await migrate(engine)
        async with engine.begin() as conn:
            await seed(conn)
        await downgrade(engine, "0010")
        # Down: the constraints are gone, the rows are kept.
        assert not await refused(engine, recipients, "state", "zz")
        async with engine.begin() as conn:
            await conn.execute(recipients.update().values(state=TransportState.QUEUED))
        # 0011 first, then what came after it (each migrated once).
        applied = await migrate(engine)
        assert applied[0] == "0011_enum_checks" and len(set(applied)) == len(applied)
        assert await refused(engine, recipients, "state", "zz")
        async with engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(messages)) == 1
            assert await conn.scalar(sa.select(sa.func.count()).select_from(status_events)) == 1
            indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("messages"))
        # SQLite copied the table to add the CHECKs: the partial unique index is partial still.
        [new_document_id] = [i for i in indexes if i["name"] == "uq_messages_new_document_id"]
        assert new_document_id["unique"]
        if database_url.startswith("sqlite"):
            where = new_document_id["dialect_options"]["sqlite_where"]
            assert "business_doc_type = 0" in str(where)
        # The foreign keys still hold after SQLite's copy: a recipient of no message is refused.
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    recipients.insert().values(
                        message_id="none",
                        unit_code="x",
                        state=TransportState.QUEUED,
                        attempt_count=0,
                        updated_at=NOW,
                    )
                )

    run(database_url, scenario)

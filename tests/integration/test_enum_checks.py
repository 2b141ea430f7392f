"""The enumerated columns (directions, kinds, classifications, transport states; roles, languages,
attempt and import outcomes, directory sync modes) hold only the code's enum values: the database
itself refuses another (CHECK constraints, migrations 0011 and 0019), on SQLite and on
PostgreSQL; migrations 0011 and 0019 go down and up again over stored rows, keeping them and the
tables' other constraints, and 0019 names the stored values it cannot constrain instead of
failing half-way."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext

from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.accounts import Language, Role
from gateway.domain.direction import Direction
from gateway.domain.directory import SyncMode
from gateway.domain.imports import ImportOutcome
from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import Outcome
from gateway.store.database import create_engine, downgrade, migrate
from gateway.store.tables import (
    attempts,
    audit_events,
    blobs,
    console_sessions,
    directory_syncs,
    import_files,
    messages,
    recipients,
    status_events,
    tokens,
    users,
)

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
    (tokens, "role", Role),
    (users, "role", Role),
    (users, "language", Language),
    (attempts, "outcome", Outcome),
    (import_files, "outcome", ImportOutcome),
    (directory_syncs, "mode", SyncMode),
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
    await seed_0019(conn)


async def seed_0019(conn: Any, *, role: str = Role.MEMBER) -> None:
    """A row in each table migration 0019 constrains (and a session of the user: a child row of
    a table SQLite copies). Needs recipient 1."""
    await conn.execute(
        tokens.insert().values(
            name="t1", role=role, unit_code="000.00.00.G01", token_sha256="b" * 64, created_at=NOW
        )
    )
    await conn.execute(
        users.insert().values(
            name="u1",
            role=Role.OPERATOR,
            password_hash="x",
            language=Language.VI,
            failed_logins=0,
            must_change_password=False,
            created_at=NOW,
        )
    )
    await conn.execute(
        console_sessions.insert().values(
            id_sha256="c" * 64,
            user_name="u1",
            csrf_token="d" * 64,
            created_at=NOW,
            seen_at=NOW,
            expires_at=NOW,
        )
    )
    await conn.execute(
        attempts.insert().values(
            recipient_id=1, number=1, worker="w", started_at=NOW, outcome=Outcome.SENT
        )
    )
    # An attempt still running: no outcome yet (NULL passes the constraint).
    await conn.execute(
        attempts.insert().values(recipient_id=1, number=2, worker="w", started_at=NOW)
    )
    await conn.execute(
        import_files.insert().values(
            sha256="e" * 64, name="a.edxml", outcome=ImportOutcome.SKIPPED, imported_at=NOW
        )
    )
    await conn.execute(
        directory_syncs.insert().values(
            channel="vxp",
            mode=SyncMode.FULL,
            started_at=NOW,
            finished_at=NOW,
            listed=0,
            counts={},
            changes={},
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


def migration_checks(name: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """A migration's own frozen lists (its CHECKS)."""
    path = Path(migrate.__code__.co_filename).parent / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checks: dict[str, dict[str, tuple[str, ...]]] = module.CHECKS
    return checks


def test_the_migrations_lists_are_the_enums_values() -> None:
    """0011 and 0019 froze the values they constrain to; an enum that gained or lost one since
    needs a migration that replaces its constraint (and this test names the column)."""
    frozen = {**migration_checks("0011_enum_checks")}
    for table, columns in migration_checks("0019_more_checks").items():
        frozen[table] = {**frozen.get(table, {}), **columns}
    for table, column, enum in ENUMERATED:
        assert set(frozen[table.name][column]) == {m.value for m in enum}, (table.name, column)
    assert {(t.name, c) for t, c, _ in ENUMERATED} == {
        (t, c) for t, columns in frozen.items() for c in columns
    }


async def revision(engine: Any) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def test_migration_0019_goes_down_and_up_over_stored_rows(database_url: str) -> None:
    async def scenario(engine: Any) -> None:
        await migrate(engine)
        async with engine.begin() as conn:
            await seed(conn)
        await downgrade(engine, "0020_certificates")
        assert not await refused(engine, tokens, "role", "zz")
        async with engine.begin() as conn:
            await conn.execute(tokens.update().values(role=Role.MEMBER))
        applied = await migrate(engine)
        assert applied[0] == "0019_more_checks" and len(set(applied)) == len(applied)
        for table, column, _ in ENUMERATED[-6:]:
            assert await refused(engine, table, column, "zz"), (table.name, column)
        async with engine.connect() as conn:
            for table, rows in ((attempts, 2), (users, 1), (console_sessions, 1), (tokens, 1)):
                count = sa.select(sa.func.count()).select_from(table)
                assert await conn.scalar(count) == rows, table.name
            running = sa.select(attempts.c.outcome).where(attempts.c.number == 2)
            assert await conn.scalar(running) is None
            token_columns = await conn.run_sync(
                lambda c: sa.inspect(c).get_unique_constraints("tokens")
            )
            token_indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("tokens"))
        # The token hash is unique still after SQLite's copy of the table.
        assert any(u["column_names"] == ["token_sha256"] for u in token_columns + token_indexes)
        # The foreign keys still hold after SQLite's copy: an attempt of no recipient, a session
        # of no user, are refused.
        for table, values in (
            (attempts, {"recipient_id": 99, "number": 1, "worker": "w", "started_at": NOW}),
            (
                console_sessions,
                {
                    "id_sha256": "f" * 64,
                    "user_name": "nobody",
                    "csrf_token": "x",
                    "created_at": NOW,
                    "seen_at": NOW,
                    "expires_at": NOW,
                },
            ),
        ):
            with pytest.raises(sa.exc.IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(table.insert().values(values))

    run(database_url, scenario)


def test_migration_0019_names_a_stored_value_it_cannot_constrain(database_url: str) -> None:
    """A row written before 0019 with a role the code does not know: the upgrade stops, names the
    table, the column and the value, and leaves the schema and the rows as they were."""

    async def scenario(engine: Any) -> None:
        await migrate(engine)
        async with engine.begin() as conn:
            await seed(conn)
        await downgrade(engine, "0020_certificates")
        async with engine.begin() as conn:
            await conn.execute(tokens.update().values(role="viewer"))
        with pytest.raises(RuntimeError, match=r"tokens\.role: 'viewer'"):
            await migrate(engine)
        assert await revision(engine) == "0020_certificates"
        async with engine.connect() as conn:
            assert await conn.scalar(sa.select(tokens.c.role)) == "viewer"
        async with engine.begin() as conn:  # corrected, the upgrade goes through
            await conn.execute(tokens.update().values(role=Role.ADMIN))
        assert "0019_more_checks" in await migrate(engine)
        assert await refused(engine, tokens, "role", "viewer")

    run(database_url, scenario)

"""Use cases take what they use (issue 14, gateway/usecases/ports.py): tokens, users, the message
list and the job history run with an object that has only the store and the clock — no
settings, no connectors, no keys — on SQLite and PostgreSQL; and the roles and languages they
write are the domain's enums, which the database's CHECKs take."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from envelopes.errors import GatewayError
from gateway.domain.accounts import Role
from gateway.store.database import create_engine, migrate, reader_of
from gateway.usecases import jobs, messages, tokens, users
from gateway.usecases.ports import Store

NOW = dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class OnlyTheStore:
    """The store and the clock, nothing else: an attribute a use case reads beyond these fails."""

    engine: AsyncEngine
    reader: AsyncEngine
    clock: Callable[[], dt.datetime]


def run(database_url: str, scenario: Callable[[Store], Any]) -> Any:
    async def main() -> Any:
        engine = create_engine(database_url)
        try:
            await migrate(engine)
            return await scenario(OnlyTheStore(engine, reader_of(engine), lambda: NOW))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_tokens_users_messages_and_job_history_need_only_the_store(database_url: str) -> None:
    async def scenario(store: Store) -> None:
        secret = await tokens.create_token(store, name="ops", role="operator", actor="test")
        principal = await tokens.authenticate(store, secret)
        assert principal.role is Role.OPERATOR
        assert [t.name for t in await tokens.list_tokens(store)] == ["ops"]
        with pytest.raises(GatewayError) as refused:
            await tokens.create_token(store, name="x", role="viewer", actor="test")
        assert refused.value.element == "role"
        await tokens.revoke_token(store, "ops", actor="test")
        with pytest.raises(tokens.Unauthorized):
            await tokens.authenticate(store, secret)

        await users.add_user(
            store, name="lan", role="admin", password="đúng-mật-khẩu-dài", actor="test"
        )
        await users.set_language(store, "lan", "en")
        [person] = await users.list_users(store)
        assert (person.role, person.language) == ("admin", "en")

        selection = messages.message_filter({"state": "failed"}, now=NOW, member_unit=None)
        page = await messages.list_page(store, selection, after=None, limit=10)
        assert page.items == [] and not page.more
        assert await jobs.job_history(store, "delivery") == []
        assert await jobs.consecutive_failures(store) == {}

    run(database_url, scenario)

"""Integration fixtures: a real database (SQLite file, and PostgreSQL where one is reachable),
real keys, gateways built by the composition root.

PostgreSQL: the URL comes from TEST_POSTGRES_URL (scripts/test.sh sets it to the local
server); each test gets a fresh database, dropped afterwards. Without it the PostgreSQL variants
skip with the reason shown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from integration_support import (
    PG_ENV,
    SENDER,
    UNITS,
    _admin,
    postgres_url,
    register_all,
    write_config,
)

from connectors.base import Connector
from gateway.bootstrap import Gateway, build
from gateway.keystore import init_keys
from gateway.settings import load_settings
from gateway.store.database import migrate


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh databases of one kind (each test runs on both kinds): call it for a URL."""
    created: list[str] = []
    base = postgres_url()
    if request.param == "postgresql" and base is None:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (scripts/test.sh sets it)")

    def new_database() -> str:
        if request.param == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path}/docgw-{uuid.uuid4().hex[:8]}.db"
        assert base is not None
        name = f"docgw_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return base.rsplit("/", 1)[0] + f"/{name}"

    try:
        yield new_database
    finally:
        for name in created:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(databases: Callable[[], str]) -> str:
    return databases()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(directory, list(UNITS))
    return directory


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
def database_statements() -> str:
    """How the store runs its statements (``[database] statements``) in ``make_gateway``'s
    gateways: a module that exercises the store's hot path overrides this fixture with both."""
    return "direct"


@pytest.fixture
def make_gateway(
    database_url: str, keys_dir: Path, tmp_path: Path, database_statements: str
) -> Callable[..., Any]:
    """``async with make_gateway(local_units=(...), connectors={...}) as gateway:`` — migrated,
    with every test unit registered (channel "axis") and its certificate."""

    @asynccontextmanager
    async def factory(
        *,
        local_units: tuple[str, ...] = (SENDER,),
        connectors: dict[str, Connector] | None = None,
        url: str | None = None,
        extra: str = "",
        pool_size: int = 20,
    ) -> AsyncIterator[Gateway]:
        config = write_config(
            tmp_path / f"docgw-{uuid.uuid4().hex[:6]}.toml",
            database_url=url or database_url,
            keys_dir=keys_dir,
            local_units=local_units,
            extra=extra,
            pool_size=pool_size,
            statements=database_statements,
        )
        gateway = await build(load_settings(config, {}), connectors=connectors)
        try:
            await migrate(gateway.engine)
            await register_all(gateway, keys_dir)
            yield gateway
        finally:
            await gateway.close()

    return factory

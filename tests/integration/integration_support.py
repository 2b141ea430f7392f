"""Helpers shared by the integration tests (a module of its own: every test folder has a
``conftest.py``, so ``from conftest import …`` would be ambiguous)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.bootstrap import Gateway
from gateway.store.records import UnitRecord
from gateway.usecases import registry

PG_ENV = "TEST_POSTGRES_URL"
SENDER, RECIPIENT, OTHER = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14"
UNITS = (SENDER, RECIPIENT, OTHER)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


async def _admin(sql: str) -> None:
    url = postgres_url()
    assert url is not None
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def write_config(
    path: Path,
    *,
    database_url: str,
    keys_dir: Path,
    local_units: tuple[str, ...],
    extra: str = "",
    pool_size: int = 20,
    statements: str = "direct",
) -> Path:
    units = ", ".join(f'"{u}"' for u in local_units)
    path.write_text(
        f'[database]\nurl = "{database_url}"\npool_size = {pool_size}\n'
        f'statements = "{statements}"\n'
        f"[gateway]\nlocal_units = [{units}]\n"
        f'[keys]\ndir = "{keys_dir}"\n'
        "[delivery]\nidle_poll_seconds = 0.05\nlease_seconds = 5\n"
        "[retry]\nbase_seconds = 0.05\nmax_delay_seconds = 0.2\nmax_attempts = 50\n" + extra,
        encoding="utf-8",
    )
    return path


async def register_all(gateway: Gateway, keys_dir: Path, channel: str = "axis") -> None:
    for code in UNITS:
        await registry.register_unit(
            gateway,
            UnitRecord(
                code=code, name=f"Đơn vị {code}", channel=channel, is_local=code in gateway.signers
            ),
            certificate_pem=(keys_dir / f"{code}.cert.pem").read_text(),
            actor="test",
        )

"""The composition root: builds everything the use cases need from Settings. Nothing is created at
import time; entry points (CLI, web app, scheduled jobs) call :func:`build` and then use cases."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.base import Connector
from connectors.fake import FakeConnector
from connectors.http_push import HttpPushConnector
from envelopes.errors import GatewayError
from envelopes.signing import Signer
from gateway.domain.deadlines import DeadlinePolicy, policy_from_settings
from gateway.domain.retry import RetryPolicy
from gateway.domain.routing import ChannelInfo
from gateway.keystore import unit_paths
from gateway.settings import Settings
from gateway.store.database import create_engine

log = logging.getLogger("docgw")


class NoSigningKey(GatewayError):
    code = "NO_SIGNING_KEY"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Gateway:
    """Everything a use case needs, built once."""

    settings: Settings
    engine: AsyncEngine
    connectors: dict[str, Connector]
    channels: dict[str, ChannelInfo]
    retry_policies: dict[str, RetryPolicy]
    default_retry: RetryPolicy
    deadlines: DeadlinePolicy
    signers: dict[str, Signer]
    clock: Callable[[], dt.datetime] = utc_now
    #: Set when new work is queued, so idle workers wake at once instead of at their next poll.
    work_available: asyncio.Event = field(default_factory=asyncio.Event)
    http: aiohttp.ClientSession | None = None
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def signer(self, unit_code: str) -> Signer:
        signer = self.signers.get(unit_code)
        if signer is None:
            raise NoSigningKey(
                f"this gateway holds no signing key for unit {unit_code} "
                "(it must be in [gateway] local_units with its key in the keys folder)"
            )
        return signer

    def retry_policy(self, channel: str | None) -> RetryPolicy:
        return self.retry_policies.get(channel or "", self.default_retry)

    async def close(self) -> None:
        for connector in self.connectors.values():
            await connector.close()
        if self.http is not None:
            await self.http.close()
        await self.engine.dispose()


def load_signers(keys_dir: Path, unit_codes: tuple[str, ...]) -> dict[str, Signer]:
    signers = {}
    for code in unit_codes:
        key_path, cert_path = unit_paths(keys_dir, code)
        try:
            signers[code] = Signer.from_pem(key_path.read_bytes(), cert_path.read_bytes())
        except OSError as exc:
            raise NoSigningKey(f"cannot read the key of local unit {code}: {exc}") from exc
    return signers


async def build(
    settings: Settings,
    *,
    connectors: dict[str, Connector] | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> Gateway:
    """Build the gateway. ``connectors`` replaces the configured ones (tests inject fakes)."""
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    http = None
    if connectors is None:
        connectors = {}
        for channel in settings.channels:
            if channel.kind == "fake":
                connectors[channel.name] = FakeConnector(
                    name=channel.name,
                    is_axis=channel.axis,
                    fail_rate=channel.fail_rate,
                    timeout_rate=channel.timeout_rate,
                )
            elif channel.kind == "http_push":
                if http is None:
                    http = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=64, force_close=False)
                    )
                connectors[channel.name] = HttpPushConnector(
                    name=channel.name,
                    endpoint=channel.endpoint,
                    session=http,
                    is_axis=channel.axis,
                    timeout_seconds=settings.delivery.send_timeout_seconds,
                )
            else:
                raise GatewayError(f"channel {channel.name}: unknown kind {channel.kind!r}")
    channel_infos = {
        c.name: ChannelInfo(name=c.name, is_axis=c.axis, is_secure=c.secure)
        for c in settings.channels
    }
    for name, connector in connectors.items():
        channel_infos.setdefault(
            name, ChannelInfo(name=name, is_axis=connector.is_axis, is_secure=False)
        )
    deadline = settings.deadlines
    return Gateway(
        settings=settings,
        engine=engine,
        connectors=connectors,
        channels=channel_infos,
        retry_policies={c.name: c.retry.policy() for c in settings.channels if c.retry},
        default_retry=settings.retry.policy(),
        deadlines=policy_from_settings(
            holidays=deadline.holidays,
            workday_start=deadline.workday_start,
            workday_end=deadline.workday_end,
            morning_end=deadline.morning_end,
            urgent_send_minutes=deadline.urgent_send_minutes,
        ),
        signers=load_signers(settings.resolve(settings.keys.dir), settings.gateway.local_units),
        clock=clock,
        http=http,
    )

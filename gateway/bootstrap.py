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

from connectors.base import (
    ChangeFeed,
    Connector,
    DirectorySource,
    Pollable,
    Qd20Source,
    SentStates,
)
from connectors.drop_folder import DropFolder, DropFolderConnector
from connectors.fake import FakeConnector
from connectors.http_push import HttpPushConnector
from connectors.secure_endpoint import SecureEndpointConnector, client_ssl_context
from connectors.soap_axis import SoapAxisConnector
from connectors.vxp import VxpConnector
from connectors.vxp_signing import HashFileForm, TimestampFormat
from envelopes.errors import GatewayError
from envelopes.signing import Signer
from gateway.domain.deadlines import DeadlinePolicy, policy_from_settings
from gateway.domain.retry import RetryPolicy
from gateway.domain.routing import ChannelInfo
from gateway.keystore import CA_CERT, previous_paths, unit_paths
from gateway.settings import (
    UNUSED_SECRET,
    ChannelSettings,
    DropFolderChannel,
    Settings,
    SettingsError,
)
from gateway.store.database import create_engine, reader_of

log = logging.getLogger("docgw")


class NoSigningKey(GatewayError):
    code = "NO_SIGNING_KEY"


def intake_slots(pool_size: int) -> int:
    """How many received items this process's polls take at once, all channels together: at most
    16, and at most half the database pool, so that the rest serves the API, the delivery workers
    and the jobs. Why bounded by the pool: each item holds a connection while it is stored, and
    work beyond the pool opens overflow connections that are closed again on return — a new
    PostgreSQL backend each time (measured: ~100 per 1,000 documents received at 16 items per poll
    against a pool of 20, ~1.5-3 ms more PostgreSQL CPU per document)."""
    return max(1, min(16, pool_size // 2))


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What one channel's connector can do besides delivering, found once, here at wiring (the
    Protocols of connectors.base): the scheduler and the use cases are handed what they use and
    never ask a connector what it is."""

    pollable: Pollable | None = None
    sent_states: SentStates | None = None
    directory: DirectorySource | None = None
    #: The directory also lists Decision 20 codes (the national axis).
    qd20: Qd20Source | None = None
    #: The directory also reports its changes since a moment (getSynchronizeUnit).
    changes: ChangeFeed | None = None

    @classmethod
    def of(cls, connector: Connector) -> Capabilities:
        directory = connector if isinstance(connector, DirectorySource) else None
        return cls(
            pollable=connector if isinstance(connector, Pollable) else None,
            sent_states=connector if isinstance(connector, SentStates) else None,
            directory=directory,
            qd20=connector if directory and isinstance(connector, Qd20Source) else None,
            changes=connector if directory and isinstance(connector, ChangeFeed) else None,
        )


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Gateway:
    """Everything a use case needs, built once."""

    settings: Settings
    engine: AsyncEngine
    #: The same pool, for single reads outside a transaction (store.database.reader_of).
    reader: AsyncEngine
    connectors: dict[str, Connector]
    channels: dict[str, ChannelInfo]
    retry_policies: dict[str, RetryPolicy]
    default_retry: RetryPolicy
    deadlines: DeadlinePolicy
    signers: dict[str, Signer]
    clock: Callable[[], dt.datetime] = utc_now
    #: Set when new work is queued, so idle workers wake at once instead of at their next poll.
    work_available: asyncio.Event = field(default_factory=asyncio.Event)
    #: Received items taken at once by all of this process's polls together; build() sizes it
    #: (:func:`intake_slots`).
    intake_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    http: aiohttp.ClientSession | None = None
    #: Per connector, what it can do besides delivering: found once, by :func:`build`.
    capabilities: dict[str, Capabilities] = field(default_factory=dict)
    #: The drop folders of the drop_folder channels, by channel (the scheduled jobs pick up and
    #: hand over through them).
    drop_folders: dict[str, DropFolder] = field(default_factory=dict)
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    #: The local units' keys that ``docgw keys install`` replaced, kept for the rollover overlap:
    #: copies sealed for the old certificate still open (they sign nothing).
    previous_signers: dict[str, Signer] = field(default_factory=dict)

    def signer(self, unit_code: str) -> Signer:
        signer = self.signers.get(unit_code)
        if signer is None:
            raise NoSigningKey(
                f"this gateway holds no signing key for unit {unit_code} "
                "(it must be in [gateway] local_units with its key in the keys folder)"
            )
        return signer

    @property
    def pollables(self) -> dict[str, Pollable]:
        """The channels we fetch from (the axes): those whose connector can list what waits."""
        return {
            name: found.pollable
            for name, found in self.capabilities.items()
            if found.pollable is not None
        }

    def retry_policy(self, channel: str | None) -> RetryPolicy:
        return self.retry_policies.get(channel or "", self.default_retry)

    async def close(self) -> None:
        for connector in self.connectors.values():
            await connector.close()
        if self.http is not None:
            await self.http.close()
        await self.engine.dispose()


def _connector(
    channel: ChannelSettings, settings: Settings, http: aiohttp.ClientSession
) -> Connector:
    """One connector per configured channel (the config was checked by load_settings)."""
    for key in ("secret", "token"):
        if getattr(channel, key, None) == UNUSED_SECRET:
            raise SettingsError(
                f"this command uses channel {channel.name}: set "
                f"DOCGW_CHANNELS__{channel.name.upper()}__{key.upper()}",
                element=f"channels.{channel.name}.{key}",
            )
    timeout = settings.delivery.send_timeout_seconds
    if channel.kind == "fake":
        return FakeConnector(
            name=channel.name,
            is_axis=channel.is_axis,
            fail_rate=channel.fail_rate,
            timeout_rate=channel.timeout_rate,
        )
    if channel.kind == "http_push":
        return HttpPushConnector(
            name=channel.name,
            endpoint=channel.endpoint,
            session=http,
            token=channel.token,
            is_axis=channel.is_axis,
            timeout_seconds=timeout,
        )
    if channel.kind == "vxp":
        return VxpConnector(
            name=channel.name,
            endpoint=channel.endpoint,
            system_id=channel.system_id,
            secret=channel.secret.encode(),
            session=http,
            timeout=timeout,
            timestamp_format=TimestampFormat(channel.timestamp_format),
            hash_form=HashFileForm(channel.hash_form),
            delete_agency_param=channel.delete_agency_param,
        )
    if channel.kind == "soap":
        return SoapAxisConnector(
            name=channel.name,
            endpoint=channel.endpoint,
            receivers=channel.receivers or settings.gateway.local_units,
            system_id=channel.system_id,
            secret=channel.secret.encode(),
            timeout_seconds=timeout,
            max_package_bytes=settings.api.max_upload_bytes,
        )
    if channel.kind == "secure":
        own = settings.gateway.local_units[0] if settings.gateway.local_units else ""
        keys = settings.resolve(settings.keys.dir)
        key_path, cert_path = unit_paths(keys, own)
        return SecureEndpointConnector(
            name=channel.name,
            endpoint=channel.endpoint,
            ssl_context=client_ssl_context(
                settings.resolve(channel.cert_file or cert_path),
                settings.resolve(channel.key_file or key_path),
                settings.resolve(channel.ca_file or keys / CA_CERT),
            ),
            timeout_seconds=timeout,
        )
    assert channel.kind == "drop_folder" and channel.root is not None
    return DropFolderConnector(
        name=channel.name, root=drop_folder_root(channel.name, settings.resolve(channel.root))
    )


class DropFolderRootInvalid(GatewayError):
    code = "DROP_FOLDER_ROOT_INVALID"


def drop_folder_root(channel: str, root: Path) -> Path:
    """A drop folder's ``root``: a directory, or a new one inside a directory that exists (the
    connector makes it). A file there, or a missing parent (a typo in the path), is refused:
    documents would otherwise be handed over where the local system never looks."""
    if root.exists() and not root.is_dir():
        raise DropFolderRootInvalid(
            f"{root} không phải thư mục — is not a directory", element=f"channels.{channel}.root"
        )
    if not root.exists() and not root.parent.is_dir():
        raise DropFolderRootInvalid(
            f"thư mục chứa {root} không tồn tại — the folder {root.parent} does not exist",
            element=f"channels.{channel}.root",
        )
    return root


def load_signers(keys_dir: Path, unit_codes: tuple[str, ...]) -> dict[str, Signer]:
    signers = {}
    for code in unit_codes:
        key_path, cert_path = unit_paths(keys_dir, code)
        try:
            signers[code] = Signer.from_pem(key_path.read_bytes(), cert_path.read_bytes())
        except OSError as exc:
            raise NoSigningKey(f"cannot read the key of local unit {code}: {exc}") from exc
    return signers


def load_previous_signers(keys_dir: Path, unit_codes: tuple[str, ...]) -> dict[str, Signer]:
    """The replaced keys still on disk (``<code>.previous.key.pem``), by unit."""
    found = {}
    for code in unit_codes:
        key_path, cert_path = previous_paths(keys_dir, code)
        if key_path.exists() and cert_path.exists():
            found[code] = Signer.from_pem(key_path.read_bytes(), cert_path.read_bytes())
    return found


async def build(
    settings: Settings,
    *,
    connectors: dict[str, Connector] | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> Gateway:
    """Build the gateway. ``connectors`` replaces the configured ones (tests inject fakes)."""
    engine = create_engine(
        settings.database.url,
        echo=settings.database.echo,
        pool_size=settings.database.pool_size,
        statements=settings.database.statements,
    )
    # No cookie jar: no peer's protocol uses cookies (VXP signs each request, the others are
    # mutual TLS), a gateway keeps no state between calls, and aiohttp's jar filters and stores
    # cookies on every request — measured 50–100 µs of a ~400–560 µs loopback call.
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), cookie_jar=aiohttp.DummyCookieJar()
    )
    try:
        return _assemble(settings, engine, http, connectors, clock)
    except BaseException:
        await http.close()
        await engine.dispose()
        raise


def _assemble(
    settings: Settings,
    engine: AsyncEngine,
    http: aiohttp.ClientSession,
    connectors: dict[str, Connector] | None,
    clock: Callable[[], dt.datetime],
) -> Gateway:
    if connectors is None:
        connectors = {c.name: _connector(c, settings, http) for c in settings.channels}
    channel_infos = {
        c.name: ChannelInfo(name=c.name, is_axis=c.is_axis, is_secure=c.is_secure)
        for c in settings.channels
    }
    for name, connector in connectors.items():
        channel_infos.setdefault(
            name, ChannelInfo(name=name, is_axis=connector.is_axis, is_secure=False)
        )
    deadline = settings.deadlines
    try:
        deadlines = policy_from_settings(
            holidays=deadline.holidays,
            workday_start=deadline.workday_start,
            workday_end=deadline.workday_end,
            morning_end=deadline.morning_end,
            urgent_send_minutes=deadline.urgent_send_minutes,
        )
    except ValueError as exc:
        raise SettingsError(str(exc), element="deadlines") from exc
    return Gateway(
        settings=settings,
        engine=engine,
        reader=reader_of(engine),
        connectors=connectors,
        channels=channel_infos,
        retry_policies={c.name: c.retry.policy() for c in settings.channels if c.retry},
        default_retry=settings.retry.policy(),
        deadlines=deadlines,
        signers=load_signers(settings.resolve(settings.keys.dir), settings.gateway.local_units),
        previous_signers=load_previous_signers(
            settings.resolve(settings.keys.dir), settings.gateway.local_units
        ),
        clock=clock,
        http=http,
        drop_folders={
            c.name: DropFolder(
                root=settings.resolve(c.root), sign_ready_packages=c.sign_ready_packages
            )
            for c in settings.channels
            if isinstance(c, DropFolderChannel)
        },
        intake_slots=asyncio.Semaphore(intake_slots(settings.database.pool_size)),
        capabilities={name: Capabilities.of(c) for name, c in connectors.items()},
    )

"""What a use case is handed: the narrow capabilities it uses, not the whole ``Gateway``
(issue 14, "use cases take what they use").

These are Protocols, each one thing the composition root builds: the ``Gateway`` of
gateway/bootstrap.py has every one of them and is passed as it is, but a use case typed with
some of them may use those and nothing else (mypy checks it at the use case and at each caller),
and a test may hand it a small object of its own. A module that needs several composes them
(``class Needs(Store, Config, Protocol)``). Connector capabilities (pollable, reports sent
states …) are the other kind, ``bootstrap.Capabilities``, found once at wiring.

The use case modules that still take the whole ``Gateway`` are listed in
``tests/unit/test_layers.py`` (``STILL_TAKE_GATEWAY``); the list only shrinks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Protocol

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors.base import Connector
from envelopes.signing import Signer
from gateway.domain.deadlines import DeadlinePolicy
from gateway.domain.retry import RetryPolicy
from gateway.domain.routing import ChannelInfo
from gateway.settings import Settings


class Clock(Protocol):
    @property
    def clock(self) -> Callable[[], dt.datetime]:
        """Now, timezone-aware (tests set it)."""


class Database(Protocol):
    @property
    def engine(self) -> AsyncEngine:
        """The pool, for transactions (``engine.begin()``) and reads that need one connection."""

    @property
    def reader(self) -> AsyncEngine:
        """The same pool, for single reads outside a transaction (store.database.reader_of)."""


class Store(Database, Clock, Protocol):
    """The database and the time: what most use cases use."""


class Waker(Protocol):
    @property
    def work_available(self) -> asyncio.Event:
        """Set after the commit that queued new work: idle delivery workers wake at once."""


class Config(Protocol):
    @property
    def settings(self) -> Settings:
        """The settings as loaded (read only)."""


class Keys(Config, Protocol):
    """The settings and the local units' signing keys (what opens a package sealed for us)."""

    @property
    def signers(self) -> Mapping[str, Signer]:
        """By local unit code."""

    @property
    def previous_signers(self) -> Mapping[str, Signer]:
        """The keys replaced by ``docgw keys install``, still opening copies sealed for them."""


class Configured(Config, Clock, Protocol):
    """The settings and the time."""


class StoreAndConfig(Store, Config, Protocol):
    """The store and the settings."""


class StoreAndKeys(Store, Keys, Protocol):
    """The store, the settings and the local units' keys."""


class Deadlines(Protocol):
    @property
    def deadlines(self) -> DeadlinePolicy:
        """Decision 28/2018's deadlines with this gateway's calendar."""


class Channels(Protocol):
    @property
    def channels(self) -> Mapping[str, ChannelInfo]:
        """The configured channels (and the connectors tests inject), by name."""


class Http(Protocol):
    @property
    def http(self) -> aiohttp.ClientSession | None:
        """The one client session for outgoing HTTP (None until built)."""


class Instance(Protocol):
    @property
    def instance(self) -> str:
        """This process, as its records name it ("host:pid")."""


class Signing(Protocol):
    def signer(self, unit_code: str) -> Signer:
        """The local unit's signing key (NO_SIGNING_KEY when this gateway holds none)."""


class IntakeSlots(Protocol):
    @property
    def intake_slots(self) -> asyncio.Semaphore:
        """Received items taken at once by all of this process's polls together."""


class Connectors(Protocol):
    @property
    def connectors(self) -> Mapping[str, Connector]:
        """Each channel's connector, by channel name."""


class Retries(Protocol):
    def retry_policy(self, channel: str | None) -> RetryPolicy:
        """The channel's retry policy ([channels.*.retry], else [retry])."""

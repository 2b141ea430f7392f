"""An in-memory connector with scriptable failures, for tests and the embedded demo.

It behaves like a receiving side that deduplicates: ``registered`` holds each (sender, document id,
recipient) once, however many times it was delivered; ``deliveries`` holds every delivery. Failures
come from a script (a list of outcomes consumed in order) or from rates with a seeded RNG.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from enum import StrEnum

from connectors.base import (
    ClassifiedRefused,
    Delivery,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    Receipt,
)


class Scripted(StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"  # fails before the peer commits
    TIMEOUT_AFTER_COMMIT = "timeout_after_commit"  # the peer has it, the caller does not know
    REFUSED = "refused"


@dataclass
class FakeConnector:
    name: str = "fake"
    is_axis: bool = False
    fail_rate: float = 0.0
    timeout_rate: float = 0.0
    seed: int | None = None
    script: list[Scripted] = field(default_factory=list)
    registered: dict[tuple[str, str, str], int] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    #: The bytes of each delivered package, in delivery order.
    packages: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = asyncio.Lock()

    def _next(self) -> Scripted:
        if self.script:
            return self.script.pop(0)
        roll = self._rng.random()
        if roll < self.fail_rate:
            return Scripted.UNAVAILABLE
        if roll < self.fail_rate + self.timeout_rate:
            return Scripted.TIMEOUT_AFTER_COMMIT
        return Scripted.OK

    async def deliver(self, delivery: Delivery) -> Receipt:
        if self.is_axis and delivery.classification.is_classified:
            raise ClassifiedRefused(
                f"{self.name} is an axis channel: classified packages never go there"
            )
        async with self._lock:
            outcome = self._next()
            if outcome is Scripted.UNAVAILABLE:
                raise PeerUnavailable(f"{self.name}: scripted failure")
            if outcome is Scripted.REFUSED:
                raise PeerRefused(f"{self.name}: scripted refusal")
            with delivery.open_package() as stream:
                self.packages.append(stream.read())
            self.deliveries.append(delivery)
            duplicate = False
            for recipient in delivery.recipients:
                key = (delivery.sender, delivery.document_id, recipient)
                duplicate = duplicate or key in self.registered
                self.registered[key] = self.registered.get(key, 0) + 1
            if outcome is Scripted.TIMEOUT_AFTER_COMMIT:
                raise OutcomeUnknown(f"{self.name}: timed out after the peer committed")
            return Receipt(remote_id=f"{self.name}-{len(self.deliveries)}", duplicate=duplicate)

    async def close(self) -> None:
        return None

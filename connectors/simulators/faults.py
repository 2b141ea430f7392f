"""The fault model both axis simulators share (the VXP axis and its SOAP variant).

One set of faults, :class:`AxisFaults`, one way to apply them and one run-time control, so that
``docgw axis-sim``'s flags and ``POST /_sim/faults`` mean the same on either protocol; each
simulator only renders an injected failure in its own form (a JSON ``FAIL`` or a SOAP ``Server``
fault, with the same HTTP status).

* ``latency_ms`` — every request waits this long first;
* ``down_until`` — epoch seconds: until then every request answers 503;
* ``burst_5xx`` — the next N requests answer 503 (the setting counts down as they are served);
* ``error_rate`` — that share of requests answers 500 (before anything is committed);
* ``timeout_after_commit_rate`` — that share of sends commit the package, then hang for
  ``hang_seconds`` (past the client's timeout) or, with ``drop_connection``, close the
  connection without an answer;
* ``duplicate_delivery_rate`` — that share of queued packages is queued twice for a recipient
  (delivered twice, under two ids), and that share of listed items is listed twice.

A holder (:class:`FaultHolder`) is the simulator's state: it owns the faults, the random source
(seeded: a run can be replayed) and the counters ``GET /_sim/state`` shows.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

RATES = ("error_rate", "timeout_after_commit_rate", "duplicate_delivery_rate")


@dataclass(frozen=True, kw_only=True)
class AxisFaults:
    error_rate: float = 0.0
    latency_ms: int = 0
    burst_5xx: int = 0
    timeout_after_commit_rate: float = 0.0
    hang_seconds: float = 30.0
    drop_connection: bool = False
    duplicate_delivery_rate: float = 0.0
    down_until: float | None = None

    def __post_init__(self) -> None:
        for name in RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.latency_ms < 0 or self.burst_5xx < 0 or self.hang_seconds < 0:
            raise ValueError("latency_ms, burst_5xx and hang_seconds cannot be negative")

    def changed(self, changes: object) -> AxisFaults:
        """These faults with ``changes`` (a JSON object of any subset) applied; ValueError or
        TypeError for an unknown name, a wrong type or a value out of range."""
        if not isinstance(changes, dict):
            raise TypeError("a JSON object of fault settings is expected")
        return dataclasses.replace(self, **changes)


class FaultHolder(Protocol):
    faults: AxisFaults
    rng: random.Random
    counters: Counter[str]


@dataclass(frozen=True, kw_only=True)
class Injected:
    """A failure to answer instead of processing the request."""

    status: int
    reason: str


def request_fault(holder: FaultHolder, now: float) -> Injected | None:
    """The failure this request meets before anything is processed, if any (``now``: epoch
    seconds). A burst counts down as it is served."""
    faults = holder.faults
    if faults.down_until is not None and now < faults.down_until:
        holder.counters["faults_down"] += 1
        return Injected(status=503, reason="axis down (simulated)")
    if faults.burst_5xx > 0:
        holder.faults = dataclasses.replace(faults, burst_5xx=faults.burst_5xx - 1)
        holder.counters["faults_burst_5xx"] += 1
        return Injected(status=503, reason="busy (simulated burst)")
    if faults.error_rate and holder.rng.random() < faults.error_rate:
        holder.counters["faults_error"] += 1
        return Injected(status=500, reason="system error (simulated)")
    return None


async def delay(holder: FaultHolder) -> None:
    if holder.faults.latency_ms:
        await asyncio.sleep(holder.faults.latency_ms / 1000)


def chance(holder: FaultHolder, rate: float) -> bool:
    return bool(rate) and holder.rng.random() < rate


def copies(holder: FaultHolder) -> int:
    """How many times to queue a package for one recipient (2 when duplicated)."""
    duplicated = chance(holder, holder.faults.duplicate_delivery_rate)
    holder.counters["duplicate_deliveries"] += duplicated
    return 2 if duplicated else 1


async def after_commit(holder: FaultHolder, request: web.Request, stopping: asyncio.Event) -> None:
    """Perhaps fail a send that was just committed: hang past the client's timeout (woken early
    when the server stops) or drop the connection without an answer."""
    faults = holder.faults
    if not chance(holder, faults.timeout_after_commit_rate):
        return
    holder.counters["timeouts_after_commit"] += 1
    if faults.drop_connection and request.transport is not None:
        request.transport.abort()
    else:
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), faults.hang_seconds)


def add_fault_control(
    app: web.Application,
    holder: Callable[[web.Request], FaultHolder],
    snapshot: Callable[[web.Request], dict[str, Any]],
) -> None:
    """``GET /_sim/state``, ``GET /_sim/faults`` and ``POST /_sim/faults`` (any subset of
    :class:`AxisFaults` as JSON; 400 for an unknown name or a bad value). Unauthenticated: the
    simulators listen on loopback and are test tools."""

    async def faults(request: web.Request) -> web.Response:
        state = holder(request)
        if request.method == "POST":
            try:
                state.faults = state.faults.changed(await request.json())
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(dataclasses.asdict(state.faults))

    async def state(request: web.Request) -> web.Response:
        return web.json_response(snapshot(request))

    app.router.add_get("/_sim/state", state)
    app.router.add_get("/_sim/faults", faults)
    app.router.add_post("/_sim/faults", faults)


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The start-time flags, the same for every simulator."""
    faults = parser.add_argument_group("faults (also settable at run time: POST /_sim/faults)")
    faults.add_argument("--error-rate", type=float, default=0.0)
    faults.add_argument("--latency-ms", type=int, default=0)
    faults.add_argument("--burst-5xx", type=int, default=0)
    faults.add_argument("--timeout-after-commit-rate", type=float, default=0.0)
    faults.add_argument("--hang-seconds", type=float, default=30.0)
    faults.add_argument("--drop-connection", action="store_true")
    faults.add_argument("--duplicate-delivery-rate", type=float, default=0.0)
    faults.add_argument("--down-until", type=float, default=None, help="epoch seconds")


def faults_from(args: argparse.Namespace) -> AxisFaults:
    """The faults the flags of :func:`add_fault_arguments` set (ValueError when out of range)."""
    return AxisFaults(
        error_rate=args.error_rate,
        latency_ms=args.latency_ms,
        burst_5xx=args.burst_5xx,
        timeout_after_commit_rate=args.timeout_after_commit_rate,
        hang_seconds=args.hang_seconds,
        drop_connection=args.drop_connection,
        duplicate_delivery_rate=args.duplicate_delivery_rate,
        down_until=args.down_until,
    )

"""The delivery worker: claim due recipients, hand each package to its channel's connector, and
record what happened as a durable decision (sent, retry at T, unconfirmed, failed).

Recipients of one message on one channel that share a package copy and are claimed together go in
one call (the axis routes by the package's To list, and each channel's copy names only the
recipients routed through it: :func:`gateway.usecases.submit.copy_groups`) — except on a channel
that addresses each recipient at its own registered endpoint (``kind = "secure"``): there each
recipient's copy is a call of its own, to that recipient's endpoint, with the server's
certificate pinned to that recipient's unit. One call for several would post every copy to the
first recipient's gateway.

A claim of any classification whose unit is no longer active (an admin deactivated it, or the
directory closed it) is held as below. A classified claim is sent only if the routing policy
(DOMAIN.md §6) still routes it, checked at the claim against the registry as it is then — as an
operator's resend checks it: a retry (``retry_scheduled``, ``unconfirmed``) or a queued copy whose
unit was since deactivated or removed, lost its secure endpoint or its Tuyệt mật permission, is not
sent on the strength of the routing decided when it was submitted. Nor is a copy sealed for a
certificate that is no longer the unit's current one (revoked, expired, replaced): sending it would
hand the document to whoever holds the old key, or a copy the unit cannot open. Either way the
recipient moves ``sending`` → ``held`` in the claim's own transaction, audited (``held_at_claim``)
with the reason, and nothing is sent; an operator's resend routes it anew and seals it again for
the current certificate. The claim reads what this needs along with the due rows (the unit's active
flag and permission, and — for classified copies only — its current certificate's fingerprint), so
``thuong`` pays nothing more; a classified copy too large to come with the claim costs one read of
its first chunk (the seal header names the certificate it was sealed for), and each classified
claim one read of the unit's certificates (the header names it by issuer and serial, the claim by
fingerprint).

"Outcome unknown, never refused" holds across attempts: a recipient claimed from ``unconfirmed``
(an earlier attempt's outcome is unknown) that is then refused, or runs out of attempts, fails as
``MAYBE_DELIVERED`` — see :mod:`gateway.domain.retry`.

A worker that dies mid-send leaves its claims ``sending``; when their lease expires
:func:`recover_expired` makes them ``unconfirmed`` and they are resent with the same package, which
the receiver deduplicates.

One round costs two transactions, whatever the batch size: the claim (which also starts the
attempts, reads the packages stored inline, i.e. the small ones, and holds the classified claims
the policy no longer routes), then, once every send of the
batch has ended, the outcomes. Each outcome keeps the moment its own send ended. Until the slowest
send of the batch ends the others stay ``sending``; that is bounded by the send timeout, which the
lease must exceed anyway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.base import (
    ClassifiedRefused,
    ConnectorError,
    Delivery,
    OutcomeUnknown,
    PeerRefused,
    Receipt,
)
from envelopes.model import Classification
from gateway.domain.deadlines import arrival_notice_deadline
from gateway.domain.lifecycle import IllegalTransition, TransportState
from gateway.domain.retry import Outcome, Verdict, decide, maybe_delivered
from gateway.domain.routing import route_through
from gateway.store import job_queries, message_queries
from gateway.store.records import Claimed, UnitRecord
from gateway.usecases import breakers
from gateway.usecases.packages import (
    load_to_spool,
    opener,
    registered_certificate,
    sealed_for,
)
from gateway.usecases.ports import Channels, Config, Connectors, Deadlines, Retries, Store, Waker
from gateway.usecases.submit import recipient_entry

log = logging.getLogger("docgw.delivery")

_VERDICT_STATE = {
    Verdict.SENT: TransportState.SENT,
    Verdict.RETRY: TransportState.RETRY_SCHEDULED,
    Verdict.UNCONFIRMED: TransportState.UNCONFIRMED,
    Verdict.FAIL: TransportState.FAILED,
}


class Delivering(Store, Config, Channels, Connectors, Deadlines, Retries, Waker, Protocol):
    """What delivery uses: the store, the settings, the channels and their connectors, deadlines
    and retry policies, the workers' wake-up."""


@dataclass(frozen=True, kw_only=True)
class _Sent:
    """How one group's send ended."""

    group: Sequence[Claimed]
    outcome: Outcome
    detail: str
    error_code: str | None
    receipt: Receipt | None
    ended_at: dt.datetime


async def deliver_due(gateway: Delivering, worker: str) -> int:
    """One round: claim a batch, deliver it, record outcomes. Returns how many were claimed."""
    now = gateway.clock()
    settings = gateway.settings.delivery
    lease_until = now + _seconds(settings.lease_seconds)
    async with gateway.engine.begin() as conn:
        claimed, plan = await _claim(gateway, conn, now=now, lease_until=lease_until, worker=worker)
        if not claimed:
            return 0
        # Small packages come with the claim (at most batch_size × inline_blob_bytes); large
        # ones are streamed from their chunks by the send that needs them.
        inline = await job_queries.inline_packages(conn, (c.package_sha256 for c in claimed))
        held = await _hold_unroutable(gateway, conn, claimed, inline, now=now, worker=worker)
        sending = [c for c in claimed if c.recipient_id not in held]
        attempt_ids = await job_queries.start_attempts(conn, sending, worker=worker, now=now)
    if not sending:
        return len(claimed)
    groups: dict[tuple[str, str | None, str, str | None], list[Claimed]] = defaultdict(list)
    for item in sending:
        alone = item.unit_code if _addresses_each_recipient(gateway, item.channel) else None
        groups[(item.message_id, item.channel, item.package_sha256, alone)].append(item)
    ended = await asyncio.gather(
        *(_deliver_group(gateway, g, inline.get(g[0].package_sha256)) for g in groups.values())
    )
    await _record(gateway, ended, attempt_ids, worker)
    await breakers.record_outcomes(
        gateway,
        (
            (
                breakers.scope_of(gateway, s.group[0].channel, s.group[0].unit_code),
                s.outcome,
                s.detail,
            )
            for s in ended
        ),
        known=plan.known,
        now=gateway.clock(),
    )
    return len(claimed)


async def _claim(
    gateway: Delivering,
    conn: AsyncConnection,
    *,
    now: dt.datetime,
    lease_until: dt.datetime,
    worker: str,
) -> tuple[list[Claimed], breakers.Plan]:
    """The round's claim: every due recipient whose channel's breaker is closed, plus a probe or
    a drain slice of those whose breaker's turn has come (:mod:`gateway.usecases.breakers`)."""
    plan = await breakers.plan(gateway, conn, now=now)
    limit = gateway.settings.delivery.batch_size
    claimed = await job_queries.claim_due(
        conn, now=now, limit=limit, lease_until=lease_until, worker=worker, blocked=plan.blocked
    )
    for slot in plan.slots:
        more = await job_queries.claim_due(
            conn, now=now, limit=slot.limit, lease_until=lease_until, worker=worker,
            only=slot.scope,
        )  # fmt: skip
        if slot.draining and len(more) < slot.limit:
            await breakers.drained(conn, slot.scope, now=now)
        claimed.extend(more)
    return claimed, plan


async def _hold_unroutable(
    gateway: Delivering,
    conn: AsyncConnection,
    claimed: Sequence[Claimed],
    inline: dict[str, bytes],
    *,
    now: dt.datetime,
    worker: str,
) -> set[int]:
    """Hold, in the claim's transaction, the claims that may not be sent as they are (see the
    module's docstring); their recipient ids. Of a ``thuong`` claim only the unit's active flag is
    looked at: an admin deactivated the unit, or the directory closed it."""
    moves = []
    for item in claimed:
        if item.classification == Classification.THUONG.value:
            # Not registered at all (a status for a sender known by its CA alone) is no reason.
            why = _inactive(item.unit_code) if item.unit_active is False else None
        else:
            why = await _why_not_sendable(gateway, conn, item, inline.get(item.package_sha256))
        if why is None:
            continue
        # An earlier attempt's outcome is unknown: the peer may hold that copy — say so, as a
        # refusal after it would (MAYBE_DELIVERED), so that the operator asks before resending.
        reason = maybe_delivered(
            f"held at the claim, nothing sent: {why}", item.earlier_outcome_unknown
        )
        moves.append(
            message_queries.Move(
                recipient_id=item.recipient_id,
                message_id=item.message_id,
                current=TransportState.SENDING,
                new=TransportState.HELD,
                at=now,
                action="held_at_claim",
                reason=reason,
                # No attempt was made: the count the claim added is taken back.
                fields={
                    "lease_until": None,
                    "next_attempt_at": None,
                    "last_error": reason,
                    "attempt_count": item.attempt - 1,
                },
            )
        )
        log.warning(
            "held_at_claim",
            extra={
                "event": "held_at_claim",
                "message_id": item.message_id,
                "recipient": item.unit_code,
                "detail": why,
            },
        )
    if moves and await message_queries.transition_many(conn, moves, actor=worker):
        # The rows were claimed in this very transaction: none can have moved.
        raise IllegalTransition("a recipient being held at its claim moved concurrently")
    return {move.recipient_id for move in moves}


def _inactive(unit_code: str) -> str:
    return (
        f"unit {unit_code} is not active in the registry (deactivated, or closed by the "
        f"directory: docgw units history {unit_code})"
    )


async def _why_not_sendable(
    gateway: Delivering,
    conn: AsyncConnection,
    item: Claimed,
    inline: bytes | None,
) -> str | None:
    """Why a classified claim may not be sent now, or None: the routing policy run again on its
    channel (:func:`route_through`, as an operator's resend runs it) against the unit as the claim
    read it, then whether its copy is sealed for the unit's current certificate."""
    if item.unit_active is None:
        return f"unit {item.unit_code} is no longer in the registry"
    unit = UnitRecord(
        code=item.unit_code,
        name="",
        secure_endpoint=item.secure_endpoint,
        allows_tuyet_mat=item.allows_tuyet_mat,
        active=item.unit_active,
    )
    classification = Classification(item.classification)
    entry = recipient_entry(unit, gateway)
    route = route_through(classification, entry, item.channel or "", gateway.channels)
    if route.is_held:
        return f"the routing policy no longer routes it: {route.reason}"
    if item.current_fingerprint is None:
        return (
            f"{item.unit_code} has no current (registered, unrevoked, unexpired) certificate; "
            "its copy was sealed for one it no longer has"
        )
    # The seal names its certificate by issuer and serial (CMS), so the claim's fingerprint is
    # turned back into the certificate it stands for.
    current = await registered_certificate(conn, item.unit_code, item.current_fingerprint)
    if current is None or not await sealed_for(conn, item.package_sha256, current, inline):
        return (
            f"its copy was sealed for a certificate that is no longer {item.unit_code}'s current "
            "one (revoked, expired or replaced); a resend seals it for the current one"
        )
    return None


def _addresses_each_recipient(gateway: Delivering, channel: str | None) -> bool:
    """Whether ``channel`` sends each recipient's copy to that recipient's own endpoint (a secure
    channel: the registered ``secure_endpoint``), so that recipients never share a call."""
    info = gateway.channels.get(channel or "")
    return info is not None and info.is_secure


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


async def _deliver_group(
    gateway: Delivering, group: Sequence[Claimed], inline: bytes | None
) -> _Sent:
    first = group[0]
    started = time.perf_counter()
    outcome, detail, error_code, receipt = await _send(gateway, group, inline)
    # The connector call: one line, a warning when it did not send.
    log.log(
        logging.INFO if outcome is Outcome.SENT else logging.WARNING,
        "delivery_attempt",
        extra={
            "event": "delivery_attempt",
            "operation": "deliver",
            "message_id": first.message_id,
            "document_id": first.document_id,
            "channel": first.channel,
            "recipient": ",".join(c.unit_code for c in group),
            "attempt": max(c.attempt for c in group),
            "outcome": outcome.value,
            "error_code": error_code,
            "detail": detail,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return _Sent(
        group=group,
        outcome=outcome,
        detail=detail,
        error_code=error_code,
        receipt=receipt,
        ended_at=gateway.clock(),
    )


async def _record(
    gateway: Delivering, ended: Sequence[_Sent], attempt_ids: dict[int, int], worker: str
) -> None:
    """Every outcome of the round as a durable decision, in one transaction."""
    moves: list[message_queries.Move] = []
    ends: list[job_queries.AttemptEnd] = []
    for sent in ended:
        now = sent.ended_at
        policy = gateway.retry_policy(sent.group[0].channel)
        for item in sent.group:
            decision = decide(
                outcome=sent.outcome, attempt=item.attempt, now=now, policy=policy,
                detail=sent.detail, earlier_outcome_unknown=item.earlier_outcome_unknown,
            )  # fmt: skip
            new_state = _VERDICT_STATE[decision.verdict]
            fields: dict[str, object] = {"lease_until": None}
            if new_state is TransportState.SENT:
                fields.update(
                    sent_at=now,
                    remote_id=sent.receipt.remote_id if sent.receipt else None,
                    last_error=None,
                    next_attempt_at=None,
                    arrival_due_at=arrival_notice_deadline(
                        delivered_at=now, policy=gateway.deadlines
                    ),
                )
            else:
                fields.update(last_error=decision.reason, next_attempt_at=decision.next_attempt_at)
            moves.append(
                message_queries.Move(
                    recipient_id=item.recipient_id,
                    message_id=item.message_id,
                    current=TransportState.SENDING,
                    new=new_state,
                    at=now,
                    action=f"attempt_{sent.outcome.value}",
                    reason=decision.reason or None,
                    fields=fields,
                )
            )
            ends.append(
                job_queries.AttemptEnd(
                    attempt_id=attempt_ids[item.recipient_id],
                    at=now,
                    outcome=sent.outcome,
                    error_code=sent.error_code,
                    detail=sent.detail or None,
                )
            )
    async with gateway.engine.begin() as conn:
        lost = await message_queries.transition_many(conn, moves, actor=worker)
        await job_queries.finish_attempts(conn, ends)
    for move in lost:
        # Recovery already declared this claim lost (lease expired): its decision stands.
        log.warning(
            "late_outcome_ignored",
            extra={"recipient_id": move.recipient_id, "message_id": move.message_id},
        )


async def _send(
    gateway: Delivering, group: Sequence[Claimed], inline: bytes | None
) -> tuple[Outcome, str, str | None, Receipt | None]:
    first = group[0]
    connector = gateway.connectors.get(first.channel or "")
    if connector is None:
        return Outcome.TRANSPORT_ERROR, f"channel {first.channel!r} is not configured", None, None
    package: IO[bytes]
    if inline is not None:
        package = io.BytesIO(inline)
    else:
        async with gateway.engine.connect() as conn:
            package = await load_to_spool(conn, first.package_sha256)
    size = package.seek(0, 2)
    delivery = Delivery(
        message_id=first.message_id,
        document_id=first.document_id,
        kind=first.kind,
        sender=first.sender,
        recipients=tuple(c.unit_code for c in group),
        classification=Classification(first.classification),
        open_package=opener(package),
        package_size=size,
        package_sha256=first.package_sha256,
        attempt=max(c.attempt for c in group),
        # One recipient per call on such a channel (see deliver_due): its own endpoint.
        endpoint=first.secure_endpoint
        if _addresses_each_recipient(gateway, first.channel)
        else None,
    )
    timeout = gateway.settings.delivery.send_timeout_seconds
    try:
        # The connectors enforce the same timeout themselves, knowing whether the body was sent;
        # this outer bound only catches a connector that hangs past it.
        receipt = await asyncio.wait_for(connector.deliver(delivery), timeout + 5)
    except (PeerRefused, ClassifiedRefused) as exc:
        return Outcome.BUSINESS_ERROR, exc.message, exc.code, None
    except OutcomeUnknown as exc:
        return Outcome.OUTCOME_UNKNOWN, exc.message, exc.code, None
    except ConnectorError as exc:
        return Outcome.TRANSPORT_ERROR, exc.message, exc.code, None
    except TimeoutError:
        return Outcome.OUTCOME_UNKNOWN, f"no answer within {timeout}s", "PEER_TIMEOUT", None
    except Exception as exc:  # a connector bug must not kill the worker; the retry covers it
        log.exception(
            "connector_crashed",
            extra={
                "message_id": first.message_id,
                "channel": first.channel,
                "error_code": "CONNECTOR_CRASHED",
            },
        )
        return Outcome.TRANSPORT_ERROR, f"connector error: {exc!r}", "CONNECTOR_CRASHED", None
    finally:
        package.close()
    return Outcome.SENT, "", None, receipt


async def recover_expired(gateway: Delivering, actor: str = "recovery") -> int:
    """Claims whose lease expired (the worker died or hung): their outcome is unknown."""
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        expired = await job_queries.expired_leases(conn, now=now)
        for recipient_id, message_id in expired:
            await message_queries.transition(
                conn,
                recipient_id,
                TransportState.SENDING,
                TransportState.UNCONFIRMED,
                now=now,
                actor=actor,
                action="lease_expired",
                reason="the worker stopped mid-send; resending the same package",
                message_id=message_id,
                lease_until=None,
                next_attempt_at=now,
            )
    if expired:
        gateway.work_available.set()
    return len(expired)


async def run_worker(gateway: Delivering, name: str, stop: asyncio.Event) -> None:
    """Deliver until ``stop`` is set; between rounds, wait for new work or the poll interval."""
    settings = gateway.settings.delivery
    while not stop.is_set():
        try:
            claimed = await deliver_due(gateway, name)
        except Exception as exc:
            log.exception(
                "worker_round_failed",
                extra={"worker": name, "error_code": getattr(exc, "code", type(exc).__name__)},
            )
            claimed = 0
            await asyncio.sleep(settings.idle_poll_seconds)
        if claimed >= settings.batch_size:
            continue  # a full batch: more may be due already
        await _wait_for_work(gateway, settings.idle_poll_seconds, stop)


async def _wait_for_work(gateway: Delivering, seconds: float, stop: asyncio.Event) -> None:
    """Until new work is announced, or ``seconds`` pass (retries come due without an
    announcement), or ``stop`` is set (the service announces once more when it stops, which wakes
    every waiting worker). The first worker to wake takes an announcement; the others keep waiting
    — not each running a round that finds nothing (measured: two empty rounds per document)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        try:
            await asyncio.wait_for(gateway.work_available.wait(), remaining)
        except TimeoutError:
            return
        if stop.is_set() or gateway.work_available.is_set():
            gateway.work_available.clear()
            return

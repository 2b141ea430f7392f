"""Webhooks: docgw calls the local system's endpoints with each event of the feed.

Delivery follows the feed (store/events.py): an endpoint's row keeps the position of the last
event it acknowledged (a 2xx), so every event reaches it, in the feed's order, at least once —
durable because the event itself was stored in the transaction of the change, and the position
moves only after the receiver's answer. A failure (no answer, a timeout, a non-2xx) stops that
endpoint's delivery until its next attempt, ``min(BASE × 2^(failures-1), MAX)`` later, stored in
the row; the event is tried again first, so nothing overtakes it. :func:`deliver_webhooks` is a
scheduled job: once per tick across processes, so one process at a time delivers.

Each request is signed like Stripe's and GitHub's: ``Docgw-Signature: v1=<hex HMAC-SHA256 of
"<Docgw-Timestamp>.<body>" under the endpoint's secret>``; the receiver recomputes it, refuses an
old timestamp (a replay) and deduplicates by ``Docgw-Event-Id`` (see
docs/howto/integrate.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import urllib.parse
import uuid
from typing import Final, Protocol

import aiohttp

from gateway.store import events as store_events
from gateway.store import webhooks as store
from gateway.store.webhooks import Endpoint
from gateway.usecases import document_signatures
from gateway.usecases.errors import NotFound, UnknownUnit, WebhookUrlInvalid
from gateway.usecases.events import DOCUMENT_EVENT, event_document
from gateway.usecases.ports import Http, Keys, Store

log = logging.getLogger("docgw.webhooks")

#: How often the job runs (seconds); a due endpoint is called within this of its event's commit.
TICK_SECONDS: Final = 1.0
BACKOFF_BASE: Final = dt.timedelta(seconds=2)
BACKOFF_MAX: Final = dt.timedelta(minutes=10)
#: One call's limit; a receiver slower than this counts as a failure (it may still have the
#: event: the next attempt sends it again, with the same event id).
TIMEOUT_SECONDS: Final = 10.0
#: Events per endpoint per run: a long backlog drains over several ticks.
EVENTS_PER_RUN: Final = 200
#: What a receiver should accept as a signature's age (documented; docgw signs at send time).
SIGNATURE_TOLERANCE: Final = dt.timedelta(minutes=5)
URL_MAX: Final = 500


class Webhooks(Store, Keys, Http, Protocol):
    """What webhooks use: the store, the settings, the local units (an endpoint's unit is one),
    the HTTP client."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Docgw-Signature`` header value for a request."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def backoff(failures: int) -> dt.timedelta:
    delay: dt.timedelta = BACKOFF_BASE * (2 ** min(max(0, failures - 1), 20))
    return min(delay, BACKOFF_MAX)


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if (
        len(url) > URL_MAX
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
    ):
        raise WebhookUrlInvalid(
            f"an http(s) URL without credentials, at most {URL_MAX} characters", element="url"
        )
    return url.strip()


async def add(
    gateway: Webhooks, *, url: str, unit_code: str | None, actor: str
) -> tuple[Endpoint, str]:
    """Register an endpoint; (it, its secret — shown this once). It receives the events that
    happen from now on (replay for earlier ones)."""
    url = check_url(url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint_id = str(uuid.uuid4())
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        if unit_code is not None and unit_code not in gateway.signers:
            raise UnknownUnit(f"{unit_code} is not a local unit of this gateway", element="unit")
        await store_events.sequence(conn)
        await store.insert(
            conn,
            id=endpoint_id,
            url=url,
            unit_code=unit_code,
            secret=secret,
            position=await store_events.last_position(conn),
            created_at=now,
            created_by=actor,
        )
        endpoint = await store.get(conn, endpoint_id)
    assert endpoint is not None
    log.info(
        "webhook_added",
        extra={
            "endpoint": endpoint_id,
            "unit": unit_code,
            "actor": actor,
        },  # no URL: it may hold a key
    )
    return endpoint, secret


async def listing(gateway: Webhooks) -> list[Endpoint]:
    async with gateway.engine.begin() as conn:
        await store_events.sequence(conn)
        return await store.listing(conn)


async def remove(gateway: Webhooks, endpoint_id: str) -> None:
    async with gateway.engine.begin() as conn:
        if not await store.delete(conn, endpoint_id):
            raise NotFound(f"no webhook endpoint {endpoint_id}", element="id")
    log.info("webhook_removed", extra={"endpoint": endpoint_id})


async def replay(gateway: Webhooks, endpoint_id: str, *, after: int) -> None:
    """Deliver again, at the next run, every event after the feed cursor ``after``."""
    async with gateway.engine.begin() as conn:
        if not await store.rewind(conn, endpoint_id, after):
            raise NotFound(f"no webhook endpoint {endpoint_id}", element="id")
    log.info("webhook_replayed", extra={"endpoint": endpoint_id, "after": after})


async def deliver_webhooks(gateway: Webhooks) -> int:
    """The job: each due endpoint gets its events in order until one fails; how many went."""
    async with gateway.engine.begin() as conn:
        await store_events.sequence(conn)
        endpoints = await store.due(conn, now=gateway.clock())
    sent = await asyncio.gather(*(_drain(gateway, endpoint) for endpoint in endpoints))
    return sum(sent)


async def _drain(gateway: Webhooks, endpoint: Endpoint) -> int:
    async with gateway.reader.connect() as conn:
        waiting = await store_events.feed(
            conn, after=endpoint.position, limit=EVENTS_PER_RUN, unit_code=endpoint.unit_code
        )
    sent = 0
    for event in waiting:
        error = await _post(gateway, endpoint, event)
        now = gateway.clock()
        async with gateway.engine.begin() as conn:
            if error is None:
                await store.delivered(conn, endpoint.id, event.position, now=now)
            else:
                # Consecutive failures: a delivery in this run has reset the count.
                failures = (0 if sent else endpoint.failures) + 1
                await store.failed(
                    conn,
                    endpoint.id,
                    failures=failures,
                    error=error,
                    retry_at=now + backoff(failures),
                    now=now,
                )
        if error is not None:
            log.warning(
                "webhook_failed",
                extra={
                    "event": "webhook_failed",
                    "endpoint": endpoint.id,
                    "event_id": event.event_id,
                    "message_id": event.message_id,
                    "error_code": "WEBHOOK_FAILED",
                    "detail": error,
                },
            )
            return sent
        sent += 1
    return sent


async def webhook_body(gateway: Webhooks, event: store_events.EventRecord) -> dict[str, object]:
    """The event as the feed carries it; a received document's also carries its PDFs'
    signature verdicts ("documents", as in the message detail), so that a clerk's system knows
    before registering it whether each PDF is signed, by whom, and unchanged since."""
    body = event_document(event)
    if event.type in DOCUMENT_EVENT.values() and event.message_id is not None:
        async with gateway.reader.connect() as conn:
            body["documents"] = await document_signatures.for_message(conn, event.message_id)
    return body


async def _post(
    gateway: Webhooks, endpoint: Endpoint, event: store_events.EventRecord
) -> str | None:
    """Send one event; None when the receiver took it (2xx), else why not."""
    assert gateway.http is not None
    body = json.dumps(await webhook_body(gateway, event), ensure_ascii=False).encode()
    timestamp = int(gateway.clock().timestamp())
    headers = {
        "Content-Type": "application/json",
        "Docgw-Event-Id": event.event_id,
        "Docgw-Timestamp": str(timestamp),
        "Docgw-Signature": sign(endpoint.secret, timestamp, body),
    }
    try:
        async with gateway.http.post(
            endpoint.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
            allow_redirects=False,
        ) as response:
            await response.read()
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]

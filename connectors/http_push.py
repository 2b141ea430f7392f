"""Push a package to a peer over HTTP: ``POST {endpoint}`` with the package as the body.

The peer is another docgw (its ``POST /api/v1/inbox``) or any receiver that answers the same way:
2xx with JSON ``{"id": …, "duplicate": bool}`` when it has the package; 4xx (but 408 and 429) when
it refuses it for good; anything else is a transport failure. A timeout after the body was sent is
an unknown outcome: the gateway resends the same package and the peer deduplicates.

The session is a constructor argument (tests and the composition root inject it). The body streams
from the package file, so large packages are not loaded into memory.

Never a route for classified packages: it posts to one fixed URL, over plain HTTP or server-only
TLS, without mutual TLS and without the recipient's registered secure endpoint. The configuration
refuses ``secure = true`` on this kind, and this connector refuses a classified package again
(CLASSIFIED_REFUSED), whatever routed it here.

A docgw inbox wants an operator's (or admin's) API token: ``token`` goes out as
``Authorization: Bearer …``. A 401 or 403 answer is :class:`PeerUnauthorized`, final like any
refusal: every later attempt would carry the same token until the configuration changes, so the
recipient fails at once with that code instead of spending its retries; fix the token, restart,
resend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

import aiohttp

from connectors.base import (
    ClassifiedRefused,
    Delivery,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    Receipt,
)

CHUNK = 1 << 20
RETRYABLE_4XX = (408, 425, 429)
#: The peer does not take our credentials (none, wrong, revoked, or a role it does not accept).
UNAUTHORIZED = (401, 403)


class PeerUnauthorized(PeerRefused):
    code = "PEER_UNAUTHORIZED"


async def _body(stream: IO[bytes]) -> AsyncIterator[bytes]:
    with stream:
        while chunk := await asyncio.to_thread(stream.read, CHUNK):
            yield chunk


@dataclass
class HttpPushConnector:
    name: str
    endpoint: str
    session: aiohttp.ClientSession
    #: The peer inbox's API token, sent as ``Authorization: Bearer …`` (empty: no header).
    token: str = field(default="", repr=False)
    #: Extra headers (tests, a peer that wants more); they may carry credentials too.
    headers: dict[str, str] | None = field(default=None, repr=False)
    timeout_seconds: float = 60.0
    is_axis: bool = False

    async def deliver(self, delivery: Delivery) -> Receipt:
        if delivery.classification.is_classified:
            what = "an axis channel" if self.is_axis else "not a secure-network channel"
            raise ClassifiedRefused(f"{self.name} is {what}: classified packages never go there")
        headers = {
            "Content-Type": "application/xml",
            "Content-Length": str(delivery.package_size),
            "X-Docgw-Message-Id": delivery.message_id,
            "X-Docgw-Sender": delivery.sender,
            "X-Docgw-Recipients": ",".join(delivery.recipients),
            "X-Docgw-Package-Sha256": delivery.package_sha256,
            **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            **(self.headers or {}),
        }
        sent = False
        try:
            async with self.session.post(
                self.endpoint,
                data=_body(delivery.open_package()),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            ) as response:
                sent = True
                text = await response.text()
                if 200 <= response.status < 300:
                    payload = await response.json(content_type=None) if text else {}
                    return Receipt(
                        remote_id=str(payload.get("id")) if payload.get("id") else None,
                        duplicate=bool(payload.get("duplicate", False)),
                    )
                if response.status in UNAUTHORIZED:
                    raise PeerUnauthorized(
                        f"{self.name}: HTTP {response.status}: the peer does not accept this "
                        f"channel's token (check [channels.{self.name}] token): {text[:300]}"
                    )
                if 400 <= response.status < 500 and response.status not in RETRYABLE_4XX:
                    raise PeerRefused(f"{self.name}: HTTP {response.status}: {text[:300]}")
                raise PeerUnavailable(f"{self.name}: HTTP {response.status}: {text[:300]}")
        except TimeoutError as exc:
            raise OutcomeUnknown(f"{self.name}: no answer within {self.timeout_seconds}s") from exc
        except aiohttp.ServerDisconnectedError as exc:
            # The peer may have committed before the connection dropped.
            raise OutcomeUnknown(f"{self.name}: disconnected before answering") from exc
        except aiohttp.ClientError as exc:
            if sent:
                raise OutcomeUnknown(f"{self.name}: {exc}") from exc
            raise PeerUnavailable(f"{self.name}: {exc}") from exc

    async def close(self) -> None:
        return None

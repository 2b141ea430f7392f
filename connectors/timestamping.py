"""An RFC 3161 timestamp authority over HTTP (RFC 3161 §3.4: POST application/timestamp-query,
answer application/timestamp-reply)."""

from __future__ import annotations

import aiohttp

from connectors.base import PeerUnavailable
from envelopes import timestamps


async def timestamp(
    session: aiohttp.ClientSession, url: str, data: bytes, *, timeout_seconds: float
) -> bytes:
    """The authority's token over ``data`` (``TIMESTAMP_REFUSED`` when it refuses or answers
    a token for other data; ``PEER_UNAVAILABLE`` when it cannot be reached)."""
    query, imprint = timestamps.request(data)
    try:
        async with session.post(
            url,
            data=query,
            headers={"Content-Type": "application/timestamp-query"},
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            body = await response.read()
            if response.status != 200:
                raise timestamps.TimestampRefused(
                    f"the timestamp authority answered HTTP {response.status}"
                )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PeerUnavailable(f"timestamp authority {url}: {exc}") from exc
    return timestamps.token_from_response(body, imprint)

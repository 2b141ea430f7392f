"""Health, alerts and the channels' circuit breakers over HTTP.

    method  path                                   roles              calls
    GET     /healthz                               (no token)         health.check
    GET     /api/v1/alerts                         admin, operator    alerts.listing
    POST    /api/v1/alerts/{aid}/ack               admin, operator    alerts.acknowledge
    GET     /api/v1/channels                       admin, operator    breakers.listing
    POST    /api/v1/channels/{name}/pause          admin, operator    breakers.pause
    POST    /api/v1/channels/{name}/resume         admin, operator    breakers.resume

Registered by ``app.create_app`` through :func:`add_routes`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from gateway.store.alerts import BreakerRecord
from gateway.usecases import alerts, breakers, health
from gateway.web.app import API, GATEWAY, _family, _json, _limit, _read_object, _text
from gateway.web.auth import PRINCIPAL, STAFF, allow, public
from gateway.web.problems import BadRequest

ALERT_STATES = ("open", "resolved")
#: Breaker states, each a 0/1 series in docgw_channel_breaker (so a state's series never vanishes).
BREAKER_STATES = (breakers.CLOSED, breakers.OPEN, breakers.RECOVERING, breakers.PAUSED)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", health_check, name="health")
    router.add_get(f"{API}/alerts", list_alerts, name="alerts")
    router.add_post(f"{API}/alerts/{{aid}}/ack", acknowledge_alert, name="ack_alert")
    router.add_get(f"{API}/channels", list_channels, name="channels")
    router.add_post(f"{API}/channels/{{name}}/pause", change_channel, name="pause_channel")
    router.add_post(f"{API}/channels/{{name}}/resume", change_channel, name="resume_channel")


@public
async def health_check(request: web.Request) -> web.Response:
    """200 while this process can serve (``status`` "ok" or "degraded" with its reasons); 503
    when it cannot (the database is unreachable, or no delivery worker is alive)."""
    found = await health.check(request.app[GATEWAY])
    body = {
        "status": found.status,
        "database": found.database,
        "workers_alive": found.workers_alive,
        "queue_lag_seconds": found.queue_lag_seconds,
        "reasons": [r.document() for r in found.reasons],
        "channels": [breaker_document(b) for b in found.channels],
    }
    return _json(body, status=200 if found.serving else 503)


@allow(STAFF)
async def list_alerts(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    query = request.query
    for name in query:
        if name not in ("state", "limit"):
            raise BadRequest("unknown parameter (known: limit, state)", element=name)
    state = query.get("state")
    if state is not None and state not in ALERT_STATES:
        raise BadRequest(f"must be one of {', '.join(ALERT_STATES)}", element="state")
    found = await alerts.listing(gateway, state=state, limit=_limit(query, default=50))
    return _json({"items": [alerts.alert_document(a) for a in found]})


@allow(STAFF)
async def acknowledge_alert(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    alert_id = request.match_info["aid"]
    await alerts.acknowledge(gateway, alert_id, actor=principal.name)
    return _json({"id": alert_id, "acked_by": principal.name})


def breaker_document(breaker: BreakerRecord) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.astimezone(dt.UTC).isoformat()

    return {
        "channel": breaker.channel,
        "unit": breaker.unit_code or None,
        "state": breaker.state,
        "failures": breaker.failures,
        "next_at": iso(breaker.next_at),
        "opened_at": iso(breaker.opened_at),
        "last_error": breaker.last_error,
        "changed_by": breaker.changed_by,
    }


@allow(STAFF)
async def list_channels(request: web.Request) -> web.Response:
    found = await breakers.listing(request.app[GATEWAY])
    return _json({"items": [breaker_document(b) for b in found]})


@allow(STAFF)
async def change_channel(request: web.Request) -> web.Response:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    body = await _read_object(request, ("unit",)) if request.body_exists else {}
    name = request.match_info["name"]
    unit = _text(body, "unit", limit=35)
    info = gateway.channels.get(name)
    if unit is not None and (info is None or not info.is_secure):
        raise BadRequest(
            "a unit has a breaker of its own only on a channel that calls each unit at its own "
            "endpoint (secure)",
            element="unit",
        )
    pausing = request.path.endswith("/pause")
    change = breakers.pause if pausing else breakers.resume
    breaker = await change(gateway, name, unit=unit, actor=principal.name)
    return _json(breaker_document(breaker))


def breaker_metrics(found: list[BreakerRecord]) -> Iterator[str]:
    """docgw_channel_breaker{channel,unit,state} (1 for the breaker's state, else 0) and
    docgw_channel_breaker_failures{channel,unit}: for /metrics."""
    yield from _family(
        "docgw_channel_breaker",
        "gauge",
        "Circuit breaker state per channel (and unit on a secure channel): 1 for the current.",
        [
            ({"channel": b.channel, "unit": b.unit_code, "state": s}, int(b.state == s))
            for b in found
            for s in BREAKER_STATES
        ],
    )
    yield from _family(
        "docgw_channel_breaker_failures",
        "gauge",
        "Transport failures in a row per channel (and unit on a secure channel).",
        [({"channel": b.channel, "unit": b.unit_code}, b.failures) for b in found],
    )

"""Alerts and the channels' circuit breakers over HTTP (the same use cases as ``docgw alerts`` and
``docgw channels list|pause|resume``). ``/healthz`` shows the same breakers (web/health.py).

method  path                                   roles              calls
GET     /api/v1/alerts                         admin, operator    alerts.listing
POST    /api/v1/alerts/{aid}/ack               admin, operator    alerts.acknowledge
GET     /api/v1/channels                       admin, operator    breakers.listing
POST    /api/v1/channels/{name}/pause          admin, operator    breakers.pause
POST    /api/v1/channels/{name}/resume         admin, operator    breakers.resume
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import Field

from gateway.store.alerts import BreakerRecord
from gateway.usecases import alerts, breakers
from gateway.web.auth import PRINCIPAL, STAFF, allow
from gateway.web.bodies import Body, Reply, bounded_text, read_body, render
from gateway.web.common import API, GATEWAY, limit, limit_parameter, reject_unknown_parameters
from gateway.web.problems import BadRequest
from gateway.web.routes import NOT_FOUND, Routes, path_parameter, query_names, query_parameter

ROUTES = Routes(tag="operations")

ALERT_STATES = ("open", "resolved")


class Alert(Reply):
    """One alert: a condition raised by a rule, open while it holds"""

    id: str
    rule: str = Field(description="the rule's stable code (ALERT_CHANNEL_DOWN …)")
    subject: str = Field(description="what it is about: a channel, a job, a certificate …")
    severity: Literal["warning", "critical"]
    state: Literal["open", "resolved"]
    vi: str
    en: str
    raised_at: dt.datetime
    last_seen_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    acked_at: dt.datetime | None = None
    acked_by: str | None = None
    notify_error: str | None = Field(
        None, description="why the last e-mail or webhook about it failed (it is retried)"
    )


class Alerts(Reply):
    """Alerts, newest first"""

    items: list[Alert]


class AlertAcknowledged(Reply):
    """Acknowledged (the alert stays open while its condition holds)"""

    id: str
    acked_by: str


class Breaker(Reply):
    """A channel's circuit breaker (or, on a secure channel, one unit's)"""

    channel: str
    unit: str | None = Field(description="the unit, on a secure channel; null: the whole channel")
    state: Literal["closed", "open", "recovering", "paused"]
    failures: int = Field(description="transport failures in a row")
    next_at: dt.datetime | None = Field(
        None, description="open: when the next probe may go; recovering: the next drain slice"
    )
    opened_at: dt.datetime | None = None
    last_error: str | None = None
    changed_by: str | None = Field(None, description="who paused or resumed it")


class Breakers(Reply):
    """Every configured channel's breaker, then the units' ones on secure channels"""

    items: list[Breaker]


class ChannelChange(Body):
    unit: bounded_text(35) = Field(  # type: ignore[valid-type]
        None, description="one unit's breaker (only on a secure channel)"
    )


def breaker_reply(breaker: BreakerRecord) -> Breaker:
    return Breaker.model_validate(breakers.breaker_document(breaker))


LIST_QUERY = [
    query_parameter(
        "state", "open or resolved (default: both)", {"type": "string", "enum": list(ALERT_STATES)}
    ),
    limit_parameter(),
]


@ROUTES.get(
    f"{API}/alerts",
    name="alerts",
    summary="Alerts, newest first (state: open or resolved)",
    ok={200: Alerts},
    parameters=LIST_QUERY,
)
@allow(STAFF)
async def list_alerts(request: web.Request) -> web.Response:
    query = request.query
    reject_unknown_parameters(query, query_names(LIST_QUERY))
    state = query.get("state")
    if state is not None and state not in ALERT_STATES:
        raise BadRequest(f"must be one of {', '.join(ALERT_STATES)}", element="state")
    found = await alerts.listing(request.app[GATEWAY], state=state, limit=limit(query, default=50))
    return render(Alerts(items=[Alert.model_validate(alerts.alert_document(a)) for a in found]))


@ROUTES.post(
    f"{API}/alerts/{{aid}}/ack",
    name="acknowledge_alert",
    summary="An operator has seen the alert (it stays open while it holds)",
    ok={200: AlertAcknowledged},
    errors=(NOT_FOUND,),
    parameters=[path_parameter("aid", "the alert's id")],
)
@allow(STAFF)
async def acknowledge_alert(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    alert_id = request.match_info["aid"]
    await alerts.acknowledge(request.app[GATEWAY], alert_id, actor=principal.name)
    return render(AlertAcknowledged(id=alert_id, acked_by=principal.name))


@ROUTES.get(
    f"{API}/channels",
    name="channels",
    summary="Every channel's circuit breaker (and units' on secure channels)",
    ok={200: Breakers},
)
@allow(STAFF)
async def list_channels(request: web.Request) -> web.Response:
    found = await breakers.listing(request.app[GATEWAY])
    return render(Breakers(items=[breaker_reply(b) for b in found]))


async def _change(request: web.Request, body: ChannelChange, *, pausing: bool) -> Breaker:
    gateway, principal = request.app[GATEWAY], request[PRINCIPAL]
    name = request.match_info["name"]
    change = breakers.pause if pausing else breakers.resume
    return breaker_reply(await change(gateway, name, unit=body.unit, actor=principal.name))


_CHANGE = {
    "ok": {200: Breaker},
    "errors": (NOT_FOUND,),
    "parameters": [path_parameter("name", "the channel's name")],
    "body": ChannelChange,
    "body_required": False,
}


@ROUTES.post(
    f"{API}/channels/{{name}}/pause",
    name="pause_channel",
    summary="Stop sending on a channel (body: unit, on a secure channel)",
    **_CHANGE,
)
@allow(STAFF)
async def pause_channel(request: web.Request) -> web.Response:
    body = await read_body(request, ChannelChange) if request.body_exists else ChannelChange()
    return render(await _change(request, body, pausing=True))


@ROUTES.post(
    f"{API}/channels/{{name}}/resume",
    name="resume_channel",
    summary="Send again; the backlog drains at the bounded rate",
    **_CHANGE,
)
@allow(STAFF)
async def resume_channel(request: web.Request) -> web.Response:
    body = await read_body(request, ChannelChange) if request.body_exists else ChannelChange()
    return render(await _change(request, body, pausing=False))

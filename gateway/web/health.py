"""What needs no token: the service's health and metrics, and the OpenAPI document.

method  path                   calls
GET     /healthz               monitoring.health (reasons: docs/howto/operate.md)
GET     /metrics               monitoring.counters
GET     /api/v1/openapi.json   (built once per app: openapi.build_document)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from aiohttp import hdrs, web
from pydantic import Field

from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import Outcome
from gateway.store.alerts import BreakerRecord
from gateway.usecases import breakers, monitoring
from gateway.web.alerts import Breaker, breaker_reply
from gateway.web.auth import public
from gateway.web.bodies import Reply, render
from gateway.web.common import API, GATEWAY
from gateway.web.routes import Response, Routes

ROUTES = Routes(tag="service")

OPENAPI_JSON = web.AppKey("openapi_json", bytes)
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


#: Breaker states, each a 0/1 series in docgw_channel_breaker (so a state's series never vanishes).
BREAKER_STATES = (breakers.CLOSED, breakers.OPEN, breakers.RECOVERING, breakers.PAUSED)


class HealthReason(Reply):
    """Why the gateway is degraded: a stable code, what it is about, and the words"""

    code: str = Field(
        description="DATABASE_UNREACHABLE, NO_WORKER_ALIVE, QUEUE_LAG, JOB_FAILING, "
        "CHANNEL_DOWN, CHANNEL_PAUSED, CERTIFICATE_EXPIRING"
    )
    subject: str
    vi: str
    en: str


class Health(Reply):
    """ok, or degraded with its reasons"""

    status: Literal["ok", "degraded"]
    database: bool
    workers_alive: int
    queue_lag_seconds: float | None
    reasons: list[HealthReason]
    channels: list[Breaker] = Field(description="the breakers that have a state to show")


@ROUTES.get(
    f"{API}/openapi.json",
    name="openapi",
    summary="This document",
    ok={
        200: Response(
            description="OpenAPI 3.1", body={"application/json": {"schema": {"type": "object"}}}
        )
    },
)
@public
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_JSON], content_type="application/json")


@ROUTES.get(
    "/healthz",
    name="health",
    summary="ok, or degraded with its reasons (docs/howto/operate.md); 503 only when this "
    "process cannot serve (DATABASE_UNREACHABLE, NO_WORKER_ALIVE)",
    ok={200: Response(description="Serving: ok, or degraded with its reasons", body=Health),
        503: Response(description="Not serving: the database or every worker is gone",
                      body=Health)},
)  # fmt: skip
@public
async def health(request: web.Request) -> web.Response:
    found = await monitoring.health(request.app[GATEWAY])
    body = Health(
        status="degraded" if found.reasons else "ok",
        database=found.database,
        workers_alive=found.workers_alive,
        queue_lag_seconds=found.queue_lag_seconds,
        reasons=[HealthReason.model_validate(r.document()) for r in found.reasons],
        channels=[breaker_reply(b) for b in found.channels],
    )
    return render(body, status=200 if found.serving else 503)


@ROUTES.get(
    "/metrics",
    name="metrics",
    summary="Prometheus metrics (text format 0.0.4)",
    ok={200: Response(
        description="docgw_recipients, docgw_oldest_due_age_seconds, docgw_attempts_total, "
        "docgw_failures_total, docgw_status_events_total, docgw_workers_alive, "
        "docgw_channel_breaker, docgw_channel_breaker_failures",
        body={"text/plain": {"schema": {"type": "string"}}},
    )},
)  # fmt: skip
@public
async def metrics(request: web.Request) -> web.Response:
    found = await monitoring.counters(request.app[GATEWAY])
    text = render_metrics(
        channels=found.channels,
        recipients=found.recipients,
        oldest_due_age=found.oldest_due_age,
        attempts=found.attempts,
        status_events=found.status_events,
        workers_alive=found.workers_alive,
        breakers=found.breakers,
    )
    return web.Response(body=text.encode(), headers={hdrs.CONTENT_TYPE: METRICS_TYPE})


def render_metrics(
    *,
    channels: Iterable[str],
    recipients: Iterable[tuple[str, str, int]],
    oldest_due_age: float,
    attempts: Iterable[tuple[str, str, int]],
    status_events: Iterable[tuple[str, str, int]],
    workers_alive: int,
    breakers: Iterable[BreakerRecord] = (),
) -> str:
    """Prometheus text format 0.0.4. Every (state, channel) and (channel, outcome) of the
    configured channels is written, with 0 where nothing is counted, so that a series drops to
    zero instead of vanishing (a vanished series silences alerts)."""
    channels = list(channels)
    gauge: dict[tuple[str, str], int] = {(s.value, c): 0 for s in TransportState for c in channels}
    for state, channel, count in recipients:
        gauge[(state, channel)] = count
    tried: dict[tuple[str, str], int] = {(c, o.value): 0 for c in channels for o in Outcome}
    failures: dict[str, int] = dict.fromkeys(channels, 0)
    for channel, outcome, count in attempts:
        tried[(channel, outcome)] = count
        failures.setdefault(channel, 0)
        if outcome in (Outcome.BUSINESS_ERROR, Outcome.TRANSPORT_ERROR):
            failures[channel] += count
    lines = [
        *_family(
            "docgw_recipients",
            "gauge",
            "Recipients by transport state and channel.",
            [({"state": s, "channel": c}, n) for (s, c), n in sorted(gauge.items())],
        ),
        *_family(
            "docgw_oldest_due_age_seconds",
            "gauge",
            "Age of the oldest recipient due for delivery (0 when none is due).",
            [({}, max(oldest_due_age, 0.0))],
        ),
        *_family(
            "docgw_attempts_total",
            "counter",
            "Delivery attempts by channel and outcome.",
            [({"channel": c, "outcome": o}, n) for (c, o), n in sorted(tried.items())],
        ),
        *_family(
            "docgw_failures_total",
            "counter",
            "Delivery attempts that failed (business_error or transport_error).",
            [({"channel": c}, n) for c, n in sorted(failures.items())],
        ),
        *_family(
            "docgw_status_events_total",
            "counter",
            "Business status events by direction and code.",
            [({"direction": d, "code": c}, n) for d, c, n in sorted(status_events)],
        ),
        *_family(
            "docgw_workers_alive",
            "gauge",
            "Delivery workers with a heartbeat in the last 30 seconds.",
            [({}, workers_alive)],
        ),
        *breaker_metrics(list(breakers)),
    ]
    return "\n".join(lines) + "\n"


def breaker_metrics(found: list[BreakerRecord]) -> Iterator[str]:
    """docgw_channel_breaker{channel,unit,state} (1 for the breaker's state, else 0) and
    docgw_channel_breaker_failures{channel,unit}."""
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


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in samples:
        yield f"{name}{_labels(labels)} {_number(value)}"


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and line feed (text format 0.0.4)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))

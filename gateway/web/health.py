"""What needs no token: the service's health and metrics, and the OpenAPI document.

method  path                   calls
GET     /healthz               monitoring.health
GET     /metrics               monitoring.counters
GET     /api/v1/openapi.json   (built once per app: openapi.build_document)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from aiohttp import hdrs, web

from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import Outcome
from gateway.usecases import monitoring
from gateway.web.auth import public
from gateway.web.bodies import Reply, render
from gateway.web.common import API, GATEWAY
from gateway.web.routes import Response, Routes

ROUTES = Routes(tag="service")

OPENAPI_JSON = web.AppKey("openapi_json", bytes)
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health(Reply):
    status: Literal["ok", "degraded"]
    database: bool
    workers_alive: int
    queue_lag_seconds: float | None


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
    summary="Database reachable and a worker heartbeat in the last 30 s",
    ok={200: Response(description="Healthy", body=Health),
        503: Response(description="Degraded", body=Health)},
)  # fmt: skip
@public
async def health(request: web.Request) -> web.Response:
    found = await monitoring.health(request.app[GATEWAY])
    body = Health(
        status="ok" if found.healthy else "degraded",
        database=found.database,
        workers_alive=found.workers_alive,
        queue_lag_seconds=found.queue_lag_seconds,
    )
    return render(body, status=200 if found.healthy else 503)


@ROUTES.get(
    "/metrics",
    name="metrics",
    summary="Prometheus metrics (text format 0.0.4)",
    ok={200: Response(
        description="docgw_recipients, docgw_oldest_due_age_seconds, docgw_attempts_total, "
        "docgw_failures_total, docgw_status_events_total, docgw_workers_alive",
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
    ]
    return "\n".join(lines) + "\n"


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

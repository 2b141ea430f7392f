"""What needs no token: the service's health and metrics, and the OpenAPI document.

method  path                   calls
GET     /healthz               monitoring.health
GET     /metrics               monitoring.counters (written by prometheus_client)
GET     /api/v1/openapi.json   (built once per app: openapi.build_document)

The metric names are listed in docs/howto/operate.md; docs/grafana/docgw.json charts them (a test
holds the dashboard's queries to these names).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, Literal

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import Outcome
from gateway.store.latency import Histogram
from gateway.usecases import monitoring
from gateway.usecases.jobs import JobView
from gateway.usecases.monitoring import Counters
from gateway.web.auth import public
from gateway.web.bodies import Reply, render
from gateway.web.common import API, GATEWAY
from gateway.web.routes import Response, Routes

ROUTES = Routes(tag="service")

OPENAPI_JSON = web.AppKey("openapi_json", bytes)
#: The text format prometheus_client writes (0.0.4), named as such: newer prometheus_client
#: versions call a later one "latest".
METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


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
        "docgw_failures_total, docgw_status_events_total, docgw_workers_alive, "
        "docgw_job_last_success_timestamp, docgw_job_failures_total, "
        "docgw_job_consecutive_failures; histograms docgw_submit_to_sent_seconds, "
        "docgw_submit_to_received_seconds, docgw_receive_to_handover_seconds",
        body={"text/plain": {"schema": {"type": "string"}}},
    )},
)  # fmt: skip
@public
async def metrics(request: web.Request) -> web.Response:
    found = await monitoring.counters(request.app[GATEWAY])
    return web.Response(body=render_metrics(found), headers={hdrs.CONTENT_TYPE: METRICS_TYPE})


class _CountersCollector(Collector):
    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        s = self.counters
        yield from _exchange(s)
        yield from _job_families(s.jobs)
        yield _histogram(
            "docgw_submit_to_sent_seconds",
            "From a document's submission to its sending to a recipient, by channel.",
            s.submit_to_sent,
            ["channel"],
        )
        yield _histogram(
            "docgw_submit_to_received_seconds",
            "From a document's submission to the first status 01 (received) of a recipient.",
            s.submit_to_received,
            [],
        )
        yield _histogram(
            "docgw_receive_to_handover_seconds",
            "From a document's reception to its hand-over to the local system.",
            s.receive_to_handover,
            [],
        )


def _exchange(s: Counters) -> Iterator[Metric]:
    """Every (state, channel) and (channel, outcome) of the configured channels is written, with
    0 where nothing is counted, so that a series drops to zero instead of vanishing (a vanished
    series silences alerts)."""
    gauge: dict[tuple[str, str], int] = {
        (state.value, c): 0 for state in TransportState for c in s.channels
    }
    for state, channel, count in s.recipients:
        gauge[(state, channel)] = count
    tried: dict[tuple[str, str], int] = {(c, o.value): 0 for c in s.channels for o in Outcome}
    failures: dict[str, int] = dict.fromkeys(s.channels, 0)
    for channel, outcome, count in s.attempts:
        tried[(channel, outcome)] = count
        failures.setdefault(channel, 0)
        if outcome in (Outcome.BUSINESS_ERROR, Outcome.TRANSPORT_ERROR):
            failures[channel] += count
    recipients = GaugeMetricFamily(
        "docgw_recipients",
        "Recipients by transport state and channel.",
        labels=["state", "channel"],
    )
    for (state, channel), count in sorted(gauge.items()):
        recipients.add_metric([state, channel], count)
    yield recipients
    yield GaugeMetricFamily(
        "docgw_oldest_due_age_seconds",
        "Age of the oldest recipient due for delivery (0 when none is due).",
        value=max(s.oldest_due_age, 0.0),
    )
    attempts = CounterMetricFamily(
        "docgw_attempts_total",
        "Delivery attempts by channel and outcome.",
        labels=["channel", "outcome"],
    )
    for (channel, outcome), count in sorted(tried.items()):
        attempts.add_metric([channel, outcome], count)
    yield attempts
    failed = CounterMetricFamily(
        "docgw_failures_total",
        "Delivery attempts that failed (business_error or transport_error).",
        labels=["channel"],
    )
    for channel, count in sorted(failures.items()):
        failed.add_metric([channel], count)
    yield failed
    statuses = CounterMetricFamily(
        "docgw_status_events_total",
        "Business status events by direction and code.",
        labels=["direction", "code"],
    )
    for direction, code, count in sorted(s.status_events):
        statuses.add_metric([direction, code], count)
    yield statuses
    yield GaugeMetricFamily(
        "docgw_workers_alive",
        "Delivery workers with a heartbeat in the last 30 seconds.",
        value=s.workers_alive,
    )


def _job_families(found: Iterable[JobView]) -> Iterator[Metric]:
    success = GaugeMetricFamily(
        "docgw_job_last_success_timestamp",
        "When each scheduled job last succeeded (Unix time; 0: never).",
        labels=["job"],
    )
    failures = CounterMetricFamily(
        "docgw_job_failures_total", "Failed runs of each scheduled job.", labels=["job"]
    )
    in_a_row = GaugeMetricFamily(
        "docgw_job_consecutive_failures",
        "Runs in a row of each scheduled job that failed (0: its last run succeeded).",
        labels=["job"],
    )
    for job in found:
        at = job.last_success_at.timestamp() if job.last_success_at else 0.0
        success.add_metric([job.name], at)
        failures.add_metric([job.name], job.failures_total)
        in_a_row.add_metric([job.name], job.consecutive_failures)
    yield success
    yield failures
    yield in_a_row


def _histogram(
    name: str, documentation: str, found: list[Histogram], labels: list[str]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for histogram in found:
        buckets = [
            (repr(float(bound)), count)
            for bound, count in zip(histogram.bounds, histogram.buckets, strict=True)
        ]
        family.add_metric(
            [histogram.labels.get(label, "") for label in labels],
            [*buckets, ("+Inf", histogram.count)],
            histogram.total_seconds,
        )
    return family


def render_metrics(counters: Counters) -> bytes:
    """The Prometheus text format (0.0.4) of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_CountersCollector(counters))
    return generate_latest(registry)

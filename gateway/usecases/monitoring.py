"""What ``/healthz`` and ``/metrics`` report: whether the database answers and a delivery worker
beats, how old the oldest due delivery is, and the counters behind the metrics — the exchange's,
the scheduled jobs' (gateway/usecases/jobs.py) and the latency histograms
(gateway/store/latency.py).

Every value is read from the database at the scrape, so any process's ``/metrics`` tells the
whole gateway (all its workers and jobs write the same tables) and a restart loses nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

from gateway.bootstrap import Gateway
from gateway.store import job_queries, latency, status_queries
from gateway.store.latency import Histogram
from gateway.usecases import jobs
from gateway.usecases.jobs import JobView

log = logging.getLogger("docgw.web")

#: A worker silent for longer than this is presumed dead (it beats every few seconds).
WORKER_SILENCE = dt.timedelta(seconds=30)
HEALTH_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class Health:
    database: bool
    workers_alive: int
    #: Seconds the oldest due delivery has waited; None when the database did not answer.
    queue_lag_seconds: float | None

    @property
    def healthy(self) -> bool:
        """The database answers and at least one delivery worker beats."""
        return self.database and self.workers_alive > 0


@dataclass(frozen=True, kw_only=True)
class Counters:
    channels: list[str]
    recipients: list[tuple[str, str, int]]
    oldest_due_age: float
    attempts: list[tuple[str, str, int]]
    status_events: list[tuple[str, str, int]]
    workers_alive: int
    jobs: list[JobView] = field(default_factory=list)
    submit_to_sent: list[Histogram] = field(default_factory=list)
    submit_to_received: list[Histogram] = field(default_factory=list)
    receive_to_handover: list[Histogram] = field(default_factory=list)


async def health(gateway: Gateway) -> Health:
    now = gateway.clock()
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS), gateway.engine.connect() as conn:
            alive = await job_queries.live_workers(conn, since=now - WORKER_SILENCE)
            oldest = await job_queries.oldest_due(conn, now=now)
    except Exception:  # whatever the failure, the answer is "the database is unreachable"
        log.warning(
            "health_database_unreachable",
            extra={"event": "health_database_unreachable"},
            exc_info=True,
        )
        return Health(database=False, workers_alive=0, queue_lag_seconds=None)
    lag = (now - oldest).total_seconds() if oldest is not None else 0.0
    return Health(database=True, workers_alive=alive, queue_lag_seconds=round(max(lag, 0.0), 3))


async def counters(gateway: Gateway) -> Counters:
    now = gateway.clock()
    async with gateway.engine.connect() as conn:
        by_state = await job_queries.counts_by_state_and_channel(conn)
        oldest = await job_queries.oldest_due(conn, now=now)
        attempts = await job_queries.attempt_counts(conn)
        status_events = await status_queries.status_event_counts(conn)
        alive = await job_queries.live_workers(conn, since=now - WORKER_SILENCE)
        to_sent = await latency.submit_to_sent(conn)
        to_received = await latency.submit_to_received(conn)
        to_handover = await latency.receive_to_handover(conn)
    return Counters(
        channels=sorted(gateway.connectors),
        recipients=by_state,
        oldest_due_age=(now - oldest).total_seconds() if oldest is not None else 0.0,
        attempts=attempts,
        status_events=status_events,
        workers_alive=alive,
        jobs=await jobs.list_jobs(gateway),
        submit_to_sent=to_sent,
        submit_to_received=to_received,
        receive_to_handover=to_handover,
    )

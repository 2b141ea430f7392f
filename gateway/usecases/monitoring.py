"""What ``/healthz`` and ``/metrics`` report, and why: the gateway's health as reasons an operator
can act on, and the counters behind the metrics — the exchange's, the scheduled jobs'
(gateway/usecases/jobs.py), the circuit breakers' and the latency histograms
(gateway/store/latency.py).

Each reason has a stable code (machine-readable), a subject (which channel, job, certificate)
and a text in Vietnamese and English. The HTTP status tells a load balancer whether *this
process* can serve: 503 when it cannot (the database is unreachable, or no delivery worker is
alive); every other reason leaves it serving (200) with ``"status": "degraded"`` — a paused
channel is no reason to take the API out of rotation. docs/howto/operate.md lists the reasons.
The alert rules (:mod:`gateway.usecases.alerts`) raise alerts from the same reasons.

Every value is read from the database, so any process's ``/healthz`` and ``/metrics`` tell the
whole gateway (all its workers and jobs write the same tables — a job failing in a row is read
from the recorded job runs) and a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography import x509

from gateway.bootstrap import Gateway
from gateway.settings import SecureChannel
from gateway.store import alerts as store_alerts
from gateway.store import job_queries, latency, status_queries
from gateway.store.job_runs import FAILED
from gateway.store.latency import Histogram
from gateway.usecases import breakers, jobs
from gateway.usecases.jobs import JobView

log = logging.getLogger("docgw.web")

#: A worker silent for longer than this is presumed dead (it beats every few seconds).
WORKER_SILENCE: Final = dt.timedelta(seconds=30)
HEALTH_TIMEOUT_SECONDS: Final = 5.0
#: A local certificate expiring within this makes the gateway degraded (alerts start earlier).
CERTIFICATE_DAYS: Final = 7

# Reason codes (docs/howto/operate.md, "Health reasons").
DATABASE_UNREACHABLE: Final = "DATABASE_UNREACHABLE"
NO_WORKER_ALIVE: Final = "NO_WORKER_ALIVE"
QUEUE_LAG: Final = "QUEUE_LAG"
JOB_FAILING: Final = "JOB_FAILING"
CHANNEL_DOWN: Final = "CHANNEL_DOWN"
CHANNEL_PAUSED: Final = "CHANNEL_PAUSED"
CERTIFICATE_EXPIRING: Final = "CERTIFICATE_EXPIRING"
#: The reasons that make /healthz answer 503: this process cannot do its work.
UNSERVING: Final = frozenset({DATABASE_UNREACHABLE, NO_WORKER_ALIVE})


@dataclass(frozen=True, kw_only=True)
class Reason:
    code: str
    subject: str
    text_vi: str
    text_en: str

    def document(self) -> dict[str, str]:
        return {"code": self.code, "subject": self.subject, "vi": self.text_vi, "en": self.text_en}


@dataclass(frozen=True, kw_only=True)
class Health:
    database: bool
    workers_alive: int
    queue_lag_seconds: float | None
    reasons: tuple[Reason, ...]
    channels: tuple[store_alerts.BreakerRecord, ...] = ()

    @property
    def status(self) -> str:
        return "degraded" if self.reasons else "ok"

    @property
    def serving(self) -> bool:
        return not any(r.code in UNSERVING for r in self.reasons)


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
    #: Every configured channel's circuit breaker, then the units' ones.
    breakers: list[store_alerts.BreakerRecord] = field(default_factory=list)


# ------------------------------------------------------------------------------ job failures


@dataclass(frozen=True, kw_only=True)
class JobStreak:
    failures: int
    #: The last failed run's error code and detail ("" when none was recorded).
    last_error: str = ""


async def failing_jobs(gateway: Gateway) -> dict[str, JobStreak]:
    """Jobs whose last ``[alerts] job_failures`` runs or more all failed (the job runs recorded
    by every process: :func:`gateway.usecases.jobs.consecutive_failures`), with the last error."""
    threshold = gateway.settings.alerts.job_failures
    counted = await jobs.consecutive_failures(gateway)
    found: dict[str, JobStreak] = {}
    for job, failures in sorted(counted.items()):
        if failures < threshold:
            continue
        runs = await jobs.job_history(gateway, job, limit=5)
        failed = next((r for r in runs if r.outcome == FAILED), None)
        error = ": ".join(x for x in (failed.error_code, failed.detail) if x) if failed else ""
        found[job] = JobStreak(failures=failures, last_error=error[:300])
    return found


# ------------------------------------------------------------------------------- certificates


@dataclass(frozen=True, kw_only=True)
class LocalCertificate:
    name: str
    not_after: dt.datetime


def local_certificates(gateway: Gateway) -> list[LocalCertificate]:
    """The local units' signing certificates and every TLS certificate file configured."""
    found = [
        LocalCertificate(name=f"unit {code}", not_after=signer.certificate.not_valid_after_utc)
        for code, signer in sorted(gateway.signers.items())
    ]
    settings = gateway.settings
    files: list[tuple[str, Path | None]] = [
        ("secure_inbox.cert_file", settings.secure_inbox.cert_file)
    ]
    files += [
        (f"channels.{c.name}.cert_file", c.cert_file)
        for c in settings.channels
        if isinstance(c, SecureChannel)
    ]
    for name, path in files:
        if path is None:
            continue
        try:
            pem = settings.resolve(path).read_bytes()
            cert = x509.load_pem_x509_certificate(pem)
        except (OSError, ValueError):
            continue  # a missing or broken file stops its channel at start, with its own error
        found.append(LocalCertificate(name=name, not_after=cert.not_valid_after_utc))
    return found


def days_left(not_after: dt.datetime, now: dt.datetime) -> int:
    return max(0, (not_after - now) // dt.timedelta(days=1))


# ------------------------------------------------------------------------------------ check


async def health(gateway: Gateway) -> Health:
    now = gateway.clock()
    settings = gateway.settings.alerts
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS), gateway.engine.connect() as conn:
            alive = await job_queries.live_workers(conn, since=now - WORKER_SILENCE)
            oldest = await job_queries.oldest_due(conn, now=now)
            rows = await store_alerts.breakers(conn)
    except Exception:  # whatever the failure, the answer is "the database is unreachable"
        log.warning(
            "health_database_unreachable",
            extra={"event": "health_database_unreachable"},
            exc_info=True,
        )
        reason = Reason(
            code=DATABASE_UNREACHABLE,
            subject="database",
            text_vi="Không kết nối được cơ sở dữ liệu.",
            text_en="The database is unreachable.",
        )
        return Health(database=False, workers_alive=0, queue_lag_seconds=None, reasons=(reason,))
    lag = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    reasons: list[Reason] = []
    if alive == 0:
        reasons.append(
            Reason(
                code=NO_WORKER_ALIVE,
                subject="workers",
                text_vi="Không có tiến trình gửi nào đang chạy.",
                text_en="No delivery worker is alive.",
            )
        )
    if lag > settings.max_due_age_seconds:
        reasons.append(
            Reason(
                code=QUEUE_LAG,
                subject="queue",
                text_vi=f"Văn bản chờ gửi lâu nhất đã chờ {lag:.0f} giây.",
                text_en=f"The oldest due recipient has waited {lag:.0f} s.",
            )
        )
    for job, streak in (await failing_jobs(gateway)).items():
        reasons.append(
            Reason(
                code=JOB_FAILING,
                subject=job,
                text_vi=f"Tác vụ {job} lỗi {streak.failures} lần liên tiếp: {streak.last_error}",
                text_en=f"Job {job} failed {streak.failures} times in a row: {streak.last_error}",
            )
        )
    reasons += [breaker_reason(b) for b in rows if b.state in (breakers.OPEN, breakers.PAUSED)]
    for cert in local_certificates(gateway):
        if cert.not_after - now <= dt.timedelta(days=CERTIFICATE_DAYS):
            left = days_left(cert.not_after, now)
            reasons.append(
                Reason(
                    code=CERTIFICATE_EXPIRING,
                    subject=cert.name,
                    text_vi=f"Chứng thư số {cert.name} hết hạn sau {left} ngày.",
                    text_en=f"Certificate {cert.name} expires in {left} days.",
                )
            )
    return Health(
        database=True,
        workers_alive=alive,
        queue_lag_seconds=round(lag, 3),
        reasons=tuple(reasons),
        channels=tuple(rows),
    )


def breaker_reason(breaker: store_alerts.BreakerRecord) -> Reason:
    """An open or paused breaker as a reason (the alerts' channel rule says the same)."""
    subject = breaker.channel + (f"/{breaker.unit_code}" if breaker.unit_code else "")
    if breaker.state == breakers.PAUSED:
        by = breaker.changed_by or "?"
        return Reason(
            code=CHANNEL_PAUSED,
            subject=subject,
            text_vi=f"Kênh {subject} đang tạm dừng (bởi {by}).",
            text_en=f"Channel {subject} is paused (by {by}).",
        )
    return Reason(
        code=CHANNEL_DOWN,
        subject=subject,
        text_vi=f"Kênh {subject} không gửi được ({breaker.failures} lỗi liên tiếp): "
        f"{breaker.last_error or ''}",
        text_en=f"Channel {subject} is down ({breaker.failures} failures in a row): "
        f"{breaker.last_error or ''}",
    )


# --------------------------------------------------------------------------------- counters


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
    found_breakers = await breakers.listing(gateway)
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
        breakers=found_breakers,
    )

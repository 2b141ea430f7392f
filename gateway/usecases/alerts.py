"""Alerts: rules evaluated by a scheduled job, stored, deduplicated, resolved, and told.

Each rule yields the conditions that hold now, each as (rule, subject): one open alert per rule
and subject. :func:`evaluate` raises an alert for a new condition, keeps the open one while it
holds (its text follows the latest count), and resolves it when the condition is gone. Then every
alert whose state (open, resolved) has not been told yet is told by e-mail (``[alerts] mail_to``
through the ``[reports]`` SMTP server, :func:`gateway.usecases.report_files.send_mail`) and by a
signed POST to ``[alerts] webhook_url`` (the webhooks' ``Docgw-Signature``). A way of telling that
fails is tried again at the next evaluation; one not configured counts as told.

The rules (docs/howto/operate.md, "Alerts"): recipients failed or held, QĐ 28 deadlines breached,
a job failing, a channel down, no worker alive, the queue waiting too long, a certificate (local
or a partner's) expiring within 60/30/7 days, the spool or database disk nearly full.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from gateway.bootstrap import Gateway
from gateway.store import alerts as store
from gateway.store import audit_queries
from gateway.store.alerts import AlertRecord
from gateway.usecases import monitoring, report_files, webhooks
from gateway.usecases.errors import NotFound

log = logging.getLogger("docgw.alerts")

RECIPIENTS_FAILED: Final = "RECIPIENTS_FAILED"
RECIPIENTS_HELD: Final = "RECIPIENTS_HELD"
DEADLINE_BREACHED: Final = "DEADLINE_BREACHED"
DISK_NEARLY_FULL: Final = "DISK_NEARLY_FULL"
CERTIFICATE_EXPIRING: Final = monitoring.CERTIFICATE_EXPIRING
#: Health reasons that are alerts as they are (a paused channel is an operator's own doing).
FROM_HEALTH: Final = (
    monitoring.JOB_FAILING,
    monitoring.CHANNEL_DOWN,
    monitoring.NO_WORKER_ALIVE,
    monitoring.QUEUE_LAG,
)
RULES: Final = (
    RECIPIENTS_FAILED,
    RECIPIENTS_HELD,
    DEADLINE_BREACHED,
    *FROM_HEALTH,
    CERTIFICATE_EXPIRING,
    DISK_NEARLY_FULL,
)
CRITICAL: Final = frozenset(
    {RECIPIENTS_FAILED, monitoring.CHANNEL_DOWN, monitoring.NO_WORKER_ALIVE}
)
MAIL_TOLD: Final = "mail_told"
WEBHOOK_TOLD: Final = "webhook_told"


@dataclass(frozen=True, kw_only=True)
class Condition:
    rule: str
    subject: str
    text_vi: str
    text_en: str

    @property
    def severity(self) -> str:
        return "critical" if self.rule in CRITICAL else "warning"


# ---------------------------------------------------------------------------------- the rules


async def conditions(gateway: Gateway) -> list[Condition]:
    """Every condition that holds now."""
    now = gateway.clock()
    found = [
        Condition(rule=r.code, subject=r.subject, text_vi=r.text_vi, text_en=r.text_en)
        for r in (await monitoring.health(gateway)).reasons
        if r.code in FROM_HEALTH
    ]
    async with gateway.engine.connect() as conn:
        waiting = await store.recipients_needing_a_person(conn)
        breaches = await store.deadline_breaches(conn, now=now)
        horizon = now + dt.timedelta(days=max(gateway.settings.alerts.certificate_days, default=0))
        partners = await store.partner_certificates_expiring(conn, before=horizon)
    for state, (count, oldest) in waiting.items():
        rule = RECIPIENTS_FAILED if state == "failed" else RECIPIENTS_HELD
        vi = "gửi lỗi" if state == "failed" else "bị giữ lại"
        found.append(
            Condition(
                rule=rule,
                subject=state,
                text_vi=f"{count} người nhận {vi}, cần người xử lý (cũ nhất: thông điệp {oldest}).",
                text_en=f"{count} recipients {state}, needing a person (oldest: message {oldest}).",
            )
        )
    if breaches:
        found.append(
            Condition(
                rule=DEADLINE_BREACHED,
                subject="qd28",
                text_vi=f"{breaches} văn bản quá hạn theo Quyết định 28.",
                text_en=f"{breaches} documents past a QĐ 28 deadline.",
            )
        )
    certificates = [(c.name, c.not_after) for c in monitoring.local_certificates(gateway)]
    certificates += [(f"partner {code}", not_after) for code, not_after in partners]
    found += [c for name, at in certificates if (c := _certificate(gateway, name, at, now))]
    found += _disks(gateway)
    return found


def _certificate(
    gateway: Gateway, name: str, not_after: dt.datetime, now: dt.datetime
) -> Condition | None:
    """A certificate within the nearest of ``[alerts] certificate_days``: the subject names that
    bound, so crossing 30 after 60 raises (and tells) anew."""
    bounds = sorted(gateway.settings.alerts.certificate_days)
    within = [d for d in bounds if not_after - now <= dt.timedelta(days=d)]
    if not within:
        return None
    left = monitoring.days_left(not_after, now)
    return Condition(
        rule=CERTIFICATE_EXPIRING,
        subject=f"{name} ≤{within[0]}d",
        text_vi=f"Chứng thư số {name} hết hạn sau {left} ngày ({not_after:%Y-%m-%d}).",
        text_en=f"Certificate {name} expires in {left} days ({not_after:%Y-%m-%d}).",
    )


def watched_folders(gateway: Gateway) -> list[Path]:
    """Where docgw writes in bulk: the spool (temporary files), and an SQLite database's folder."""
    folders = [Path(tempfile.gettempdir())]
    url = gateway.engine.url
    if url.get_backend_name() == "sqlite" and url.database:
        folders.append(Path(url.database).resolve().parent)
    return folders


def _disks(gateway: Gateway) -> list[Condition]:
    found = []
    ratio = gateway.settings.alerts.disk_full_ratio
    for folder in dict.fromkeys(watched_folders(gateway)):
        try:
            usage = shutil.disk_usage(folder)
        except OSError:
            continue
        used = (usage.total - usage.free) / usage.total if usage.total else 0.0
        if used >= ratio:
            found.append(
                Condition(
                    rule=DISK_NEARLY_FULL,
                    subject=str(folder),
                    text_vi=f"Ổ đĩa chứa {folder} đã dùng {used:.0%}.",
                    text_en=f"The disk holding {folder} is {used:.0%} full.",
                )
            )
    return found


# --------------------------------------------------------------------------------- evaluation


async def evaluate(gateway: Gateway) -> list[AlertRecord]:
    """The job: raise, keep and resolve alerts as the rules say now; then tell what is untold.
    Returns the open alerts."""
    now = gateway.clock()
    holding = {(c.rule, c.subject): c for c in await conditions(gateway)}
    async with gateway.engine.begin() as conn:
        for alert in await store.open_alerts(conn):
            condition = holding.pop((alert.rule, alert.subject), None)
            if condition is None:
                await store.resolve(conn, alert.id, now=now)
                log.info(
                    "alert_resolved",
                    extra={
                        "event": "alert_resolved",
                        "alert": alert.id,
                        "rule": alert.rule,
                        "subject": alert.subject,
                    },
                )
            else:
                await store.still_open(
                    conn, alert.id, text_vi=condition.text_vi, text_en=condition.text_en, now=now
                )
        for condition in holding.values():
            await store.raise_alert(
                conn,
                rule=condition.rule,
                subject=condition.subject,
                severity=condition.severity,
                text_vi=condition.text_vi,
                text_en=condition.text_en,
                now=now,
            )
            log.warning(
                "alert_raised",
                extra={
                    "event": "alert_raised",
                    "rule": condition.rule,
                    "subject": condition.subject,
                    "detail": condition.text_en,
                },
            )
        still = await store.open_alerts(conn)
    await tell(gateway)
    return still


# ------------------------------------------------------------------------------------ telling


def alert_document(alert: AlertRecord) -> dict[str, Any]:
    """An alert as the API, the CLI's --json and the webhook carry it."""

    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.astimezone(dt.UTC).isoformat()

    return {
        "id": alert.id,
        "rule": alert.rule,
        "subject": alert.subject,
        "severity": alert.severity,
        "state": alert.state,
        "vi": alert.text_vi,
        "en": alert.text_en,
        "raised_at": iso(alert.raised_at),
        "last_seen_at": iso(alert.last_seen_at),
        "resolved_at": iso(alert.resolved_at),
        "acked_at": iso(alert.acked_at),
        "acked_by": alert.acked_by,
        "notify_error": alert.notify_error,
    }


def mail_subject(alert: AlertRecord) -> str:
    if alert.state == "open":
        return f"[docgw] CẢNH BÁO / ALERT {alert.rule}: {alert.subject}"
    return f"[docgw] ĐÃ HẾT / RESOLVED {alert.rule}: {alert.subject}"


def mail_body(alert: AlertRecord) -> str:
    state_vi = "đang xảy ra" if alert.state == "open" else "đã hết"
    return (
        f"{alert.text_vi}\nTrạng thái: {state_vi}. Từ {alert.raised_at:%Y-%m-%d %H:%M:%S} UTC.\n\n"
        f"{alert.text_en}\nState: {alert.state}. Since {alert.raised_at:%Y-%m-%d %H:%M:%S} UTC.\n"
        f"\nAlert {alert.id} — docgw alerts / GET /api/v1/alerts\n"
    )


async def tell(gateway: Gateway) -> int:
    """Tell every untold alert state by each configured way; how many were told."""
    settings = gateway.settings.alerts
    mailing = bool(gateway.settings.reports.smtp_host and settings.mail_to)
    told = 0
    for column, configured, send in (
        (MAIL_TOLD, mailing, _mail),
        (WEBHOOK_TOLD, bool(settings.webhook_url), _post),
    ):
        async with gateway.engine.connect() as conn:
            waiting = await store.untold(conn, column)
        for alert in waiting:
            error = await send(gateway, alert) if configured else None
            async with gateway.engine.begin() as conn:
                await store.told(conn, alert.id, column, alert.state, error)
            if error is not None:
                log.warning(
                    "alert_not_told",
                    extra={
                        "event": "alert_not_told",
                        "alert": alert.id,
                        "way": column,
                        "error": error,
                    },
                )
                break  # in order: the rest waits for the next evaluation
            told += configured
    return told


async def _mail(gateway: Gateway, alert: AlertRecord) -> str | None:
    return await mail(
        gateway, gateway.settings.alerts.mail_to, mail_subject(alert), mail_body(alert)
    )


def can_mail(gateway: Gateway) -> bool:
    """The ``[reports]`` SMTP server is configured (``smtp_host`` and ``mail_from``)."""
    reports = gateway.settings.reports
    return bool(reports.smtp_host and reports.mail_from)


async def mail(gateway: Gateway, to: Sequence[str], subject: str, body: str) -> str | None:
    """Mail ``to`` through the ``[reports]`` SMTP server (the alerts' one mail path: alerts, and a
    unit request's decision to its requester); the error as text, or None when sent."""
    server = gateway.settings.reports.model_copy(update={"mail_to": tuple(to)})
    try:
        await asyncio.to_thread(
            report_files.send_mail,
            server,
            subject,
            {},
            ca_file=report_files.smtp_ca_file(gateway),
            body=body,
        )
    except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors
        return f"{type(exc).__name__}: {exc}"[:500]
    return None


async def _post(gateway: Gateway, alert: AlertRecord) -> str | None:
    assert gateway.http is not None
    settings = gateway.settings.alerts
    body = json.dumps(
        {"type": f"alert.{alert.state}", "alert": alert_document(alert)}, ensure_ascii=False
    ).encode()
    timestamp = int(gateway.clock().timestamp())
    headers = {
        "Content-Type": "application/json",
        # One id per alert and state: a receiver deduplicates a retried POST by it.
        "Docgw-Event-Id": f"{alert.id}:{alert.state}",
        "Docgw-Timestamp": str(timestamp),
        "Docgw-Signature": webhooks.sign(settings.webhook_secret, timestamp, body),
    }
    try:
        async with gateway.http.post(
            settings.webhook_url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=webhooks.TIMEOUT_SECONDS),
            allow_redirects=False,
        ) as response:
            await response.read()
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]


# ------------------------------------------------------------------------------ reading, acking


async def listing(gateway: Gateway, *, state: str | None, limit: int) -> list[AlertRecord]:
    async with gateway.engine.connect() as conn:
        return await store.listing(conn, state=state, limit=limit)


ACK_ACTION: Final = "alert_acknowledged"


async def acknowledge(
    gateway: Gateway, alert_id: str, *, actor: str, reason: str | None = None
) -> None:
    """An operator has seen it (it stays open while its condition holds); audited."""
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        if not await store.acknowledge(conn, alert_id, by=actor, now=now):
            raise NotFound(f"no alert {alert_id}", element="id")
        await audit_queries.audit(
            conn,
            now=now,
            actor=actor,
            action=ACK_ACTION,
            reason=f"{alert_id}: {reason}" if reason else alert_id,
        )

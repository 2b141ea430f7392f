"""A :class:`~gateway.usecases.reports.Report` as CSV, JSON and PDF (Vietnamese first), and the
ways out: a folder (written atomically) and e-mail.

The PDF is laid out with ReportLab; its charts are drawn with matplotlib (no pyplot: no global
state) and embedded as PNG. Its font is the DejaVu Sans that matplotlib ships, which has the
Vietnamese glyphs: no system font is needed.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import smtplib
import ssl
import tempfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from gateway.domain import periods
from gateway.domain.periods import Period, PeriodKind
from gateway.settings import ReportSettings
from gateway.store import reports as store
from gateway.usecases.ports import Config, Instance
from gateway.usecases.reports import DeadlineFigures, Report, Reporting, build_report

log = logging.getLogger("docgw.reports")

FONT_NAME = "DejaVuSans"
GATEWAY_SCOPE = "toàn cổng"

#: Row labels, Vietnamese / English.
LABELS = {
    "sent_documents": "Văn bản gửi đi / Documents sent",
    "sent_deliveries": "Lượt gửi (theo nơi nhận) / Deliveries",
    "received_documents": "Văn bản nhận về / Documents received",
    "rejected_by_receivers": "Bị từ chối (02) / Rejected by receivers",
    "rejected_by_us": "Đã từ chối (02) / Rejected by us",
    "retracted_by_us": "Đã thu hồi (13) / Retracted by us",
    "retracted_by_senders": "Bị bên gửi thu hồi (13) / Retracted by senders",
    "awaiting_status": "Chưa có trạng thái / Awaiting a status",
    "delivered": "Lượt đã chuyển / Deliveries sent",
    "median_seconds": "Thời gian chuyển trung vị (giây) / Median delivery time (s)",
    "p95_seconds": "Thời gian chuyển p95 (giây) / p95 delivery time (s)",
}
DEADLINE_LABELS = {
    "on_time": "Đúng hạn / On time",
    "late": "Trễ hạn / Late",
    "overdue": "Quá hạn, chưa thực hiện / Overdue, not done",
    "pending": "Chưa đến hạn / Not yet due",
}
SIGNATURE_LABELS = {
    "valid": "Có chữ ký số hợp lệ / Valid signatures",
    "unsigned": "Không ký số / Unsigned",
    "failing": "Chữ ký số không hợp lệ / Failing signatures",
}
SECTIONS = {
    "summary": "Tổng hợp",
    "sent_by_channel": "Gửi theo kênh",
    "received_by_channel": "Nhận theo kênh",
    "send_deadline": "Hạn gửi (QĐ 28/2018)",
    "arrival_notice": "Hạn báo đã đến (QĐ 28/2018)",
    "received_notice": "Hạn báo đã nhận của đơn vị (QĐ 28/2018)",
    "failed": "Lỗi truyền",
    "held": "Tạm giữ",
    "sent_signatures": "Chữ ký số văn bản gửi đi (PDF)",
    "received_signatures": "Chữ ký số văn bản nhận về (PDF)",
}


class ReportFiles(Reporting, Instance, Protocol):
    """What the scheduled reports use: what a report is built from, and this process (the
    record of a report made)."""


def title(report: Report) -> str:
    kind = "Báo cáo tháng" if report.kind is PeriodKind.MONTHLY else "Báo cáo tuần"
    return f"{kind} {report.period} — {report.unit or GATEWAY_SCOPE}"


def file_stem(report: Report) -> str:
    return f"report-{report.kind.value}-{report.period}-{report.unit or 'gateway'}"


def _rows(report: Report) -> Iterator[tuple[str, str, str, object]]:
    """(section, figure, detail, value): the CSV's rows."""
    for key in ("sent_documents", "sent_deliveries", "received_documents", "delivered",
                "median_seconds", "p95_seconds", "rejected_by_receivers", "rejected_by_us",
                "retracted_by_us", "retracted_by_senders", "awaiting_status"):  # fmt: skip
        value = getattr(report, key)
        yield SECTIONS["summary"], LABELS[key], "", "" if value is None else value
    for sent in report.sent_by_channel:
        for key in ("documents", "deliveries", "delivered", "failed", "held"):
            yield (
                SECTIONS["sent_by_channel"],
                key,
                sent.channel or "(không kênh)",
                getattr(sent, key),
            )
    for received in report.received_by_channel:
        yield (
            SECTIONS["received_by_channel"],
            "documents",
            received.channel or "(không rõ)",
            received.documents,
        )
    for section in ("send_deadline", "arrival_notice", "received_notice"):
        figures: DeadlineFigures = getattr(report, section)
        for key, label in DEADLINE_LABELS.items():
            yield SECTIONS[section], label, "", getattr(figures, key)
    for section in ("failed", "held"):
        for reason in getattr(report, section):
            yield SECTIONS[section], "deliveries", reason.reason, reason.deliveries
    for section in ("sent_signatures", "received_signatures"):
        for key, label in SIGNATURE_LABELS.items():
            yield SECTIONS[section], label, "", getattr(getattr(report, section), key)


def to_csv(report: Report) -> bytes:
    """UTF-8 with a byte-order mark (spreadsheets then show the diacritics), one figure a row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title(report)])
    writer.writerow(["Từ / From", report.start.isoformat(), "Đến / To", report.end.isoformat()])
    writer.writerow(["Mục / Section", "Chỉ tiêu / Figure", "Chi tiết / Detail", "Giá trị / Value"])
    writer.writerows(_rows(report))
    return out.getvalue().encode("utf-8-sig")


def to_json(report: Report) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    for key in ("start", "end", "generated_at"):
        data[key] = getattr(report, key).isoformat()
    data["kind"] = report.kind.value
    return data


def to_json_bytes(report: Report) -> bytes:
    return json.dumps(to_json(report), ensure_ascii=False, indent=2).encode()


# -------------------------------------------------------------------------------------- PDF


def _font_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(_font_path())))


def _chart(report: Report) -> bytes:
    """Two bar charts: deliveries by channel, and the send deadline's outcome."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7.5, 3.0), dpi=110)
    FigureCanvasAgg(figure)
    by_channel, deadline = figure.subplots(1, 2)
    channels = [c.channel or "(không kênh)" for c in report.sent_by_channel]
    by_channel.bar(channels, [c.deliveries for c in report.sent_by_channel], color="#2b6cb0")
    by_channel.set_title("Lượt gửi theo kênh", fontsize=10)
    figures = report.send_deadline
    deadline.bar(
        ["Đúng hạn", "Trễ hạn", "Quá hạn", "Chưa đến hạn"],
        [figures.on_time, figures.late, figures.overdue, figures.pending],
        color=["#2f855a", "#c05621", "#c53030", "#718096"],
    )
    deadline.set_title("Hạn gửi (QĐ 28/2018)", fontsize=10)
    for axes in (by_channel, deadline):
        axes.tick_params(labelsize=8)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: whole numbers
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def to_pdf(report: Report) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _register_font()
    styles = getSampleStyleSheet()
    for style in styles.byName.values():
        style.fontName = FONT_NAME
    out = io.BytesIO()
    document = SimpleDocTemplate(out, pagesize=A4, title=title(report), author="docgw")
    local = report.generated_at.astimezone(report.start.tzinfo)
    last_day = report.end - dt.timedelta(days=1)
    story: list[Any] = [
        Paragraph("Trục liên thông văn bản — docgw", styles["Normal"]),
        Paragraph(title(report), styles["Title"]),
        Paragraph(
            f"Kỳ báo cáo: {report.start:%d/%m/%Y} – {last_day:%d/%m/%Y}; "
            f"lập lúc {local:%H:%M %d/%m/%Y}",
            styles["Normal"],
        ),
        Spacer(1, 0.4 * cm),
        Image(io.BytesIO(_chart(report)), width=17 * cm, height=6.8 * cm),
        Spacer(1, 0.4 * cm),
    ]
    rows = [["Mục", "Chỉ tiêu", "Chi tiết", "Giá trị"]]
    rows += [[s, f, d, str(v)] for s, f, d, v in _rows(report)]
    cell = styles["BodyText"]
    cell.fontSize = 8
    cell.leading = 10
    table = Table(
        [[Paragraph(str(c), cell) for c in row] for row in rows],
        colWidths=[3.5 * cm, 6.5 * cm, 4.5 * cm, 2.5 * cm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story.append(table)
    document.build(story)
    return out.getvalue()


# ---------------------------------------------------------------------------------- delivery

FORMATS = {"csv": to_csv, "pdf": to_pdf, "json": to_json_bytes}
MEDIA_TYPES = {"csv": "text/csv", "pdf": "application/pdf", "json": "application/json"}


def render(report: Report, fmt: str) -> bytes:
    return FORMATS[fmt](report)


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """Write ``folder/name`` whole or not at all: a temporary file in the same folder, flushed to
    disk, then renamed over the name (a reader never sees half a report)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def send_mail(
    settings: ReportSettings,
    subject: str,
    files: dict[str, bytes],
    *,
    ca_file: Path | None,
    body: str | None = None,
) -> None:
    """Mail ``files`` (name → content) as attachments (blocking: run it in a thread). STARTTLS
    verifies the server's certificate (against ``ca_file``, else the system's CAs) and name."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = ", ".join(settings.mail_to)
    message.set_content(body or f"{subject}\n\nDo docgw lập tự động. / Made by docgw.")
    for name, data in files.items():
        maintype, subtype = MEDIA_TYPES[name.rsplit(".", 1)[1]].split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=60) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context(cafile=ca_file))
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)


# ----------------------------------------------------------------------------- scheduled job

#: What the scheduled job writes (and mails) for each report.
SCHEDULED_FORMATS = ("csv", "pdf")


def report_units(gateway: Config) -> tuple[str, ...]:
    return gateway.settings.reports.units or gateway.settings.gateway.local_units


def smtp_ca_file(gateway: Config) -> Path | None:
    ca_file = gateway.settings.reports.smtp_ca_file
    return gateway.settings.resolve(ca_file) if ca_file is not None else None


async def deliver(gateway: ReportFiles, report: Report) -> dict[str, bytes]:
    """Render the report as CSV and PDF, write both to the reports folder and mail them (where
    e-mail is configured). Returns the files by name."""
    settings = gateway.settings.reports
    stem = file_stem(report)
    files = {f"{stem}.{fmt}": await asyncio.to_thread(render, report, fmt)
             for fmt in SCHEDULED_FORMATS}  # fmt: skip
    folder = gateway.settings.resolve(settings.folder)
    for name, data in files.items():
        await asyncio.to_thread(write_atomically, folder, name, data)
    if settings.smtp_host:
        await asyncio.to_thread(
            send_mail, settings, title(report), files, ca_file=smtp_ca_file(gateway)
        )
    return files


async def produce_due_reports(gateway: ReportFiles) -> list[str]:
    """The scheduled job: for the last closed month (and week, where weekly reports are on),
    the gateway's report and each configured unit's, each made once. A report made is recorded
    (``job_ticks``, key ``report:<kind>:<period>:<unit or gateway>``) after it was written and
    mailed, so a failure is tried again at the next check; the scheduler runs the job once per
    tick across processes. Returns the keys produced now."""
    settings = gateway.settings.reports
    kinds = [PeriodKind.MONTHLY] + ([PeriodKind.WEEKLY] if settings.weekly else [])
    produced = []
    for kind in kinds:
        period = periods.last_closed(
            kind, gateway.clock(), closing_day=settings.closing_day,
            tz=gateway.deadlines.calendar.tz,
        )  # fmt: skip
        for unit in (None, *report_units(gateway)):
            key = f"report:{kind.value}:{period.name}:{unit or 'gateway'}"
            if await _produce_once(gateway, key, period, unit):
                produced.append(key)
    return produced


async def _produce_once(gateway: ReportFiles, key: str, period: Period, unit: str | None) -> bool:
    async with gateway.engine.connect() as conn:
        if await store.was_produced(conn, key):
            return False
    report = await build_report(gateway, period, unit)
    await deliver(gateway, report)
    async with gateway.engine.begin() as conn:
        await store.record_produced(
            conn, key, period_end=period.end, by=gateway.instance, now=gateway.clock()
        )
    log.info("report_produced", extra={"event": "report_produced", "report": key})
    return True

"""Reports as a user gets them: over real HTTP on loopback (roles, formats, refusals), from the
``docgw report`` command, and from the scheduled job into a folder and through a real SMTP server
(aiosmtpd on loopback), with the PDF's Vietnamese text read back."""

from __future__ import annotations

import asyncio
import csv
import email
import io
import ipaddress
import smtplib
import socket
import ssl
from email.message import Message
from pathlib import Path
from typing import Any

import pypdf
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from integration_support import OTHER, SENDER, write_config
from pki import leaf_certificate
from report_seed import NOW, seed, vn

from gateway.cli import main
from gateway.keystore import create_ca
from gateway.settings import load_settings
from gateway.usecases import report_files, tokens
from gateway.web.app import create_app


def pdf_text(data: bytes) -> str:
    """The PDF's text, its lines joined (table cells wrap)."""
    pages = pypdf.PdfReader(io.BytesIO(data)).pages
    return " ".join(" ".join(page.extract_text().split()) for page in pages)


async def _seeded(gateway: Any) -> None:
    gateway.clock = lambda: NOW
    async with gateway.engine.begin() as conn:
        await seed(conn)


def test_the_api_serves_a_report_to_admins_and_to_a_member_for_its_unit(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            await _seeded(gateway)
            admin = await tokens.create_token(gateway, name="admin", role="admin")
            member = await tokens.create_token(
                gateway, name="vpcp", role="member", unit_code=SENDER
            )
            operator = await tokens.create_token(gateway, name="op", role="operator")
            async with TestClient(TestServer(create_app(gateway))) as client:

                async def get(token: str, path: str = "monthly", **query: str) -> Any:
                    return await client.get(
                        f"/api/v1/reports/{path}",
                        params=query,
                        headers={"Authorization": f"Bearer {token}"},
                    )

                whole = await get(admin, period="2026-11")
                assert whole.status == 200
                body = await whole.json()
                assert (body["unit"], body["sent_documents"], body["received_documents"]) == (
                    None, 4, 3,
                )  # fmt: skip
                own = await get(member, period="2026-11", unit=SENDER, format="csv")
                assert own.status == 200 and own.content_type == "text/csv"
                assert (
                    "report-monthly-2026-11-000.00.00.G22.csv" in own.headers["Content-Disposition"]
                )
                rows = list(csv.reader(io.StringIO((await own.read()).decode("utf-8-sig"))))
                assert rows[0] == [f"Báo cáo tháng 2026-11 — {SENDER}"]
                assert ["Tổng hợp", "Văn bản gửi đi / Documents sent", "", "3"] in rows
                pdf = await get(admin, period="2026-11", unit=SENDER, format="pdf")
                assert pdf.status == 200 and pdf.content_type == "application/pdf"
                text = pdf_text(await pdf.read())
                for phrase in (f"Báo cáo tháng 2026-11 — {SENDER}", "Trục liên thông",
                               "Kỳ báo cáo: 25/10/2026 – 24/11/2026", "Văn bản gửi đi",
                               "Hạn gửi (QĐ 28/2018)", "Trễ hạn / Late", "Lỗi truyền",
                               "peer refused: HTTP 500"):  # fmt: skip
                    assert phrase in text, phrase
                weekly = await get(admin, "weekly", period="2026-W45")  # 2-8 November
                assert (await weekly.json())["received_documents"] == 3  # I1, I2, I4

                refusals = [
                    (await get(member, period="2026-11"), 403, "FORBIDDEN", "unit"),
                    (await get(member, period="2026-11", unit=OTHER), 403, "FORBIDDEN", "unit"),
                    (await get(operator, period="2026-11"), 403, "FORBIDDEN", None),
                    (await get(admin), 400, "BAD_REQUEST", "period"),
                    (await get(admin, period="2026-13"), 422, "REPORT_PERIOD_INVALID", "period"),
                    (await get(admin, "weekly", period="2026-11"), 422,
                     "REPORT_PERIOD_INVALID", "period"),
                    (await get(admin, period="2026-11", format="xlsx"), 400, "BAD_REQUEST",
                     "format"),
                    (await get(admin, period="2026-11", unitt="x"), 400, "BAD_REQUEST", "unitt"),
                    (await get(admin, period="2026-11", unit="000.00.00.Z99"), 422,
                     "UNKNOWN_UNIT", "unit"),
                    (await get(admin, period="2026-11", unit="not a code"), 422,
                     "UNIT_CODE_INVALID", "unit"),
                    (await get(admin, "yearly", period="2026"), 404, "NOT_FOUND", None),
                ]  # fmt: skip
                for response, status, code, element in refusals:
                    problem = await response.json()
                    assert response.status == status, problem
                    assert response.content_type == "application/problem+json"
                    assert (problem["code"], problem.get("element")) == (code, element), problem

    asyncio.run(scenario())


def test_the_command_writes_the_report_files(
    make_gateway: Any, database_url: str, keys_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    async def prepare() -> None:
        async with make_gateway() as gateway:
            await _seeded(gateway)

    asyncio.run(prepare())
    config = write_config(tmp_path / "cli.toml", database_url=database_url, keys_dir=keys_dir,
                          local_units=(SENDER,))  # fmt: skip
    out = tmp_path / "out"
    argv = ["--config", str(config), "report", "monthly", "--period", "2026-11", "--unit", SENDER]
    assert main([*argv, "--output-dir", str(out)]) == 0
    stem = f"report-monthly-2026-11-{SENDER}"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.csv", f"{stem}.pdf"]
    assert capsys.readouterr().out.splitlines() == [str(out / f"{stem}.csv"),
                                                    str(out / f"{stem}.pdf")]  # fmt: skip
    assert "Trục liên thông" in pdf_text((out / f"{stem}.pdf").read_bytes())
    weekly = ["--config", str(config), "report", "weekly", "--week", "2026-W45", "--format", "json"]
    assert main([*weekly, "--output-dir", str(out)]) == 0
    assert (out / "report-weekly-2026-W45-gateway.json").is_file()
    assert main([*argv[:5], "2026-99"]) == 1
    assert capsys.readouterr().err.startswith("error: REPORT_PERIOD_INVALID:")
    # The scheduled job, once: the periods closed before now (the real clock), each made once.
    folder = f'[reports]\nfolder = "{tmp_path / "due"}"\n'
    due = write_config(tmp_path / "due.toml", database_url=database_url, keys_dir=keys_dir,
                       local_units=(SENDER,), extra=folder)  # fmt: skip
    assert main(["--config", str(due), "report", "due"]) == 0
    produced = capsys.readouterr().out.splitlines()
    assert len(produced) == 4 and all(line.startswith("produced report:") for line in produced)
    assert len(list((tmp_path / "due").iterdir())) == 8
    assert main(["--config", str(due), "report", "due"]) == 0
    assert capsys.readouterr().out == ""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_scheduled_job_makes_each_closed_period_once_into_the_folder_and_by_mail(
    make_gateway: Any, tmp_path: Path
) -> None:
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    folder = tmp_path / "reports"
    extra = (
        f'[reports]\nfolder = "{folder}"\nunits = ["{SENDER}"]\nsmtp_host = "127.0.0.1"\n'
        f'smtp_port = {port}\nsmtp_starttls = false\nmail_from = "docgw@example.vn"\n'
        f'mail_to = ["vanthu@example.vn", "lanhdao@example.vn"]\n'
    )

    async def scenario() -> tuple[list[str], list[str]]:
        async with make_gateway(extra=extra) as gateway:
            await _seeded(gateway)
            gateway.clock = lambda: vn(11, 25, 0, 30)  # half an hour after 2026-11 closed
            # The mail server down: the job fails and records nothing; the next check retries.
            live = gateway.settings
            gateway.settings = live.model_copy(
                update={"reports": live.reports.model_copy(update={"smtp_port": free_port()})}
            )
            with pytest.raises(ConnectionRefusedError):
                await report_files.produce_due_reports(gateway)
            gateway.settings = live
            first = await report_files.produce_due_reports(gateway)
            again = await report_files.produce_due_reports(gateway)
            return first, again

    try:
        first, again = asyncio.run(scenario())
    finally:
        smtp.stop()
    assert sorted(first) == sorted(
        f"report:{kind}:{period}:{unit}"
        for kind, period in (("monthly", "2026-11"), ("weekly", "2026-W47"))
        for unit in ("gateway", SENDER)
    )
    assert again == []  # recorded: not made again
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 8 and not [n for n in names if n.startswith(".")]  # no .tmp left
    assert f"report-monthly-2026-11-{SENDER}.pdf" in names
    assert len(inbox.messages) == 4
    subjects = set()
    for sender, to, message in inbox.messages:
        assert (sender, to) == ("docgw@example.vn", ["vanthu@example.vn", "lanhdao@example.vn"])
        subjects.add(str(email.header.make_header(email.header.decode_header(message["Subject"]))))
        attachments = {p.get_filename(): p.get_payload(decode=True) for p in message.walk()
                       if p.get_filename()}  # fmt: skip
        assert sorted(n.rsplit(".", 1)[1] for n in attachments) == ["csv", "pdf"]
        for name, data in attachments.items():
            assert data == (folder / name).read_bytes(), name
    assert f"Báo cáo tháng 2026-11 — {SENDER}" in subjects
    assert "Báo cáo tuần 2026-W47 — toàn cổng" in subjects
    monthly_pdf = (folder / f"report-monthly-2026-11-{SENDER}.pdf").read_bytes()
    assert "Báo cáo tháng 2026-11" in pdf_text(monthly_pdf)


class Login:
    """Accepts one user and password (aiosmtpd offers AUTH only after STARTTLS)."""

    def __init__(self, user: bytes, password: bytes) -> None:
        self.user, self.password = user, password
        self.logins: list[bytes] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        self.logins.append(data.login)
        good = (data.login, data.password) == (self.user, self.password)
        return AuthResult(success=good, handled=False)  # not handled: the server answers 535


def test_mail_goes_over_verified_starttls_with_the_password_from_the_environment(
    tmp_path: Path,
) -> None:
    ca = create_ca()
    cert = leaf_certificate(ca, common_name="mail", server_auth=True,
                            san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])  # fmt: skip
    (tmp_path / "mail.pem").write_bytes(cert.cert_pem)
    (tmp_path / "mail.key").write_bytes(cert.key_pem)
    (tmp_path / "mail-ca.pem").write_bytes(ca.cert_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "mail.pem", tmp_path / "mail.key")
    inbox, login, port = Inbox(), Login(b"docgw", b"mat-khau-thu"), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_tls,
                      require_starttls=True, authenticator=login)  # fmt: skip
    config = tmp_path / "docgw.toml"
    config.write_text(
        f'[reports]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_username = "docgw"\n'
        f'smtp_ca_file = "mail-ca.pem"\nmail_from = "docgw@example.vn"\n'
        'mail_to = ["vanthu@example.vn"]\n',
        encoding="utf-8",
    )
    settings = load_settings(config, {"DOCGW_REPORTS__SMTP_PASSWORD": "mat-khau-thu"}).reports
    files = {"report-monthly-2026-11-gateway.csv": "Báo cáo tháng".encode()}
    smtp.start()
    try:
        report_files.send_mail(settings, "Báo cáo tháng 2026-11", files,
                               ca_file=tmp_path / "mail-ca.pem")  # fmt: skip
        wrong = settings.model_copy(update={"smtp_password": "doan-sai"})
        with pytest.raises(smtplib.SMTPAuthenticationError):
            report_files.send_mail(wrong, "x", files, ca_file=tmp_path / "mail-ca.pem")
        with pytest.raises(ssl.SSLCertVerificationError):  # not the CA: refused, nothing sent
            report_files.send_mail(settings, "x", files, ca_file=None)
    finally:
        smtp.stop()
    assert login.logins and set(login.logins) == {b"docgw"}
    [(_, to, message)] = inbox.messages
    assert to == ["vanthu@example.vn"]
    [part] = [p for p in message.walk() if p.get_filename()]
    assert part.get_payload(decode=True) == "Báo cáo tháng".encode()

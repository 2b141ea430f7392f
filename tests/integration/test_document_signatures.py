"""The documents' own signatures end to end: PDFs signed by the tests (pyHanko, test CA) sent
through the API over real HTTP, received by another gateway's inbox over real HTTP, verified in
the bounded child process, stored (SQLite and PostgreSQL), shown in the message detail and the
webhook body, counted in the reports; the per-unit hold policy; the bounds."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pdfs  # tests/pdfs.py
import pki  # tests/pki.py
import pytest
from cryptography.hazmat.primitives import serialization
from integration_support import EXAMPLES, RECIPIENT, SENDER
from test_api import form, make_tokens, metadata, ok, serve

from connectors.fake import FakeConnector
from envelopes import pdf_signatures as pdf
from envelopes.attachments import AttachmentSource
from envelopes.building import build_document_bytes
from envelopes.metadata import parse_metadata
from envelopes.model import Classification
from gateway.domain.periods import PeriodKind
from gateway.settings import DocumentSignatureSettings
from gateway.store import events as store_events
from gateway.usecases import delivery, document_signatures, reports, submit, webhooks

MESSAGES = "/api/v1/messages"


@pytest.fixture(scope="module")
def document_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA the PDFs' signers chain to (the test PKI's), as a documents trust anchor: not the
    gateway's package CA, which signs no PDF here."""
    path = tmp_path_factory.mktemp("document-trust") / "government-ca.pem"
    path.write_bytes(pki.dev_ca().certificate.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def signed_pdf() -> bytes:
    return pdfs.sign(pdfs.plain_pdf("Quyết định số 12/QĐ-VPCP"), pki.unit())


def documents_settings(ca: Path, extra: str = "") -> str:
    return (
        "[api]\nmax_upload_bytes = 1048576\n"
        f'[documents]\ntrust_anchors = ["{ca}"]\ntimeout_seconds = 60\n{extra}'
    )


def by_name(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["attachment"]: d for d in documents}


def test_a_received_documents_signatures_are_in_the_api_webhooks_and_reports(
    make_gateway: Any,
    databases: Callable[[], str],
    document_ca: Path,
    signed_pdf: bytes,
) -> None:
    fake = FakeConnector(name="axis")
    second_database = databases()  # outside the event loop: it may create a PostgreSQL database
    files = [
        ("quyet-dinh.pdf", signed_pdf, "application/pdf"),
        ("da-sua.pdf", pdfs.change_page(signed_pdf), "application/pdf"),
        ("ghi-chu.pdf", pdfs.add_annotation(signed_pdf), "application/pdf"),
        ("khong-ky.pdf", pdfs.plain_pdf(), "application/pdf"),
        ("la.pdf", pdfs.sign(pdfs.plain_pdf(), pki.untrusted_unit()), "application/pdf"),
        ("phu-luc.txt", b"khong phai PDF", "text/plain"),
    ]

    async def scenario() -> None:
        settings = documents_settings(document_ca)
        async with (
            make_gateway(connectors={"axis": fake}, extra=settings) as sender,
            make_gateway(
                local_units=(RECIPIENT,),
                url=second_database,
                connectors={"axis": FakeConnector(name="axis")},
                extra=settings,
            ) as receiver,
            serve(sender) as sender_api,
            serve(receiver) as receiver_api,
        ):
            who = await make_tokens(sender)
            response = await sender_api.post(
                MESSAGES, data=form(metadata(), *files), headers=who["operator"]
            )
            sent = await ok(response, 201)
            assert sent["state"] == "queued"  # warned, never held by default
            await delivery.deliver_due(sender, "w")
            [package] = fake.packages

            # Received over real HTTP by the other gateway's inbox.
            peer = await _operator(receiver)
            xml = {**peer, "Content-Type": "application/xml"}
            received = await ok(
                await receiver_api.post("/api/v1/inbox", data=package, headers=xml), 201
            )
            detail = await ok(await receiver_api.get(f"{MESSAGES}/{received['id']}", headers=peer))
            documents = by_name(detail["documents"])
            assert set(documents) == {f[0] for f in files[:5]}  # the text file is no PDF
            valid = documents["quyet-dinh.pdf"]
            assert valid["verdict"] == "valid" and valid["signed"] is True
            [signature] = valid["signatures"]
            assert signature["signer"] == pki.SENDER
            assert signature["organisation"] == "docgw development"
            assert signature["verdict"] == "valid" and signature["timestamped"] is False
            assert signature["signed_at"]
            assert _codes(documents["da-sua.pdf"]) == [pdf.SIG_MODIFIED]
            assert documents["da-sua.pdf"]["verdict"] == "failing"
            assert documents["ghi-chu.pdf"]["verdict"] == "valid"
            assert _codes(documents["ghi-chu.pdf"]) == [pdf.SIG_ANNOTATED]
            assert documents["ghi-chu.pdf"]["signatures"][0]["modifications"] == "annotations"
            assert documents["khong-ky.pdf"]["verdict"] == "unsigned"
            assert documents["khong-ky.pdf"]["signed"] is False
            assert _codes(documents["la.pdf"]) == [pdf.SIG_UNTRUSTED]

            # The sender's own record of what it sent carries the same verdicts.
            own = await ok(await sender_api.get(f"{MESSAGES}/{sent['id']}", headers=who["admin"]))
            assert {d["attachment"]: d["verdict"] for d in own["documents"]} == {
                name: d["verdict"] for name, d in documents.items()
            }

            # The webhook body of the arrival carries them too.
            async with receiver.engine.begin() as conn:
                await store_events.sequence(conn)
            async with receiver.reader.connect() as conn:
                [event] = [
                    e
                    for e in await store_events.feed(conn, after=0, limit=50, unit_code=None)
                    if e.type == "document.received"
                ]
            body = await webhooks.webhook_body(receiver, event)
            assert by_name(body["documents"]) == documents  # type: ignore[arg-type]

            # Counted: the received document carries a failing PDF (its worst), the sent one too.
            today = receiver.clock().astimezone(receiver.deadlines.calendar.tz)
            year, week, _ = today.isocalendar()
            for gateway, field in ((receiver, "received_signatures"), (sender, "sent_signatures")):
                period = reports.period_of(gateway, PeriodKind.WEEKLY, f"{year}-W{week:02d}")
                report = await reports.build_report(gateway, period, None)
                figures = getattr(report, field)
                assert (figures.valid, figures.unsigned, figures.failing) == (0, 0, 1)

    asyncio.run(scenario())


def _codes(document: dict[str, Any]) -> list[str]:
    return [r["code"] for s in document["signatures"] for r in s["reasons"]]


async def _operator(gateway: Any) -> dict[str, str]:
    from gateway.usecases import tokens

    token = await tokens.create_token(gateway, name="peer", role="operator")
    return {"Authorization": f"Bearer {token}"}


def test_a_units_policy_holds_its_unsigned_or_failing_documents_and_others_are_only_warned(
    make_gateway: Any, document_ca: Path, signed_pdf: bytes
) -> None:
    fake = FakeConnector(name="axis")
    policy = f'hold_unsigned = ["{SENDER}"]\nhold_failing = ["{SENDER}"]\n'

    async def scenario() -> None:
        async with (
            make_gateway(
                connectors={"axis": fake}, extra=documents_settings(document_ca, policy)
            ) as gateway,
            serve(gateway) as api,
        ):
            who = await make_tokens(gateway)
            cases = [
                ("1", ("van-ban.pdf", signed_pdf, "application/pdf"), "queued", None),
                (
                    "2",
                    ("van-ban.pdf", pdfs.plain_pdf(), "application/pdf"),
                    "held",
                    "DOCUMENT_UNSIGNED",
                ),
                (
                    "3",
                    ("van-ban.pdf", pdfs.change_page(signed_pdf), "application/pdf"),
                    "held",
                    "DOCUMENT_SIGNATURE_FAILING",
                ),
            ]
            for number, file, state, reason in cases:
                response = await api.post(
                    MESSAGES, data=form(metadata(number=number), file), headers=who["operator"]
                )
                sent = await ok(response, 201)
                assert sent["state"] == state
                detail = await ok(await api.get(f"{MESSAGES}/{sent['id']}", headers=who["admin"]))
                [recipient] = detail["recipients"]
                assert recipient["state"] == state
                if reason is not None:  # the hold's reason, in the recipient's audit trail
                    [created] = [a for a in detail["audit"] if a["to_state"] == "held"]
                    assert created["reason"].startswith(f"{reason}: van-ban.pdf"), created
            # Held documents are not sent; the signed one is.
            await delivery.deliver_due(gateway, "w")
            assert len(fake.packages) == 1

    asyncio.run(scenario())


def test_a_ready_package_from_the_local_system_is_checked_and_held_by_the_policy(
    make_gateway: Any, document_ca: Path, signed_pdf: bytes
) -> None:
    """A package the local system built and signed (a drop folder's outbox): its PDFs are checked
    from the package itself; an unsigned one holds it under ``hold_unsigned``."""
    fake = FakeConnector(name="axis")
    policy = f'hold_unsigned = ["{SENDER}"]\n'

    async def scenario() -> None:
        async with make_gateway(
            connectors={"axis": fake}, extra=documents_settings(document_ca, policy)
        ) as gateway:
            request = parse_metadata(
                (EXAMPLES / "new-document.json").read_bytes(), today=gateway.clock().date()
            )
            attachments = {"ky.pdf": signed_pdf, "khong-ky.pdf": pdfs.plain_pdf()}
            data, _ = build_document_bytes(
                request.header,
                business=request.business,
                attachments=[
                    AttachmentSource(name=name, open=functools.partial(io.BytesIO, content))
                    for name, content in attachments.items()
                ],
                signer=gateway.signer(SENDER),
            )
            submitted = await submit.submit_package(
                gateway, io.BytesIO(data), client="drop-folder:dms", actor="drop-folder:dms"
            )
            assert submitted.state == "held"
            async with gateway.reader.connect() as conn:
                documents = await document_signatures.for_message(conn, submitted.message_id)
            assert [(d["attachment"], d["verdict"]) for d in documents] == [
                ("ky.pdf", "valid"),
                ("khong-ky.pdf", "unsigned"),
            ]
            await delivery.deliver_due(gateway, "w")
            assert fake.packages == []

    asyncio.run(scenario())


# ----------------------------------------------------------------------- docgw package verify


def docgw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "docgw"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_package_verify_has_a_documents_section(
    keys_dir: Path, document_ca: Path, signed_pdf: bytes, tmp_path: Path
) -> None:
    """A real process: the package built by ``docgw package build`` with a signed PDF, a PDF
    changed after signing and an unsigned one; ``package verify`` says which is which."""
    (signed := tmp_path / "quyet-dinh.pdf").write_bytes(signed_pdf)
    (changed := tmp_path / "da-sua.pdf").write_bytes(pdfs.change_page(signed_pdf))
    (unsigned := tmp_path / "khong-ky.pdf").write_bytes(pdfs.plain_pdf())
    package = tmp_path / "document.edxml"
    built = docgw(
        "package", "build", "--meta", EXAMPLES / "new-document.json",
        "--attach", signed, changed, unsigned,
        "--key", keys_dir / f"{SENDER}.key.pem", "--cert", keys_dir / f"{SENDER}.cert.pem",
        "-o", package,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    trust = ("--trust", keys_dir / "ca.cert.pem", "--document-trust", document_ca)
    verified = docgw("package", "verify", package, *trust, "--json")
    assert verified.returncode == 0, verified.stderr
    documents = by_name(json.loads(verified.stdout)["documents"])
    assert {name: d["verdict"] for name, d in documents.items()} == {
        "quyet-dinh.pdf": "valid",
        "da-sua.pdf": "failing",
        "khong-ky.pdf": "unsigned",
    }
    assert documents["quyet-dinh.pdf"]["signatures"][0]["signer"] == pki.SENDER
    assert _codes(documents["da-sua.pdf"]) == [pdf.SIG_MODIFIED]

    # For people: Vietnamese first, each PDF and each signature on its own line.
    text = docgw("package", "verify", package, *trust)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "văn bản PDF / PDF documents:" in lines
    assert "  - quyet-dinh.pdf: chữ ký hợp lệ / valid" in lines
    assert "  - khong-ky.pdf: không ký số / unsigned" in lines
    assert any(line.startswith("  - da-sua.pdf: chữ ký không hợp lệ / failing") for line in lines)
    assert any(pdf.SIG_MODIFIED in line and pki.SENDER in line for line in lines)

    # Without --document-trust the package's trust is used: the PDFs' CA is not in it.
    untrusted = docgw("package", "verify", package, "--trust", keys_dir / "ca.cert.pem", "--json")
    documents = by_name(json.loads(untrusted.stdout)["documents"])
    assert _codes(documents["quyet-dinh.pdf"]) == [pdf.SIG_UNTRUSTED]


# ------------------------------------------------------------------------------------ bounds


def _check(data: bytes, documents: DocumentSignatureSettings, ca: Path) -> pdf.PdfCheck:
    return asyncio.run(document_signatures.check_bounded(io.BytesIO(data), documents, anchors=[ca]))


def test_the_child_process_gives_the_verdicts(document_ca: Path, signed_pdf: bytes) -> None:
    settings = DocumentSignatureSettings()
    assert _check(signed_pdf, settings, document_ca).verdict is pdf.Verdict.VALID
    encrypted = _check(pdfs.encrypted_pdf(), settings, document_ca)
    assert encrypted.reason is not None and encrypted.reason.code == pdf.PDF_ENCRYPTED
    malformed = _check(pdfs.malformed_pdf(), settings, document_ca)
    assert malformed.reason is not None and malformed.reason.code == pdf.PDF_MALFORMED
    not_pdf = _check(b"PK\x03\x04 a zip labelled as a PDF", settings, document_ca)
    assert not_pdf.reason is not None and not_pdf.reason.code == pdf.PDF_MALFORMED


def test_a_pdf_over_the_size_cap_is_not_read(document_ca: Path, signed_pdf: bytes) -> None:
    result = _check(signed_pdf, DocumentSignatureSettings(max_pdf_bytes=1000), document_ca)
    assert result.reason is not None and result.reason.code == pdf.PDF_TOO_LARGE


def test_a_pdf_that_takes_too_long_is_a_timeout(document_ca: Path, signed_pdf: bytes) -> None:
    """A signed PDF with 32 MiB to read and hash takes longer than 2 ms even in a warm pool
    process (50 ms was not enough on a CPU with SHA extensions): a timeout, its process killed
    with its pool; the next PDF gets a fresh pool."""
    settings = DocumentSignatureSettings()
    assert _check(signed_pdf, settings, document_ca).verdict is pdf.Verdict.VALID  # warm
    slow = pdfs.sign(pdfs.with_large_stream(pdfs.plain_pdf(), 32 << 20), pki.unit())
    quick = settings.model_copy(update={"timeout_seconds": 0.002})
    result = _check(slow, quick, document_ca)
    assert result.reason is not None and result.reason.code == pdf.PDF_TIMEOUT
    assert _check(signed_pdf, settings, document_ca).verdict is pdf.Verdict.VALID


def test_a_pool_process_that_died_still_gives_the_verdict(
    document_ca: Path, signed_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool process killed from outside (the OOM killer, an operator): the PDF handed to the
    broken pool is verified again alone, and the pool after it is a fresh one."""
    settings = DocumentSignatureSettings()
    assert _check(signed_pdf, settings, document_ca).verdict is pdf.Verdict.VALID
    pool = document_signatures._POOLS[settings.memory_mb]
    for process in list(pool._processes.values()):  # type: ignore[attr-defined]
        process.kill()
    alone = []
    check_alone = document_signatures.check_alone

    async def counted(*args: Any, **kwargs: Any) -> pdf.PdfCheck:
        alone.append(args)
        return await check_alone(*args, **kwargs)

    monkeypatch.setattr(document_signatures, "check_alone", counted)
    assert _check(signed_pdf, settings, document_ca).verdict is pdf.Verdict.VALID
    assert len(alone) == 1  # verified again alone
    assert document_signatures._POOLS.get(settings.memory_mb) is not pool
    assert _check(signed_pdf, settings, document_ca).verdict is pdf.Verdict.VALID
    assert len(alone) == 1  # the fresh pool


def test_a_pdf_that_needs_more_memory_than_allowed_is_a_verdict(
    document_ca: Path, signed_pdf: bytes
) -> None:
    # 64 MiB of address space: the verifying process cannot even load pyHanko (the setting's
    # floor is 256 MiB; built without validation here, to make the limit bite).
    limited = DocumentSignatureSettings.model_construct(memory_mb=64)
    result = _check(signed_pdf, limited, document_ca)
    assert result.reason is not None and result.reason.code == pdf.PDF_LIMIT_EXCEEDED


@pytest.mark.slow
def test_a_large_signed_pdf_is_verified_within_the_memory_bound(
    document_ca: Path, tmp_path: Path
) -> None:
    """A 40-page PDF carrying a 96 MiB embedded stream, signed: verified (valid) by a process
    whose address space is capped at 512 MiB, so the PDF is read and hashed in pieces."""
    large = pdfs.sign(pdfs.with_large_stream(pdfs.plain_pdf(pages=40), 96 << 20), pki.unit())
    assert len(large) > 96 << 20
    settings = DocumentSignatureSettings(
        max_pdf_bytes=256 << 20, memory_mb=512, timeout_seconds=300
    )
    result = _check(large, settings, document_ca)
    assert result.verdict is pdf.Verdict.VALID, result


def test_the_reason_codes_are_documented() -> None:
    reference = Path(__file__).resolve().parents[2] / "docs/reference/document-signatures.md"
    text = reference.read_text(encoding="utf-8")
    for code in (*pdf.REASON_CODES, "DOCUMENT_UNSIGNED", "DOCUMENT_SIGNATURE_FAILING"):
        assert f"`{code}`" in text, code


def test_json_round_trip_of_a_row(document_ca: Path, signed_pdf: bytes) -> None:
    row = asyncio.run(
        document_signatures.check_with(
            DocumentSignatureSettings(),
            [
                document_signatures.Attachment(
                    position=1,
                    name="a.pdf",
                    content_type="application/pdf",
                    content=io.BytesIO(signed_pdf),
                )
            ],
            anchors=[document_ca],
            crls=[],
            now=dt.datetime.now(dt.UTC),
        )
    )
    rendered = document_signatures.row_json(row[0])
    assert json.loads(json.dumps(rendered))["verdict"] == "valid"


def test_a_classified_documents_pdf_names_and_signers_are_not_kept(
    document_ca: Path, signed_pdf: bytes
) -> None:
    """Of a classified document only the verdicts and their codes are stored, shown and logged:
    its file names and its signers are its content, like its subject."""
    rows = asyncio.run(
        document_signatures.check_with(
            DocumentSignatureSettings(),
            [
                document_signatures.Attachment(
                    position=position,
                    name=name,
                    content_type="application/pdf",
                    content=io.BytesIO(content),
                )
                for position, name, content in (
                    (1, "quyet-dinh-mat.pdf", signed_pdf),
                    (2, "da-sua.pdf", pdfs.change_page(signed_pdf)),
                )
            ],
            anchors=[document_ca],
            crls=[],
            now=dt.datetime.now(dt.UTC),
        )
    )
    assert document_signatures.readable_rows(Classification.THUONG, rows) == rows
    readable = document_signatures.readable_rows(Classification.MAT, rows)
    text = json.dumps([document_signatures.row_json(row) for row in readable])
    for secret in ("quyet-dinh-mat.pdf", "da-sua.pdf", pki.SENDER, "docgw development"):
        assert secret in json.dumps([document_signatures.row_json(row) for row in rows])
        assert secret not in text, secret
    assert [row.attachment for row in readable] == ["#1", "#2"]
    assert [row.verdict for row in readable] == [row.verdict for row in rows]
    assert _codes(document_signatures.row_json(readable[1])) == [pdf.SIG_MODIFIED]

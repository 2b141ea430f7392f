"""``docgw package build`` and ``docgw send`` as a user runs them (issue 12): every ``--attach``
file goes into the package, and status packages (02–06, 13, 15, 16) are built from options and
verify as a receiver verifies them. A real process, real files, real keys; the stored package of
``docgw send`` is read back from the real SQLite database."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from envelopes.model import Organization, ResponseFor, StaffInfo, StatusCode, StatusPackage
from envelopes.reading import read_package
from envelopes.signing import TrustPolicy
from envelopes.verification import verify_status
from gateway.bootstrap import build
from gateway.settings import load_settings
from gateway.store import blobs
from gateway.store.tables import messages

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DOCGW = Path(sys.executable).parent / "docgw"
SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"


def docgw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: str) -> str:
    """The one ``error: CODE: …`` line, exit 1, no traceback; the line."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    result = docgw("keys", "init", "--dir", directory, "--unit", SENDER, "--unit", RECIPIENT)
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three attachments with different names and bytes."""
    directory = tmp_path_factory.mktemp("attachments")
    made = []
    for name, body in (("a.txt", "thứ nhất"), ("b.pdf", "%PDF-1.7 thứ hai"), ("c.txt", "ba")):
        (path := directory / name).write_text(body, encoding="utf-8")
        made.append(path)
    return made


def inspected(package: Path) -> dict[str, object]:
    result = docgw("package", "inspect", package, "--json")
    assert result.returncode == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


# ------------------------------------------------------------------------------ --attach


def attach_forms(files: list[Path]) -> dict[str, list[str | Path]]:
    a, b, c = files
    return {
        "repeated": ["--attach", a, "--attach", b, "--attach", c],
        "one-option": ["--attach", a, b, c],
        "mixed": ["--attach", a, b, "--attach", c],
    }


@pytest.mark.parametrize("form", ["repeated", "one-option", "mixed"])
def test_package_build_puts_every_attached_file_in_the_package(
    keys: Path, files: list[Path], tmp_path: Path, form: str
) -> None:
    out = tmp_path / "document.edxml"
    result = docgw(
        "package", "build", "--meta", EXAMPLES / "new-document.json",
        *attach_forms(files)[form],
        "--key", keys / f"{SENDER}.key.pem", "--cert", keys / f"{SENDER}.cert.pem", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    attachments = inspected(out)["attachments"]
    assert isinstance(attachments, list)
    assert [(item["name"], item["size"]) for item in attachments] == [
        (path.name, path.stat().st_size) for path in files
    ]
    verified = docgw("package", "verify", out, "--trust", keys / "ca.cert.pem", "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["attachments"] == len(files)


def test_a_missing_attachment_among_several_builds_nothing(
    keys: Path, files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "document.edxml"
    result = docgw(
        "package", "build", "--meta", EXAMPLES / "new-document.json",
        "--attach", files[0], "--attach", tmp_path / "missing.pdf", "--unsigned", "-o", out,
    )  # fmt: skip
    assert "missing.pdf" in assert_clean_failure(result, "FILE_UNREADABLE")
    assert not out.exists()


async def stored_attachment_names(config: Path, message_id: str) -> list[str]:
    gateway = await build(load_settings(config, {}))
    try:
        async with gateway.engine.connect() as conn:
            sha256 = await conn.scalar(
                sa.select(messages.c.package_sha256).where(messages.c.id == message_id)
            )
            package = await blobs.read_bytes(conn, sha256)
    finally:
        await gateway.close()
    return [item.name for item in read_package(io.BytesIO(package)).document().attachments]


@pytest.mark.parametrize("form", ["repeated", "one-option"])
def test_send_puts_every_attached_file_in_the_package(
    files: list[Path], tmp_path: Path, form: str
) -> None:
    home = tmp_path / "home"
    assert docgw("init", "--dir", home).returncode == 0
    config = home / "docgw.toml"
    result = docgw(
        "--config", config, "send", "--meta", EXAMPLES / "new-document.json",
        *attach_forms(files)[form],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    match = re.search(r"accepted: (\S+) ", result.stdout)
    assert match, result.stdout
    names = asyncio.run(stored_attachment_names(config, match.group(1)))
    assert names == [path.name for path in files]


async def stored_message_count(config: Path) -> int:
    gateway = await build(load_settings(config, {}))
    try:
        async with gateway.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(messages)) or 0)
    finally:
        await gateway.close()


def test_send_refuses_an_empty_file_and_a_name_that_is_not_a_plain_file_name(
    files: list[Path], tmp_path: Path
) -> None:
    """The API's attachment rules hold for ``--attach`` too: a zero-byte file, a name with a tab,
    a line feed or bytes that are not UTF-8 (a Linux file name can hold all three) is refused with
    its code, with the good file beside it, and nothing is stored."""
    home = tmp_path / "home"
    assert docgw("init", "--dir", home).returncode == 0
    config = home / "docgw.toml"
    (empty := tmp_path / "rong.pdf").write_bytes(b"")
    cases: list[tuple[Path, str]] = [(empty, "ATTACHMENT_EMPTY")]
    for raw in (b"a\tb.pdf", b"a\nb.pdf", b"ten-\xff.pdf"):
        path = tmp_path / os.fsdecode(raw)
        path.write_bytes(b"%PDF-1.7 x")
        cases.append((path, "ATTACHMENT_NAME_INVALID"))
    for path, code in cases:
        result = docgw(
            "--config", config, "send", "--meta", EXAMPLES / "new-document.json",
            "--attach", files[0], path,
        )  # fmt: skip
        assert_clean_failure(result, code)
    assert asyncio.run(stored_message_count(config)) == 0


# ------------------------------------------------------------------------- status packages

DOCUMENT_ID = f"{SENDER},2026/11/23,7816/VPCP-TTĐT"
STAFF = ("--staff-department", "Văn thư", "--staff", "Nguyễn Thị Ngọc Trâm",
         "--staff-mobile", "84912000001", "--staff-email", "vanthu@nghean.gov.vn")  # fmt: skip


def read_status(path: Path, keys: Path) -> StatusPackage:
    """The status package as a receiver takes it: verified against the CA."""
    with path.open("rb") as stream:
        parsed = read_package(stream)
    trust = TrustPolicy.from_pem((keys / "ca.cert.pem").read_bytes())
    verified = verify_status(parsed, trust)
    assert verified.signer.subject.startswith("CN=")
    return verified.status


@pytest.mark.parametrize("code", ["02", "03", "04", "05", "06", "13", "15", "16"])
def test_package_build_builds_a_signed_status_package(
    keys: Path, tmp_path: Path, code: str
) -> None:
    """From a receiver (RECIPIENT) about SENDER's document; 13 from the sender, for RECIPIENT."""
    reporter, about = (SENDER, RECIPIENT) if code == "13" else (RECIPIENT, SENDER)
    out = tmp_path / f"status-{code}.edxml"
    result = docgw(
        "package", "build", "--status", code, "--from", reporter, "--from-name", "Đơn vị báo",
        "--document-id", DOCUMENT_ID, *(("--response-for-organ", about) if code == "13" else ()),
        "--description", f"Trạng thái {code}", *STAFF,
        "--key", keys / f"{reporter}.key.pem", "--cert", keys / f"{reporter}.cert.pem", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"status {code} about {DOCUMENT_ID}" in result.stdout
    status = read_status(out, keys)
    assert status.status_code == StatusCode(code)
    assert status.from_ == Organization(organ_id=reporter, organ_name="Đơn vị báo")
    assert status.response_for == ResponseFor(
        organ_id=about,
        code="7816/VPCP-TTĐT",
        promulgation_date=dt.date(2026, 11, 23),
        document_id=DOCUMENT_ID,
    )
    assert status.description == f"Trạng thái {code}"
    assert status.staff_info == StaffInfo(
        department="Văn thư",
        staff="Nguyễn Thị Ngọc Trâm",
        mobile="84912000001",
        email="vanthu@nghean.gov.vn",
    )
    assert inspected(out)["status_code"] == code


def test_a_status_about_a_document_id_of_another_form_takes_the_response_for_options(
    keys: Path, tmp_path: Path
) -> None:
    out = tmp_path / "status.edxml"
    result = docgw(
        "package", "build", "--status", "03", "--from", RECIPIENT,
        "--document-id", "5f0c7a8e-1d7b-4c36-9f7e-0a4a9c1b2d3e",
        "--response-for-organ", SENDER, "--response-for-code", "12/UBND-VP",
        "--response-for-date", "2026-11-20",
        "--key", keys / f"{RECIPIENT}.key.pem", "--cert", keys / f"{RECIPIENT}.cert.pem", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    status = read_status(out, keys)
    assert status.response_for == ResponseFor(
        organ_id=SENDER,
        code="12/UBND-VP",
        promulgation_date=dt.date(2026, 11, 20),
        document_id="5f0c7a8e-1d7b-4c36-9f7e-0a4a9c1b2d3e",
    )
    assert (status.description, status.staff_info) == (None, None)


BASE = ("--from", RECIPIENT, "--document-id", DOCUMENT_ID)
META = ("--meta", EXAMPLES / "new-document.json")
RETRACT = ("--status", "13", "--from", SENDER, "--document-id", DOCUMENT_ID, "--description", "x")
REFUSALS = [
    pytest.param(("--status", "01", *BASE), "STATUS_CODE_INVALID", "--status", id="01"),
    pytest.param(("--status", "07", *BASE), "STATUS_CODE_INVALID", "--status", id="unknown-code"),
    pytest.param(("--status", "02", *BASE), "REASON_REQUIRED", "--description", id="02-no-reason"),
    pytest.param(
        ("--status", "02", *BASE, "--description", "  "),
        "REASON_REQUIRED",
        "--description",
        id="02-blank-reason",
    ),
    pytest.param(RETRACT, "CLI_ERROR", "--response-for-organ", id="13-without-organ"),
    pytest.param(("--status", "03", *BASE[2:]), "CLI_ERROR", "--from", id="no-from"),
    pytest.param(("--status", "03", *BASE[:2]), "CLI_ERROR", "--document-id", id="no-document-id"),
    pytest.param(
        ("--status", "03", "--from", "not a unit", *BASE[2:]),
        "UNIT_CODE_INVALID",
        "--from",
        id="bad-from",
    ),
    pytest.param(
        ("--status", "03", *BASE[:2], "--document-id", "5f0c7a8e"),
        "CLI_ERROR",
        "--response-for-organ",
        id="organ-not-derivable",
    ),
    pytest.param(
        ("--status", "03", *BASE, "--response-for-date", "23/11/2026"),
        "CLI_ERROR",
        "--response-for-date",
        id="bad-date",
    ),
    pytest.param(
        ("--status", "03", *BASE, "--attach", EXAMPLES / "van-ban.txt"),
        "CLI_ERROR",
        "--attach",
        id="attachments",
    ),
    pytest.param(
        ("--status", "02", *BASE, "--description", "sai\x1bso"),
        "TEXT_INVALID",
        "--description",
        id="control-character",
    ),
    pytest.param((*META, "--description", "x"), "CLI_ERROR", "--description", id="meta-reason"),
    pytest.param((*META, "--from", RECIPIENT), "CLI_ERROR", "--from", id="meta-from"),
]


@pytest.mark.parametrize(("args", "code", "element"), REFUSALS)
def test_a_status_package_with_a_bad_option_is_refused_naming_it(
    tmp_path: Path, args: tuple[str | Path, ...], code: str, element: str
) -> None:
    out = tmp_path / "status.edxml"
    result = docgw("package", "build", *args, "--unsigned", "-o", out)
    line = assert_clean_failure(result, code)
    assert line.endswith(f"[{element}]"), line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no partial file either

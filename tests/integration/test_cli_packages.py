"""``docgw package build`` and ``docgw send`` as a user runs them (issue 12): every ``--attach``
file goes into the package, and status packages (02–06, 13, 15, 16) are built from options. A real
process, real files, real keys; the stored package of ``docgw send`` is read back from the real
SQLite database."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from envelopes.reading import read_package
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

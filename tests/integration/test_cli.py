"""The ``docgw`` console script as a user runs it: a real process, real files, exit codes, and one
clear line (never a traceback) for every expected failure."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DOCGW = Path(sys.executable).parent / "docgw"
SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"


def docgw(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}"), result.stderr


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    result = docgw("keys", "init", "--dir", directory, "--unit", SENDER, "--unit", RECIPIENT)
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture(scope="module")
def package(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "document.edxml"
    result = docgw(
        "package", "build", "--meta", EXAMPLES / "new-document.json",
        "--attach", EXAMPLES / "van-ban.txt",
        "--key", keys / f"{SENDER}.key.pem", "--cert", keys / f"{SENDER}.cert.pem", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_keys_init_writes_private_keys_0600_and_show_lists_expiry(keys: Path) -> None:
    for name in ("ca.key.pem", f"{SENDER}.key.pem", f"{RECIPIENT}.key.pem"):
        assert stat.S_IMODE(os.stat(keys / name).st_mode) == 0o600
    shown = docgw("keys", "show", "--dir", keys)
    assert shown.returncode == 0
    assert f"CN={SENDER}" in shown.stdout and "expires 20" in shown.stdout
    assert "docgw development CA" in shown.stdout


def test_build_verify_inspect(package: Path, keys: Path) -> None:
    verified = docgw("package", "verify", package, "--trust", keys / "ca.cert.pem", "--json")
    assert verified.returncode == 0, verified.stderr
    summary = json.loads(verified.stdout)
    assert summary["valid"] is True
    assert summary["document_id"] == "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT"
    inspected = json.loads(docgw("package", "inspect", package, "--json").stdout)
    assert inspected["sender"] == SENDER and inspected["recipients"] == [RECIPIENT]
    assert inspected["subject"] == "V/v kết nối liên thông văn bản"
    assert inspected["business_type"] == "new" and inspected["signed"] is True
    [attachment] = inspected["attachments"]
    assert attachment["name"] == "van-ban.txt"
    assert attachment["size"] == (EXAMPLES / "van-ban.txt").stat().st_size


def test_verify_with_the_sender_certificate_pinned(package: Path, keys: Path) -> None:
    result = docgw("package", "verify", package, "--trust", keys / f"{SENDER}.cert.pem")
    assert result.returncode == 0, result.stderr


def test_verify_fails_on_a_changed_byte(package: Path, keys: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(package.read_bytes().replace("kết nối".encode(), "kết thúc".encode(), 1))
    assert_clean_failure(
        docgw("package", "verify", tampered, "--trust", keys / "ca.cert.pem"),
        "SIGNED_HEADER_CHANGED",
    )


def test_verify_with_the_wrong_trust_is_untrusted(package: Path, keys: Path) -> None:
    assert_clean_failure(
        docgw("package", "verify", package, "--trust", keys / f"{RECIPIENT}.cert.pem"),
        "CERT_UNTRUSTED",
    )


def test_sealed_package_opens_only_for_its_recipient(keys: Path, tmp_path: Path) -> None:
    sealed = tmp_path / "secret.sealed"
    built = docgw(
        "package", "build", "--meta", EXAMPLES / "new-document.json",
        "--attach", EXAMPLES / "van-ban.txt", "--key", keys / f"{SENDER}.key.pem",
        "--cert", keys / f"{SENDER}.cert.pem", "--seal-for", keys / f"{RECIPIENT}.cert.pem",
        "-o", sealed,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "kết nối".encode() not in sealed.read_bytes()
    opened = tmp_path / "opened.edxml"
    assert (
        docgw(
            "package", "open", sealed, "--key", keys / f"{RECIPIENT}.key.pem", "-o", opened
        ).returncode
        == 0
    )
    assert docgw("package", "verify", opened, "--trust", keys / "ca.cert.pem").returncode == 0
    assert_clean_failure(
        docgw("package", "open", sealed, "--key", keys / f"{SENDER}.key.pem", "-o", tmp_path / "x"),
        "SEAL_INVALID",
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("package", "inspect", "/nonexistent.edxml"), "FILE_UNREADABLE"),
        (
            ("package", "build", "--meta", "/nonexistent.json", "--unsigned", "-o", "x"),
            "FILE_UNREADABLE",
        ),
        (("keys", "show", "--dir", "/proc/1"), None),
    ],
)
def test_missing_files_fail_cleanly(
    args: tuple[str, ...], code: str | None, tmp_path: Path
) -> None:
    result = docgw(*args, cwd=tmp_path)
    if code is None:  # an empty or unreadable folder is reported, not a crash
        assert "Traceback" not in result.stderr
        return
    assert_clean_failure(result, code)


def test_bad_metadata_names_the_field(tmp_path: Path) -> None:
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta["to"][0]["organ_id"] = "not a code"
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta), encoding="utf-8")
    result = docgw("package", "build", "--meta", path, "--unsigned", "-o", tmp_path / "out.edxml")
    assert_clean_failure(result, "METADATA_INVALID")
    assert "[to[0].organ_id]" in result.stderr
    assert not (tmp_path / "out.edxml").exists()


def test_garbage_input_is_a_typed_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.edxml"
    garbage.write_bytes(b"\x00\x01 not xml at all" * 100)
    assert_clean_failure(docgw("package", "inspect", garbage), "XML_MALFORMED")


def test_real_samples_inspect_without_error(samples: Path) -> None:
    for path in sorted(samples.glob("*.edxml")):
        result = docgw("package", "inspect", path, "--json")
        assert result.returncode == 0, (path, result.stderr)
        assert json.loads(result.stdout)["kind"] in ("document", "status")


def test_an_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    config.write_text('[database]\nurl = "postgresql+asyncpg://docgw@127.0.0.1:1/docgw"\n')
    assert_clean_failure(docgw("--config", config, "queue", "list"), "DATABASE_UNAVAILABLE")


def test_a_secure_profile_with_an_axis_channel_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(
        '[gateway]\nprofile = "secure"\n'
        '[channels.axis]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9"\n'
        'system_id = "x"\nsecret = "not-a-real-secret"\n'
    )
    result = docgw("--config", config, "serve")
    assert_clean_failure(result, "CONFIG_INVALID")
    assert "secure" in result.stderr and "[channels.axis]" in result.stderr


def test_an_axis_channel_without_its_secret_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(
        '[channels.axis]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9"\nsystem_id = "x"\n'
    )
    result = docgw("--config", config, "serve")
    assert_clean_failure(result, "CONFIG_INVALID")
    assert "DOCGW_CHANNELS__AXIS__SECRET" in result.stderr


@pytest.mark.parametrize("unit", [SENDER, RECIPIENT], ids=["another-code", "the-demo-peers-code"])
def test_init_registers_its_own_unit_as_local_and_the_demo_peer_only_under_another_code(
    tmp_path: Path, unit: str
) -> None:
    """RECIPIENT is the demo peer's code: the local unit wins, the demo peer is left out."""
    home = tmp_path / "home"
    result = docgw("init", "--dir", home, "--unit", unit)
    assert result.returncode == 0, result.stderr
    config = home / "docgw.toml"
    shown = docgw("--config", config, "units", "show", unit)
    assert shown.returncode == 0, shown.stderr
    own = json.loads(shown.stdout)["unit"]
    assert (own["is_local"], own["name"], own["channel"]) == (True, f"Đơn vị {unit}", "axis")
    listed = docgw("--config", config, "units", "list").stdout.splitlines()
    codes = sorted(line.split()[0] for line in listed)
    assert codes == sorted({unit, RECIPIENT})
    if unit == RECIPIENT:
        assert "no demo peer" in result.stdout
    else:
        peer = json.loads(docgw("--config", config, "units", "show", RECIPIENT).stdout)["unit"]
        assert (peer["is_local"], peer["name"]) == (False, "UBND tỉnh Nghệ An")

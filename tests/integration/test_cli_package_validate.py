"""``docgw package validate`` as a user runs it (a real process, real files): lxml's validator
judges, and where it refuses a package xmlschema's report explains every violation with its
path, what the schema expects and what the package has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DOCGW = Path(sys.executable).parent / "docgw"
SENDER = "000.00.00.G22"
HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def docgw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed document package, as ``docgw package build`` makes it."""
    home = tmp_path_factory.mktemp("validate")
    assert docgw("keys", "init", "--dir", home / "keys", "--unit", SENDER).returncode == 0
    out = home / "signed.xml"
    built = docgw(
        "package", "build", "--meta", EXAMPLES / "new-document.json",
        "--attach", EXAMPLES / "van-ban.txt",
        "--key", home / "keys" / f"{SENDER}.key.pem",
        "--cert", home / "keys" / f"{SENDER}.cert.pem",
        "-o", out,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


def test_a_valid_signed_package_is_valid(signed: Path) -> None:
    result = docgw("package", "validate", signed)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "document" in result.stdout
    answer = json.loads(docgw("package", "validate", "--json", signed).stdout)
    assert answer == {"valid": True, "kind": "document", "schema": "edxml_document.xsd"}


def test_an_invalid_package_is_explained_with_path_expected_and_found(
    signed: Path, tmp_path: Path
) -> None:
    # Two violations: a Subject renamed (a sequence broken) and a Priority over its maximum.
    # lxml stops at the first; xmlschema's report names both.
    data = signed.read_bytes()
    assert b"<edXML:Priority>1</edXML:Priority>" in data
    broken = data.replace(b"edXML:Subject>", b"edXML:Subjekt>").replace(
        b"<edXML:Priority>1</edXML:Priority>", b"<edXML:Priority>9</edXML:Priority>"
    )
    bad = tmp_path / "bad.xml"
    bad.write_bytes(broken)

    result = docgw("package", "validate", bad)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: SCHEMA_INVALID: MessageHeader: required element Subject is missing (Subjekt "
        f"found where it belongs) [{HEADER}]"
    ]
    assert "không hợp lệ / invalid" in result.stdout
    assert f"  - {HEADER}/OtherInfo/Priority" in result.stdout
    assert "cần / expected:     maxInclusive 4" in result.stdout
    assert "thấy / found:       9" in result.stdout

    report = json.loads(docgw("package", "validate", "--json", bad).stdout)
    assert report["valid"] is False and report["code"] == "SCHEMA_INVALID"
    assert report["rule"] == "missing required element Subject"
    findings = {f["path"]: f for f in report["findings"]}
    assert findings[HEADER]["expected"] == "Subject"
    assert findings[HEADER]["found"] == "Subjekt"
    assert findings[f"{HEADER}/OtherInfo/Priority"]["expected"] == "maxInclusive 4"
    assert findings[f"{HEADER}/OtherInfo/Priority"]["found"] == "9"


def test_xml_that_is_not_well_formed_is_refused_without_a_report(tmp_path: Path) -> None:
    bad = tmp_path / "torn.xml"
    bad.write_bytes(b"<edXML><unclosed></edXML>")
    result = docgw("package", "validate", "--json", bad)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["rule"] == "well-formed XML" and report["findings"] == []

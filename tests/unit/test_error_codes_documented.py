"""Every error code docgw can produce is in ``docs/reference/errors.md``: the ``code`` of each
``GatewayError`` class, and the codes written as plain strings (a drop-folder refusal's
``error_code``, a delivery attempt's ``PEER_TIMEOUT`` / ``CONNECTOR_CRASHED``, the API's and the
CLI's own). Found by reading the source, so a new code without its row fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from envelopes.errors import GatewayError

REPO = Path(__file__).resolve().parents[2]
ERRORS = REPO / "docs" / "reference" / "errors.md"
PACKAGES = ("envelopes", "gateway", "connectors")
#: Quoted UPPER_SNAKE strings in the source that are not error codes.
NOT_CODES = frozenset(
    {
        "DOCUMENT_SCHEMA",  # envelopes/schema.py: XSD names
        "STATUS_SCHEMA",
        "SCHEMAV_ELEMENT_CONTENT",  # a libxml2 error type, quoted in a comment
        "CODE",  # "error: CODE: message", in docstrings
    }
)
MODULES = (
    "connectors.drop_folder",
    "connectors.secure_endpoint",
    "connectors.soap_axis",
    "connectors.vxp",
    "gateway.bootstrap",
    "gateway.cli.common",
    "gateway.cli.service",
    "gateway.demo",
    "gateway.web.app",
    "gateway.web.secure_inbox",
)
#: A quoted UPPER_SNAKE string, or the code of a line the CLI prints itself (``error: CODE``).
CODE_PATTERNS = (
    re.compile(r"[\"']([A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+)[\"']"),
    re.compile(r"error: ([A-Z][A-Z0-9_]+)\b"),
)


def source_codes() -> list[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pattern in CODE_PATTERNS:
                found.update(pattern.findall(text))
    return sorted(found - NOT_CODES)


def class_codes() -> list[str]:
    for module in MODULES:  # importing them defines their GatewayError subclasses
        importlib.import_module(module)

    codes: set[str] = set()
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return sorted(codes)


def documented() -> str:
    return ERRORS.read_text(encoding="utf-8")


def test_the_source_scan_finds_codes_of_every_kind() -> None:
    codes = source_codes()
    for known in ("CONFIG_INVALID", "DROP_METADATA_MISSING", "PEER_TIMEOUT", "INTERRUPTED"):
        assert known in codes


@pytest.mark.parametrize("code", source_codes())
def test_every_code_in_the_source_is_documented(code: str) -> None:
    assert f"`{code}`" in documented(), f"{code} has no row in {ERRORS.name}"


@pytest.mark.parametrize("code", class_codes())
def test_every_error_class_code_is_documented(code: str) -> None:
    assert f"`{code}`" in documented(), f"{code} has no row in {ERRORS.name}"

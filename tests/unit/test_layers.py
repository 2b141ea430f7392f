"""The architecture's import rules (DESIGN.md): envelopes imports nothing of ours; connectors
import only envelopes; nothing imports the tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import envelopes
import gateway

OURS = {"envelopes", "connectors", "gateway", "xsd"}
ALLOWED = {"envelopes": {"envelopes", "xsd"}, "connectors": {"envelopes", "connectors"}}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & (OURS | {"tests"})


@pytest.mark.parametrize("layer", ["envelopes", "connectors"])
def test_lower_layers_import_only_what_is_below_them(layer: str) -> None:
    root = Path(envelopes.__file__).parent.parent / layer
    modules = list(root.rglob("*.py"))
    assert modules
    for module in modules:
        extra = imported_packages(module) - ALLOWED[layer]
        assert not extra, f"{module} imports {extra}"


def test_no_package_imports_the_tests() -> None:
    for package in (envelopes, gateway):
        for module in Path(package.__file__).parent.rglob("*.py"):
            assert "tests" not in imported_packages(module), module

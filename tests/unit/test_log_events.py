"""Every event docgw logs is listed in docs/howto/operate.md ("Log events"), and every event listed
there is logged somewhere: the names are collected from the code's logging calls."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import connectors
import gateway

LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
OPERATE = Path(__file__).resolve().parents[2] / "docs" / "howto" / "operate.md"


def _names(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _names(node.body) | _names(node.orelse)
    return set()


def logged_events() -> dict[str, set[str]]:
    """Event names by module, from ``log.<level>("name", …)`` and ``log.log(level, "name", …)``."""
    found: dict[str, set[str]] = {}
    for package in (gateway, connectors):
        for module in Path(package.__file__).parent.rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log"
                ):
                    continue
                if node.func.attr in LEVELS and node.args:
                    names = _names(node.args[0])
                elif node.func.attr == "log" and len(node.args) > 1:
                    names = _names(node.args[1])
                else:
                    continue
                for name in names:
                    found.setdefault(name, set()).add(module.name)
    return found


def documented_events() -> set[str]:
    text = OPERATE.read_text(encoding="utf-8")
    section = text.split("## Log events", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_every_logged_event_is_documented_and_every_documented_one_is_logged() -> None:
    logged = logged_events()
    assert len(logged) > 20, logged  # the collector sees the calls
    missing = {name: sorted(where) for name, where in logged.items()}
    missing = {name: where for name, where in missing.items() if name not in documented_events()}
    assert not missing, f"logged but not in operate.md's Log events: {missing}"
    stale = documented_events() - logged.keys()
    assert not stale, f"in operate.md but logged nowhere: {sorted(stale)}"

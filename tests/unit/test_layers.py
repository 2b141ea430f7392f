"""The architecture's import rules (DESIGN.md): envelopes imports nothing of ours; connectors
import only envelopes; nothing imports the tests; inside gateway/, each layer imports only its own
and the ones below (domain ← settings/keystore ← store ← bootstrap ← usecases ← web ← entry
points)."""

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


# ------------------------------------------------------------------------- inside gateway/

#: gateway/'s layers, lowest first; a module imports from its own layer or lower ones only.
#: settings and keystore are read by every layer above the domain. bootstrap (the composition
#: root) builds from the store and below only (BOOTSTRAP_TAKES); it sits under the use cases today
#: because they take the ``Gateway`` it defines — once use cases take what they use (issue 14), it
#: moves to the top tier with the entry points (cli, scheduler, service, demo, console).
GATEWAY_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"domain"}),
    frozenset({"settings", "keystore"}),
    frozenset({"store"}),
    frozenset({"bootstrap"}),
    frozenset({"usecases"}),
    frozenset({"web"}),
    # logs: the one logging setup, which only the entry points make.
    frozenset(
        {"cli", "scheduler", "service", "demo", "console", "settings_reference", "logs", "__init__"}
    ),
)
#: bootstrap builds from the layers below the use cases only.
BOOTSTRAP_TAKES = frozenset({"domain", "settings", "keystore", "store", "bootstrap"})
#: Pairs that must never import each other's way even where the ranks would allow it.
NEVER = {("web", "cli"), ("usecases", "web"), ("usecases", "cli"), ("store", "usecases")}


def gateway_layer(module: Path) -> str:
    """``usecases`` for gateway/usecases/submit.py, ``settings`` for gateway/settings.py."""
    parts = module.relative_to(Path(gateway.__file__).parent).parts
    return parts[0] if len(parts) > 1 else module.stem


def gateway_imports(path: Path) -> set[str]:
    """The gateway layers ``path`` imports (``from gateway import keystore`` → keystore)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "gateway":
                names = [f"gateway.{alias.name}" for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("gateway.")}
    return found


def rank(layer: str) -> int:
    [found] = [i for i, layers in enumerate(GATEWAY_LAYERS) if layer in layers]
    return found


def gateway_modules() -> list[Path]:
    return sorted(Path(gateway.__file__).parent.rglob("*.py"))


def test_every_gateway_module_has_a_layer() -> None:
    layers = {gateway_layer(m) for m in gateway_modules() if "migrations" not in m.parts}
    assert layers <= set().union(*GATEWAY_LAYERS), layers - set().union(*GATEWAY_LAYERS)


@pytest.mark.parametrize("module", gateway_modules(), ids=lambda m: m.name)
def test_gateway_modules_import_only_their_layer_and_below(module: Path) -> None:
    layer = gateway_layer(module)
    if "migrations" in module.parts:
        assert gateway_imports(module) <= {"store", "domain"}, module
        return
    imported = gateway_imports(module)
    upward = {other for other in imported if rank(other) > rank(layer)}
    assert not upward, f"{module} ({layer}) imports {upward} from above"
    assert not {(layer, other) for other in imported} & NEVER, module
    if layer == "bootstrap":
        assert imported <= BOOTSTRAP_TAKES, imported - BOOTSTRAP_TAKES


def test_the_layer_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself: a use case importing the web layer would be refused."""
    module = tmp_path / "bad.py"
    module.write_text("from gateway.web import app\nfrom gateway import keystore\n")
    imported = gateway_imports(module)
    assert imported == {"web", "keystore"}
    assert rank("web") > rank("usecases") and rank("keystore") < rank("usecases")


#: The use case modules that still take the whole ``Gateway`` (gateway.bootstrap) rather than the
#: capabilities they use (gateway/usecases/ports.py). Issue 14: this list only shrinks; once it
#: is empty, bootstrap moves to the top tier with the entry points.
STILL_TAKE_GATEWAY = frozenset(
    {
        # The job list wires every job with the Gateway (composition: bootstrap may not import
        # the use cases); list_jobs, find_job and run_now read it. Running one recorded, the
        # history and the lock are narrow (jobs.Runs, ports.Store).
        "jobs",
        "monitoring",  # health reads jobs.list_jobs
        "alerts",  # its conditions are monitoring.health's
        # sync_channel reads Gateway.capabilities, whose type (bootstrap.Capabilities) is the
        # composition root's.
        "directory",
        "registrations",  # another change is under way there
    }
)


def test_use_cases_take_what_they_use() -> None:
    """A use case module not in STILL_TAKE_GATEWAY does not import gateway.bootstrap (it takes
    ports' Protocols); one in the list that no longer does must leave it."""
    importing = {
        m.stem
        for m in (Path(gateway.__file__).parent / "usecases").glob("*.py")
        if "bootstrap" in gateway_imports(m)
    }
    assert importing - STILL_TAKE_GATEWAY == set(), "new use cases take what they use"
    assert STILL_TAKE_GATEWAY - importing == set(), "take them off STILL_TAKE_GATEWAY"

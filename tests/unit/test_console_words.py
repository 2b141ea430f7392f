"""Every word the console's templates ask for is in i18n.py, in Vietnamese and in English —
the literal keys and those built from a value (a state, an outcome, a verdict …) for each value
the code can give."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from gateway.domain.lifecycle import TransportState
from gateway.store import document_signatures, job_runs
from gateway.usecases import alerts, breakers, jobs, registrations
from gateway.web.console import pages
from gateway.web.console.i18n import WORDS

TEMPLATES = resources.files("gateway.web.console") / "templates"
LITERAL = re.compile(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*\)""")
BUILT = re.compile(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*~""")

#: The values each built key is made of.
VALUES = {
    "st_": [s.value for s in TransportState],
    "br_": [breakers.CLOSED, breakers.OPEN, breakers.RECOVERING, breakers.PAUSED],
    "act_": [
        breakers.PAUSED_ACTION,
        breakers.RESUMED_ACTION,
        jobs.RUN_ACTION,
        alerts.ACK_ACTION,
    ],
    "outcome_": [job_runs.RUNNING, job_runs.OK, job_runs.FAILED, "interrupted"],
    "sev_": ["warning", "critical"],
    "alert_": ["open", "resolved"],
    "alerts_": list(pages.ALERT_STATES),
    "verdict_": list(document_signatures.VERDICTS),
    "dir_": ["in", "out"],
    "kind_": ["document", "status"],
    "req_": list(pages.REQUEST_STATES),
    "field_": list(registrations.REQUEST_FIELDS),
    "ver_": list(pages.VERSION_ACTIONS),
}


def _templates() -> str:
    return "\n".join(
        f.read_text(encoding="utf-8") for f in TEMPLATES.iterdir() if f.name.endswith(".html")
    )


def test_every_literal_key_has_both_languages() -> None:
    used = set(LITERAL.findall(_templates()))
    assert len(used) > 50
    missing = sorted(k for k in used if k not in WORDS)
    assert not missing, missing


@pytest.mark.parametrize("prefix", sorted(VALUES))
def test_every_built_key_has_both_languages(prefix: str) -> None:
    assert prefix in set(BUILT.findall(_templates()))
    missing = [prefix + v for v in VALUES[prefix] if prefix + v not in WORDS]
    assert not missing, missing


def test_no_word_is_empty_in_either_language() -> None:
    assert all(vi.strip() and en.strip() for vi, en in WORDS.values())


def test_every_built_prefix_is_known_here() -> None:
    assert set(BUILT.findall(_templates())) <= set(VALUES)

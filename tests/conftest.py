"""Shared test configuration. Tests import docgw as installed (scripts/test.sh installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The tests' throw-away SQLite files are made by the `docgw` processes they start; an operator's
# missing file is refused (DATABASE_NOT_FOUND; tests/integration/test_cli_operability.py).
# Kept by the tests that start docgw with an environment of their own (no other DOCGW_ variable).
os.environ["DOCGW_DATABASE__CREATE"] = "true"

REPO = Path(__file__).resolve().parents[1]
#: Real packages from the field, beside the repository (CI always has them; a fresh clone may not).
SAMPLES = REPO.parent / "shared" / "samples" / "real"


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"the real samples are not at {SAMPLES} (they live beside the repository)")
    return SAMPLES

"""Acceptance fixtures: one development PKI per session (CA + a certificate per test unit, made by
``gateway.keystore.init_keys`` as ``docgw keys init`` makes them). Shared helpers live in
``harness.py`` beside this file (pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import UNITS

from gateway.keystore import init_keys


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("acceptance-keys")
    init_keys(directory, list(UNITS))
    return directory

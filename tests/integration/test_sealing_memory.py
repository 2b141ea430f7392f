"""Sealing and opening a 100 MB package keep memory flat in the standard container, within the old
container's bound: ``benchmarks/bench_sealing.py`` run as a real process (a fresh child process per
figure), its figures checked. docs/performance.md records a run of the same script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sealing.py"
MIB = 1024 * 1024
#: Slack over the old container's figure: allocator wobble (runs differ by up to ~0.2 MB), below
#: one more 1 MiB chunk held at once (which a writer keeping its ciphertext alive did cost).
SLACK_KIB = 768


@pytest.mark.slow
def test_100_mb_seal_and_open_stay_within_the_old_containers_bound(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--size-mb", "100", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    by = {(f["op"], f["key"], f["container"]): f for f in figures}
    assert {key for _, key, _ in by} == {"rsa", "p256"}
    for (op, key, container), new in by.items():
        if container != "cms":
            continue
        old = by[(op, key, "dgwseal1")]
        assert new["size"] == 100 * MIB
        assert new["growth_kib"] <= old["growth_kib"] + SLACK_KIB, (op, key, new, old)
        assert new["growth_kib"] < 8 * 1024, (op, key, new)  # flat: nothing near 100 MB

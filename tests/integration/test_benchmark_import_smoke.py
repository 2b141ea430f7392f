"""The import benchmark still runs: ``benchmarks/bench_import.py --quick`` as a real process.

No figure is checked (the machine is shared and noisy; docs/performance.md holds the measured
ones): only that it imports every package it made and prints its table with the reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_import.py"


@pytest.mark.slow
def test_quick_import_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    title = "SUMMARY: docgw import beside the bare read+hash of the same packages"
    assert title in lines, result.stdout[-4000:]
    rows = ("| docgw import (SQLite", "| reference: read_package + SHA-256", "| ratio import")
    for row in rows:
        assert any(line.startswith(row) for line in lines), row
    imported = next(line for line in lines if line.startswith("| docgw import"))
    assert imported.split("|")[2].strip() == "300"

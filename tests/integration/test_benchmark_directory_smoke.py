"""The directory benchmark still runs: ``benchmarks/bench_directory.py --quick`` as a real
process (5,000 agencies from the axis simulator over loopback). No figure is checked (the machine
is shared and noisy; docs/performance.md holds the measured ones): only that it syncs fully,
then incrementally, and prints its table beside its reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_directory.py"


@pytest.mark.slow
def test_quick_directory_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
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
    assert "SUMMARY: directory sync beside a bare bulk insert of the same rows" in lines
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in lines if "| " in line}
    assert rows["full sync, a new registry"][0].strip() == "5000"
    assert rows["full sync, nothing changed"][0].strip() == "5000"
    assert "incremental sync, 1 % changed" in rows
    assert any(line.startswith("lookups by code: 5000") for line in lines)

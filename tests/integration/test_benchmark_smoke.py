"""The envelope benchmark still runs: ``benchmarks/bench_envelopes.py --quick`` as a real process.

No figure is checked (the machine is shared and noisy; docs/performance.md holds the measured
ones): only that the script exits cleanly and prints its summary table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_envelopes.py"
TABLE_TITLE = "SUMMARY: figures beside their targets (one core)"
TABLE_HEADER = "| measurement"


@pytest.mark.slow
def test_quick_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert TABLE_TITLE in lines, result.stdout[-4000:]
    header = lines[lines.index(TABLE_TITLE) + 1]
    assert header.startswith(TABLE_HEADER), header
    for column in ("figure", "target", "result"):
        assert column in header
    # Every section ran: raw RSA, the rates, memory in children, signxml in children.
    rows = ("raw RSA-2048 sign", "read+verify, 2 KB header, 10 MB", "peak RSS growth", "signxml")
    for row in rows:
        assert any(line.startswith(f"| {row}") for line in lines), row

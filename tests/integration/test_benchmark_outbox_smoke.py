"""The outbox and exchange benchmarks still run: ``benchmarks/bench_outbox.py --quick`` and
``benchmarks/bench_exchange.py --quick``, each as a real process.

No figure is checked (the machine is shared and noisy; docs/performance.md holds the measured
ones): only that each script exits cleanly and prints its summary table. Without a PostgreSQL
server the scripts say so in their table and still exit 0.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TABLE_HEADER = "| measurement"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "title", "row"),
    [
        (
            "bench_outbox.py",
            "SUMMARY: outbox figures beside their targets (in-process, fake connector)",
            "| sqlite: submit + deliver at once",
        ),
        (
            "bench_exchange.py",
            "SUMMARY: exchange A → axis → B → 01 at A beside the bare pipeline of the same rounds",
            "| round 1: sqlite: A → axis → B verified → 01 at A",
        ),
    ],
    ids=["outbox", "exchange"],
)
def test_quick_benchmark_runs_and_prints_its_table(
    script: str, title: str, row: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert title in lines, result.stdout[-4000:]
    header = lines[lines.index(title) + 1]
    assert header.startswith(TABLE_HEADER), header
    for column in ("figure", "target", "result"):
        assert column in header
    assert any(line.startswith(row) for line in lines), row

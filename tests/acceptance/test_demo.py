"""``docgw demo``, the README's main job, run as a user runs it: the installed command in its own
process, with the axis simulator and four gateways inside it, on loopback only.

The story is checked through what it prints (the summary lines are its contract with the reader);
a second test stops a running demo with Ctrl-C, as a user does, and wants a clean exit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# Each run starts five servers and waits for the scheduler's one-second polls: about 7 s.
pytestmark = pytest.mark.slow

DOCGW = Path(sys.executable).parent / "docgw"
RUNNING = "Running. Press Ctrl-C to stop."


def test_the_demo_exchanges_documents_and_exits_with_once() -> None:
    result = subprocess.run(
        [str(DOCGW), "demo", "--once"], capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    summary = result.stdout.split("── Summary", 1)[-1]
    # A → B unclassified over the axis, registered by B (03).
    assert re.search(r"A → B .*VPCP-TTĐT .*sent via axis, business status 03", summary), summary
    # B's reply, with its ResponseFor, back to A, which answered 01.
    assert re.search(r"B → A .*reply to .*VPCP-TTĐT .*business status 01", summary), summary
    # C → D classified, over the secure channel only.
    assert re.search(r"C → D .* mat .*delivered over the secure channel", summary), summary
    # A → B classified: A has no secure channel, so held, never sent to the axis.
    assert re.search(
        r"A → B .* mat .*held: mat needs a secure channel; this gateway has none", summary
    ), summary
    assert re.search(r"request bodies mentioning .*VPCP-M: 0", result.stdout)
    assert "/_sim/state" in result.stdout and "queue list" in result.stdout
    # Each gateway's console, with a login that works there.
    assert (
        len(re.findall(r"console http://\S+/console/ +login admin-\d{6} / \S{12,}", result.stdout))
        == 4
    )
    assert result.stdout.rstrip().endswith("stopped cleanly.")
    # The temporary folder is removed on the way out.
    folder = re.search(r"Folder: (\S+)", result.stdout)
    assert folder is not None and not Path(folder.group(1)).exists()


def test_ctrl_c_stops_a_running_demo_cleanly(tmp_path: Path) -> None:
    seen: list[str] = []
    with subprocess.Popen(
        [str(DOCGW), "demo", "--dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = process.stdout
        reader = threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in stdout])
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while not seen or seen[-1] != RUNNING:
                remaining = deadline - time.monotonic()
                assert remaining > 0 and process.poll() is None, "\n".join(seen)[-4000:]
                with contextlib.suppress(queue.Empty):
                    seen.append(lines.get(timeout=min(remaining, 1.0)))
            process.send_signal(signal.SIGINT)
            started = time.monotonic()
            returncode = process.wait(timeout=30)
            stopping = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(5)
        stderr = process.stderr.read()
    while not lines.empty():
        seen.append(lines.get())
    assert returncode == 0, stderr[-4000:]
    assert stopping < 10, f"took {stopping:.1f}s to stop"
    assert "Traceback" not in stderr and "Traceback" not in "\n".join(seen)
    assert seen[-1] == "stopped cleanly.", seen[-5:]
    # --dir keeps the configuration, so `docgw --config DIR/A/docgw.toml …` works afterwards.
    assert (tmp_path / "demo" / "A" / "docgw.toml").is_file()


def test_ctrl_c_while_the_demo_starts_ends_quietly(tmp_path: Path) -> None:
    """Ctrl-C at any moment of the start — while Python still imports docgw (a second or more on
    a slow machine), while the servers come up — ends without a traceback: 130 and ``error:
    INTERRUPTED`` when it came before the demo could stop itself, 0 and "stopped cleanly." after;
    the temporary folder is removed either way."""
    for delay in (0.2, 0.6, 1.2, 2.0):
        process = subprocess.Popen(
            [str(DOCGW), "demo"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        assert "Traceback" not in stdout + stderr, (delay, (stdout + stderr)[-3000:])
        assert process.returncode in (0, 130), (delay, process.returncode, stderr[-3000:])
        if process.returncode == 130:
            assert stderr.strip().endswith("error: INTERRUPTED"), stderr[-3000:]
        else:
            assert stdout.rstrip().endswith("stopped cleanly."), stdout[-3000:]
    assert list(tmp_path.glob("docgw-demo-*")) == []

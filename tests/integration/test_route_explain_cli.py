"""``docgw route explain --meta META.json`` as an operator runs it: the real console script in a
process of its own, a configuration file, a SQLite database, units registered with ``docgw units
add``. It says, per recipient, the channel (or HELD) and why — and stores and sends nothing: the
axis channel is an ``http_push`` to a loopback listener that records every request it gets."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "new-document.json"
DOCGW = Path(sys.executable).parent / "docgw"
SENDER, RECIPIENT, OTHER = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14"
UNREGISTERED = "000.00.00.H13"


def docgw(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    }
    return subprocess.run(
        [str(DOCGW), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records the path of every request it gets (answers 500)."""
    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            self.send_error(500)

        do_GET = do_PUT = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/inbox", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def gateway_dir(tmp_path: Path, listener: tuple[str, list[str]]) -> Path:
    """A gateway for SENDER with an axis channel (to the listener) and a secure channel; RECIPIENT
    reachable through the axis only, OTHER also at a registered secure endpoint."""
    keys = tmp_path / "keys"
    made = docgw("keys", "init", "--dir", keys, "--unit", SENDER, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (tmp_path / "docgw.toml").write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "docgw.db"}"\ncreate = true\n'
        f'[gateway]\nlocal_units = ["{SENDER}"]\n'
        f'[keys]\ndir = "{keys}"\n'
        f'[channels.axis]\nkind = "http_push"\naxis = true\nendpoint = "{listener[0]}"\n'
        'token = "t"\n'
        '[channels.secure]\nkind = "secure"\n',
        encoding="utf-8",
    )
    for code, extra in (
        (RECIPIENT, ()),
        (OTHER, ("--secure-endpoint", "https://127.0.0.1:9/inbox")),
    ):
        added = docgw(
            "--config", "docgw.toml", "units", "add", code, "--name", f"Đơn vị {code}",
            "--channel", "axis", *extra, cwd=tmp_path,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    return tmp_path


def write_meta(directory: Path, classification: str, to: tuple[str, ...]) -> Path:
    meta = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    meta["classification"] = classification
    meta["to"] = [{"organ_id": code, "organ_name": f"Đơn vị {code}"} for code in to]
    path = directory / f"{classification}.json"
    path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return path


def stored(directory: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(directory / "docgw.db")) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("messages", "recipients", "attempts", "blobs", "audit_events")
        }


def explain(directory: Path, meta: Path) -> dict[str, str]:
    """recipient → the rest of its line, from ``docgw route explain``."""
    done = docgw("--config", "docgw.toml", "route", "explain", "--meta", meta, cwd=directory)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.strip().splitlines()
    routes = dict(line.split(": ", 1) for line in lines)
    assert len(routes) == len(lines), done.stdout
    return routes


def test_route_explain_says_where_and_why_and_stores_and_sends_nothing(
    gateway_dir: Path, listener: tuple[str, list[str]]
) -> None:
    before = stored(gateway_dir)
    assert before["messages"] == 0

    unclassified = explain(gateway_dir, write_meta(gateway_dir, "thuong", (RECIPIENT, OTHER)))
    assert unclassified == {
        RECIPIENT: "axis — unclassified → axis",
        OTHER: "axis — unclassified → axis",
    }

    classified = explain(gateway_dir, write_meta(gateway_dir, "mat", (RECIPIENT, OTHER)))
    assert classified[RECIPIENT].startswith("HELD — ")
    assert "secure endpoint" in classified[RECIPIENT] and RECIPIENT in classified[RECIPIENT]
    assert classified[OTHER].startswith("secure — ") and "mat" in classified[OTHER]

    top_secret = explain(gateway_dir, write_meta(gateway_dir, "tuyet_mat", (OTHER,)))
    assert top_secret[OTHER].startswith("HELD — ")
    assert "tuyet_mat is not explicitly allowed" in top_secret[OTHER]

    assert stored(gateway_dir) == before
    assert listener[1] == []
    listed = docgw("--config", "docgw.toml", "queue", "list", cwd=gateway_dir)
    assert listed.returncode == 0 and listed.stdout.strip().endswith("no messages"), listed


def test_route_explain_of_an_unregistered_recipient_is_one_clear_error(
    gateway_dir: Path, listener: tuple[str, list[str]]
) -> None:
    before = stored(gateway_dir)
    meta = write_meta(gateway_dir, "thuong", (RECIPIENT, UNREGISTERED))
    done = docgw("--config", "docgw.toml", "route", "explain", "--meta", meta, cwd=gateway_dir)
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: UNKNOWN_UNIT: ") and UNREGISTERED in line
    assert stored(gateway_dir) == before and listener[1] == []

"""``docgw send --idempotency-key`` as an operator runs it: a real process, a gateway made by
``docgw init`` (SQLite). The key's rule is the API's: the same document again is the first
message ("already accepted"); another document with the key is refused, IDEMPOTENCY_KEY_REUSED,
and nothing is stored (it used to print "already accepted" and silently drop the document)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "new-document.json"
DOCGW = Path(sys.executable).parent / "docgw"


def docgw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def accepted_id(result: subprocess.CompletedProcess[str], verb: str) -> str:
    assert result.returncode == 0, result.stderr
    match = re.match(rf"{re.escape(verb)}: (\S+) ", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_send_with_a_key_takes_the_same_document_again_and_refuses_another(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    assert docgw("init", "--dir", home).returncode == 0
    config = home / "docgw.toml"
    text = tmp_path / "van-ban.txt"
    text.write_text("Nội dung văn bản", encoding="utf-8")
    other_text = tmp_path / "van-ban-khac.txt"
    other_text.write_text("Một văn bản khác", encoding="utf-8")
    other_meta = tmp_path / "other.json"
    meta = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    meta["subject"] = "Một văn bản khác"
    other_meta.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    def send(meta: Path, attachment: Path) -> subprocess.CompletedProcess[str]:
        return docgw(
            "--config", config, "send", "--meta", meta, "--attach", attachment,
            "--idempotency-key", "vb-0001",
        )  # fmt: skip

    def listed() -> list[str]:
        done = docgw("--config", config, "queue", "list")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()

    first = accepted_id(send(EXAMPLE, text), "accepted")
    before = listed()
    for meta_file, attachment in ((EXAMPLE, other_text), (other_meta, text)):
        refused = send(meta_file, attachment)
        assert refused.returncode == 1, refused
        assert "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith("error: IDEMPOTENCY_KEY_REUSED: "), refused.stderr
        assert first in line
        assert refused.stdout == ""
        assert listed() == before  # nothing stored
    again = send(EXAMPLE, text)
    assert accepted_id(again, "already accepted (same idempotency key)") == first
    assert listed() == before

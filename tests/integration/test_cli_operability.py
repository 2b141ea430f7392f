"""Issue 15, "settings that cannot fool the operator" and "a CLI that matches the API", as an
operator meets them: the ``docgw`` console script as a real process, on a gateway made by
``docgw init`` (its SQLite file), and the same commands on PostgreSQL.

Every refusal is one line ``error: CODE: …`` on stderr, exit 1, never a traceback."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "new-document.json"
ATTACHMENT = REPO / "examples" / "van-ban.txt"
DOCGW = Path(sys.executable).parent / "docgw"
SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"


def run(
    *args: str | Path, env: dict[str, str] | None = None, create: bool = True
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(env or {})}
    if not create:  # as an operator runs it: a missing database file is not made
        environ.pop("DOCGW_DATABASE__CREATE", None)
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, timeout=120, env=environ
    )


def refused(result: subprocess.CompletedProcess[str], code: str, element: str = "") -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {code}: "), line
    assert element in line, line
    return line


class Home:
    """A gateway made by ``docgw init``; on PostgreSQL its commands use a fresh database there
    (``DOCGW_DATABASE__URL``), with the same two units registered through the CLI."""

    def __init__(self, path: Path, url: str | None) -> None:
        self.path = path
        self.config = path / "docgw.toml"
        self.env = {"DOCGW_DATABASE__URL": url} if url else {}

    def __call__(self, *args: str | Path, as_operator: bool = True) -> Any:
        return run("--config", self.config, *args, env=self.env, create=not as_operator)

    def ok(self, *args: str | Path) -> str:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def send(self, **changes: object) -> str:
        meta = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        number = len(list(self.path.glob("meta-*")))
        meta["code"] = {"number": str(7816 + number), "notation": "VPCP-TTĐT"}
        meta.update(changes)
        path = self.path / f"meta-{number}.json"
        path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        result = self("send", "--meta", path, "--attach", ATTACHMENT)
        assert result.returncode == 0, result.stderr
        match = re.match(r"accepted: (\S+) ", result.stdout)
        assert match, result.stdout
        return match.group(1)


@pytest.fixture
def home(databases: Callable[[], str], tmp_path: Path) -> Iterator[Home]:
    path = tmp_path / "home"
    assert run("init", "--dir", path, create=False).returncode == 0
    url = databases()
    gateway = Home(path, None if url.startswith("sqlite") else url)
    if gateway.env:
        keys = path / "keys"
        for code in (SENDER, RECIPIENT):
            gateway.ok(
                "units", "add", code, "--name", f"Đơn vị {code}", "--channel", "axis",
                "--cert", keys / f"{code}.cert.pem",
            )  # fmt: skip
    yield gateway


# ----------------------------------------------------------------- settings that cannot fool


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("init", "--dir", home, create=False).returncode == 0
    config = home / "docgw.toml"
    typo = tmp_path / "docgw-typo.db"
    env = {"DOCGW_DATABASE__URL": f"sqlite+aiosqlite:///{typo}"}
    for command in (("queue", "list"), ("units", "list"), ("tokens", "list")):
        line = refused(run("--config", config, *command, env=env, create=False),
                       "DATABASE_NOT_FOUND", "[database.url]")  # fmt: skip
        assert str(typo) in line
    assert not typo.exists()
    # The file init made is there: the same commands work on it.
    listed = run("--config", config, "queue", "list", create=False)
    assert listed.returncode == 0, listed.stderr
    assert "no messages" in listed.stdout


def test_a_drop_folder_root_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("init", "--dir", home, create=False).returncode == 0
    config = home / "docgw.toml"
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x", encoding="utf-8")
    for root, _ in ((a_file, "is not a directory"), (tmp_path / "typo" / "dms", "does not")):
        config.write_text(
            config.read_text(encoding="utf-8").split("[channels.dms]")[0]
            + f'[channels.dms]\nkind = "drop_folder"\nroot = "{root}"\n',
            encoding="utf-8",
        )
        line = refused(run("--config", config, "route", "explain", "--meta", EXAMPLE),
                       "DROP_FOLDER_ROOT_INVALID", "[channels.dms.root]")  # fmt: skip
        assert str(root) in line
    assert not (tmp_path / "typo").exists()


def test_a_unit_on_a_channel_that_does_not_exist_is_refused(home: Home) -> None:
    line = refused(home("units", "add", RECIPIENT, "--channel", "axsi"),
                   "UNKNOWN_CHANNEL", "[channel]")  # fmt: skip
    assert "axsi" in line and "axis" in line
    csv = home.path / "units.csv"
    csv.write_text(f"code,name,channel\n{RECIPIENT},Nghệ An,nowhere\n", encoding="utf-8")
    refused(home("units", "import", csv), "UNKNOWN_CHANNEL", "[channel]")
    shown = json.loads(home.ok("units", "show", RECIPIENT))
    assert shown["unit"]["channel"] == "axis"  # nothing changed
    home.ok("units", "add", RECIPIENT, "--channel", "axis")


def test_a_member_token_needs_a_valid_code_hosted_here(home: Home) -> None:
    refused(home("tokens", "create", "--role", "member", "--name", "m1", "--unit", "G22/x y"),
            "MEMBER_UNIT_INVALID", "[unit]")  # fmt: skip
    refused(home("tokens", "create", "--role", "member", "--name", "m2", "--unit",
                 "000.00.00.H14"), "MEMBER_UNIT_NOT_HOSTED", "[unit]")  # fmt: skip
    home.ok("tokens", "create", "--role", "member", "--name", "nghe-an", "--unit", RECIPIENT)
    home.ok("tokens", "create", "--role", "operator", "--name", "ops", "--as", "an.nv")
    home.ok("tokens", "create", "--role", "operator", "--name", "tam", "--expires-days", "2")
    home.ok("tokens", "revoke", "ops")
    listed = home.ok("tokens", "list", "--utc")
    [member] = [line for line in listed.splitlines() if line.startswith("nghe-an")]
    assert RECIPIENT in member and "active" in member and "expires never" in member
    [ops] = [line for line in listed.splitlines() if line.startswith("ops ")]
    assert re.search(r"revoked \d{4}-\d\d-\d\d \d\d:\d\dZ", ops), ops
    [temporary] = [line for line in listed.splitlines() if line.startswith("tam ")]
    assert re.search(r"expires \d{4}-\d\d-\d\d \d\d:\d\dZ", temporary), temporary
    assert "None" not in listed and "dgw_" not in listed
    refused(home("tokens", "revoke", "ops"), "GATEWAY_ERROR", "[name]")


# ------------------------------------------------------------------- a CLI that matches the API


def test_queue_list_takes_the_apis_filters_and_refuses_what_the_api_refuses(home: Home) -> None:
    first = home.send(subject="V/v kết nối liên thông văn bản")
    second = home.send(subject="Báo cáo tình hình " + "rất dài " * 10)
    # A filter value that does not exist is an error (the API's 400), not "no messages".
    for option, value in (("--state", "faild"), ("--kind", "paper"), ("--direction", "up"),
                          ("--classification", "secret"), ("--from", "23/11/2026")):  # fmt: skip
        refused(home("queue", "list", option, value), "BAD_REQUEST", f"[{option[2:]}]")
    refused(home("queue", "list", "--limit", "0"), "BAD_REQUEST", "[limit]")

    listed = home.ok("queue", "list").splitlines()
    assert [line.split()[0] for line in listed] == [second, first]
    assert "V/v kết nối liên thông văn bản" in listed[1]  # the subject column
    assert "Báo cáo tình hình rất dài" in listed[0] and "…" in listed[0]  # cut, not wrapped
    assert "None" not in "\n".join(listed)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d\+07", listed[0])  # Vietnam time
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\dZ", home.ok("queue", "list", "--utc"))

    assert home.ok("queue", "list", "--text", "liên thông").split()[0] == first
    assert home.ok("queue", "list", "--kind", "document", "--state", "queued").count("\n") == 2
    assert "no messages" in home.ok("queue", "list", "--kind", "status")
    assert "no messages" in home.ok("queue", "list", "--from", "2100-01-01")
    assert home.ok("queue", "list", "--to", "2100-01-01").count("\n") == 2

    # Paging: one page and a hint on stderr; --all every page.
    page = home("queue", "list", "--limit", "1")
    assert page.returncode == 0 and page.stdout.split()[0] == second
    assert "--all" in page.stderr and "more" in page.stderr
    everything = home("queue", "list", "--limit", "1", "--all")
    assert [line.split()[0] for line in everything.stdout.splitlines()] == [second, first]
    assert everything.stderr == ""
    shaped = json.loads(home.ok("queue", "list", "--limit", "1", "--json"))
    assert shaped["more"] is True and shaped["items"][0]["id"] == second
    assert set(shaped["items"][0]) >= {"id", "state", "subject", "recipients", "kind"}


def test_a_classified_subject_is_never_printed(home: Home) -> None:
    secret = "Kế hoạch MẬT số 7"
    message = home.send(subject=secret, classification="mat")
    for command in (("queue", "list"), ("queue", "show", message), ("queue", "list", "--json")):
        out = home.ok(*command)
        assert secret not in out and "Kế hoạch" not in out
    assert "(mật — classified)" in home.ok("queue", "list")


def test_operator_actions_record_who_acted(home: Home) -> None:
    message = home.send()
    refused(home("queue", "cancel", message, "--reason", "nhầm", "--recipient", "000.00.00.H14"),
            "CONFLICT")  # fmt: skip
    assert "cancelled: " in home.ok(
        "queue", "cancel", message, "--reason", "gửi nhầm", "--recipient", RECIPIENT,
        "--as", "tran.thi.b",
    )  # fmt: skip
    refused(home("queue", "reroute", message, "--channel", "nowhere", "--reason", "x"),
            "UNKNOWN_UNIT", "[channel]")  # fmt: skip
    other = home.send(subject="Văn bản thứ hai")
    home.ok("queue", "cancel", other, "--reason", "thử")
    timeline = home.ok("queue", "show", message)
    assert "tran.thi.b: cancelled" in timeline or "tran.thi.b:" in timeline, timeline
    assert f"cli:{getpass.getuser()}:" in home.ok("queue", "show", other)
    assert "None" not in timeline


def test_status_replies_take_the_apis_codes(home: Home) -> None:
    message = home.send()
    refused(home("queue", "reply", message, "01"), "STATUS_CODE_INVALID", "[code]")
    refused(home("queue", "reply", message, "99"), "STATUS_CODE_INVALID", "[code]")
    # 13 (the sender's) on a sent document; 02 on it is the receiver's, a conflict.
    refused(home("queue", "reply", message, "13"), "REASON_REQUIRED")
    done = home("queue", "reply", message, "13", "--description", "Thu hồi", "--as", "vt")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("status 13 queued: ")


def test_send_warns_that_no_worker_is_alive(home: Home) -> None:
    result = home("send", "--meta", EXAMPLE, "--attach", ATTACHMENT)
    assert result.returncode == 0, result.stderr
    assert "no worker is alive" in result.stderr and "docgw serve" in result.stderr


def test_a_closed_pipe_ends_quietly(home: Home) -> None:
    for _ in range(3):
        home.send()
    env = {**os.environ, **home.env}
    piped = subprocess.run(
        f"'{DOCGW}' --config '{home.config}' queue list --limit 200 | head -c 1",
        shell=True, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr
    assert "IO_ERROR" not in piped.stderr


def test_commands_that_use_no_channel_start_without_channel_secrets_or_tls_files(
    home: Home,
) -> None:
    """A host that holds no axis secret and no TLS client files still lists the queue, the units
    and the tokens; a command that needs the channel names the secret it lacks."""
    missing = home.path / "absent"
    with home.config.open("a", encoding="utf-8") as config:
        config.write(
            '\n[channels.vxp]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9/"\n'
            'system_id = "docgw"\n'
            '[channels.lan]\nkind = "secure"\nendpoint = "https://127.0.0.1:9/"\n'
            f'cert_file = "{missing}/c.pem"\nkey_file = "{missing}/k.pem"\n'
            f'ca_file = "{missing}/ca.pem"\n'
        )
    for command in (("queue", "list"), ("units", "list"), ("tokens", "list"),
                    ("units", "add", RECIPIENT, "--channel", "vxp"),
                    ("units", "add", RECIPIENT, "--channel", "axis")):  # fmt: skip
        done = home(*command)
        assert done.returncode == 0, (command, done.stderr)
    refused(home("units", "add", RECIPIENT, "--channel", "vxpp"), "UNKNOWN_CHANNEL")
    line = refused(home("send", "--meta", EXAMPLE, "--attach", ATTACHMENT), "CONFIG_INVALID")
    assert "channels.vxp.secret" in line
    assert "(not loaded" not in line

"""A gateway with ``profile = "secure"`` (the classified side) refuses to start with any axis
channel — whatever makes the channel an axis: its kind (``vxp``, ``soap``) or ``axis = true`` on
another kind — and whether the profile comes from the file or the environment. ``docgw serve`` runs
as a real process; the refusal is one ``CONFIG_INVALID`` line naming the channel, before the
database is created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCGW = Path(sys.executable).parent / "docgw"

AXES = {
    "vxp": 'kind = "vxp"\nendpoint = "http://127.0.0.1:9"\nsystem_id = "x"\nsecret = "s"\n',
    "soap": 'kind = "soap"\nendpoint = "http://127.0.0.1:9/DocumentService"\n',
    "soap_flagged": 'kind = "soap"\nendpoint = "http://127.0.0.1:9/ds"\naxis = true\n',
    "fake_axis": 'kind = "fake"\naxis = true\n',
    "http_push_axis": (
        'kind = "http_push"\nendpoint = "http://127.0.0.1:9/inbox"\ntoken = "t"\naxis = true\n'
    ),
}


def serve(config: Path, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    }
    return subprocess.run(
        [str(DOCGW), "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, **(environ or {})},
        cwd=config.parent,
    )


def write(tmp_path: Path, channel: str, *, profile: str | None) -> Path:
    config = tmp_path / "docgw.toml"
    gateway = f'profile = "{profile}"\n' if profile else ""
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "docgw.db"}"\n'
        f'[gateway]\n{gateway}local_units = ["000.00.00.H41"]\n'
        '[channels.secure]\nkind = "secure"\n'
        f"[channels.truc]\n{channel}",
        encoding="utf-8",
    )
    return config


def assert_refused(done: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: CONFIG_INVALID: "), line
    assert 'profile = "secure"' in line and line.endswith("[channels.truc]"), line
    assert not (tmp_path / "docgw.db").exists()  # refused before anything was created


@pytest.mark.parametrize("axis", sorted(AXES))
def test_a_secure_profile_with_an_axis_channel_of_any_kind_refuses_to_start(
    tmp_path: Path, axis: str
) -> None:
    assert_refused(serve(write(tmp_path, AXES[axis], profile="secure")), tmp_path)


@pytest.mark.parametrize("axis", ["soap", "fake_axis"])
def test_the_profile_from_the_environment_is_held_to_the_same_rule(
    tmp_path: Path, axis: str
) -> None:
    config = write(tmp_path, AXES[axis], profile=None)
    assert_refused(serve(config, {"DOCGW_GATEWAY__PROFILE": "secure"}), tmp_path)


def test_the_same_channel_without_axis_is_accepted_by_the_check(tmp_path: Path) -> None:
    """The control: a fake channel that is not an axis passes the profile check (``docgw queue
    list`` builds the gateway from the same checked configuration, and exits)."""
    config = write(tmp_path, 'kind = "fake"\n', profile="secure")
    # A throw-away database: made on first use (an operator's missing file is refused).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCGW_") or k == "DOCGW_DATABASE__CREATE"
    }
    env["DOCGW_DATABASE__CREATE"] = "true"

    def docgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DOCGW), *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
        )

    keys = docgw("keys", "init", "--dir", "keys", "--unit", "000.00.00.H41")
    assert keys.returncode == 0, keys.stderr
    done = docgw("--config", str(config), "queue", "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("no messages")

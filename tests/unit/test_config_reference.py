"""``config.example.toml`` and ``docs/reference/config.md`` against the code: the example loads as
shipped, its commented-out keys and channel examples load once uncommented (with the secret from the
environment, as an operator sets it), the example names every setting ``gateway/settings.py``
declares, and config.md's settings tables are the ones generated from those declarations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway import settings_reference
from gateway.settings import (
    CHANNEL_KINDS,
    CHANNEL_MODELS,
    HttpPushChannel,
    RetrySettings,
    Settings,
    SettingsError,
    VxpChannel,
    load_settings,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"
REFERENCE = REPO / settings_reference.REFERENCE
#: Where the channel examples start in the example file.
CHANNELS_MARKER = "# Channels:"
COMMENTED_SETTING = re.compile(r"^# (\[[a-z_.]+\]|[a-z_]+ = )")


def setting_names() -> list[tuple[str, str]]:
    """(section, key) for every setting: ``channels.NAME`` for a channel's keys."""
    names: list[tuple[str, str]] = []
    for top, field in Settings.model_fields.items():
        if top in ("channels", "base_dir"):  # base_dir: the config file's folder, not a key
            continue
        section = field.annotation
        assert isinstance(section, type) and issubclass(section, BaseModel), top
        names += [(top, key) for key in section.model_fields]
    keys = {key for model in CHANNEL_MODELS for key in model.model_fields if key != "name"}
    names += [("channels.NAME", key) for key in sorted(keys)]
    return names


def uncommented(text: str) -> str:
    """The example with its commented-out tables and keys uncommented."""
    lines = [line[2:] if COMMENTED_SETTING.match(line) else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def test_the_example_loads_as_shipped() -> None:
    settings = load_settings(EXAMPLE, {})
    assert settings.gateway.profile == "standard"
    assert [c.name for c in settings.channels] == ["axis"]
    # What the example shows as defaults are the defaults.
    defaults = Settings()
    for name in ("database", "api", "keys", "delivery", "retry", "deadlines", "secure_inbox"):
        assert getattr(settings, name) == getattr(defaults, name), name


def test_every_commented_example_loads_with_the_secret_from_the_environment(
    tmp_path: Path,
) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(uncommented(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    settings = load_settings(
        config,
        {"DOCGW_CHANNELS__NATIONAL__SECRET": "bi-mat-thu", "DOCGW_CHANNELS__PEER__TOKEN": "the-o"},
    )
    assert sorted(c.kind for c in settings.channels) == sorted(CHANNEL_KINDS)
    national = settings.channel("national")
    assert national.secret == "bi-mat-thu" and national.system_id
    assert settings.channel("peer").retry == RetrySettings(max_attempts=20)
    assert settings.channel("peer").token == "the-o"
    assert settings.secure_inbox.client_ca_file == Path("keys/ca.cert.pem")


def test_the_example_carries_no_usable_secret(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(uncommented(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    assert "DOCGW_CHANNELS__NATIONAL__SECRET" in caught.value.message
    secrets = re.findall(r"^#? ?secret = (.*?)\s*(?:#.*)?$", EXAMPLE.read_text(), re.MULTILINE)
    assert secrets == ['""']


@pytest.mark.parametrize(("section", "key"), setting_names())
def test_every_setting_is_in_the_example(section: str, key: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    if section == "channels.NAME":
        text = text.partition(CHANNELS_MARKER)[2]
    else:
        table = rf"^\[{re.escape(section)}\][^\n]*\n(.*?)(?=^\n|^(# )?\[)"
        match = re.search(table, text, re.MULTILINE | re.DOTALL)
        assert match, f"no [{section}] table in {EXAMPLE.name}"
        text = match.group(1)
    assert re.search(rf"^(# )?{key} = ", text, re.MULTILINE) or (
        key == "retry" and "[channels.peer.retry]" in text
    ), f"{section}.{key} is not in {EXAMPLE.name}"


@pytest.mark.parametrize(("section", "key"), setting_names())
def test_every_setting_is_in_the_reference(section: str, key: str) -> None:
    assert f"`{section}.{key}`" in REFERENCE.read_text(encoding="utf-8")


def test_the_reference_names_every_channel_kind() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    [row] = [line for line in text.splitlines() if line.startswith("| `channels.NAME.kind`")]
    assert all(f"`{kind}`" in row for kind in CHANNEL_KINDS)
    assert all(f"\n`{kind}`: " in text for kind in CHANNEL_KINDS)  # a table of its own keys


def test_the_settings_tables_are_generated_from_the_declarations() -> None:
    """Fails when a setting is added, removed or re-documented in gateway/settings.py without
    running ``python -m gateway.settings_reference``."""
    current = REFERENCE.read_text(encoding="utf-8")
    assert settings_reference.rewritten(current) == current
    assert settings_reference.main(["--check", "--file", str(REFERENCE)]) == 0


def test_the_generated_tables_follow_the_declarations() -> None:
    text = settings_reference.tables()
    assert "| `database.pool_size` | 20 | PostgreSQL connections kept open per process" in text
    assert "| `api.max_upload_bytes` | 512 MiB (536870912) |" in text
    assert "| `channels.NAME.secret` | — (required, no default) | the shared secret" in text
    assert '| `reports.smtp_password` | "" (no default) |' in text
    stale = settings_reference.rewritten(REFERENCE.read_text().replace("| 8443 |", "| 8444 |"))
    assert "| `secure_inbox.port` | 8443 |" in stale


def test_no_setting_of_a_secret_has_a_default() -> None:
    for model, key in ((VxpChannel, "secret"), (HttpPushChannel, "token")):
        assert model.model_fields[key].is_required(), key
        assert model.model_fields[key].repr is False, key
    vxp = VxpChannel(name="x", endpoint="http://x", system_id="s", secret="bi-mat")
    assert "bi-mat" not in repr(vxp)
    assert "bi-mat" not in repr(HttpPushChannel(name="x", endpoint="http://x", token="bi-mat"))

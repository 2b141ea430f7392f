"""Environment overrides (``DOCGW_SECTION__KEY=value``) as an operator sets them: a value is read
as the setting's type wants it, so a text setting (a secret, a URL, a system id) or a path is never
refused for looking like a number, a boolean or a date."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import SettingsError, load_settings

VXP = (
    '[channels.axis]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9"\nsystem_id = "docgw-vpcp"\n'
    '[channels.dms]\nkind = "drop_folder"\nroot = "dms"\n'
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "docgw.toml"
    path.write_text(VXP, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "secret", ["12345678", "0012", "true", "1e3", "inf", "2026-09-02", "07:30:00", "[1, 2]", "-5"]
)
def test_a_secret_that_toml_reads_as_another_type_stays_the_text_given(
    config: Path, secret: str
) -> None:
    settings = load_settings(config, {"DOCGW_CHANNELS__AXIS__SECRET": secret})
    assert settings.channel("axis").secret == secret


def test_other_text_settings_take_the_value_as_written(config: Path) -> None:
    settings = load_settings(
        config,
        {
            "DOCGW_CHANNELS__AXIS__SECRET": "s",
            "DOCGW_CHANNELS__AXIS__SYSTEM_ID": "2024",
            "DOCGW_API__HOST": "false",
            "DOCGW_DEADLINES__WORKDAY_START": "08:00",  # not TOML: stays text either way
        },
    )
    assert settings.channel("axis").system_id == "2024"
    assert settings.api.host == "false"
    assert settings.deadlines.workday_start == "08:00"


def test_a_text_setting_keeps_quotes_and_backslashes_as_written(config: Path) -> None:
    settings = load_settings(
        config,
        {
            "DOCGW_CHANNELS__AXIS__SECRET": '"bi\\tmat"',
            "DOCGW_DATABASE__URL": "postgresql+asyncpg://docgw@127.0.0.1/docgw",
        },
    )
    assert settings.channel("axis").secret == '"bi\\tmat"'  # a secret is taken verbatim
    assert settings.database.url == "postgresql+asyncpg://docgw@127.0.0.1/docgw"


def test_path_settings_take_the_value_as_written(config: Path) -> None:
    settings = load_settings(
        config,
        {
            "DOCGW_CHANNELS__AXIS__SECRET": "s",
            "DOCGW_KEYS__DIR": "2026",
            "DOCGW_CHANNELS__DMS__ROOT": "123",
            "DOCGW_SECURE_INBOX__CERT_FILE": "1.5",
        },
    )
    assert settings.keys.dir == Path("2026")
    assert settings.channel("dms").root == Path("123")
    assert settings.secure_inbox.cert_file == Path("1.5")


def test_numbers_booleans_and_lists_keep_their_types(config: Path) -> None:
    settings = load_settings(
        config,
        {
            "DOCGW_CHANNELS__AXIS__SECRET": "s",
            "DOCGW_DELIVERY__WORKERS": "4",
            "DOCGW_RETRY__JITTER": "1",
            "DOCGW_DATABASE__ECHO": "true",
            "DOCGW_SECURE_INBOX__ENABLED": "true",
            "DOCGW_GATEWAY__LOCAL_UNITS": '["000.00.00.G22", "000.00.00.H41"]',
            "DOCGW_CHANNELS__AXIS__POLL_SECONDS": "0.25",
            "DOCGW_CHANNELS__AXIS__RETRY__MAX_ATTEMPTS": "3",
        },
    )
    assert settings.delivery.workers == 4
    assert settings.retry.jitter == 1.0 and isinstance(settings.retry.jitter, float)
    assert settings.database.echo is True and settings.secure_inbox.enabled is True
    assert settings.gateway.local_units == ("000.00.00.G22", "000.00.00.H41")
    axis = settings.channel("axis")
    assert axis.poll_seconds == 0.25
    assert axis.retry is not None and axis.retry.max_attempts == 3


def test_an_override_wins_over_the_file_and_may_add_a_channel(config: Path) -> None:
    # In the axis' own table: a drop folder has no secret (each kind takes only its own keys).
    in_file = VXP.replace("[channels.dms]", 'secret = "tu-file"\n[channels.dms]')
    config.write_text(in_file, encoding="utf-8")
    settings = load_settings(
        config,
        {"DOCGW_CHANNELS__AXIS__SECRET": "tu-moi-truong", "DOCGW_CHANNELS__LAB__KIND": "fake"},
    )
    assert settings.channel("axis").secret == "tu-moi-truong"
    assert settings.channel("lab").kind == "fake"


@pytest.mark.parametrize(
    ("name", "value", "element", "says"),
    [
        ("DOCGW_DELIVERY__WORKERS", "many", "delivery.workers", "must be int"),
        ("DOCGW_DATABASE__ECHO", "yes", "database.echo", "must be bool"),
        ("DOCGW_DELIVERY__NO_SUCH_KEY", "1", "delivery.no_such_key", "unknown setting"),
    ],
)
def test_a_bad_override_is_config_invalid_naming_the_key(
    config: Path, name: str, value: str, element: str, says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {"DOCGW_CHANNELS__AXIS__SECRET": "s", name: value})
    assert caught.value.code == "CONFIG_INVALID"
    assert caught.value.element == element and says in caught.value.message


def test_a_key_inside_a_plain_value_is_config_invalid_not_a_crash(config: Path) -> None:
    config.write_text(VXP + '[database]\nurl = "sqlite+aiosqlite:///x.db"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {"DOCGW_CHANNELS__AXIS__SECRET": "s", "DOCGW_DATABASE__URL__X": "1"})
    assert caught.value.element == "database.url"
    assert "DOCGW_DATABASE__URL__X" in caught.value.message


def test_an_empty_secret_is_still_missing(config: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {"DOCGW_CHANNELS__AXIS__SECRET": ""})
    assert "DOCGW_CHANNELS__AXIS__SECRET" in caught.value.message


def test_variables_without_the_prefix_are_ignored(config: Path) -> None:
    settings = load_settings(
        config, {"DOCGW_CHANNELS__AXIS__SECRET": "s", "DELIVERY__WORKERS": "9", "DOCGWX": "1"}
    )
    assert settings.delivery.workers == 2


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ("retry", "jitter = 2"),
        ("retry", "base_seconds = 0"),
        ("retry", "max_attempts = 0"),
        ("channels.dms.retry", "max_delay_seconds = 0.5\nbase_seconds = 1"),
    ],
)
def test_a_retry_policy_out_of_its_limits_is_config_invalid(
    config: Path, table: str, line: str
) -> None:
    config.write_text(config.read_text(encoding="utf-8") + f"[{table}]\n{line}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        load_settings(config, {"DOCGW_CHANNELS__AXIS__SECRET": "s"})
    assert refused.value.code == "CONFIG_INVALID"
    assert refused.value.element == table

"""Channel settings are a tagged union, one model per ``kind``, each with only its own keys; the
file's types are checked strictly; a refusal is ``CONFIG_INVALID`` naming the key as the file
writes it (``channels.NAME.key``), never pydantic's index or tag."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envelopes.errors import GatewayError
from gateway.settings import (
    CHANNEL_KINDS,
    DropFolderChannel,
    FakeChannel,
    HttpPushChannel,
    SecureChannel,
    Settings,
    SettingsError,
    SoapChannel,
    VxpChannel,
    load_settings,
)

CHANNELS = (
    '[channels.national]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9"\nsystem_id = "s"\n'
    '[channels.lgsp]\nkind = "soap"\nendpoint = "http://127.0.0.1:9/ds"\n'
    '[channels.peer]\nkind = "http_push"\nendpoint = "http://127.0.0.1:9/api/v1/inbox"\n'
    '[channels.mat]\nkind = "secure"\n'
    '[channels.dms]\nkind = "drop_folder"\nroot = "dms"\n'
    '[channels.lab]\nkind = "fake"\n'
)
SECRETS = {"DOCGW_CHANNELS__NATIONAL__SECRET": "s", "DOCGW_CHANNELS__PEER__TOKEN": "t"}


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "docgw.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, SECRETS if environ is None else environ)


def refused(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, text, environ)
    assert caught.value.code == "CONFIG_INVALID"
    return caught.value


def test_each_channel_is_the_model_of_its_kind(tmp_path: Path) -> None:
    settings = load(tmp_path, CHANNELS)
    models = {c.name: type(c) for c in settings.channels}
    assert models == {
        "national": VxpChannel,
        "lgsp": SoapChannel,
        "peer": HttpPushChannel,
        "mat": SecureChannel,
        "dms": DropFolderChannel,
        "lab": FakeChannel,
    }
    kinds = [c.kind for c in settings.channels]
    assert kinds == ["vxp", "soap", "http_push", "secure", "drop_folder", "fake"]
    assert settings.channel("dms").root == Path("dms")


@pytest.mark.parametrize(
    ("channel", "key"),
    [
        ("national", 'token = "t"'),  # http_push's
        ("lgsp", "sign_ready_packages = true"),  # drop_folder's
        ("peer", "poll_seconds = 5"),  # nothing is fetched from an inbox we push to
        ("mat", 'system_id = "s"'),
        ("dms", 'endpoint = "http://x"'),
        ("lab", 'root = "x"'),
    ],
)
def test_a_key_of_another_kind_is_refused_naming_it(tmp_path: Path, channel: str, key: str) -> None:
    text = CHANNELS.replace(f"[channels.{channel}]\n", f"[channels.{channel}]\n{key}\n")
    error = refused(tmp_path, text)
    assert error.element == f"channels.{channel}.{key.split(' ')[0]}"
    assert error.message == "unknown setting"


@pytest.mark.parametrize(
    ("environ", "element", "variable"),
    [
        ({"DOCGW_CHANNELS__PEER__TOKEN": "t"}, "channels.national.secret", "NATIONAL__SECRET"),
        ({"DOCGW_CHANNELS__NATIONAL__SECRET": "s"}, "channels.peer.token", "PEER__TOKEN"),
        (
            {"DOCGW_CHANNELS__NATIONAL__SECRET": "", "DOCGW_CHANNELS__PEER__TOKEN": "t"},
            "channels.national.secret",
            "NATIONAL__SECRET",
        ),
    ],
)
def test_a_missing_or_empty_secret_names_its_variable(
    tmp_path: Path, environ: dict[str, str], element: str, variable: str
) -> None:
    error = refused(tmp_path, CHANNELS, environ)
    assert error.element == element
    assert f"DOCGW_CHANNELS__{variable}" in error.message


@pytest.mark.parametrize(
    ("text", "element", "says"),
    [
        ('[channels.x]\nkind = "smoke"\n', "channels.x", "kind must be one of"),
        ("[channels.x]\naxis = true\n", "channels.x", "kind must be one of"),
        ('[channels]\nx = "vxp"\n', "channels.x", "must be a table"),
        ('channels = "x"\n', "channels", "must be a table of channels"),
        ('[api]\nport = "8080"\n', "api.port", "must be int"),
        ("[api]\nport = 80.5\n", "api.port", "must be int"),
        ("[delivery]\nlease_seconds = true\n", "delivery.lease_seconds", "must be float"),
        ('[gateway]\nlocal_units = "000.00.00.G22"\n', "gateway.local_units", "must be a list"),
        ('[gateway]\nprofile = "strict"\n', "gateway.profile", "must be standard or secure"),
        ("[keys]\ndir = 7\n", "keys.dir", "must be a path"),
        ("[database]\npool_size = 0\n", "database.pool_size", "must be at least 1"),
        ("[archive]\ntsa_timeout_seconds = 0\n", "archive.tsa_timeout_seconds", "more than 0"),
        ("[nope]\nx = 1\n", "nope", "unknown setting"),
        ('[channels.dms]\nkind = "drop_folder"\n', "channels.dms.root", "required"),
        ('[channels.a]\nkind = "vxp"\nendpoint = ""\n', "channels.a.endpoint", "required"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_key(
    tmp_path: Path, text: str, element: str, says: str
) -> None:
    error = refused(tmp_path, text, {})
    assert error.element == element
    assert says in error.message, error.message


def test_an_unknown_kind_names_every_kind(tmp_path: Path) -> None:
    error = refused(tmp_path, '[channels.x]\nkind = "smoke"\n', {})
    assert all(kind in error.message for kind in CHANNEL_KINDS)


def test_a_channel_added_from_the_environment_is_named_in_its_refusal(tmp_path: Path) -> None:
    environ = {**SECRETS, "DOCGW_CHANNELS__EXTRA__KIND": "drop_folder"}
    assert refused(tmp_path, CHANNELS, environ).element == "channels.extra.root"


def test_the_defaults_are_the_declared_ones() -> None:
    loaded = load_settings(None, {})
    assert loaded == Settings()
    assert loaded.channels == () and loaded.delivery.workers == 2


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load(tmp_path, CHANNELS)
    with pytest.raises(ValueError, match="frozen"):
        settings.delivery.workers = 9  # type: ignore[misc]


KEYS = (
    [
        f"{section.upper()}__{key.upper()}"
        for section, field in Settings.model_fields.items()
        if section not in ("channels", "base_dir")
        for key in field.annotation.model_fields  # type: ignore[union-attr]
    ]
    + [
        f"CHANNELS__X__{key.upper()}"
        for key in ("kind", "endpoint", "secret", "token", "root", "retry", "poll_seconds", "axis")
    ]
    + ["CHANNELS", "CHANNELS__X", "DATABASE", "NOPE__X", "API__PORT__X"]
)


@settings(max_examples=400, deadline=None)
@given(
    overrides=st.dictionaries(
        st.sampled_from(KEYS),
        st.text(max_size=12) | st.sampled_from(["1", "-1", "0.5", "true", "[1]", '["a"]', "{}"]),
        max_size=4,
    )
)
def test_any_override_is_config_invalid_naming_a_key_never_a_crash(
    overrides: dict[str, str],
) -> None:
    try:
        load_settings(None, {f"DOCGW_{name}": value for name, value in overrides.items()})
    except GatewayError as refused:  # CONFIG_INVALID, or UNIT_CODE_INVALID for a unit code
        assert refused.element

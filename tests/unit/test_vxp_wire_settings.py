"""A vxp channel speaks the official SDK's wire forms unless its settings name another form
(DOMAIN.md §5): the composition root hands the forms to the connector, and a value outside the
known forms stops the gateway at start, naming the key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from connectors.vxp import VxpConnector
from connectors.vxp_signing import HashFileForm, TimestampFormat
from gateway.bootstrap import _connector
from gateway.settings import SettingsError, load_settings

VXP = '[channels.axis]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9/vxp"\nsystem_id = "docgw"\n'
SECRET = {"DOCGW_CHANNELS__AXIS__SECRET": "bi-mat"}


def connector_for(tmp_path: Path, extra: str = "") -> VxpConnector:
    path = tmp_path / "docgw.toml"
    path.write_text(VXP + extra, encoding="utf-8")
    settings = load_settings(path, SECRET)

    async def made() -> VxpConnector:
        async with aiohttp.ClientSession() as http:
            connector = _connector(settings.channel("axis"), settings, http)
        assert isinstance(connector, VxpConnector)
        return connector

    return asyncio.run(made())


def test_the_defaults_are_the_official_sdks_forms(tmp_path: Path) -> None:
    connector = connector_for(tmp_path)
    assert connector.timestamp_format is TimestampFormat.SDK
    assert connector.hash_form is HashFileForm.SDK
    assert connector.delete_agency_param == "AgencyCode"


def test_the_other_forms_are_settings(tmp_path: Path) -> None:
    connector = connector_for(
        tmp_path,
        'timestamp_format = "epoch_millis"\nhash_form = "canonical"\n'
        'delete_agency_param = "code"\n',
    )
    assert connector.timestamp_format is TimestampFormat.EPOCH_MILLIS
    assert connector.hash_form is HashFileForm.CANONICAL
    assert connector.delete_agency_param == "code"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timestamp_format", "iso"),
        ("hash_form", "base64"),
        ("delete_agency_param", "agencycode"),  # the header name is the SDK's, case and all
    ],
)
def test_an_unknown_form_is_refused_at_start(tmp_path: Path, key: str, value: str) -> None:
    path = tmp_path / "docgw.toml"
    path.write_text(VXP + f'{key} = "{value}"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, SECRET)
    assert caught.value.element == f"channels.axis.{key}"
    assert caught.value.code == "CONFIG_INVALID"


def test_the_connector_refuses_an_unknown_delete_agency_param() -> None:
    async def build() -> None:
        async with aiohttp.ClientSession() as http:
            VxpConnector(
                name="axis",
                endpoint="http://127.0.0.1:9",
                system_id="docgw",
                secret=b"s",
                session=http,
                delete_agency_param="unit",
            )

    with pytest.raises(ValueError, match="delete_agency_param"):
        asyncio.run(build())

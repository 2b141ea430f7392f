"""A SOAP channel's WS-Security credential comes from the same keys as the national axis'
(``system_id`` and ``secret``, the secret from the environment): both or neither, and the
composition root hands them to the connector."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from connectors.soap_axis import SoapAxisConnector
from gateway.bootstrap import _connector
from gateway.settings import SettingsError, load_settings

SOAP = '[channels.lgsp]\nkind = "soap"\nendpoint = "http://127.0.0.1:9/DocumentService"\n'


def write(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "docgw.toml"
    path.write_text(SOAP + extra, encoding="utf-8")
    return path


def test_a_system_id_without_a_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="go together") as caught:
        load_settings(write(tmp_path, 'system_id = "docgw-hue"\n'), {})
    assert caught.value.element == "channels.lgsp.secret"
    with pytest.raises(SettingsError, match="go together"):
        load_settings(write(tmp_path), {"DOCGW_CHANNELS__LGSP__SECRET": "s"})


def test_the_connector_gets_the_credential_or_none(tmp_path: Path) -> None:
    async def connectors() -> tuple[SoapAxisConnector, SoapAxisConnector]:
        with_credential = load_settings(
            write(tmp_path, 'system_id = "docgw-hue"\n'), {"DOCGW_CHANNELS__LGSP__SECRET": "bí"}
        )
        without = load_settings(write(tmp_path), {})
        async with aiohttp.ClientSession() as http:
            made = [
                _connector(settings.channel("lgsp"), settings, http)
                for settings in (with_credential, without)
            ]
        assert all(isinstance(c, SoapAxisConnector) for c in made)
        return made[0], made[1]  # type: ignore[return-value]

    credential, anonymous = asyncio.run(connectors())
    assert (credential.system_id, credential.secret) == ("docgw-hue", "bí".encode())
    assert repr(credential.secret) not in repr(credential)
    assert (anonymous.system_id, anonymous.secret) == ("", b"")

"""What a connector can do besides delivering (poll, report sent states, list a directory) is
found once, when gateway/bootstrap.py wires the channels, from the Protocols of connectors/base.py;
the scheduler schedules exactly those jobs and asks no connector what it is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from connectors.base import DirectorySource, Pollable, Qd20Source, SentStates
from connectors.fake import FakeConnector
from gateway.bootstrap import Capabilities, _connector
from gateway.settings import load_settings

CHANNELS = (
    '[channels.national]\nkind = "vxp"\nendpoint = "http://127.0.0.1:9"\nsystem_id = "s"\n'
    '[channels.lgsp]\nkind = "soap"\nendpoint = "http://127.0.0.1:9/ds"\n'
    '[channels.peer]\nkind = "http_push"\nendpoint = "http://127.0.0.1:9/api/v1/inbox"\n'
    '[channels.dms]\nkind = "drop_folder"\nroot = "dms"\n'
    '[channels.lab]\nkind = "fake"\n'
)
SECRETS = {"DOCGW_CHANNELS__NATIONAL__SECRET": "s", "DOCGW_CHANNELS__PEER__TOKEN": "t"}


def wired(tmp_path: Path) -> dict[str, Capabilities]:
    config = tmp_path / "docgw.toml"
    config.write_text(CHANNELS, encoding="utf-8")
    settings = load_settings(config, SECRETS)

    async def capabilities() -> dict[str, Capabilities]:
        async with aiohttp.ClientSession() as http:
            return {
                c.name: Capabilities.of(_connector(c, settings, http)) for c in settings.channels
            }

    return asyncio.run(capabilities())


def test_each_kind_has_the_capabilities_of_its_connector(tmp_path: Path) -> None:
    found = wired(tmp_path)
    has = {
        name: {
            what
            for what in ("pollable", "sent_states", "directory", "qd20")
            if getattr(can, what) is not None
        }
        for name, can in found.items()
    }
    assert has == {
        "national": {"pollable", "sent_states", "directory", "qd20"},
        "lgsp": {"pollable", "directory"},
        "peer": set(),
        "dms": set(),  # the drop folder's jobs are its own (pick-up, hand-over)
        "lab": set(),
    }


def test_a_capability_is_a_protocol_not_a_name() -> None:
    class Lister:
        async def agencies(self) -> list[object]:
            return []

    lister = Lister()
    assert isinstance(lister, DirectorySource)
    assert not isinstance(lister, Pollable | SentStates | Qd20Source)
    plain = FakeConnector(name="x", is_axis=True)
    assert Capabilities.of(plain) == Capabilities()


@pytest.mark.parametrize("protocol", [Pollable, SentStates, DirectorySource, Qd20Source])
def test_the_capability_protocols_are_checked_at_run_time(protocol: type) -> None:
    assert isinstance(object(), protocol) is False

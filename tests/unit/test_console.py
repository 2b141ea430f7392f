"""The console script's own work before a command runs: the event loop it sets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from gateway import console


@pytest.fixture
def restored_policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


@pytest.mark.usefixtures("restored_policy")
def test_every_asyncio_run_of_a_command_gets_uvloop() -> None:
    asyncio.set_event_loop_policy(None)
    console._use_uvloop()

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert issubclass(asyncio.run(loop_type()), uvloop.Loop)

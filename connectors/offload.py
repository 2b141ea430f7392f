"""Blocking work (parsing, hashing, signing, file reads) and the event loop: a thread only when the
work is big enough to be worth one.

Handing a call to a thread and back costs two wake-ups and a self-pipe write — about as much CPU
as reading and verifying a 100 KB package outright. Work on inputs up to INLINE_WORK_BYTES
therefore runs on the loop (a millisecond or less, shorter than one statement's round trip to
PostgreSQL); larger inputs go to a thread so that a 100 MB package never stalls the other
requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import IO, ParamSpec, TypeVar

#: The largest input (bytes) whose work runs on the event loop.
INLINE_WORK_BYTES = 256 * 1024

P = ParamSpec("P")
R = TypeVar("R")


async def run_blocking(
    size: int | None, function: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """``function(*args, **kwargs)``, on the loop when ``size`` (the bytes it works on) is known
    and small, else in a thread."""
    if size is not None and size <= INLINE_WORK_BYTES:
        return function(*args, **kwargs)
    return await asyncio.to_thread(function, *args, **kwargs)


def stream_size(stream: IO[bytes]) -> int | None:
    """The bytes left in a seekable stream (its position kept), or None when it cannot tell."""
    try:
        here = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(here)
    except (OSError, ValueError, AttributeError):
        return None
    return end - here

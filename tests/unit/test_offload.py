"""Blocking work runs on the event loop when small, in a thread when large."""

from __future__ import annotations

import asyncio
import io
import threading

from connectors.offload import INLINE_WORK_BYTES, run_blocking, stream_size


def test_small_work_stays_on_the_loop_and_large_work_goes_to_a_thread() -> None:
    async def scenario() -> tuple[int, int, int, int]:
        loop_thread = threading.get_ident()
        small = await run_blocking(INLINE_WORK_BYTES, threading.get_ident)
        large = await run_blocking(INLINE_WORK_BYTES + 1, threading.get_ident)
        unknown = await run_blocking(None, threading.get_ident)
        return loop_thread, small, large, unknown

    loop_thread, small, large, unknown = asyncio.run(scenario())
    assert small == loop_thread
    assert large != loop_thread
    assert unknown != loop_thread


def test_errors_reach_the_caller_either_way() -> None:
    def fail(size: int) -> None:
        raise ValueError(f"bad {size}")

    async def scenario(size: int) -> str:
        try:
            await run_blocking(size, fail, size)
        except ValueError as exc:
            return str(exc)
        return "no error"

    assert asyncio.run(scenario(1)) == "bad 1"
    assert asyncio.run(scenario(INLINE_WORK_BYTES * 2)) == f"bad {INLINE_WORK_BYTES * 2}"


def test_stream_size_counts_what_is_left_and_keeps_the_position() -> None:
    stream = io.BytesIO(b"0123456789")
    stream.seek(3)
    assert stream_size(stream) == 7
    assert stream.tell() == 3

    class Unseekable(io.RawIOBase):
        def seekable(self) -> bool:
            return False

        def tell(self) -> int:
            raise OSError("not seekable")

    assert stream_size(Unseekable()) is None  # type: ignore[arg-type]

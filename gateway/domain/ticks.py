"""Wall-clock ticks of the scheduled jobs (gateway/scheduler.py explains why): tick N of a job
every I seconds starts N × I seconds after the Unix epoch, shifted by the gateway's phase."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable
from typing import Final

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)


def step(seconds: float) -> int:
    """An interval in whole microseconds (at least one), as APScheduler and every process count."""
    return max(1, dt.timedelta(seconds=seconds) // _MICROSECOND)


def tick_start(
    now: dt.datetime, seconds: float, phase: dt.timedelta = dt.timedelta(0)
) -> dt.datetime:
    """The start of the tick ``now`` falls in, for a job every ``seconds`` on a grid shifted by
    ``phase`` (whole microseconds, as APScheduler and every other process compute it)."""
    size = step(seconds)
    elapsed = (now - EPOCH - phase) // _MICROSECOND
    return EPOCH + phase + (elapsed - elapsed % size) * _MICROSECOND


def next_tick(
    after: dt.datetime, seconds: float, phase: dt.timedelta = dt.timedelta(0)
) -> dt.datetime:
    """The start of the tick after the one ``after`` falls in."""
    return tick_start(after, seconds, phase) + step(seconds) * _MICROSECOND


def phase_of(local_units: Iterable[str], seconds: float) -> dt.timedelta:
    """A gateway's offset within a ``seconds`` interval: the same in all of its processes (it
    depends only on the configured local units), spread across gateways."""
    units = ",".join(sorted(local_units))
    return (zlib.crc32(units.encode()) % step(seconds)) * _MICROSECOND

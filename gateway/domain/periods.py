"""Report periods: a month closed on a configurable day, and an ISO week, in local time.

A **monthly** period is named by the month it closes in. With closing day ``C`` (default **25**:
units report to their superior before the 25th), the period ``2026-11`` runs from
``2026-10-25 00:00`` up to, not including, ``2026-11-25 00:00`` local time — the days 25 October …
24 November. The closing day is the first day of the next period, and the day the report is made.
``C = 1`` is the calendar month: ``2026-11`` is 1 … 30 November (closing on 1 December). ``C`` is
1 … 28, so that every month has it.

A **weekly** period is an ISO week (``2026-W48``): Monday 00:00 up to the next Monday 00:00.

Pure: no clock reads (``now`` is a parameter); bounds are timezone-aware, in the given zone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

__all__ = ["Period", "PeriodKind", "last_closed", "monthly", "parse", "weekly"]

MAX_CLOSING_DAY = 28
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")


class PeriodKind(StrEnum):
    MONTHLY = "monthly"
    WEEKLY = "weekly"


@dataclass(frozen=True, kw_only=True)
class Period:
    """``[start, end)``: aware local moments. ``name`` is ``2026-11`` or ``2026-W48``."""

    kind: PeriodKind
    name: str
    start: dt.datetime
    end: dt.datetime

    @property
    def last_day(self) -> dt.date:
        """The period's last local day (``end`` is the next day's midnight)."""
        return (self.end - dt.timedelta(days=1)).date()


def _check_closing_day(closing_day: int) -> None:
    if isinstance(closing_day, bool) or not 1 <= closing_day <= MAX_CLOSING_DAY:
        raise ValueError(f"closing_day must be 1 to {MAX_CLOSING_DAY}, got {closing_day!r}")


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def monthly(year: int, month: int, *, closing_day: int, tz: ZoneInfo) -> Period:
    """The monthly period named ``year-month`` (see the module's docstring)."""
    _check_closing_day(closing_day)
    end_year, end_month = (year, month) if closing_day > 1 else _add_months(year, month, 1)
    start_year, start_month = _add_months(end_year, end_month, -1)
    return Period(
        kind=PeriodKind.MONTHLY,
        name=f"{year:04d}-{month:02d}",
        start=dt.datetime(start_year, start_month, closing_day, tzinfo=tz),
        end=dt.datetime(end_year, end_month, closing_day, tzinfo=tz),
    )


def weekly(year: int, week: int, *, tz: ZoneInfo) -> Period:
    """The ISO week ``year-Wweek``; ``ValueError`` for a week the year does not have."""
    monday = dt.date.fromisocalendar(year, week, 1)
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=tz)
    return Period(
        kind=PeriodKind.WEEKLY,
        name=f"{year:04d}-W{week:02d}",
        start=start,
        end=start + dt.timedelta(days=7),
    )


def parse(kind: PeriodKind, name: str, *, closing_day: int, tz: ZoneInfo) -> Period:
    """``2026-11`` (monthly) or ``2026-W48`` (weekly); ``ValueError`` for anything else."""
    if kind is PeriodKind.MONTHLY:
        if not (match := _MONTH.fullmatch(name)):
            raise ValueError(f"{name!r} is not a month in the form YYYY-MM (e.g. 2026-11)")
        return monthly(int(match[1]), int(match[2]), closing_day=closing_day, tz=tz)
    if not (match := _WEEK.fullmatch(name)):
        raise ValueError(f"{name!r} is not an ISO week in the form YYYY-Www (e.g. 2026-W48)")
    try:
        return weekly(int(match[1]), int(match[2]), tz=tz)
    except ValueError:
        raise ValueError(f"{name!r}: year {match[1]} has no week {match[2]}") from None


def last_closed(kind: PeriodKind, now: dt.datetime, *, closing_day: int, tz: ZoneInfo) -> Period:
    """The latest period of ``kind`` that has ended at ``now`` (aware)."""
    local = now.astimezone(tz)
    if kind is PeriodKind.WEEKLY:
        year, week, _ = (local.date() - dt.timedelta(days=7)).isocalendar()
        return weekly(year, week, tz=tz)
    # The period named after this month closes this month; if it has not, the one before did.
    candidate = monthly(local.year, local.month, closing_day=closing_day, tz=tz)
    months_back = 0
    while candidate.end > local:
        months_back -= 1
        year, month = _add_months(local.year, local.month, months_back)
        candidate = monthly(year, month, closing_day=closing_day, tz=tz)
    return candidate

"""Deadlines for sending documents and notifying their arrival (DOMAIN.md §4).

The rules:

* **Send** — Decision 28/2018/QĐ-TTg (Art. 6, on sending and receiving electronic documents
  between state agencies): an electronic document is sent on the day it is signed, at the latest in
  the *morning of the next working day*; urgent documents (mức độ khẩn) are sent *immediately*
  after they are digitally signed. Decree 30/2020/NĐ-CP (clerical work) also has outgoing documents
  issued the day they are signed and urgent ones at once, but allows the whole next working day;
  docgw applies the stricter electronic rule.
* **Arrival notice** — the receiver notifies arrival (business status ``01``) the *same day*
  (Decision 28/2018 and Decree 30/2020 as summarised in DOMAIN.md §4).

Neither text says what "immediately" or "morning" is in minutes; docgw makes both measurable with
configurable values (:class:`DeadlinePolicy`, :class:`WorkingCalendar`), whose defaults are:

* "immediately" = within ``urgent_send_minutes`` = **30 minutes** of the gateway accepting the
  document;
* the "morning" of a working day ends at ``morning_end`` = **12:00**;
* a working day runs ``workday_start``–``workday_end`` = **07:30–17:00**, Monday to Friday
  (``weekend`` = Saturday and Sunday), minus the configured ``holidays`` (none by default: the
  public-holiday list, Tết included, changes every year and must come from configuration);
* local time is **Asia/Ho_Chi_Minh** (UTC+7, no daylight saving time).

Everything here is pure: no I/O, no clock reads (``now`` is always a parameter). Every moment must
be a timezone-aware ``datetime``; naive ones are refused, because the same wall-clock reading is a
different instant in UTC and in Vietnam. Results are expressed in the calendar's local timezone.
A deadline that is already passed when it is computed (say, a document signed days before it reached
the gateway) is not an error: it is a breach the operator must see (:class:`DeadlineStatus`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Breach",
    "DeadlinePolicy",
    "DeadlineStatus",
    "WorkingCalendar",
    "arrival_notice_deadline",
    "policy_from_settings",
    "send_deadline",
]

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

_DAYS_IN_WEEK = 7


def _require_aware(name: str, moment: dt.datetime) -> None:
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive {moment.isoformat()}")


def _require_date(name: str, day: dt.date) -> None:
    # datetime is a subclass of date, and datetime(2026, 9, 2) != date(2026, 9, 2): refuse it.
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise TypeError(f"{name} must be a date (not a datetime), got {type(day).__name__}")


@dataclass(frozen=True, kw_only=True)
class WorkingCalendar:
    """Working days and hours of Vietnamese state agencies, in local time.

    Defaults: 07:30–17:00, the "morning" ending at 12:00, Saturday and Sunday off, no holidays
    (configure them: the list changes every year). ``weekend`` holds ``date.weekday()`` numbers
    (Monday = 0). Holidays falling on a weekend are simply non-working days; compensatory days off
    (nghỉ bù) must be listed as holidays themselves.
    """

    workday_start: dt.time = dt.time(7, 30)
    workday_end: dt.time = dt.time(17, 0)
    #: The "next working morning" of Decision 28/2018 ends here.
    morning_end: dt.time = dt.time(12, 0)
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[dt.date] = frozenset()
    tz: ZoneInfo = VIETNAM

    def __post_init__(self) -> None:
        for name in ("workday_start", "morning_end", "workday_end"):
            value = getattr(self, name)
            if not isinstance(value, dt.time) or value.tzinfo is not None:
                raise ValueError(f"{name} must be a local time without a timezone, got {value!r}")
        if not self.workday_start < self.morning_end <= self.workday_end:
            raise ValueError(
                "working hours must satisfy workday_start < morning_end <= workday_end, got "
                f"{self.workday_start:%H:%M} / {self.morning_end:%H:%M} / {self.workday_end:%H:%M}"
            )
        weekend = frozenset(self.weekend)
        if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < 7 for d in weekend):
            raise ValueError(
                f"weekend must hold weekday numbers 0 (Monday) to 6, got {self.weekend!r}"
            )
        if len(weekend) >= _DAYS_IN_WEEK:
            raise ValueError("weekend cannot cover the whole week: there would be no working day")
        holidays = frozenset(self.holidays)
        for day in holidays:
            if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
                raise ValueError(f"holidays must hold dates, got {day!r}")
        if not isinstance(self.tz, dt.tzinfo):
            raise ValueError(f"tz must be a tzinfo such as ZoneInfo, got {self.tz!r}")
        object.__setattr__(self, "weekend", weekend)
        object.__setattr__(self, "holidays", holidays)

    def is_working_day(self, day: dt.date) -> bool:
        """Neither a weekend day nor a holiday."""
        _require_date("day", day)
        return day.weekday() not in self.weekend and day not in self.holidays

    def next_working_day(self, day: dt.date) -> dt.date:
        """The first working day strictly after ``day``."""
        _require_date("day", day)
        # Terminates: at least one weekday is working, and the holidays are finite.
        candidate = day + dt.timedelta(days=1)
        while not self.is_working_day(candidate):
            candidate += dt.timedelta(days=1)
        return candidate

    def local(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` (timezone-aware) in the calendar's local time."""
        _require_aware("moment", moment)
        return moment.astimezone(self.tz)

    def at(self, day: dt.date, time: dt.time) -> dt.datetime:
        """The aware local moment ``time`` on ``day``."""
        return dt.datetime.combine(day, time, tzinfo=self.tz)

    def end_of_working_day(self, moment: dt.datetime) -> dt.datetime:
        """The end of the working day ``moment`` falls in.

        That day's ``workday_end`` if it is a working day and ``moment`` is strictly before it;
        otherwise (after hours, exactly at closing time, weekend, holiday) the next working day's.
        """
        local = self.local(moment)
        day = local.date()
        if not (self.is_working_day(day) and local.time() < self.workday_end):
            day = self.next_working_day(day)
        return self.at(day, self.workday_end)


@dataclass(frozen=True, kw_only=True)
class DeadlinePolicy:
    """The measurable form of the deadline rules.

    ``urgent_send_minutes`` (default **30**) is what "immediately" means for urgent documents.
    """

    calendar: WorkingCalendar = WorkingCalendar()
    urgent_send_minutes: int = 30

    def __post_init__(self) -> None:
        if not isinstance(self.calendar, WorkingCalendar):
            raise ValueError(f"calendar must be a WorkingCalendar, got {self.calendar!r}")
        minutes = self.urgent_send_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            raise ValueError(f"urgent_send_minutes must be a positive integer, got {minutes!r}")


def send_deadline(
    *, signed_on: dt.date, accepted_at: dt.datetime, priority: int, policy: DeadlinePolicy
) -> dt.datetime:
    """When the document must have been sent on (Decision 28/2018, Art. 6; Decree 30/2020).

    * Urgent (``priority >= 1``: khẩn, thượng khẩn, hỏa tốc, hỏa tốc hẹn giờ — see
      ``envelopes.model.Priority``): "immediately", i.e. ``accepted_at`` + ``urgent_send_minutes``.
    * Normal (``priority == 0``): "the day it is signed, at the latest the next working morning",
      i.e. ``morning_end`` of the first working day after ``signed_on``.

    ``signed_on`` is the promulgation date (a local date). The clock starts at signing, not when the
    gateway got the document: if ``signed_on`` lies days in the past the deadline may already be
    passed when it is computed; that is a breach to show, not an error. A ``signed_on`` later than
    ``accepted_at``'s local date (a future-dated package, or a clock error) cannot push the deadline
    back: the clock then starts on the day of acceptance, so the base day is the *earlier* of the
    two.
    """
    _require_date("signed_on", signed_on)
    _require_aware("accepted_at", accepted_at)
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise ValueError(f"priority must be a non-negative integer, got {priority!r}")
    calendar = policy.calendar
    if priority >= 1:
        # Absolute-time arithmetic in UTC, then back to local time.
        due = accepted_at.astimezone(dt.UTC) + dt.timedelta(minutes=policy.urgent_send_minutes)
        return calendar.local(due)
    base = min(signed_on, calendar.local(accepted_at).date())
    return calendar.at(calendar.next_working_day(base), calendar.morning_end)


def arrival_notice_deadline(*, delivered_at: dt.datetime, policy: DeadlinePolicy) -> dt.datetime:
    """When the receiver must have notified arrival (status ``01``): the same working day.

    ``workday_end`` of the delivery day; if the document was delivered at or after ``workday_end``,
    or on a non-working day, ``workday_end`` of the next working day.
    """
    return policy.calendar.end_of_working_day(delivered_at)


class Breach(StrEnum):
    """Which deadline a :class:`DeadlineStatus` tracks."""

    SEND = "send"
    ARRIVAL_NOTICE = "arrival_notice"


@dataclass(frozen=True, kw_only=True)
class DeadlineStatus:
    """One deadline and, once it is met, when. Operators are shown the breached ones."""

    kind: Breach
    due_at: dt.datetime
    met_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("due_at", self.due_at)
        if self.met_at is not None:
            _require_aware("met_at", self.met_at)

    def is_breached(self, now: dt.datetime) -> bool:
        """Met late, or still unmet while ``now`` is past ``due_at``; meeting it at ``due_at`` is on
        time."""
        return self.overdue_by(now) is not None

    def overdue_by(self, now: dt.datetime) -> dt.timedelta | None:
        """How late: ``met_at - due_at`` once met, ``now - due_at`` while unmet; ``None`` if on
        time."""
        _require_aware("now", now)
        late = (self.met_at if self.met_at is not None else now) - self.due_at
        return late if late > dt.timedelta(0) else None


_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_time(key: str, value: object) -> dt.time:
    # TOML gives a local time (07:30:00) as datetime.time, a string ("07:30") as str.
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise ValueError(f"{key}: {value!r} must be a local time without a timezone")
        return value
    if isinstance(value, str) and (match := _TIME.fullmatch(value)):
        return dt.time(int(match[1]), int(match[2]))
    raise ValueError(f"{key}: {value!r} is not a time of day in the form HH:MM (e.g. '07:30')")


def _parse_date(key: str, value: object) -> dt.date:
    # TOML gives a local date (2026-09-02) as datetime.date; its date-times are datetime, refused.
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{key}: {value!r} is not an ISO date in the form YYYY-MM-DD")


def _items(key: str, values: object) -> list[object]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"{key}: expected a list, got {values!r}")
    return list(values)


def _parse_weekday(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _DAYS_IN_WEEK:
        raise ValueError(f"{key}: {value!r} is not a weekday number 0 (Monday) to 6 (Sunday)")
    return value


def _parse_zone(key: str, value: object) -> ZoneInfo:
    if isinstance(value, str) and value:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise ValueError(f"{key}: {value!r} is not a known IANA timezone (e.g. 'Asia/Ho_Chi_Minh')")


def policy_from_settings(
    *,
    holidays: Iterable[str | dt.date] = (),
    workday_start: str | dt.time = "07:30",
    workday_end: str | dt.time = "17:00",
    morning_end: str | dt.time = "12:00",
    weekend: Iterable[int] = (5, 6),
    timezone: str = "Asia/Ho_Chi_Minh",
    urgent_send_minutes: int = 30,
) -> DeadlinePolicy:
    """Build a :class:`DeadlinePolicy` from plain configuration values (e.g. a TOML table).

    Times are ``"HH:MM"`` strings or ``datetime.time``; holidays are ISO ``"YYYY-MM-DD"`` strings or
    ``datetime.date``; ``weekend`` holds weekday numbers (Monday = 0); ``timezone`` an IANA name.
    The defaults are the documented ones (07:30–17:00, morning until 12:00, Saturday and Sunday off,
    Asia/Ho_Chi_Minh, 30 minutes for "immediately"). Any bad value raises ``ValueError`` naming its
    key. Looking up ``timezone`` reads the system's (or the ``tzdata`` package's) zone database.
    """
    calendar = WorkingCalendar(
        workday_start=_parse_time("workday_start", workday_start),
        workday_end=_parse_time("workday_end", workday_end),
        morning_end=_parse_time("morning_end", morning_end),
        weekend=frozenset(
            _parse_weekday(f"weekend[{i}]", v) for i, v in enumerate(_items("weekend", weekend))
        ),
        holidays=frozenset(
            _parse_date(f"holidays[{i}]", v) for i, v in enumerate(_items("holidays", holidays))
        ),
        tz=_parse_zone("timezone", timezone),
    )
    minutes: object = urgent_send_minutes
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise ValueError(
            f"urgent_send_minutes: {minutes!r} is not a positive whole number of minutes"
        )
    return DeadlinePolicy(calendar=calendar, urgent_send_minutes=minutes)

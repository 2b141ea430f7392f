"""Send and arrival-notice deadlines (Decision 28/2018, Decree 30/2020; DOMAIN.md §4)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envelopes.model import Priority
from gateway.domain.deadlines import (
    Breach,
    DeadlinePolicy,
    DeadlineStatus,
    WorkingCalendar,
    arrival_notice_deadline,
    policy_from_settings,
    send_deadline,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
UTC = dt.UTC
POLICY = DeadlinePolicy()

# 2026-11-23 is a Monday; 2026-09-02 (National Day) a Wednesday.
MON, TUE, WED, THU, FRI, SAT, SUN = (dt.date(2026, 11, 23 + i) for i in range(7))
NEXT_MON = dt.date(2026, 11, 30)


def vn(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=VN)


def normal_due(
    signed_on: dt.date, accepted_at: dt.datetime, policy: DeadlinePolicy = POLICY
) -> dt.datetime:
    return send_deadline(
        signed_on=signed_on, accepted_at=accepted_at, priority=Priority.THUONG, policy=policy
    )


# --- send deadline -------------------------------------------------------------------------------


def test_signed_and_accepted_on_monday_morning_is_due_tuesday_noon() -> None:
    assert normal_due(MON, vn(MON, 9)) == vn(TUE, 12)


def test_accepted_friday_afternoon_is_due_monday_noon() -> None:
    assert normal_due(FRI, vn(FRI, 16)) == vn(NEXT_MON, 12)


@pytest.mark.parametrize("signed_on", [FRI, SAT])
def test_accepted_on_saturday_is_due_monday_noon(signed_on: dt.date) -> None:
    assert normal_due(signed_on, vn(SAT, 10)) == vn(NEXT_MON, 12)


def test_holidays_are_skipped() -> None:
    national_day = dt.date(2026, 9, 2)  # Wednesday
    tuesday = dt.date(2026, 9, 1)
    policy = DeadlinePolicy(calendar=WorkingCalendar(holidays=frozenset({national_day})))
    assert normal_due(tuesday, vn(tuesday, 9), policy) == vn(dt.date(2026, 9, 3), 12)
    # Both days off (1 and 2 September 2026): signed Monday, due Thursday.
    policy = policy_from_settings(holidays=["2026-09-01", "2026-09-02"])
    monday = dt.date(2026, 8, 31)
    assert normal_due(monday, vn(monday, 9), policy) == vn(dt.date(2026, 9, 3), 12)
    # Without the holiday, the ordinary next morning.
    assert normal_due(tuesday, vn(tuesday, 9)) == vn(national_day, 12)


@pytest.mark.parametrize(
    "priority",
    [Priority.KHAN, Priority.THUONG_KHAN, Priority.HOA_TOC, Priority.HOA_TOC_HEN_GIO],
)
def test_urgent_documents_are_due_thirty_minutes_after_acceptance(priority: Priority) -> None:
    accepted = vn(FRI, 16, 50)  # even near closing time: "immediately" ignores working hours
    due = send_deadline(signed_on=FRI, accepted_at=accepted, priority=priority, policy=POLICY)
    assert due == vn(FRI, 17, 20)
    assert due.tzinfo is VN


def test_urgent_minutes_are_configurable() -> None:
    policy = DeadlinePolicy(urgent_send_minutes=5)
    due = send_deadline(signed_on=SUN, accepted_at=vn(SUN, 23, 58), priority=1, policy=policy)
    assert due == vn(NEXT_MON, 0, 3)


def test_document_signed_two_days_before_acceptance_is_already_breached() -> None:
    accepted = vn(WED, 9)
    due = normal_due(MON, accepted)
    assert due == vn(TUE, 12)  # the clock started at signing, not at acceptance
    status = DeadlineStatus(kind=Breach.SEND, due_at=due, met_at=None)
    assert status.is_breached(accepted)
    assert status.overdue_by(accepted) == dt.timedelta(hours=21)


def test_future_signing_date_does_not_postpone_the_deadline() -> None:
    assert normal_due(FRI, vn(MON, 9)) == vn(TUE, 12)


def test_send_deadline_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        normal_due(MON, dt.datetime(2026, 11, 23, 9))
    with pytest.raises(TypeError, match="signed_on"):
        normal_due(vn(MON, 9), vn(MON, 9))
    with pytest.raises(ValueError, match="priority"):
        send_deadline(signed_on=MON, accepted_at=vn(MON, 9), priority=-1, policy=POLICY)


# --- arrival notice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delivered", "due"),
    [
        (vn(MON, 10), vn(MON, 17)),
        (vn(MON, 6), vn(MON, 17)),  # before opening: still that day
        (vn(MON, 16, 59), vn(MON, 17)),
        (vn(MON, 17), vn(TUE, 17)),  # at closing time: the next working day
        (vn(MON, 18), vn(TUE, 17)),
        (vn(FRI, 18), vn(NEXT_MON, 17)),
        (vn(SAT, 10), vn(NEXT_MON, 17)),
        (vn(SUN, 10), vn(NEXT_MON, 17)),
    ],
)
def test_arrival_notice_is_due_the_same_working_day(
    delivered: dt.datetime, due: dt.datetime
) -> None:
    assert arrival_notice_deadline(delivered_at=delivered, policy=POLICY) == due


def test_arrival_notice_on_a_holiday_is_due_the_next_working_day() -> None:
    policy = policy_from_settings(holidays=[dt.date(2026, 9, 2)])
    delivered = vn(dt.date(2026, 9, 2), 10)
    assert arrival_notice_deadline(delivered_at=delivered, policy=policy) == vn(
        dt.date(2026, 9, 3), 17
    )


def test_arrival_notice_met_on_time_and_late() -> None:
    due = arrival_notice_deadline(delivered_at=vn(MON, 10), policy=POLICY)
    later = vn(WED, 9)
    on_time = DeadlineStatus(kind=Breach.ARRIVAL_NOTICE, due_at=due, met_at=vn(MON, 10, 5))
    assert not on_time.is_breached(later)
    assert on_time.overdue_by(later) is None
    exactly = dataclasses.replace(on_time, met_at=due)
    assert not exactly.is_breached(later)
    late = dataclasses.replace(on_time, met_at=vn(TUE, 8))
    assert late.is_breached(later)
    assert late.overdue_by(later) == dt.timedelta(hours=15)
    # A late notice stays breached whatever "now" is.
    assert late.is_breached(vn(MON, 11))


def test_unmet_deadline_is_breached_only_once_passed() -> None:
    status = DeadlineStatus(kind=Breach.ARRIVAL_NOTICE, due_at=vn(MON, 17))
    assert not status.is_breached(vn(MON, 16))
    assert not status.is_breached(vn(MON, 17))
    assert status.is_breached(vn(MON, 17, 1))
    assert status.overdue_by(vn(MON, 18)) == dt.timedelta(hours=1)


def test_deadline_status_refuses_naive_moments() -> None:
    with pytest.raises(ValueError, match="due_at"):
        DeadlineStatus(kind=Breach.SEND, due_at=dt.datetime(2026, 11, 23, 17))
    status = DeadlineStatus(kind=Breach.SEND, due_at=vn(MON, 17))
    with pytest.raises(ValueError, match="now"):
        status.is_breached(dt.datetime(2026, 11, 23, 18))


# --- timezones -----------------------------------------------------------------------------------


def test_utc_inputs_are_read_in_vietnam_local_time() -> None:
    accepted = dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 09:00 Monday in Hanoi
    assert POLICY.calendar.local(accepted) == vn(MON, 9)
    due = normal_due(MON, accepted)
    assert due == vn(TUE, 12)
    assert due.tzinfo is VN and due.utcoffset() == dt.timedelta(hours=7)
    assert due == dt.datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    notice = arrival_notice_deadline(delivered_at=accepted, policy=POLICY)
    assert notice == vn(MON, 17)


def test_the_local_date_decides_not_the_utc_date() -> None:
    # Sunday 20:00 UTC is Monday 03:00 in Hanoi: a Monday delivery, due Monday 17:00.
    delivered = dt.datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    assert arrival_notice_deadline(delivered_at=delivered, policy=POLICY) == vn(MON, 17)
    # Friday 10:30 UTC is Friday 17:30 in Hanoi: after hours, due Monday.
    delivered = dt.datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    assert arrival_notice_deadline(delivered_at=delivered, policy=POLICY) == vn(NEXT_MON, 17)
    # Accepted Monday 18:00 UTC = Tuesday 01:00 local; signed Tuesday → due Wednesday noon.
    accepted = dt.datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    assert normal_due(TUE, accepted) == vn(WED, 12)


def test_urgent_deadline_is_an_absolute_duration() -> None:
    accepted = dt.datetime(2026, 11, 23, 23, 45, tzinfo=UTC)
    due = send_deadline(signed_on=TUE, accepted_at=accepted, priority=3, policy=POLICY)
    assert due - accepted == dt.timedelta(minutes=30)
    assert due == vn(TUE, 7, 15)


# --- properties ----------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [
        UTC,
        VN,
        ZoneInfo("Europe/Paris"),
        ZoneInfo("America/New_York"),
        dt.timezone(dt.timedelta(hours=-12)),
    ]
)
MOMENTS = st.datetimes(
    min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=ZONES
)
HOLIDAYS = st.frozensets(st.dates(dt.date(2024, 1, 1), dt.date(2031, 1, 31)), max_size=40)


@given(accepted_at=MOMENTS, priority=st.integers(1, 4), minutes=st.integers(1, 24 * 60))
def test_urgent_deadline_is_never_before_acceptance(
    accepted_at: dt.datetime, priority: int, minutes: int
) -> None:
    policy = DeadlinePolicy(urgent_send_minutes=minutes)
    signed_on = accepted_at.astimezone(VN).date()
    due = send_deadline(
        signed_on=signed_on, accepted_at=accepted_at, priority=priority, policy=policy
    )
    assert due >= accepted_at
    assert due - accepted_at == dt.timedelta(minutes=minutes)


@given(accepted_at=MOMENTS, days_before=st.integers(0, 10), holidays=HOLIDAYS)
def test_normal_deadline_is_a_working_day_at_morning_end(
    accepted_at: dt.datetime, days_before: int, holidays: frozenset[dt.date]
) -> None:
    policy = DeadlinePolicy(calendar=WorkingCalendar(holidays=holidays))
    signed_on = accepted_at.astimezone(VN).date() - dt.timedelta(days=days_before)
    due = send_deadline(signed_on=signed_on, accepted_at=accepted_at, priority=0, policy=policy)
    assert due.tzinfo is VN
    assert policy.calendar.is_working_day(due.date())
    assert due.time() == dt.time(12, 0)
    assert due.date() > signed_on
    # No working day lies strictly between signing and the due day.
    day = signed_on + dt.timedelta(days=1)
    while day < due.date():
        assert not policy.calendar.is_working_day(day)
        day += dt.timedelta(days=1)
    if days_before == 0:
        assert due > accepted_at


@given(delivered_at=MOMENTS, holidays=HOLIDAYS)
def test_arrival_notice_deadline_is_a_working_day_end_after_delivery(
    delivered_at: dt.datetime, holidays: frozenset[dt.date]
) -> None:
    policy = DeadlinePolicy(calendar=WorkingCalendar(holidays=holidays))
    due = arrival_notice_deadline(delivered_at=delivered_at, policy=policy)
    assert due > delivered_at
    assert due.time() == dt.time(17, 0)
    assert policy.calendar.is_working_day(due.date())


# --- calendar and settings -----------------------------------------------------------------------


def test_calendar_basics() -> None:
    calendar = WorkingCalendar()
    assert [calendar.is_working_day(d) for d in (MON, TUE, WED, THU, FRI, SAT, SUN)] == [
        True, True, True, True, True, False, False,
    ]  # fmt: skip
    assert calendar.next_working_day(FRI) == NEXT_MON
    assert calendar.next_working_day(MON) == TUE
    with pytest.raises(TypeError, match="not a datetime"):
        calendar.is_working_day(vn(MON, 9))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workday_start": dt.time(12, 0)}, "workday_start < morning_end"),
        ({"morning_end": dt.time(18, 0)}, "morning_end <= workday_end"),
        ({"weekend": frozenset(range(7))}, "whole week"),
        ({"weekend": frozenset({7})}, "weekend"),
        ({"holidays": frozenset({dt.datetime(2026, 9, 2, tzinfo=VN)})}, "holidays"),
        ({"workday_end": dt.time(17, 0, tzinfo=UTC)}, "workday_end"),
    ],
)
def test_calendar_rejects_inconsistent_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkingCalendar(**changes)


@pytest.mark.parametrize("minutes", [0, -5, True])
def test_policy_rejects_non_positive_urgent_minutes(minutes: int) -> None:
    with pytest.raises(ValueError, match="urgent_send_minutes"):
        DeadlinePolicy(urgent_send_minutes=minutes)


def test_policy_from_settings_defaults_match_the_documented_policy() -> None:
    assert policy_from_settings() == DeadlinePolicy()
    assert POLICY.calendar.tz is VN


def test_policy_from_settings_parses_plain_values() -> None:
    policy = policy_from_settings(
        holidays=["2026-09-01", dt.date(2026, 9, 2), "2026-09-01"],
        workday_start="08:00",
        workday_end=dt.time(17, 30),  # what tomllib gives for a TOML local time
        morning_end="11:30",
        weekend=[6],
        timezone="Asia/Bangkok",
        urgent_send_minutes=15,
    )
    calendar = policy.calendar
    assert calendar.holidays == {dt.date(2026, 9, 1), dt.date(2026, 9, 2)}
    assert (calendar.workday_start, calendar.morning_end, calendar.workday_end) == (
        dt.time(8, 0), dt.time(11, 30), dt.time(17, 30),
    )  # fmt: skip
    assert calendar.weekend == {6}
    assert calendar.tz == ZoneInfo("Asia/Bangkok")
    assert policy.urgent_send_minutes == 15
    assert calendar.is_working_day(SAT)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"workday_start": "7:30"}, "workday_start"),
        ({"workday_end": "24:00"}, "workday_end"),
        ({"morning_end": "12h00"}, "morning_end"),
        ({"morning_end": 1200}, "morning_end"),
        ({"workday_start": "１２:００"}, "workday_start"),  # full-width digits
        ({"holidays": ["2026-02-30"]}, r"holidays\[0\]"),
        ({"holidays": ["2026-09-01", "02/09/2026"]}, r"holidays\[1\]"),
        ({"holidays": ["20260902"]}, r"holidays\[0\]"),
        ({"holidays": [dt.datetime(2026, 9, 2, tzinfo=VN)]}, r"holidays\[0\]"),
        ({"holidays": "2026-09-02"}, "holidays"),
        ({"holidays": 20260902}, "holidays"),
        ({"weekend": [5, 7]}, r"weekend\[1\]"),
        ({"weekend": ["saturday"]}, r"weekend\[0\]"),
        ({"weekend": [0, 1, 2, 3, 4, 5, 6]}, "weekend"),
        ({"timezone": "Asia/Hanoi_Nowhere"}, "timezone"),
        ({"timezone": "../etc/passwd"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"urgent_send_minutes": 0}, "urgent_send_minutes"),
        ({"urgent_send_minutes": "30"}, "urgent_send_minutes"),
        ({"urgent_send_minutes": 1.5}, "urgent_send_minutes"),
        ({"workday_start": "13:00"}, "workday_start"),
    ],
)
def test_policy_from_settings_rejects_bad_values(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        policy_from_settings(**settings)

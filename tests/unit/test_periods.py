"""Report periods: the closing day's boundaries, calendar months, ISO weeks, the last closed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from envelopes.errors import GatewayError
from gateway.domain import periods
from gateway.domain.periods import PeriodKind
from gateway.settings import SettingsError, load_settings

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def test_a_month_closed_on_the_25th_runs_from_the_previous_25th() -> None:
    period = periods.parse(PeriodKind.MONTHLY, "2026-11", closing_day=25, tz=VN)
    assert (period.start, period.end) == (dt.datetime(2026, 10, 25, tzinfo=VN),
                                          dt.datetime(2026, 11, 25, tzinfo=VN))  # fmt: skip
    assert period.last_day == dt.date(2026, 11, 24)
    january = periods.parse(PeriodKind.MONTHLY, "2026-01", closing_day=25, tz=VN)
    assert january.start == dt.datetime(2025, 12, 25, tzinfo=VN)


def test_closing_day_1_is_the_calendar_month() -> None:
    december = periods.parse(PeriodKind.MONTHLY, "2026-12", closing_day=1, tz=VN)
    assert (december.start, december.end) == (dt.datetime(2026, 12, 1, tzinfo=VN),
                                              dt.datetime(2027, 1, 1, tzinfo=VN))  # fmt: skip


def test_a_week_is_monday_to_monday() -> None:
    week = periods.parse(PeriodKind.WEEKLY, "2026-W48", closing_day=25, tz=VN)
    assert (week.start, week.end) == (dt.datetime(2026, 11, 23, tzinfo=VN),
                                      dt.datetime(2026, 11, 30, tzinfo=VN))  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "name"),
    [(PeriodKind.MONTHLY, "2026-13"), (PeriodKind.MONTHLY, "2026-1"),
     (PeriodKind.MONTHLY, "x"), (PeriodKind.WEEKLY, "2026-W54"),
     (PeriodKind.WEEKLY, "2025-W53"), (PeriodKind.WEEKLY, "2026-11")],
)  # fmt: skip
def test_malformed_periods_are_refused(kind: PeriodKind, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        periods.parse(kind, name, closing_day=25, tz=VN)


def test_the_last_closed_month_changes_at_the_closing_instant() -> None:
    def last(moment: dt.datetime) -> str:
        return periods.last_closed(PeriodKind.MONTHLY, moment, closing_day=25, tz=VN).name

    assert last(dt.datetime(2026, 11, 25, tzinfo=VN)) == "2026-11"
    assert last(dt.datetime(2026, 11, 25, tzinfo=VN) - dt.timedelta(microseconds=1)) == "2026-10"
    assert last(dt.datetime(2026, 1, 10, tzinfo=VN)) == "2025-12"
    # The zone counts: 17:00 UTC on the 24th is already the 25th in Vietnam.
    assert last(dt.datetime(2026, 11, 24, 17, 0, tzinfo=dt.UTC)) == "2026-11"


def test_the_last_closed_week_is_the_one_before_this_one() -> None:
    monday = dt.datetime(2026, 11, 30, tzinfo=VN)
    assert periods.last_closed(PeriodKind.WEEKLY, monday, closing_day=25, tz=VN).name == "2026-W48"
    sunday = monday - dt.timedelta(microseconds=1)
    assert periods.last_closed(PeriodKind.WEEKLY, sunday, closing_day=25, tz=VN).name == "2026-W47"


@pytest.mark.parametrize("day", [0, 29])
def test_a_closing_day_every_month_has_is_required(day: int, tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(f"[reports]\nclosing_day = {day}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_settings(config, {})
    assert raised.value.element == "reports.closing_day"


def test_the_smtp_password_comes_only_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text('[reports]\nsmtp_password = "hunter2"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_settings(config, {})
    assert raised.value.element == "reports.smtp_password"
    config.write_text("[reports]\nsmtp_username = 'docgw'\n", encoding="utf-8")
    settings = load_settings(config, {"DOCGW_REPORTS__SMTP_PASSWORD": "12345678"})
    assert settings.reports.smtp_password == "12345678"
    assert "12345678" not in repr(settings)


@pytest.mark.parametrize(
    ("table", "element"),
    [
        ('smtp_username = "docgw"\nsmtp_starttls = false\n', "reports.smtp_starttls"),
        ('smtp_host = "mail.example.vn"\nmail_from = "docgw@example.vn"\n', "reports.mail_to"),
        ('units = ["not a code"]\n', "reports.units"),
    ],
)
def test_mail_and_unit_settings_are_checked(table: str, element: str, tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    config.write_text(f"[reports]\n{table}", encoding="utf-8")
    with pytest.raises(GatewayError) as raised:  # CONFIG_INVALID, or UNIT_CODE_INVALID
        load_settings(config, {})
    assert raised.value.element == element

"""Dates and timestamps as edXML writes them: ``yyyy/MM/dd`` and ``yyyy/MM/dd HH:mm:ss``."""

from __future__ import annotations

import datetime as dt
import re

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"


def format_date(value: dt.date) -> str:
    return value.strftime(DATE_FORMAT)


def format_timestamp(value: dt.datetime) -> str:
    return value.strftime(TIMESTAMP_FORMAT)


_ASCII_DATE = re.compile(r"[0-9]{4}[/-][0-9]{2}[/-][0-9]{2}")
_ASCII_TIMESTAMP = re.compile(r"[0-9]{4}[/-][0-9]{2}[/-][0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}")


def parse_date(text: str) -> dt.date:
    """Raises ValueError; ``yyyy-MM-dd`` is accepted too (seen from some senders)."""
    text = text.strip()
    if not _ASCII_DATE.fullmatch(text):  # strptime would take other scripts' digits
        raise ValueError(f"{text!r} is not yyyy/MM/dd")
    fmt = "%Y-%m-%d" if "-" in text else DATE_FORMAT
    return dt.datetime.strptime(text, fmt).date()


def parse_timestamp(text: str) -> dt.datetime:
    """Raises ValueError; ``yyyy-MM-ddTHH:mm:ss`` is accepted too (no offset: local time)."""
    text = text.strip()
    if not _ASCII_TIMESTAMP.fullmatch(text):
        raise ValueError(f"{text!r} is not yyyy/MM/dd HH:mm:ss")
    if "-" in text:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    return dt.datetime.strptime(text, TIMESTAMP_FORMAT)

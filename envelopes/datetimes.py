"""Dates and timestamps as edXML writes them: ``yyyy/MM/dd`` and ``yyyy/MM/dd HH:mm:ss``."""

from __future__ import annotations

import datetime as dt

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"


def format_date(value: dt.date) -> str:
    return value.strftime(DATE_FORMAT)


def format_timestamp(value: dt.datetime) -> str:
    return value.strftime(TIMESTAMP_FORMAT)


def parse_date(text: str) -> dt.date:
    """Raises ValueError; ``yyyy-MM-dd`` is accepted too (seen from some senders)."""
    text = text.strip()
    fmt = "%Y-%m-%d" if "-" in text else DATE_FORMAT
    return dt.datetime.strptime(text, fmt).date()


def parse_timestamp(text: str) -> dt.datetime:
    """Raises ValueError; ``yyyy-MM-ddTHH:mm:ss`` is accepted too."""
    text = text.strip()
    if "-" in text:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    return dt.datetime.strptime(text, TIMESTAMP_FORMAT)

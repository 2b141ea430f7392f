"""Reading the parameters of a listing, the same on the API (query parameters) and the CLI
(options): each refusal a BAD_REQUEST naming its parameter (:class:`ParameterInvalid`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from gateway.usecases.errors import ParameterInvalid
from gateway.usecases.statuses import VIETNAM

E = TypeVar("E", bound=StrEnum)


def choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(name) or None
    if value is not None and value not in choices:
        raise ParameterInvalid(f"must be one of {', '.join(choices)}", element=name)
    return value


def member(query: Mapping[str, str], name: str, enum: type[E]) -> E | None:
    """One of the enum's values (as written: ``OUT`` is not ``out``), or None when missing or
    empty."""
    value = query.get(name) or None
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        raise ParameterInvalid(f"must be one of {', '.join(enum)}", element=name) from None


def moment(query: Mapping[str, str], name: str, *, end_of_day: bool) -> dt.datetime | None:
    """An ISO date (a whole day in Vietnam time: ``to`` includes it) or datetime (UTC when it
    carries no offset; ``to`` excludes it)."""
    value = query.get(name)
    if not value:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value) + dt.timedelta(days=1 if end_of_day else 0)
            return dt.datetime.combine(day, dt.time(), VIETNAM).astimezone(dt.UTC)
        found = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ParameterInvalid(
            "must be an ISO date (2026-11-23) or datetime (2026-11-23T08:00:00Z)", element=name
        ) from None
    return found.replace(tzinfo=dt.UTC) if found.tzinfo is None else found.astimezone(dt.UTC)


def flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "").lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise ParameterInvalid("must be true or false", element=name)

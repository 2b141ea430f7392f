"""Which package copies a message needs (one per channel, one per held recipient) and the
classification a package naming another document travels under: pure rules, table-tested."""

from __future__ import annotations

import pytest

from envelopes.model import Classification
from gateway.domain.routing import Route, strictest
from gateway.usecases.submit import copy_groups

A, B, C, D = "000.00.00.G01", "000.00.00.G02", "000.00.00.G03", "000.00.00.G04"
THUONG, MAT, TOI_MAT, TUYET_MAT = (
    Classification.THUONG,
    Classification.MAT,
    Classification.TOI_MAT,
    Classification.TUYET_MAT,
)


def routes(*pairs: tuple[str, str | None]) -> list[Route]:
    return [Route(recipient=code, channel=channel, reason="") for code, channel in pairs]


@pytest.mark.parametrize(
    ("given", "classification", "groups"),
    [
        # One channel for all: the one copy addressing everyone (built once, as before).
        (routes((A, "axis"), (B, "axis")), THUONG, ((A, B),)),
        # A held recipient is addressed by no other copy, and gets one addressing it alone.
        (routes((A, "axis"), (B, None)), THUONG, ((A,), (B,))),
        (routes((A, None), (B, None)), THUONG, ((A,), (B,))),
        # Two channels: each copy addresses its own channel's recipients, in the request's order.
        (
            routes((A, "axis"), (B, "lan"), (C, "axis"), (D, None)),
            THUONG,
            ((A, C), (B,), (D,)),
        ),
        # Classified: no plaintext is kept for a held recipient (it is sealed when released).
        (routes((A, "secure"), (B, None), (C, "secure")), TOI_MAT, ((A, C),)),
        (
            routes(
                (A, None),
            ),
            MAT,
            (),
        ),
    ],
)
def test_copy_groups(
    given: list[Route], classification: Classification, groups: tuple[tuple[str, ...], ...]
) -> None:
    assert copy_groups(given, classification) == groups


@pytest.mark.parametrize(
    ("own", "named", "travels_as"),
    [
        (THUONG, [], THUONG),
        (THUONG, [THUONG, THUONG], THUONG),
        (THUONG, [TOI_MAT], TOI_MAT),
        (MAT, [THUONG, TOI_MAT, MAT], TOI_MAT),
        (TUYET_MAT, [MAT], TUYET_MAT),  # never downgraded
        (TOI_MAT, [TUYET_MAT], TUYET_MAT),
    ],
)
def test_a_package_travels_as_the_strictest_document_it_names(
    own: Classification, named: list[Classification], travels_as: Classification
) -> None:
    assert strictest(own, named) is travels_as

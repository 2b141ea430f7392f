"""The message list's filters, one function for ``GET /api/v1/messages`` and ``docgw queue
list`` (usecases/messages.message_filter): what each reads, and each refusal naming its filter."""

from __future__ import annotations

import datetime as dt

import pytest

from envelopes.errors import GatewayError
from gateway.usecases.messages import FILTERS, message_filter

NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


def test_every_filter_is_read() -> None:
    found = message_filter(
        {
            "direction": "out",
            "kind": "status",
            "state": "failed",
            "recipient": "000.00.00.H41",
            "sender": "000.00.00.G22",
            "classification": "mat",
            "from": "2026-11-23",
            "to": "2026-11-23",
            "text": "liên thông",
            "breached": "true",
        },
        now=NOW,
        member_unit="000.00.00.G22",
    )
    assert (found.direction, found.kind, found.state) == ("out", "status", "failed")
    assert (found.classification, found.text, found.breached_before) == ("mat", "liên thông", NOW)
    # A Vietnam day: from its midnight (+07) to the next.
    assert found.created_from == dt.datetime(2026, 11, 22, 17, 0, tzinfo=dt.UTC)
    assert found.created_to == dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC)
    assert found.visible_to_unit == "000.00.00.G22"
    empty = message_filter({name: "" for name in FILTERS}, now=NOW, member_unit=None)
    assert empty.state is None and empty.kind is None and empty.breached_before is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("state", "faild"),
        ("kind", "paper"),
        ("direction", "up"),
        ("classification", "secret"),
        ("from", "23/11/2026"),
        ("to", "tomorrow"),
        ("breached", "maybe"),
    ],
)
def test_a_value_that_does_not_exist_is_refused_naming_its_filter(name: str, value: str) -> None:
    with pytest.raises(GatewayError) as refused:
        message_filter({name: value}, now=NOW, member_unit=None)
    assert (refused.value.code, refused.value.element) == ("BAD_REQUEST", name)

"""The message list's filters, one function for ``GET /api/v1/messages``, ``docgw queue list``
and the console (usecases/messages.message_filter): what each reads, typed (the enums), and each
refusal naming its filter."""

from __future__ import annotations

import datetime as dt

import pytest

from envelopes.errors import GatewayError
from envelopes.model import Classification
from envelopes.reading import PackageKind
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState
from gateway.usecases.messages import CHOICES, FILTERS, choices_schema, message_filter

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
    assert found.direction is Direction.OUT and found.kind is PackageKind.STATUS
    assert found.state is TransportState.FAILED and found.classification is Classification.MAT
    assert found.channel is None  # read only where channels are given (the console)
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
        ("direction", "OUT"),
        ("channel", "nowhere"),
    ],
)
def test_a_value_that_does_not_exist_is_refused_naming_its_filter(name: str, value: str) -> None:
    with pytest.raises(GatewayError) as refused:
        message_filter({name: value}, now=NOW, member_unit=None, channels=("vxp", "lgsp"))
    assert (refused.value.code, refused.value.element) == ("BAD_REQUEST", name)


def test_a_channel_is_one_of_those_given() -> None:
    found = message_filter({"channel": "lgsp"}, now=NOW, member_unit=None, channels=("vxp", "lgsp"))
    assert found.channel == "lgsp"


def test_the_api_documents_the_choices_the_filter_takes() -> None:
    """The API's parameters list exactly the values message_filter takes, every one of them."""
    for name, enum in CHOICES.items():
        values = choices_schema(name)["enum"]
        assert values == [member.value for member in enum]
        for value in values:
            assert getattr(message_filter({name: value}, now=NOW, member_unit=None), name) == value

"""JSON bodies read through the pydantic models keep docgw's codes and element paths
(gateway/web/bodies.py): what the integration tests check through HTTP, here field by field."""

from __future__ import annotations

from typing import Any

import pytest

from envelopes.errors import GatewayError
from gateway.web.bodies import element_path, parse_body
from gateway.web.integration import Acknowledgement
from gateway.web.messages import Reroute, StatusReply
from gateway.web.units import UnitRegistration


def refused(value: Any, model: Any) -> tuple[str, str | None]:
    with pytest.raises(GatewayError) as caught:
        parse_body(value, model)
    return caught.value.code, caught.value.element


def test_element_paths_are_written_as_docgw_names_elements() -> None:
    assert element_path(("staff_info", "email")) == "staff_info.email"
    assert element_path(("to", 0, "organ_id")) == "to[0].organ_id"
    assert element_path(()) is None


@pytest.mark.parametrize(
    ("value", "model", "expected"),
    [
        ([], StatusReply, ("BAD_REQUEST", None)),
        ({"code": "02", "x": 1}, StatusReply, ("BAD_REQUEST", "x")),
        ({"code": "02", "staff_info": {"phone": "1"}}, StatusReply,
         ("BAD_REQUEST", "staff_info.phone")),
        ({"code": "02", "staff_info": {"email": 5}}, StatusReply,
         ("BAD_REQUEST", "staff_info.email")),
        ({"code": "02", "staff_info": "Văn thư"}, StatusReply, ("BAD_REQUEST", "staff_info")),
        ({"code": "02", "description": "a\x00b"}, StatusReply, ("TEXT_INVALID", "description")),
        ({"code": 2}, StatusReply, ("STATUS_CODE_INVALID", "code")),
        ({}, StatusReply, ("STATUS_CODE_INVALID", "code")),
        ({"reply": "13"}, Acknowledgement, ("STATUS_CODE_INVALID", "reply")),
        ({"reason": "x"}, Reroute, ("BAD_REQUEST", "channel")),
        ({"channel": "  "}, Reroute, ("BAD_REQUEST", "channel")),
        ({"code": "000.00.00.H41", "allows_tuyet_mat": "yes"}, UnitRegistration,
         ("BAD_REQUEST", "allows_tuyet_mat")),
        ({"code": "000.00.00.H41", "name": "x" * 301}, UnitRegistration, ("BAD_REQUEST", "name")),
        ({"code": "000.00.00.H41", "\ud800x": 1}, UnitRegistration, ("BAD_REQUEST", "\ud800x")),
    ],
)  # fmt: skip
def test_a_refused_body_names_its_field_with_docgws_code(
    value: Any, model: Any, expected: tuple[str, str | None]
) -> None:
    assert refused(value, model) == expected


def test_text_is_stripped_and_blank_text_is_null() -> None:
    parsed = parse_body({"code": "03", "description": "  ", "staff_info": {"staff": " B "}},
                        StatusReply)  # fmt: skip
    assert parsed.code.value == "03"
    assert parsed.description is None
    assert parsed.staff_info is not None and parsed.staff_info.staff == "B"
    assert parse_body({"channel": " axis "}, Reroute).channel == "axis"

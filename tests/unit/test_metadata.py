"""The metadata JSON of the CLI and the API: every field maps, every mistake names its field."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envelopes import metadata_reference
from envelopes.errors import MetadataError, TextInvalid
from envelopes.metadata import parse_metadata
from envelopes.model import BusinessDocType, Classification, Priority

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TODAY = dt.date(2026, 11, 25)


def example(name: str = "new-document.json") -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_the_readme_example_maps_every_field() -> None:
    request = parse_metadata(json.dumps(example()).encode(), today=TODAY)
    header = request.header
    assert request.classification is Classification.THUONG
    assert header.from_.organ_id == "000.00.00.G22"
    assert header.from_.organ_add == "Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội"
    assert [to.organ_id for to in header.to] == ["000.00.00.H41"]
    assert str(header.code) == "7816/VPCP-TTĐT"
    assert header.promulgation.date == dt.date(2026, 11, 23)
    assert header.document_type.type_name == "Công văn"
    assert header.signer is not None and header.signer.full_name == "Nguyễn Văn A"
    assert header.due_date == dt.date(2026, 12, 1)
    assert header.to_places == ("Như trên",)
    assert header.other_info.priority is Priority.KHAN
    assert header.other_info.page_amount == 2
    assert header.steering_type == 0
    # document_id null → the DocumentId convention
    assert header.document_id == "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT"
    assert request.business.staff_info is not None
    assert request.business.staff_info.staff == "Trần Thị B"


def test_update_example_carries_the_receiver_list() -> None:
    request = parse_metadata(example("update-document.json"), today=TODAY)
    assert request.business.doc_type is BusinessDocType.UPDATE
    assert request.business.update is not None
    assert [r.organ_id for r in request.business.update.receivers] == [
        "000.00.00.H41",
        "000.00.00.H14",
    ]


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(example())
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("classification", KeyError, "classification"),
        ("classification", "secret", "classification"),
        ("from.organ_id", "vxp.saas.03", "from.organ_id"),
        ("to", [], "to"),
        ("to.0.organ_id", "28 22 H17", "to[0].organ_id"),
        ("to.0.surprise", 1, "to[0].surprise"),
        ("subject", KeyError, "subject"),
        ("subject", "x" * 501, "subject"),
        ("subject", 12, "subject"),
        ("code.number", "123456789012", "code.number"),
        ("promulgation.date", "23/11/2026", "promulgation.date"),
        ("promulgation.date", "2026-11-26", "promulgation.date"),
        ("document_type.type_name", KeyError, "document_type.type_name"),
        ("other_info.priority", 5, "other_info.priority"),
        ("other_info.priority", True, "other_info.priority"),
        ("steering_type", 3, "steering_type"),
        ("business.doc_type", 1, "business.reason"),
        ("business.doc_type", 9, "business.doc_type"),
        ("response_for", [{"organ_id": "x"}], "response_for[0].organ_id"),
        ("titel", "typo", "titel"),
    ],
)
def test_each_mistake_names_its_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(mutate(path, value), today=TODAY)
    assert caught.value.code == "METADATA_INVALID"
    assert caught.value.element == field


def test_malformed_json_is_a_metadata_error() -> None:
    with pytest.raises(MetadataError, match="not valid JSON"):
        parse_metadata(b"{not json", today=TODAY)


def test_replacement_needs_its_list_and_a_reason() -> None:
    data = mutate("business", {"doc_type": 3, "reason": "Thay thế văn bản"})
    with pytest.raises(MetadataError) as caught:
        parse_metadata(data, today=TODAY)
    assert caught.value.element == "business.replacements"
    data["business"]["replacements"] = [{"document_id": "D1", "organ_ids": ["000.00.00.H41"]}]
    request = parse_metadata(data, today=TODAY)
    assert request.business.replacements[0].organ_ids == ("000.00.00.H41",)


def test_the_field_table_is_generated_from_the_models() -> None:
    """Fails when a field is added, removed or re-documented in envelopes/metadata.py without
    running ``python -m envelopes.metadata_reference``."""
    reference = Path(__file__).resolve().parents[2] / metadata_reference.REFERENCE
    current = reference.read_text(encoding="utf-8")
    assert metadata_reference.rewritten(current) == current
    assert metadata_reference.main(["--check", "--file", str(reference)]) == 0


def test_the_field_table_follows_the_declarations() -> None:
    table = metadata_reference.table()
    assert "| `subject` | string | required, ≤ 500 characters; trích yếu | `Subject` |" in table
    assert "| `other_info.priority` | integer | 0–4; 0 thường" in table
    assert "| `to` | list of organization | required; at least one" in table
    keys = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert {"from", "organization.organ_id", "business.replacements"} <= keys


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        ("from.organ_name", "x" * 201, "longer than 200 characters"),
        ("other_info.priority", 5, "must be 0..4"),
        ("other_info.page_amount", -1, "must be at least 0"),
        ("other_info.page_amount", "2", "must be a whole number"),
        ("other_info.direction", "yes", "must be true or false"),
        ("to_places", ["Như trên", " "], "must be a non-empty string"),
        ("code", "7816/VPCP", "must be an object"),
        ("to", {"organ_id": "000.00.00.H41"}, "must be a list"),
        ("to.0.surprise", 1, "unknown field (known: organ_id, organization_in_charge"),
        ("code", None, "required"),
        ("subject", None, "required"),
    ],
)
def test_each_mistake_says_what_is_wrong(path: str, value: Any, says: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(mutate(path, value), today=TODAY)
    assert says in caught.value.message, caught.value.message


def test_a_character_xml_cannot_carry_is_text_invalid_at_its_path() -> None:
    with pytest.raises(TextInvalid) as caught:
        parse_metadata(mutate("to.0.organ_name", "UBND\x01"), today=TODAY)
    assert (caught.value.code, caught.value.element) == ("TEXT_INVALID", "to[0].organ_name")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(["from", "to", "code", "other_info", "business", "to.0", "signer",
                             "business.update", "business.replacements", "promulgation.date",
                             "response_for", "business.staff_info", "to_places"]),
       value=JSON_VALUES)  # fmt: skip
def test_any_value_anywhere_is_a_metadata_error_never_a_crash(path: str, value: Any) -> None:
    data = mutate(path, value)
    try:
        parse_metadata(json.dumps(data).encode(), today=TODAY)
    except (MetadataError, TextInvalid) as refused:
        assert refused.element is not None

"""The one text rule (envelopes/xmltext.py) and where it holds: metadata fields, attachment names.
Every refused character is one lxml would refuse in the builder; every accepted one it takes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from envelopes.attachments import check_name
from envelopes.errors import AttachmentNameInvalid, MetadataError, TextInvalid
from envelopes.metadata import parse_metadata
from envelopes.xmltext import check_text, first_unsafe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TODAY = dt.date(2026, 11, 25)

REFUSED = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1b", "\x1f", "\ud800", "\udcff"]
REFUSED += ["\udfff", "\ufffe", "\uffff"]
ACCEPTED = ["\t", "\n", "\r", " ", "\x7f", "\x85", "\ud7ff", "\ue000", "\ufffd", "\U0001f4c4"]
ACCEPTED += ["Đ", "ờ"]


@pytest.mark.parametrize("character", REFUSED)
def test_what_xml_cannot_carry_is_refused_naming_the_field_and_position(character: str) -> None:
    with pytest.raises(TextInvalid) as refused:
        check_text(f"ab{character}c", element="subject")
    assert refused.value.code == "TEXT_INVALID" and refused.value.element == "subject"
    assert "character 3 (U+" in refused.value.message
    # lxml agrees: it would have failed deep in the builder.
    with pytest.raises(ValueError):
        etree.Element("Subject").text = f"ab{character}c"


@pytest.mark.parametrize("character", ACCEPTED)
def test_what_xml_carries_is_accepted(character: str) -> None:
    assert check_text(f"ab{character}c", element="subject") == f"ab{character}c"
    assert first_unsafe(f"ab{character}c") is None
    etree.Element("Subject").text = f"ab{character}c"


def test_a_byte_that_was_not_utf8_is_named_as_such() -> None:
    raw = b"k\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(TextInvalid, match=r"U\+DCFF, a byte that is not UTF-8"):
        check_text(raw, element="Idempotency-Key")


# -------------------------------------------------------------------------------- metadata


def example() -> dict[str, Any]:
    return json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("subject", lambda m: m.update(subject="V/v\x00")),
        ("from.organ_name", lambda m: m["from"].update(organ_name="VP\x07CP")),
        ("to[0].organ_name", lambda m: m["to"][0].update(organ_name="UBND\uffff")),
        ("to_places[0]", lambda m: m.update(to_places=["Như \ud800trên"])),
        ("document_id", lambda m: m.update(document_id="id\x1f1")),
        (
            "business.staff_info.mobile",
            lambda m: m["business"]["staff_info"].update(mobile="0\x0c"),
        ),
    ],
)
def test_metadata_text_is_held_to_the_rule_naming_its_path(path: str, change: Any) -> None:
    meta = example()
    change(meta)
    with pytest.raises(TextInvalid) as refused:
        parse_metadata(json.dumps(meta).encode(), today=TODAY)
    assert refused.value.element == path


def test_the_same_recipient_twice_is_refused_naming_the_repeat() -> None:
    meta = example()
    meta["to"] = [
        {"organ_id": "000.00.00.H41"},
        {"organ_id": "000.00.00.H14"},
        {"organ_id": " 000.00.00.H41 "},
    ]
    with pytest.raises(MetadataError) as refused:
        parse_metadata(json.dumps(meta).encode(), today=TODAY)
    assert refused.value.element == "to[2].organ_id"
    assert "to[0]" in refused.value.message


# --------------------------------------------------------------------------- attachment names

GOOD_NAMES = ["van-ban.pdf", "Phụ lục số 1.pdf", "bao cao.v2.docx", "..hidden.pdf", "a..b.pdf"]
BAD_NAMES = ["", "  ", ".", "..", " .. ", "/etc/passwd", "../x.pdf", "..\\x.pdf", "a/b.pdf"]
BAD_NAMES += ["\\\\server\\share\\x.pdf", "C:\\x.pdf", "C:x.pdf", "x\x00.pdf", "x\udcff.pdf"]
BAD_NAMES += ["x\n.pdf", "x\t.pdf", "x\x7f.pdf"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_a_plain_file_name_is_kept(name: str) -> None:
    assert check_name(f" {name} ") == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_is_not_a_plain_file_name_is_refused(name: str) -> None:
    with pytest.raises(AttachmentNameInvalid) as refused:
        check_name(name)
    assert refused.value.code == "ATTACHMENT_NAME_INVALID"
    assert refused.value.element == "attachment"

"""Every real package from the field reads into the model, with what is odd about it reported."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import pytest

from envelopes.model import BusinessDocType, StatusCode, StatusPackage
from envelopes.reading import PackageKind, read_package, read_routing


def codes(notices: object) -> set[str]:
    return {n.code for n in notices}  # type: ignore[attr-defined]


def test_every_sample_reads(samples: Path) -> None:
    """Every package from the field reads into a model (a typed refusal is not enough), and
    routes the same way."""
    files = sorted(samples.glob("*.edxml"))
    assert len(files) >= 7
    for path in files:
        parsed = read_package(path.read_bytes())
        model = parsed.status() if parsed.kind is PackageKind.STATUS else parsed.document()
        routing = read_routing(path.read_bytes())
        assert routing.kind is parsed.kind
        sender = model.from_ if isinstance(model, StatusPackage) else model.header.from_
        assert routing.sender == sender.organ_id
        assert "EMPTY_ELEMENT" not in codes(parsed.notices), path.name  # none in these samples


def test_new_document_with_stray_bytes_and_placeholder_signature(samples: Path) -> None:
    parsed = read_package((samples / "edoc_new.edxml").read_bytes())
    assert parsed.kind is PackageKind.DOCUMENT
    assert {"STRAY_BYTES_BEFORE_XML", "PLACEHOLDER_SIGNATURE"} <= codes(parsed.notices)
    document = parsed.document()
    header = document.header
    assert header.from_.organ_id == "002.00.20.H13"
    assert [to.organ_id for to in header.to] == ["28.22.H17"]
    assert header.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert str(header.code) == "74fass22/VPCP-TTĐT"
    assert header.promulgation.date == dt.date(2019, 1, 16)
    assert header.subject.startswith("V/v kết nối")
    assert header.other_info.appendixes and header.to_places
    assert document.business is not None
    assert document.business.doc_type is BusinessDocType.NEW
    assert document.business.staff_info is not None
    assert document.business.staff_info.staff == "Nguyễn Thị Ngọc Trâm"
    [attachment] = document.attachments
    assert attachment.name == "1896_QD-TTg_m_294779.doc"
    assert attachment.content_type == "application/zip"
    assert attachment.sniffed_type is None  # labelled zip, and it is a zip
    assert attachment.size > 200_000


def test_update_document_carries_its_receiver_list(samples: Path) -> None:
    document = read_package((samples / "edoc_update.edxml").read_bytes()).document()
    assert len(document.header.to) == 3
    assert document.business is not None
    assert document.business.doc_type is BusinessDocType.UPDATE
    assert document.business.update is not None
    assert [r.organ_id for r in document.business.update.receivers] == [
        "000.00.00.H41",
        "000.00.00.H14",
    ]
    assert [r.receiver_type for r in document.business.update.receivers] == [0, 1]


def test_axis_download_has_transit_trace_zip_labelled_pdf_and_odd_unit_code(samples: Path) -> None:
    parsed = read_package((samples / "axis_download_874e0f18.edxml").read_bytes())
    document = parsed.document()
    assert {"NONCONFORMING_UNIT_CODE", "ATTACHMENT_TYPE_MISMATCH"} <= codes(parsed.notices)
    assert document.header.from_.organ_id == "vxp.saas.03"
    assert len(document.traces) == 2
    assert document.traces[0].organ_id is None  # written as the string "null"
    assert document.traces[1].timestamp == dt.datetime(2025, 10, 23, 16, 28, 43)
    [attachment] = document.attachments
    assert attachment.content_type == "application/pdf"
    assert attachment.sniffed_type == "application/zip"


def test_attachment_bytes_stream_into_the_sink_with_matching_digest(samples: Path) -> None:
    sinks: list[io.BytesIO] = []

    def sink() -> io.BytesIO:
        sinks.append(io.BytesIO())
        return sinks[-1]

    parsed = read_package((samples / "edoc_new.edxml").read_bytes(), sink_factory=sink)
    [attachment] = parsed.document().attachments
    data = sinks[0].getvalue()
    assert data.startswith(b"PK\x03\x04")
    assert hashlib.sha256(data).hexdigest() == attachment.sha256
    assert len(data) == attachment.size


@pytest.mark.parametrize(
    ("name", "code", "reason_required"),
    [
        ("status_inbox_01.edxml", StatusCode.ARRIVED, False),
        ("status_rejection_02.edxml", StatusCode.REJECTED, True),
        ("status_acceptance_03.edxml", StatusCode.ACCEPTED, False),
        ("status_cancellation_13.edxml", StatusCode.RETRACT_REQUESTED, True),
    ],
)
def test_status_samples(samples: Path, name: str, code: StatusCode, reason_required: bool) -> None:
    parsed = read_package((samples / name).read_bytes())
    assert parsed.kind is PackageKind.STATUS
    status = parsed.status()
    assert status.status_code is code
    assert status.status_code.requires_reason is reason_required
    assert status.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert status.timestamp == dt.datetime(2015, 9, 20, 11, 8, 36)
    assert status.description
    assert status.staff_info is not None and status.staff_info.staff == "Nguyen thi ngoc tram"


def test_status_timestamp_spelled_timestamp_with_capital_s_is_accepted(samples: Path) -> None:
    data = (samples / "status_inbox_01.edxml").read_bytes().replace(b"Timestamp>", b"TimeStamp>")
    assert read_package(data).status().timestamp == dt.datetime(2015, 9, 20, 11, 8, 36)


def test_a_sample_read_from_a_stream_equals_one_read_from_bytes(samples: Path) -> None:
    path = samples / "edoc_update.edxml"
    with path.open("rb") as stream:
        from_stream = read_package(stream).document()
    assert from_stream == read_package(path.read_bytes()).document()

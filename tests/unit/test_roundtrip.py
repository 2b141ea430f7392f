"""Model → bytes → model round trips, with Vietnamese text, for document and status packages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envelopes.attachments import AttachmentSource
from envelopes.building import build_document_bytes, build_status
from envelopes.model import (
    Business,
    BusinessDocType,
    DocumentCode,
    DocumentPackage,
    DocumentType,
    MessageHeader,
    Organization,
    OtherInfo,
    Priority,
    PromulgationInfo,
    Receiver,
    Replacement,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusPackage,
    TraceHeader,
    UpdateInfo,
)
from envelopes.reading import read_package

# Text an agency really writes: Vietnamese letters with their diacritics, digits, punctuation.
VIETNAMESE = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
)
ALPHABET = VIETNAMESE + VIETNAMESE.upper() + "0123456789 ,.;:/()-–“”'&<>\"%"


def text(max_size: int) -> st.SearchStrategy[str]:
    # Leading/trailing blanks are not significant in edXML (the reader strips them).
    return st.text(ALPHABET, min_size=1, max_size=max_size).map(str.strip).filter(bool)


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


unit_codes = st.from_regex(r"\A[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}\Z")
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31))
timestamps = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 12, 31)
).map(lambda t: t.replace(microsecond=0))
organizations = st.builds(
    Organization,
    organ_id=unit_codes,
    organization_in_charge=maybe(text(200)),
    organ_name=maybe(text(200)),
    organ_add=maybe(text(250)),
    email=maybe(st.emails().filter(lambda e: len(e) <= 100)),
    telephone=maybe(st.from_regex(r"\A\+?[0-9 ]{6,15}\Z").map(str.strip).filter(bool)),
    fax=st.none(),
    website=maybe(st.just("www.chinhphu.vn")),
)
staff = st.builds(
    StaffInfo,
    department=maybe(text(60)),
    staff=maybe(text(60)),
    mobile=maybe(st.from_regex(r"\A[0-9]{9,12}\Z")),
    email=st.none(),
)
headers = st.builds(
    MessageHeader,
    from_=organizations,
    to=st.lists(organizations, min_size=1, max_size=4).map(tuple),
    code=st.builds(DocumentCode, number=st.from_regex(r"\A[0-9]{1,11}\Z"), notation=text(30)),
    promulgation=st.builds(PromulgationInfo, place=maybe(text(50)), date=dates),
    document_type=st.builds(
        DocumentType,
        type=st.integers(0, 99),
        type_name=text(100),
        type_detail=maybe(st.integers(0, 9)),
    ),
    subject=text(500),
    document_id=text(80),
    content=maybe(text(500)),
    signer=maybe(
        st.builds(
            SignerInfo,
            competence=maybe(text(40)),
            position=maybe(text(40)),
            full_name=maybe(text(40)),
        )
    ),
    due_date=maybe(dates),
    to_places=st.lists(text(50), max_size=3).map(tuple),
    other_info=st.builds(
        OtherInfo,
        priority=st.sampled_from(Priority),
        sphere_of_promulgation=maybe(text(50)),
        typer_notation=maybe(text(10)),
        promulgation_amount=maybe(st.integers(0, 999)),
        page_amount=maybe(st.integers(0, 999)),
        direction=maybe(st.booleans()),
        appendixes=st.lists(text(80), max_size=2).map(tuple),
    ),
    response_for=st.lists(
        st.builds(
            ResponseFor,
            organ_id=unit_codes,
            code=maybe(text(40)),
            promulgation_date=maybe(dates),
            document_id=maybe(text(60)),
        ),
        max_size=2,
    ).map(tuple),
    steering_type=maybe(st.integers(0, 2)),
)
businesses = st.builds(
    Business,
    doc_type=st.sampled_from(BusinessDocType),
    document_id=maybe(text(60)),
    reason=maybe(text(100)),
    paper=st.integers(0, 1),
    staff_info=maybe(staff),
    update=maybe(
        st.builds(
            UpdateInfo,
            document_info=maybe(st.just("1")),
            document_receiver=maybe(st.just("1")),
            receivers=st.lists(
                st.builds(Receiver, organ_id=unit_codes, receiver_type=maybe(st.integers(0, 1))),
                max_size=3,
            ).map(tuple),
        )
    ),
    replacements=st.lists(
        st.builds(
            Replacement, document_id=text(60), organ_ids=st.lists(unit_codes, max_size=2).map(tuple)
        ),
        max_size=2,
    ).map(tuple),
)
traces = st.lists(
    st.builds(TraceHeader, organ_id=maybe(unit_codes), timestamp=maybe(timestamps)), max_size=2
)
attachment_bodies = st.lists(st.binary(max_size=3000), max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=headers, business=maybe(businesses), trace_list=traces, bodies=attachment_bodies)
def test_document_round_trip(
    header: MessageHeader,
    business: Business | None,
    trace_list: list[TraceHeader],
    bodies: list[bytes],
) -> None:
    sources = [
        AttachmentSource(
            name=f"tệp-{i}.pdf", open=lambda b=body: io.BytesIO(b), description="Phụ lục"
        )  # type: ignore[misc]
        for i, body in enumerate(bodies)
    ]
    data, built = build_document_bytes(
        header, attachments=sources, business=business, traces=trace_list
    )
    read = read_package(data).document()
    assert read == DocumentPackage(
        header=_as_read_header(header),
        traces=tuple(t for t in trace_list if t != TraceHeader(organ_id=None, timestamp=None)),
        business=_as_read_business(business),
        attachments=built.attachments,
    )
    assert [a.size for a in read.attachments] == [len(b) for b in bodies]


def _as_read_header(header: MessageHeader) -> MessageHeader:
    """The builder writes an all-empty SignerInfo as ``<SignerInfo/>``, which reads as absent."""
    if header.signer == SignerInfo():
        return dataclasses.replace(header, signer=None)
    return header


def _as_read_business(business: Business | None) -> Business | None:
    """Empty StaffInfo and BussinessDocumentInfo blocks read as absent."""
    if business is None:
        return None
    return dataclasses.replace(
        business,
        staff_info=None if business.staff_info == StaffInfo() else business.staff_info,
        update=None if business.update == UpdateInfo() else business.update,
    )


statuses = st.builds(
    StatusPackage,
    from_=organizations,
    response_for=st.builds(
        ResponseFor,
        organ_id=unit_codes,
        code=maybe(text(40)),
        promulgation_date=maybe(dates),
        document_id=text(60),
    ),
    status_code=st.sampled_from(StatusCode),
    timestamp=timestamps,
    description=text(200),
    staff_info=maybe(staff),
)


@settings(max_examples=60, deadline=None)
@given(status=statuses)
def test_status_round_trip(status: StatusPackage) -> None:
    expected = (
        dataclasses.replace(status, staff_info=None) if status.staff_info == StaffInfo() else status
    )
    assert read_package(build_status(status)).status() == expected

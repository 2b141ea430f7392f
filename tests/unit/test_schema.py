"""envelopes.schema: the strict XSDs docgw validates its OUTGOING packages against.

The fixtures are hand-written here (QCVN order, as docgw's builder emits); the real status samples
in ../shared/samples/real/ are checked at the end, with what they cannot pass and why.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import as_file, files
from pathlib import Path

import pytest
import xmlschema  # a dependency; imported here, before the unit tests' socket guard
from lxml import etree

from envelopes import schema
from envelopes.errors import SchemaError
from envelopes.namespaces import DSIG, QCVN
from envelopes.schema import (
    validate_document,
    validate_document_bytes,
    validate_status,
    validate_status_bytes,
)

SAMPLES = Path(__file__).parents[3] / "shared/samples/real"
STATUS_SAMPLES = (
    "status_inbox_01.edxml",
    "status_rejection_02.edxml",
    "status_acceptance_03.edxml",
    "status_cancellation_13.edxml",
)

HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
TRACES = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList"
MANIFEST = "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest"
ATTACHMENT = "/edXML/AttachmentEncoded/Attachment"

# --------------------------------------------------------------------------------------------
# Fixtures: written with the QCVN namespace as default namespace; _prefixed() gives the
# edXML:-prefixed form docgw writes (namespaces.QCVN_PREFIX). Both must validate alike.
# --------------------------------------------------------------------------------------------

FULL_DOCUMENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{QCVN}" xmlns:ds="{DSIG}">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader Id="header">
        <From>
          <OrganId>000.00.00.G22</OrganId>
          <OrganizationInCharge>Văn phòng Chính phủ</OrganizationInCharge>
          <OrganName>Văn phòng Chính phủ</OrganName>
          <OrganAdd>Số 1 Hoàng Hoa Thám, Quận Ba Đình, Hà Nội</OrganAdd>
          <Email>vpcp@chinhphu.vn</Email>
          <Telephone>080 43100</Telephone>
          <Fax>080 44130</Fax>
          <Website>chinhphu.vn</Website>
        </From>
        <To>
          <OrganId>000.00.00.H41</OrganId>
          <OrganName>UBND tỉnh Nghệ An</OrganName>
        </To>
        <To>
          <OrganId>000.00.00.H14</OrganId>
          <OrganName>UBND tỉnh Cao Bằng</OrganName>
        </To>
        <Code>
          <CodeNumber>7816</CodeNumber>
          <CodeNotation>VPCP-TTĐT</CodeNotation>
        </Code>
        <PromulgationInfo>
          <Place>Hà Nội</Place>
          <PromulgationDate>2015/09/30</PromulgationDate>
        </PromulgationInfo>
        <DocumentType>
          <Type>1</Type>
          <TypeDetail>0</TypeDetail>
          <TypeName>Công văn</TypeName>
        </DocumentType>
        <Subject>V/v kết nối, liên thông phần mềm quản lý văn bản</Subject>
        <Content>Đề nghị các cơ quan hoàn thành kết nối trước ngày 31/12.</Content>
        <SignerInfo>
          <Competence>KT. BỘ TRƯỞNG</Competence>
          <Position>Thứ trưởng</Position>
          <FullName>Nguyễn Văn Án</FullName>
        </SignerInfo>
        <DueDate>2015/10/15</DueDate>
        <ToPlaces>
          <Place>Các Bộ, cơ quan ngang Bộ, cơ quan thuộc Chính phủ</Place>
          <Place>HĐND, UBND các tỉnh, thành phố trực thuộc trung ương; Lưu: VT, TTĐT</Place>
        </ToPlaces>
        <OtherInfo>
          <Priority>1</Priority>
          <SphereOfPromulgation>Liên thông văn bản quốc gia</SphereOfPromulgation>
          <TyperNotation>TVC</TyperNotation>
          <PromulgationAmount>2</PromulgationAmount>
          <PageAmount>3</PageAmount>
          <Direction>false</Direction>
          <Appendixes>
            <Appendix>Phụ lục I: danh sách đơn vị</Appendix>
          </Appendixes>
        </OtherInfo>
        <ResponseFor>
          <OrganId>000.00.00.H41</OrganId>
          <Code>123/UBND-VX</Code>
          <PromulgationDate>2015/09/01</PromulgationDate>
          <DocumentId>000.00.00.H41,2015/09/01,123/UBND-VX</DocumentId>
        </ResponseFor>
        <SteeringType>1</SteeringType>
        <DocumentId>000.00.00.G22,2015/09/30,7816/VPCP-TTĐT</DocumentId>
      </MessageHeader>
      <TraceHeaderList>
        <TraceHeader>
          <OrganId>000.00.00.G22</OrganId>
          <Timestamp>2015/09/30 08:15:00</Timestamp>
        </TraceHeader>
        <Bussiness Id="business">
          <DocumentId>000.00.00.G22,2015/09/29,7800/VPCP-TTĐT</DocumentId>
          <BussinessDocType>2</BussinessDocType>
          <BussinessDocReason>Cập nhật văn bản điện tử</BussinessDocReason>
          <Paper>0</Paper>
          <BussinessDocumentInfo>
            <DocumentInfo>1</DocumentInfo>
            <DocumentReceiver>1</DocumentReceiver>
            <ReceiverList>
              <Receiver>
                <OrganId>000.00.00.H41</OrganId>
                <ReceiverType>0</ReceiverType>
              </Receiver>
            </ReceiverList>
          </BussinessDocumentInfo>
          <ReplacementInfoList>
            <ReplacementInfo>
              <DocumentId>000.00.00.G22,2015/09/01,7000/VPCP-TTĐT</DocumentId>
              <OrganIdList>
                <OrganId>000.00.00.H41</OrganId>
              </OrganIdList>
            </ReplacementInfo>
          </ReplacementInfoList>
          <StaffInfo>
            <Department>Văn thư văn phòng</Department>
            <Staff>Nguyễn Thị Ngọc Trâm</Staff>
            <Mobile>0912000001</Mobile>
            <Email>vanthu@chinhphu.vn</Email>
          </StaffInfo>
        </Bussiness>
      </TraceHeaderList>
      <ds:Signature Id="signature">
        <ds:SignedInfo><ds:Reference URI="#header"/></ds:SignedInfo>
        <ds:SignatureValue>AAAA</ds:SignatureValue>
      </ds:Signature>
    </edXMLHeader>
    <edXMLBody>
      <edXMLManifest version="1.0" Id="manifest">
        <Reference>
          <ContentId>cid:1</ContentId>
          <ContentType>application/pdf</ContentType>
          <Description>Công văn số 7816</Description>
          <AttachmentName>7816_VPCP-TTĐT.pdf</AttachmentName>
        </Reference>
      </edXMLManifest>
    </edXMLBody>
  </edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>cid:1</ContentId>
      <AttachmentName>7816_VPCP-TTĐT.pdf</AttachmentName>
      <Description>Công văn số 7816</Description>
      <ContentType>application/pdf</ContentType>
      <ContentTransferEncoded Id="attachment-1">JVBERi0xLjQK</ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
"""

MINIMAL_DOCUMENT = f"""<edXML xmlns="{QCVN}">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>000.00.20.H13</OrganId></From>
        <To><OrganId>000.00.00.H41</OrganId></To>
        <Code><CodeNumber>12</CodeNumber><CodeNotation>UBND-VP</CodeNotation></Code>
        <PromulgationInfo><PromulgationDate>2024/01/05</PromulgationDate></PromulgationInfo>
        <DocumentType><Type>1</Type><TypeName>Công văn</TypeName></DocumentType>
        <Subject>Về việc báo cáo tình hình kinh tế - xã hội quý I</Subject>
        <DocumentId>000.00.20.H13,2024/01/05,12/UBND-VP</DocumentId>
      </MessageHeader>
      <TraceHeaderList/>
    </edXMLHeader>
    <edXMLBody>
      <edXMLManifest version="1.0"/>
    </edXMLBody>
  </edXMLEnvelope>
</edXML>
"""

FULL_STATUS = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{QCVN}" xmlns:ds="{DSIG}">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader Id="status">
        <From>
          <OrganId>000.00.00.H41</OrganId>
          <OrganizationInCharge>UBND tỉnh Nghệ An</OrganizationInCharge>
          <OrganName>UBND tỉnh Nghệ An</OrganName>
          <OrganAdd>Số 03, đường Trường Thi, Thành phố Vinh, Tỉnh Nghệ An</OrganAdd>
          <Email>nghean@gov.vn</Email>
        </From>
        <ResponseFor>
          <OrganId>000.00.00.G22</OrganId>
          <Code>7816/VPCP-TTĐT</Code>
          <PromulgationDate>2015/09/30</PromulgationDate>
          <DocumentId>000.00.00.G22,2015/09/30,7816/VPCP-TTĐT</DocumentId>
        </ResponseFor>
        <StaffInfo>
          <Department>Phòng Hành chính</Department>
          <Staff>Nguyễn Thị Ngọc Trâm</Staff>
          <Mobile>84912000001</Mobile>
          <Email>ngoctram@nghean.gov.vn</Email>
        </StaffInfo>
        <StatusCode>02</StatusCode>
        <Description>Từ chối: văn bản gửi sai đơn vị nhận</Description>
        <Timestamp>2015/09/30 11:08:36</Timestamp>
      </MessageHeader>
      <ds:Signature><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>
    </edXMLHeader>
  </edXMLEnvelope>
</edXML>
"""

MINIMAL_STATUS = f"""<edXML xmlns="{QCVN}">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>000.00.00.H41</OrganId></From>
        <ResponseFor><OrganId>000.00.00.G22</OrganId></ResponseFor>
        <StatusCode>01</StatusCode>
        <Timestamp>2015/09/30 11:08:36</Timestamp>
      </MessageHeader>
    </edXMLHeader>
  </edXMLEnvelope>
</edXML>
"""


def _prefixed(xml: str) -> str:
    """The same package with every QCVN element written ``edXML:Name`` (docgw's own form)."""
    xml = xml.replace(f'xmlns="{QCVN}"', f'xmlns:edXML="{QCVN}"')
    return re.sub(r"<(/?)(?!ds:|\?)([A-Za-z]+)", r"<\1edXML:\2", xml)


def _parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def _find(root: etree._Element, path: str) -> etree._Element:
    """``_find(root, "edXMLEnvelope/edXMLHeader/MessageHeader/Subject")``, namespace-aware."""
    found = root.find("/".join(f"{{{QCVN}}}{step}" for step in path.split("/")))
    assert found is not None, path
    return found


def _header(root: etree._Element, child: str = "") -> etree._Element:
    return _find(root, "edXMLEnvelope/edXMLHeader/MessageHeader" + (f"/{child}" if child else ""))


def _q(local: str) -> str:
    return f"{{{QCVN}}}{local}"


def _errors(error: SchemaError) -> tuple[str, ...]:
    """All the errors libxml2 reported (set by envelopes.schema; not yet declared on the class)."""
    errors: tuple[str, ...] = error.errors  # type: ignore[attr-defined]
    return errors


def _invalid(validate: Callable[[etree._Element], None], root: etree._Element) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        validate(root)
    error = caught.value
    assert error.code == "SCHEMA_INVALID"
    assert _errors(error)  # every libxml2 error, first one first
    assert _errors(error)[0].startswith(f"{error.element}: ")
    return error


# --------------------------------------------------------------------------------------------
# Valid packages
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [str, _prefixed], ids=["default-namespace", "edXML-prefix"])
@pytest.mark.parametrize("xml", [FULL_DOCUMENT, MINIMAL_DOCUMENT], ids=["full", "minimal"])
def test_valid_document(xml: str, form: Callable[[str], str]) -> None:
    validate_document(_parse(form(xml)))
    validate_document_bytes(form(xml).encode())


@pytest.mark.parametrize("form", [str, _prefixed], ids=["default-namespace", "edXML-prefix"])
@pytest.mark.parametrize("xml", [FULL_STATUS, MINIMAL_STATUS], ids=["full", "minimal"])
def test_valid_status(xml: str, form: Callable[[str], str]) -> None:
    validate_status(_parse(form(xml)))
    validate_status_bytes(form(xml).encode())


def test_skeleton_with_streamed_away_base64_is_valid() -> None:
    root = _parse(FULL_DOCUMENT)
    _find(root, "AttachmentEncoded/Attachment/ContentTransferEncoded").text = None
    validate_document(root)


def test_limits_are_characters_not_bytes() -> None:
    root = _parse(FULL_DOCUMENT)
    _header(root, "Subject").text = "Trích yếu văn bản " + "ữ" * (500 - 18)
    validate_document(root)  # 500 Vietnamese characters, far more than 500 UTF-8 bytes


def test_every_status_code_is_accepted() -> None:
    root = _parse(MINIMAL_STATUS)
    for code in ("01", "02", "03", "04", "05", "06", "13", "15", "16"):
        _header(root, "StatusCode").text = code
        validate_status(root)


def test_validates_the_element_it_is_given_not_its_document() -> None:
    wrapper = etree.Element("wrapper")
    wrapper.append(_parse(MINIMAL_DOCUMENT))
    validate_document(wrapper[0])
    _header(wrapper[0], "Subject").text = "x" * 501
    error = _invalid(validate_document, wrapper[0])
    assert error.element == f"{HEADER}/Subject"  # paths start at the package root


# --------------------------------------------------------------------------------------------
# Invalid document packages: element path and rule
# --------------------------------------------------------------------------------------------


def _remove(path: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        for element in root.iterfind("/".join(_q(step) for step in path.split("/"))):
            parent = element.getparent()
            assert parent is not None
            parent.remove(element)

    return mutate


def _set(path: str, text: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        _find(root, path).text = text

    return mutate


def _insert_after(path: str, new: etree._Element) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        _find(root, path).addnext(new)

    return mutate


def _swap_subject_and_document_type(root: etree._Element) -> None:
    subject = _header(root, "Subject")
    _header(root, "DocumentType").addprevious(subject)


def _second_to_bad(root: etree._Element) -> None:
    _header(root).findall(_q("To"))[1].find(_q("OrganId")).text = "000.00.00 H14"  # type: ignore[union-attr]


def _unnamespaced_signature(root: etree._Element) -> None:
    # The official SDK writes <Signature> in the QCVN default namespace: docgw must not.
    signature = _find(root, "edXMLEnvelope/edXMLHeader").find(f"{{{DSIG}}}Signature")
    assert signature is not None
    signature.tag = _q("Signature")


def _header_attribute(name: str, value: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        _header(root).set(name, value)

    return mutate


def _set_attribute(path: str, name: str, value: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        _find(root, path).set(name, value)

    return mutate


def _manifest_without_version(root: etree._Element) -> None:
    del _find(root, "edXMLEnvelope/edXMLBody/edXMLManifest").attrib["version"]


def _text_in_header(root: etree._Element) -> None:
    _header(root, "Subject").tail = "lạc chỗ"


H = "edXMLEnvelope/edXMLHeader/MessageHeader"
DOCUMENT_CASES: list[tuple[str, Callable[[etree._Element], None], str, str]] = [
    # the cases the brief names
    (
        "missing DocumentId",
        _remove(f"{H}/DocumentId"),
        HEADER,
        "missing required element DocumentId",
    ),
    ("Subject over 500", _set(f"{H}/Subject", "ă" * 501), f"{HEADER}/Subject", "maxLength 500"),
    (
        "bad date format",
        _set(f"{H}/PromulgationInfo/PromulgationDate", "30/09/2015"),
        f"{HEADER}/PromulgationInfo/PromulgationDate",
        "pattern",
    ),
    (
        "Priority 7",
        _set(f"{H}/OtherInfo/Priority", "7"),
        f"{HEADER}/OtherInfo/Priority",
        "maxInclusive 4",
    ),
    (
        "unexpected element",
        _insert_after(f"{H}/Subject", etree.Element(_q("GhiChu"))),
        f"{HEADER}/GhiChu",
        "unexpected element",
    ),
    ("To missing", _remove(f"{H}/To"), HEADER, "missing required element To"),
    # more of the same family
    ("Code missing", _remove(f"{H}/Code"), HEADER, "missing required element Code"),
    ("From missing", _remove(f"{H}/From"), HEADER, "missing required element From"),
    ("Subject empty", _set(f"{H}/Subject", ""), f"{HEADER}/Subject", "minLength 1"),
    ("Content over 500", _set(f"{H}/Content", "ô" * 501), f"{HEADER}/Content", "maxLength 500"),
    (
        "OrganName over 200",
        _set(f"{H}/From/OrganName", "Ủ" * 201),
        f"{HEADER}/From/OrganName",
        "maxLength 200",
    ),
    (
        "OrganAdd over 250",
        _set(f"{H}/From/OrganAdd", "đ" * 251),
        f"{HEADER}/From/OrganAdd",
        "maxLength 250",
    ),
    (
        "CodeNumber over 11",
        _set(f"{H}/Code/CodeNumber", "123456789012"),
        f"{HEADER}/Code/CodeNumber",
        "maxLength 11",
    ),
    (
        "CodeNotation over 30",
        _set(f"{H}/Code/CodeNotation", "VPCP-" + "Đ" * 26),
        f"{HEADER}/Code/CodeNotation",
        "maxLength 30",
    ),
    (
        "Place over 50",
        _set(f"{H}/PromulgationInfo/Place", "Hà Nội" * 9),
        f"{HEADER}/PromulgationInfo/Place",
        "maxLength 50",
    ),
    (
        "OrganId over 35",
        _set(f"{H}/From/OrganId", "000.00.00.G22" * 3),
        f"{HEADER}/From/OrganId",
        "maxLength 35",
    ),
    ("OrganId in the second To", _second_to_bad, f"{HEADER}/To[2]/OrganId", "pattern"),
    ("DueDate ISO", _set(f"{H}/DueDate", "2015-10-15"), f"{HEADER}/DueDate", "pattern"),
    ("month 13", _set(f"{H}/DueDate", "2015/13/01"), f"{HEADER}/DueDate", "pattern"),
    ("SteeringType 3", _set(f"{H}/SteeringType", "3"), f"{HEADER}/SteeringType", "maxInclusive 2"),
    (
        "Type negative",
        _set(f"{H}/DocumentType/Type", "-1"),
        f"{HEADER}/DocumentType/Type",
        "type xs:nonNegativeInteger",
    ),
    (
        "Direction not boolean",
        _set(f"{H}/OtherInfo/Direction", "không"),
        f"{HEADER}/OtherInfo/Direction",
        "type xs:boolean",
    ),
    (
        "out of QCVN order",
        _swap_subject_and_document_type,
        f"{HEADER}/Subject",
        "unexpected element",
    ),
    (
        "BussinessDocType 4",
        _set("edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType", "4"),
        f"{TRACES}/Bussiness/BussinessDocType",
        "maxInclusive 3",
    ),
    (
        "Paper 2",
        _set("edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/Paper", "2"),
        f"{TRACES}/Bussiness/Paper",
        "maxInclusive 1",
    ),
    (
        "trace Timestamp ISO",
        _set("edXMLEnvelope/edXMLHeader/TraceHeaderList/TraceHeader/Timestamp", "2015-09-30T08:15"),
        f"{TRACES}/TraceHeader/Timestamp",
        "pattern",
    ),
    (
        "Signature outside XML-DSig",
        _unnamespaced_signature,
        "/edXML/edXMLEnvelope/edXMLHeader/Signature",
        "unexpected element",
    ),
    ("Id not an NCName", _header_attribute("Id", "1 header"), f"{HEADER}/@Id", "type xs:ID"),
    (
        "Id used twice",
        _set_attribute("edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness", "Id", "header"),
        f"{TRACES}/Bussiness/@Id",
        "unique xs:ID",
    ),
    (
        "unknown attribute",
        _header_attribute("Version", "2"),
        f"{HEADER}/@Version",
        "unexpected attribute",
    ),
    (
        "manifest version missing",
        _manifest_without_version,
        MANIFEST,
        "missing required attribute version",
    ),
    (
        "bad base64",
        _set("AttachmentEncoded/Attachment/ContentTransferEncoded", "không phải base64!"),
        f"{ATTACHMENT}/ContentTransferEncoded",
        "type xs:base64Binary",
    ),
    (
        "attachment ContentId missing",
        _remove("AttachmentEncoded/Attachment/ContentId"),
        ATTACHMENT,
        "missing required element ContentId",
    ),
    ("text between elements", _text_in_header, HEADER, "element-only content"),
]


@pytest.mark.parametrize(
    ("mutate", "element", "rule"),
    [case[1:] for case in DOCUMENT_CASES],
    ids=[case[0] for case in DOCUMENT_CASES],
)
def test_invalid_document(
    mutate: Callable[[etree._Element], None], element: str, rule: str
) -> None:
    for form in (str, _prefixed):  # the prefix never changes the path or the rule
        root = _parse(form(FULL_DOCUMENT))
        mutate(root)
        error = _invalid(validate_document, root)
        assert (error.element, error.rule) == (element, rule), _errors(error)


def test_message_is_readable() -> None:
    root = _parse(FULL_DOCUMENT)
    _header(root, "Subject").text = "ă" * 501
    error = _invalid(validate_document, root)
    assert error.message.startswith("Subject: ")
    assert QCVN not in error.message  # no Clark notation
    assert str(error).startswith("SCHEMA_INVALID: Subject: ")
    assert str(error).endswith(f"[{HEADER}/Subject]")


def test_all_errors_are_kept_in_order() -> None:
    root = _parse(FULL_DOCUMENT)
    _header(root, "From/OrganId").text = "sai mã"
    _header(root, "OtherInfo/Priority").text = "7"
    error = _invalid(validate_document, root)
    assert error.element == f"{HEADER}/From/OrganId"
    assert any(e.startswith(f"{HEADER}/OtherInfo/Priority: ") for e in _errors(error))
    assert all(len(e) <= 400 for e in _errors(error))


def test_long_values_are_clipped_in_messages() -> None:
    root = _parse(FULL_DOCUMENT)
    _header(root, "DueDate").text = "x" * 5000
    error = _invalid(validate_document, root)
    assert error.rule == "pattern"
    assert len(error.message) <= 400


def test_status_package_is_not_a_document() -> None:
    error = _invalid(validate_document, _parse(FULL_STATUS))
    assert (error.element, error.rule) == (
        "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader",
        "missing required element To",
    )


def test_wrong_root() -> None:
    root = _parse(MINIMAL_DOCUMENT)
    root.tag = _q("edXMLEnvelope")
    error = _invalid(validate_document, root)
    assert (error.element, error.rule) == ("/edXMLEnvelope", "root element")


# --------------------------------------------------------------------------------------------
# Invalid status packages
# --------------------------------------------------------------------------------------------


def _rename(path: str, new_local: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        _find(root, path).tag = _q(new_local)

    return mutate


def _staff_after_status_code(root: etree._Element) -> None:
    _header(root, "StatusCode").addnext(_header(root, "StaffInfo"))


STATUS_CASES: list[tuple[str, Callable[[etree._Element], None], str, str]] = [
    ("StatusCode 07", _set(f"{H}/StatusCode", "07"), f"{HEADER}/StatusCode", "pattern"),
    ("StatusCode 1", _set(f"{H}/StatusCode", "1"), f"{HEADER}/StatusCode", "pattern"),
    (
        "Timestamp ISO",
        _set(f"{H}/Timestamp", "2015-09-30T11:08:36"),
        f"{HEADER}/Timestamp",
        "pattern",
    ),
    (
        "TimeStamp spelling",  # some senders write it so; docgw does not
        _rename(f"{H}/Timestamp", "TimeStamp"),
        HEADER,
        "missing required element Timestamp",
    ),
    ("Timestamp missing", _remove(f"{H}/Timestamp"), HEADER, "missing required element Timestamp"),
    (
        "ResponseFor missing",
        _remove(f"{H}/ResponseFor"),
        HEADER,
        "missing required element ResponseFor",
    ),
    (
        "StatusCode missing",
        _remove(f"{H}/StatusCode"),
        HEADER,
        "missing required element StatusCode",
    ),
    (
        "StaffInfo out of order",
        _staff_after_status_code,
        f"{HEADER}/StaffInfo",
        "unexpected element",
    ),
    (
        "StaffInfo Email over 100",
        _set(f"{H}/StaffInfo/Email", "a" * 95 + "@gov.vn"),
        f"{HEADER}/StaffInfo/Email",
        "maxLength 100",
    ),
    (
        "ResponseFor date",
        _set(f"{H}/ResponseFor/PromulgationDate", "2015/9/30"),
        f"{HEADER}/ResponseFor/PromulgationDate",
        "pattern",
    ),
    (
        "document element in a status",
        _insert_after(f"{H}/From", etree.Element(_q("To"))),
        f"{HEADER}/To",
        "unexpected element",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "element", "rule"),
    [case[1:] for case in STATUS_CASES],
    ids=[case[0] for case in STATUS_CASES],
)
def test_invalid_status(mutate: Callable[[etree._Element], None], element: str, rule: str) -> None:
    for form in (str, _prefixed):
        root = _parse(form(FULL_STATUS))
        mutate(root)
        error = _invalid(validate_status, root)
        assert (error.element, error.rule) == (element, rule), _errors(error)


def test_document_is_not_a_status() -> None:
    error = _invalid(validate_status, _parse(FULL_DOCUMENT))
    # The document's header has a ResponseFor further on, so To is out of place, not ResponseFor
    # missing.
    assert (error.element, error.rule) == (f"{HEADER}/To[1]", "unexpected element")


# --------------------------------------------------------------------------------------------
# Bytes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"<edXML xmlns='" + QCVN.encode() + b"'><edXMLEnvelope>", "well-formed XML"),
        (b"1212" + FULL_STATUS.encode(), "well-formed XML"),  # the SDK's stray bytes
        (b"", "well-formed XML"),
        (
            b"<!DOCTYPE edXML [<!ENTITY x 'y'>]>" + MINIMAL_STATUS.encode(),
            "no DOCTYPE",
        ),
        (
            b'<!DOCTYPE edXML SYSTEM "http://example.invalid/x.dtd">' + MINIMAL_STATUS.encode(),
            "no DOCTYPE",
        ),
    ],
    ids=["truncated", "stray-bytes", "empty", "internal-dtd", "external-dtd"],
)
def test_bytes_that_are_not_a_clean_package(data: bytes, rule: str) -> None:
    for validate in (validate_status_bytes, validate_document_bytes):
        with pytest.raises(SchemaError) as caught:
            validate(data)
        assert caught.value.code == "SCHEMA_INVALID"
        assert caught.value.rule == rule
        assert caught.value.element is None


def test_bytes_errors_carry_the_path() -> None:
    data = FULL_STATUS.replace("<StatusCode>02", "<StatusCode>07").encode()
    with pytest.raises(SchemaError) as caught:
        validate_status_bytes(data)
    assert (caught.value.element, caught.value.rule) == (f"{HEADER}/StatusCode", "pattern")


# --------------------------------------------------------------------------------------------
# Loading: package data, once, no network, thread-safe
# --------------------------------------------------------------------------------------------


def test_schemas_are_package_data() -> None:
    names = {p.name for p in files("xsd").iterdir()}
    assert {"edxml_document.xsd", "edxml_status.xsd", "edxml_common.xsd"} <= names


@pytest.mark.parametrize("name", ["edxml_document.xsd", "edxml_status.xsd"])
def test_each_xsd_also_compiles_from_a_file_path(name: str) -> None:
    """External tools (xmllint, xmlschema) load the files by path and resolve the include."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    with as_file(files("xsd").joinpath(name)) as path:
        compiled = etree.XMLSchema(etree.parse(str(path), parser))
    xml = FULL_DOCUMENT if name == "edxml_document.xsd" else FULL_STATUS
    assert compiled.validate(_parse(xml))


def test_xmlschema_agrees_on_the_fixtures() -> None:
    """A second, independent XSD 1.0 processor accepts the schemas and the fixtures."""
    for name, valid, invalid in (
        ("edxml_document.xsd", FULL_DOCUMENT, FULL_STATUS),
        ("edxml_status.xsd", FULL_STATUS, FULL_DOCUMENT),
    ):
        with as_file(files("xsd").joinpath(name)) as path:
            compiled = xmlschema.XMLSchema10(str(path))
        assert compiled.is_valid(valid)
        assert not compiled.is_valid(invalid)


def test_schema_is_loaded_once_and_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = schema._read_schema

    def counting(name: str, seen: frozenset[str] = frozenset()) -> etree._Element:
        calls.append(name)
        return real(name, seen)

    monkeypatch.setattr(schema, "_read_schema", counting)
    fresh = schema._LoadedSchema(schema.STATUS_SCHEMA)
    assert calls == []
    for _ in range(3):
        entries, _model = fresh.validate(_parse(MINIMAL_STATUS))
        assert entries == ()
    assert calls == ["edxml_status.xsd", "edxml_common.xsd"]


def test_include_is_inlined_so_nothing_is_fetched() -> None:
    tree = schema._read_schema(schema.DOCUMENT_SCHEMA)
    xs = "{http://www.w3.org/2001/XMLSchema}"
    assert tree.find(f"{xs}include") is None
    assert tree.find(f"{xs}import") is None
    assert tree.find(f"{xs}simpleType[@name='OrganIdType']") is not None


def test_concurrent_validation_keeps_errors_apart() -> None:
    bad = _parse(FULL_STATUS.replace("<StatusCode>02", "<StatusCode>07"))
    start = threading.Barrier(8)

    def run(i: int) -> str | None:
        start.wait()
        root = _parse(MINIMAL_STATUS) if i % 2 else bad
        for _ in range(50):
            try:
                validate_status(root)
            except SchemaError as error:
                assert error.element == f"{HEADER}/StatusCode"
                return error.rule
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(8)))
    assert results == ["pattern", None] * 4


# --------------------------------------------------------------------------------------------
# Real status packages (official SDK / VNPT test axis); skipped where the folder is absent
# --------------------------------------------------------------------------------------------


def _to_qcvn_order(root: etree._Element) -> None:
    """Move OrganizationInCharge before OrganName in From, the only ordering difference."""
    organization = _header(root, "From")
    in_charge = organization.find(_q("OrganizationInCharge"))
    name = organization.find(_q("OrganName"))
    assert in_charge is not None and name is not None
    name.addprevious(in_charge)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"real samples not present at {SAMPLES}")
@pytest.mark.parametrize("sample", STATUS_SAMPLES)
def test_real_status_samples(sample: str) -> None:
    """The SDK's status packages (CRLF, tabs and stray whitespace; MessageHeader order From,
    ResponseFor, StaffInfo, StatusCode, Description, Timestamp, as docgw's) do NOT pass as they
    are, for one reason only: the SDK writes From as OrganId, OrganName, OrganizationInCharge,
    whereas QCVN (DOMAIN.md §3) and docgw's builder put OrganizationInCharge before OrganName.
    Received packages are never validated with these schemas (the reader accepts both orders);
    with that one swap undone, every sample validates, whitespace and all."""
    data = (SAMPLES / sample).read_bytes()
    with pytest.raises(SchemaError) as caught:
        validate_status_bytes(data)
    assert caught.value.element == f"{HEADER}/From/OrganizationInCharge"
    assert caught.value.rule == "unexpected element"
    assert len(_errors(caught.value)) == 1  # nothing else is wrong

    root = etree.fromstring(data)
    _to_qcvn_order(root)
    validate_status(root)

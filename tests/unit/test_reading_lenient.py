"""Lenient receive: an optional element or block present but empty (self-closed, or holding only
empty children) reads as absent, with an EMPTY_ELEMENT notice naming it; what routing,
verification or deduplication needs is still refused with its precise code and element.

Packages are built with docgw's own builder, then edited as another sender writes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pki  # tests/pki.py
import pytest
from lxml import etree

from envelopes.building import build_status
from envelopes.errors import PackageStructureError
from envelopes.model import Business, BusinessDocType, OtherInfo, SignerInfo, StaffInfo
from envelopes.namespaces import QCVN, q
from envelopes.reading import Notice, ParsedPackage, read_package, read_routing
from envelopes.verification import verify_document, verify_status

HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
BUSINESS = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness"

Edit = Callable[[etree._Element], None]


def _find(root: etree._Element, path: str) -> etree._Element:
    """The element at ``path`` (local names joined by /, below MessageHeader's parent)."""
    element = root.find(".//" + "/".join(q(name) for name in path.split("/")))
    assert element is not None, path
    return element


def emptied(path: str, *, keep_children: bool = False) -> Edit:
    """Empty the element at ``path``: self-closed, or (``keep_children``) with each child emptied
    (``<SignerInfo><Competence/><Position> </Position>…``)."""

    def edit(root: etree._Element) -> None:
        element = _find(root, path)
        if keep_children:
            for index, child in enumerate(element):
                for grandchild in list(child):
                    child.remove(grandchild)
                child.text = " \n " if index % 2 else None
        else:
            for child in list(element):
                element.remove(child)
            element.text = None

    return edit


def added(parent: str, xml: str) -> Edit:
    """Append ``xml`` (in the QCVN namespace, unprefixed) to the element at ``parent``."""

    def edit(root: etree._Element) -> None:
        wrapped = f'<w xmlns="{QCVN}">{xml}</w>'
        for child in etree.fromstring(wrapped):
            _find(root, parent).append(child)

    return edit


def document_bytes(*edits: Edit, business: Business | None = pki.NEW_DOCUMENT) -> bytes:
    data, _ = pki.build_package({}, None, business=business)
    root = etree.fromstring(data)
    for edit in edits:
        edit(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def empties(parsed: ParsedPackage) -> set[str | None]:
    return {n.element for n in parsed.notices if n.code == "EMPTY_ELEMENT"}


# --------------------------------------------------------------------------- optional: absent


@pytest.mark.parametrize(
    ("edit", "element", "check"),
    [
        (
            emptied("MessageHeader/OtherInfo"),
            f"{HEADER}/OtherInfo",
            lambda d: d.header.other_info == OtherInfo(),
        ),
        (
            emptied("MessageHeader/SignerInfo", keep_children=True),
            f"{HEADER}/SignerInfo",
            lambda d: d.header.signer is None,
        ),
        (
            emptied("MessageHeader/ToPlaces"),
            f"{HEADER}/ToPlaces",
            lambda d: d.header.to_places == (),
        ),
        (
            emptied("MessageHeader/OtherInfo/Appendixes"),
            f"{HEADER}/OtherInfo/Appendixes",
            lambda d: (
                d.header.other_info.appendixes == () and d.header.other_info.priority == 1
            ),  # the rest of OtherInfo is read
        ),
        (
            added("MessageHeader", "<ResponseFor/>"),
            f"{HEADER}/ResponseFor",
            lambda d: d.header.response_for == (),
        ),
        (
            added("MessageHeader", "<ResponseFor><OrganId/><Code> </Code></ResponseFor>"),
            f"{HEADER}/ResponseFor",
            lambda d: d.header.response_for == (),
        ),
        (
            added("MessageHeader/ToPlaces", "<Place/>"),
            f"{HEADER}/ToPlaces/Place",
            lambda d: len(d.header.to_places) == 2 and all(d.header.to_places),
        ),
        (
            added("MessageHeader/OtherInfo/Appendixes", "<Appendix>  </Appendix>"),
            f"{HEADER}/OtherInfo/Appendixes/Appendix",
            lambda d: len(d.header.other_info.appendixes) == 1,
        ),
        (
            emptied("MessageHeader/DueDate"),
            f"{HEADER}/DueDate",
            lambda d: d.header.due_date is None,
        ),
        (
            emptied("MessageHeader/From/Email"),
            f"{HEADER}/From/Email",
            lambda d: d.header.from_.email is None,
        ),
        (
            emptied("Bussiness/StaffInfo", keep_children=True),
            f"{BUSINESS}/StaffInfo",
            lambda d: d.business.staff_info is None,
        ),
        (
            added("Bussiness", "<BussinessDocumentInfo><ReceiverList/></BussinessDocumentInfo>"),
            f"{BUSINESS}/BussinessDocumentInfo",
            lambda d: d.business.update is None,
        ),
        (
            added("Bussiness", "<ReplacementInfoList><ReplacementInfo/></ReplacementInfoList>"),
            f"{BUSINESS}/ReplacementInfoList",
            lambda d: d.business.replacements == (),
        ),
        (
            added(
                "Bussiness",
                "<ReplacementInfoList><ReplacementInfo><DocumentId>A,2024/01/02,1/X</DocumentId>"
                "<OrganIdList/></ReplacementInfo><ReplacementInfo/></ReplacementInfoList>",
            ),
            f"{BUSINESS}/ReplacementInfoList/ReplacementInfo",
            lambda d: (
                [(r.document_id, r.organ_ids) for r in d.business.replacements]
                == [("A,2024/01/02,1/X", ())]
            ),
        ),
        (
            added(
                "Bussiness",
                "<BussinessDocumentInfo><DocumentInfo>1</DocumentInfo><ReceiverList><Receiver>"
                "<OrganId/></Receiver><Receiver><OrganId>000.00.00.H41</OrganId></Receiver>"
                "</ReceiverList></BussinessDocumentInfo>",
            ),
            f"{BUSINESS}/BussinessDocumentInfo/ReceiverList/Receiver",
            lambda d: (
                [r.organ_id for r in d.business.update.receivers] == ["000.00.00.H41"]
                and d.business.update.document_info == "1"
            ),
        ),
        (
            emptied("Bussiness"),
            BUSINESS,
            lambda d: d.business is None,
        ),
        (
            added("TraceHeaderList", "<TraceHeader><OrganId/></TraceHeader>"),
            "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/TraceHeader",
            lambda d: d.traces == (),
        ),
    ],
    ids=lambda v: v.removeprefix("/edXML/edXMLEnvelope/edXMLHeader/") if isinstance(v, str) else "",
)
def test_an_empty_optional_element_reads_as_absent_with_a_notice(
    edit: Edit, element: str, check: Callable[[object], bool]
) -> None:
    parsed = read_package(document_bytes(edit))
    assert element in empties(parsed)
    assert check(parsed.document())


def test_a_status_with_an_empty_staff_info_reads() -> None:
    status = pki.sample_status()
    root = etree.fromstring(build_status(status))
    emptied("MessageHeader/StaffInfo", keep_children=True)(root)
    parsed = read_package(etree.tostring(root))
    assert parsed.status().staff_info is None
    assert f"{HEADER}/StaffInfo" in empties(parsed)


def test_a_full_package_has_no_empty_element_notice() -> None:
    assert not empties(read_package(document_bytes()))


# ------------------------------------------------------------------- what docgw's builder writes


def test_empty_blocks_written_by_a_builder_read_as_absent_and_verify() -> None:
    """docgw's own builder writes an all-empty SignerInfo or StaffInfo as a self-closed element:
    signed, it verifies, and reads as absent, with its notice."""
    header = pki.sample_header()
    business = Business(doc_type=BusinessDocType.NEW, staff_info=StaffInfo())
    data, _ = pki.build_package(
        {}, pki.signer(), business=business, header=dataclasses.replace(header, signer=SignerInfo())
    )
    verified = verify_document(read_package(data), pki.trust())
    assert verified.package.header.signer is None
    assert verified.package.business is not None and verified.package.business.staff_info is None
    assert {f"{HEADER}/SignerInfo", f"{BUSINESS}/StaffInfo"} <= {
        n.element for n in verified.notices if n.code == "EMPTY_ELEMENT"
    }


def test_a_signed_status_with_an_empty_staff_info_verifies() -> None:
    status = pki.sample_status()
    data = build_status(
        dataclasses.replace(status, staff_info=StaffInfo()), signer=pki.signer(pki.RECEIVER)
    )
    verified = verify_status(read_package(data), pki.trust())
    assert verified.status.staff_info is None
    assert (
        Notice(
            code="EMPTY_ELEMENT",
            message="StaffInfo is present but empty: read as absent",
            element=f"{HEADER}/StaffInfo",
        )
        in verified.notices
    )


# ----------------------------------------------------------------- needed: refused, precisely


@pytest.mark.parametrize(
    ("edit", "element", "message"),
    [
        (emptied("MessageHeader/From"), f"{HEADER}/From/OrganId", "required element missing"),
        (
            emptied("MessageHeader/From/OrganId"),
            f"{HEADER}/From/OrganId",
            "required element empty",
        ),
        (emptied("MessageHeader/To"), f"{HEADER}/To/OrganId", "required element missing"),
        (
            emptied("MessageHeader/To", keep_children=True),
            f"{HEADER}/To/OrganId",
            "required element empty",
        ),
        (emptied("MessageHeader/DocumentId"), f"{HEADER}/DocumentId", "required element empty"),
    ],
    ids=["From", "From/OrganId", "To", "To-children", "DocumentId"],
)
def test_what_routing_or_deduplication_needs_is_refused_with_its_element(
    edit: Edit, element: str, message: str
) -> None:
    data = document_bytes(edit)
    for read in (read_package, read_routing):
        with pytest.raises(PackageStructureError) as caught:
            read(data)
        assert (caught.value.code, caught.value.element) == ("PACKAGE_STRUCTURE", element)
        assert caught.value.message == message


def test_a_status_without_the_document_it_answers_is_refused() -> None:
    root = etree.fromstring(build_status(pki.sample_status()))
    emptied("MessageHeader/ResponseFor")(root)
    data = etree.tostring(root)
    for read in (read_package, read_routing):
        with pytest.raises(PackageStructureError) as caught:
            read(data)
        assert caught.value.element == f"{HEADER}/ResponseFor/OrganId"

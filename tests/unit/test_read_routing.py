"""read_routing: what an axis needs of a package, read with the same hardened parser and header
readers as read_package, the attachments passed over."""

from __future__ import annotations

import re
from collections.abc import Iterator

import attacks  # tests/attacks.py
import pytest
from pki import RECEIVER, SENDER, build_package, sample_header, sample_status, signer

from envelopes.building import build_status
from envelopes.errors import (
    AttachmentError,
    GatewayError,
    PackageStructureError,
    XmlMalformed,
    XmlRejected,
)
from envelopes.reading import PackageKind, read_package, read_routing
from envelopes.xmlsafe import Limits


def test_a_document_routes_by_its_header() -> None:
    data, _ = build_package({"van-ban.pdf": b"%PDF-1.7 routing"}, signer())
    routing = read_routing(data)
    header = sample_header()
    assert routing.kind is PackageKind.DOCUMENT
    assert routing.sender == SENDER
    assert routing.receivers == tuple(to.organ_id for to in header.to)
    assert routing.document_id == header.document_id
    assert routing.response_to is None
    # The same as a full read says.
    full = read_package(data).document().header
    assert (full.from_.organ_id, full.document_id) == (routing.sender, routing.document_id)


def test_a_status_package_names_the_document_and_its_sender() -> None:
    status = sample_status()
    routing = read_routing(build_status(status, signer=signer(RECEIVER)))
    assert routing.kind is PackageKind.STATUS
    assert routing.sender == RECEIVER
    assert routing.receivers == ()
    assert routing.document_id == status.response_for.document_id
    assert routing.response_to == SENDER


def test_attachment_text_is_passed_over_not_decoded() -> None:
    """A router does not judge the attachments (the receiver verifies them): bad base64 routes,
    and a full read still refuses it."""
    package = attacks.bad_base64_in(attacks.sample_package(), "invalid_character")
    assert read_routing(package).kind is PackageKind.DOCUMENT
    with pytest.raises(AttachmentError):
        read_package(package)


def test_only_the_routing_fields_are_read() -> None:
    """The rest of the header is the receiver's to judge: a broken date routes, and a full read
    still refuses it. A missing To does not route."""
    data, _ = build_package({"van-ban.pdf": b"%PDF-1.7 routing"}, signer())
    broken = re.sub(rb"(<edXML:PromulgationDate>)[^<]*", rb"\1not a date", data, count=1)
    assert broken != data
    assert read_routing(broken).sender == SENDER
    with pytest.raises(PackageStructureError):
        read_package(broken)
    no_recipient = re.sub(rb"<edXML:To>.*?</edXML:To>", b"", data, flags=re.S)
    with pytest.raises(PackageStructureError) as caught:
        read_routing(no_recipient)
    assert caught.value.element is not None and caught.value.element.endswith("/To")


def test_nothing_after_the_header_is_read() -> None:
    """A router stops at the end of MessageHeader: the attachments (most of a package's bytes)
    are neither parsed nor checked — damage after the header routes, the receiver refuses it."""
    data, _ = build_package({"van-ban.pdf": b"%PDF-1.7 routing" * 5000}, signer())
    end = data.index(b"</edXML:MessageHeader>") + len(b"</edXML:MessageHeader>")

    def chunks() -> Iterator[bytes]:
        yield data[:end]
        raise AssertionError("read past the header")

    assert read_routing(chunks()).sender == SENDER
    damaged = data[:end] + b"<unclosed" + data[end:]
    assert read_routing(damaged).receivers == tuple(to.organ_id for to in sample_header().to)
    with pytest.raises(XmlMalformed):
        read_package(damaged)
    # Cut inside the header, it does not route.
    with pytest.raises(XmlMalformed):
        read_routing(data[: end - 30])


def test_the_limits_hold_for_the_part_that_is_read() -> None:
    data, _ = build_package({"van-ban.pdf": b"%PDF-1.7 routing"}, signer())
    with pytest.raises(XmlRejected, match="input larger than 1000 bytes"):
        read_routing(data, limits=Limits(max_input_bytes=1000))
    with pytest.raises(XmlRejected, match="more than 10 elements"):
        read_routing(data, limits=Limits(max_elements=10))
    with pytest.raises(XmlRejected, match="nesting deeper than 3"):
        read_routing(data, limits=Limits(max_depth=3))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (attacks.billion_laughs(levels=3), XmlRejected),
        (attacks.external_entity(attacks.PASSWD_URL), XmlRejected),
        (attacks.doctype_without_subset(), XmlRejected),
        (b"".join(attacks.deep_nesting(levels=10_000)), XmlRejected),
        (attacks.unterminated(attacks.sample_package()), XmlMalformed),
        (attacks.empty(), XmlMalformed),
        (b"<other/>", GatewayError),
    ],
    ids=["billion-laughs", "external-entity", "doctype", "deep", "unterminated", "empty", "root"],
)
def test_hostile_or_broken_input_is_refused_as_read_package_refuses_it(
    data: bytes, error: type[GatewayError]
) -> None:
    with pytest.raises(error) as routed:
        read_routing(data)
    with pytest.raises(error) as read:
        read_package(data)
    assert routed.value.code == read.value.code
    assert b"root:x:0:0" not in str(routed.value).encode()

"""The documents' own signatures, validated in process (envelopes/pdf_signatures.py): PDFs made and
signed by the tests with pyHanko and the test PKI, then changed as a verifier must tell apart."""

from __future__ import annotations

import io

import pdfs  # tests/pdfs.py
import pki  # tests/pki.py
import pytest
from cryptography.hazmat.primitives import serialization

from envelopes import pdf_signatures as pdf
from envelopes.pdf_signatures import PdfCheck, Trust, Verdict, check_pdf


@pytest.fixture(scope="module")
def trust() -> Trust:
    return Trust(anchors=(pki.dev_ca().certificate.public_bytes(serialization.Encoding.DER),))


@pytest.fixture(scope="module")
def signed() -> bytes:
    return pdfs.sign(pdfs.plain_pdf(), pki.unit())


def check(data: bytes, trust: Trust) -> PdfCheck:
    return check_pdf(io.BytesIO(data), trust)


def codes(result: PdfCheck) -> list[list[str]]:
    return [[r.code for r in s.reasons] for s in result.signatures]


def test_a_signed_pdf_is_valid_with_its_signer_and_organisation(
    signed: bytes, trust: Trust
) -> None:
    result = check(signed, trust)
    assert result.verdict is Verdict.VALID
    [signature] = result.signatures
    assert signature.signer == pki.SENDER
    assert signature.organisation == "docgw development"
    assert signature.verdict is Verdict.VALID and signature.reasons == ()
    assert signature.modifications == "none" and signature.covers_whole_file
    assert signature.signed_at is not None and not signature.timestamped


def test_a_page_changed_after_signing_fails(signed: bytes, trust: Trust) -> None:
    result = check(pdfs.change_page(signed), trust)
    assert result.verdict is Verdict.FAILING
    [signature] = result.signatures
    assert codes(result) == [[pdf.SIG_MODIFIED]]
    assert signature.modifications == "other" and not signature.covers_whole_file


def test_a_comment_added_after_signing_keeps_it_valid_and_says_so(
    signed: bytes, trust: Trust
) -> None:
    result = check(pdfs.add_annotation(signed), trust)
    assert result.verdict is Verdict.VALID
    assert codes(result) == [[pdf.SIG_ANNOTATED]]
    assert result.signatures[0].modifications == "annotations"


def test_a_certificate_from_an_untrusted_ca_fails(trust: Trust) -> None:
    result = check(pdfs.sign(pdfs.plain_pdf(), pki.untrusted_unit()), trust)
    assert result.verdict is Verdict.FAILING
    assert codes(result) == [[pdf.SIG_UNTRUSTED]]


def test_a_certificate_expired_at_signing_time_fails(trust: Trust) -> None:
    result = check(pdfs.sign(pdfs.plain_pdf(), pki.expired_unit()), trust)
    assert result.verdict is Verdict.FAILING
    assert codes(result) == [[pdf.SIG_CERT_EXPIRED]]


def test_a_signer_and_an_organisation_seal_are_both_checked(signed: bytes, trust: Trust) -> None:
    sealed = pdfs.sign(signed, pki.unit(pki.RECEIVER), field="Seal")
    result = check(sealed, trust)
    assert result.verdict is Verdict.VALID
    first, seal = result.signatures
    assert (first.field, first.signer) == ("Signature1", pki.SENDER)
    assert (seal.field, seal.signer) == ("Seal", pki.RECEIVER)
    # The seal only filled its own signature field: no change to warn of.
    assert first.modifications == "signatures" and first.reasons == ()
    assert seal.covers_whole_file and not first.covers_whole_file


def test_a_changed_page_after_the_seal_fails_both(signed: bytes, trust: Trust) -> None:
    sealed = pdfs.sign(signed, pki.unit(pki.RECEIVER), field="Seal")
    result = check(pdfs.change_page(sealed), trust)
    assert codes(result) == [[pdf.SIG_MODIFIED], [pdf.SIG_MODIFIED]]


def test_one_failing_signature_makes_the_pdf_fail(signed: bytes, trust: Trust) -> None:
    result = check(pdfs.sign(signed, pki.untrusted_unit(), field="Seal"), trust)
    assert result.verdict is Verdict.FAILING
    assert [s.verdict for s in result.signatures] == [Verdict.VALID, Verdict.FAILING]


def test_an_unsigned_pdf(trust: Trust) -> None:
    assert check(pdfs.plain_pdf(), trust) == PdfCheck(verdict=Verdict.UNSIGNED)


def test_a_malformed_pdf_is_a_verdict(trust: Trust) -> None:
    result = check(pdfs.malformed_pdf(), trust)
    assert result.verdict is Verdict.FAILING
    assert result.reason is not None and result.reason.code == pdf.PDF_MALFORMED


def test_an_encrypted_pdf_is_a_verdict(trust: Trust) -> None:
    result = check(pdfs.encrypted_pdf(), trust)
    assert result.verdict is Verdict.FAILING
    assert result.reason is not None and result.reason.code == pdf.PDF_ENCRYPTED


def test_garbage_after_a_pdf_header_is_malformed(trust: Trust) -> None:
    result = check(b"%PDF-1.7\n" + bytes(range(256)) * 40, trust)
    assert result.reason is not None and result.reason.code == pdf.PDF_MALFORMED


def test_the_verdict_survives_json(signed: bytes, trust: Trust) -> None:
    result = check(pdfs.add_annotation(signed), trust)
    assert PdfCheck.from_json(result.to_json()) == result


def test_a_trusted_timestamp_gives_the_signing_time(trust: Trust) -> None:
    stamped = pdfs.sign(pdfs.plain_pdf(), pki.unit(), tsa=pdfs.timestamp_authority(pki.dev_ca()))
    result = check(stamped, trust)
    assert result.verdict is Verdict.VALID
    [signature] = result.signatures
    assert signature.timestamped and signature.reasons == ()


def test_an_untrusted_timestamp_is_only_the_signers_word(trust: Trust) -> None:
    """A timestamp from a TSA no anchor vouches for is not taken as the signing time (a forger
    could date a signature as they liked); the signature itself is still judged."""
    stamped = pdfs.sign(pdfs.plain_pdf(), pki.unit(), tsa=pdfs.timestamp_authority(pki.other_ca()))
    result = check(stamped, trust)
    [signature] = result.signatures
    assert not signature.timestamped
    assert signature.verdict is Verdict.VALID


@pytest.mark.parametrize(
    ("name", "value", "element"),
    [
        ("MEMORY_MB", "100", "documents.memory_mb"),
        ("TIMEOUT_SECONDS", "0", "documents.timeout_seconds"),
        ("HOLD_FAILING", '["not a unit"]', "documents.hold_failing"),
    ],
)
def test_the_documents_settings_refuse_what_cannot_bound_or_name(
    name: str, value: str, element: str
) -> None:
    from envelopes.errors import GatewayError
    from gateway.settings import load_settings

    with pytest.raises(GatewayError) as refused:  # CONFIG_INVALID, or UNIT_CODE_INVALID
        load_settings(None, {f"DOCGW_DOCUMENTS__{name}": value})
    assert refused.value.element == element

"""The documents' own signatures: the PAdES signatures inside a PDF, validated with pyHanko.

A package's XML signature proves which unit sent it; the PDFs inside carry their own signatures,
the signer's and the issuing organisation's (the electronic seal). :func:`check_pdf` finds them
and validates each: integrity (the signed byte ranges), what was changed after it (pyHanko's
difference analysis: nothing, annotations, form filling, or anything else such as a page), the
signer's certificate and its chain to the trust anchors at the signing time (a timestamp's time
when the signature has one), revocation from the CRLs the PDF embeds (PAdES LTV) or the ones
configured. Every outcome is a :class:`PdfCheck` with stable reason codes; nothing raises.

Bounded: :func:`check_pdf` is run in a separate process — one of a small persistent pool
(:func:`start_worker`, :func:`verify_request`), or alone (``python -m envelopes.pdf_signatures``)
— with an address-space limit and a wall-clock timeout (gateway/usecases/document_signatures.py),
so that a hostile PDF ends in a verdict, never in the gateway's memory or time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

#: What a PDF begins with (ISO 32000: "%PDF-", possibly after a little junk; readers look in the
#: first 1,024 bytes).
PDF_MAGIC = b"%PDF-"


class Verdict(StrEnum):
    VALID = "valid"
    UNSIGNED = "unsigned"
    FAILING = "failing"


#: Reason codes (docs/reference/document-signatures.md). The first group ends the whole PDF's
#: verification; the others are a signature's.
PDF_MALFORMED = "PDF_MALFORMED"
PDF_ENCRYPTED = "PDF_ENCRYPTED"
PDF_TOO_LARGE = "PDF_TOO_LARGE"
PDF_TIMEOUT = "PDF_TIMEOUT"
PDF_LIMIT_EXCEEDED = "PDF_LIMIT_EXCEEDED"
PDF_TRUST_UNREADABLE = "PDF_TRUST_UNREADABLE"
SIG_UNREADABLE = "PDF_SIG_UNREADABLE"
SIG_BROKEN = "PDF_SIG_BROKEN"
SIG_MODIFIED = "PDF_SIG_MODIFIED"
SIG_UNTRUSTED = "PDF_SIG_UNTRUSTED"
SIG_CERT_EXPIRED = "PDF_SIG_CERT_EXPIRED"
SIG_REVOKED = "PDF_SIG_REVOKED"
#: Warnings: the signature stays valid (what was added is allowed after signing), but a clerk
#: should know.
SIG_ANNOTATED = "PDF_SIG_ANNOTATED"
SIG_FORM_FILLED = "PDF_SIG_FORM_FILLED"

#: Codes that leave a signature valid.
WARNINGS = frozenset({SIG_ANNOTATED, SIG_FORM_FILLED})
#: Every code, for the documentation test.
REASON_CODES = (
    PDF_MALFORMED,
    PDF_ENCRYPTED,
    PDF_TOO_LARGE,
    PDF_TIMEOUT,
    PDF_LIMIT_EXCEEDED,
    PDF_TRUST_UNREADABLE,
    SIG_UNREADABLE,
    SIG_BROKEN,
    SIG_MODIFIED,
    SIG_UNTRUSTED,
    SIG_CERT_EXPIRED,
    SIG_REVOKED,
    SIG_ANNOTATED,
    SIG_FORM_FILLED,
)


@dataclass(frozen=True, kw_only=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class SignatureCheck:
    """One signature of a PDF."""

    #: The signature field's name.
    field: str
    #: The signing certificate's common name and organisation (None where it has none).
    signer: str | None
    organisation: str | None
    subject: str | None
    #: The timestamp's time when ``timestamped``, else the time the signer's software claims.
    signed_at: str | None
    timestamped: bool
    #: What was changed in the file after this signature: "none", "lta_updates" (validation
    #: data only), "form_filling", "annotations" or "other" (pages, content…).
    modifications: str
    #: The signature covers the whole file (nothing was appended after it).
    covers_whole_file: bool
    verdict: Verdict
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PdfCheck:
    """One PDF's verdict: ``valid`` when it is signed and every signature is; ``unsigned``; else
    ``failing`` (a signature fails, or the PDF could not be verified: ``reason``)."""

    verdict: Verdict
    reason: Reason | None = None
    signatures: tuple[SignatureCheck, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": dataclasses.asdict(self.reason) if self.reason else None,
            "signatures": [signature_json(s) for s in self.signatures],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PdfCheck:
        reason = data.get("reason")
        return cls(
            verdict=Verdict(data["verdict"]),
            reason=Reason(**reason) if reason else None,
            signatures=tuple(
                SignatureCheck(
                    **{
                        **item,
                        "verdict": Verdict(item["verdict"]),
                        "reasons": tuple(Reason(**r) for r in item["reasons"]),
                    }
                )
                for item in data.get("signatures", [])
            ),
        )


def signature_json(signature: SignatureCheck) -> dict[str, Any]:
    data = dataclasses.asdict(signature)
    data["verdict"] = signature.verdict.value
    return data


def failed(code: str, message: str) -> PdfCheck:
    """The verdict of a PDF that could not be verified at all."""
    return PdfCheck(verdict=Verdict.FAILING, reason=Reason(code=code, message=message))


def is_pdf(head: bytes) -> bool:
    return PDF_MAGIC in head[:1024]


@dataclass(frozen=True, kw_only=True)
class Trust:
    """What signatures are checked against: CA certificates (DER) and CRLs (DER)."""

    anchors: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()

    @classmethod
    def from_files(cls, anchors: Iterable[Path], crls: Iterable[Path] = ()) -> Trust:
        return cls(
            anchors=tuple(der for path in anchors for der in _pem_or_der(path, "CERTIFICATE")),
            crls=tuple(der for path in crls for der in _pem_or_der(path, "X509 CRL")),
        )


def _pem_or_der(path: Path, label: str) -> list[bytes]:
    from asn1crypto import pem

    data = path.read_bytes()
    if not pem.detect(data):
        return [data]
    return [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == label]


# --------------------------------------------------------------------------------- validation


def check_pdf(source: IO[bytes], trust: Trust) -> PdfCheck:
    """Find and validate every signature of the PDF ``source`` (a seekable binary stream)."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(source, strict=False)
        if reader.encrypted:
            return failed(PDF_ENCRYPTED, "the PDF is encrypted: its signatures cannot be read")
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return failed(PDF_MALFORMED, f"not a readable PDF: {_text(exc)}")
    except RecursionError:
        return failed(PDF_MALFORMED, "not a readable PDF: its objects nest too deep")
    if not signatures:
        return PdfCheck(verdict=Verdict.UNSIGNED)
    context = _ValidationContexts(reader, trust)
    fields = frozenset(str(e.field_name or "") for e in signatures)
    checked = tuple(_check_signature(embedded, context, fields) for embedded in signatures)
    worst = Verdict.FAILING if any(s.verdict is Verdict.FAILING for s in checked) else Verdict.VALID
    return PdfCheck(verdict=worst, signatures=checked)


class _ValidationContexts:
    """A fresh pyHanko validation context per signature (contexts cache what they validated),
    with the PDF's own validation data (its DSS: certificates, CRLs, OCSP responses) added."""

    def __init__(self, reader: Any, trust: Trust) -> None:
        from asn1crypto import crl, ocsp, x509
        from pyhanko.sign.validation.dss import DocumentSecurityStore

        self.anchors = [x509.Certificate.load(der) for der in trust.anchors]
        self.crls = [crl.CertificateList.load(der) for der in trust.crls]
        self.ocsps: list[ocsp.OCSPResponse] = []
        self.certs: list[x509.Certificate] = []
        try:
            dss = DocumentSecurityStore.read_dss(reader)
        except Exception:  # no DSS, or one pyHanko cannot read: none is used
            dss = None
        if dss is not None:
            self.crls += list(dss.crls)
            self.ocsps += list(dss.ocsps)
            self.certs += list(dss.certs.values())

    def make(self, moment: dt.datetime | None) -> Any:
        from pyhanko_certvalidator import ValidationContext

        return ValidationContext(
            trust_roots=self.anchors,
            other_certs=self.certs,
            crls=self.crls,
            ocsps=self.ocsps,
            allow_fetching=False,
            # A revocation source is used where there is one; none is no failure (no network).
            revocation_mode="soft-fail",
            moment=moment,
            best_signature_time=moment,
        )


def _check_signature(
    embedded: Any, contexts: _ValidationContexts, signature_fields: frozenset[str]
) -> SignatureCheck:
    """``signature_fields``: every signature field of the PDF; a later signature filling one is
    no change to warn of (modifications "signatures")."""
    name = str(embedded.field_name or "")
    try:
        claimed = embedded.self_reported_timestamp
    except Exception:  # an unreadable claimed time is only not shown
        claimed = None
    try:
        cert = embedded.signer_cert
        timestamp = _timestamp_time(embedded)
        status = _validate(embedded, contexts, timestamp or claimed)
        if timestamp is not None and not _trusted_timestamp(status):
            # An untrusted timestamp's time is no better than the signer's word.
            status = _validate(embedded, contexts, claimed)
    except Exception as exc:  # in the child process: whatever pyHanko raises is a verdict
        return SignatureCheck(
            field=name,
            signer=None,
            organisation=None,
            subject=None,
            signed_at=_iso(claimed),
            timestamped=False,
            modifications="other",
            covers_whole_file=False,
            verdict=Verdict.FAILING,
            reasons=(Reason(code=SIG_UNREADABLE, message=_text(exc)),),
        )
    timestamped = _trusted_timestamp(status)
    signed_at = timestamp if timestamped else claimed
    only_signatures = _only_signatures_added(status, signature_fields)
    reasons = _reasons(status, cert, signed_at, only_signatures)
    failing = any(r.code not in WARNINGS for r in reasons)
    return SignatureCheck(
        field=name,
        signer=_name_part(cert, "common_name"),
        organisation=_name_part(cert, "organization_name"),
        subject=cert.subject.human_friendly,
        signed_at=_iso(signed_at),
        timestamped=timestamped,
        modifications="signatures" if only_signatures else _modifications(status),
        covers_whole_file=_covers_whole_file(status),
        verdict=Verdict.FAILING if failing else Verdict.VALID,
        reasons=tuple(reasons),
    )


def _validate(embedded: Any, contexts: _ValidationContexts, moment: dt.datetime | None) -> Any:
    """pyHanko's validation, the chain validated at ``moment`` (None: now)."""
    from pyhanko.sign.validation import validate_pdf_signature

    return validate_pdf_signature(
        embedded,
        signer_validation_context=contexts.make(moment),
        ts_validation_context=contexts.make(None),
        key_usage_settings=_key_usage(),
        diff_policy=_diff_policy(),
    )


def _trusted_timestamp(status: Any) -> bool:
    """The signature carries a timestamp that verifies and chains to a trust anchor."""
    stamp = status.timestamp_validity
    return stamp is not None and bool(stamp.intact and stamp.valid and stamp.trusted)


#: Annotations a reader may add to a signed PDF: comments and markup, never a form widget.
_MARKUP = frozenset(
    {
        "/Text", "/FreeText", "/Line", "/Square", "/Circle", "/Polygon", "/PolyLine",
        "/Highlight", "/Underline", "/Squiggly", "/StrikeOut", "/Stamp", "/Caret", "/Ink",
        "/Popup",
    }
)  # fmt: skip


def _diff_policy() -> Any:
    """pyHanko's standard difference analysis, plus one rule: comments (markup annotations)
    added to a page after it was signed are changes at the ANNOTATIONS level. pyHanko's own rules
    do not explain them (a known limitation), so a comment would otherwise count as a change of
    the page itself; a page whose content or anything but its /Annots changed still does."""
    from pyhanko.sign.diff_analysis import (
        DEFAULT_DIFF_POLICY,
        QualifiedWhitelistRule,
        StandardDiffPolicy,
    )

    class AddedAnnotations(QualifiedWhitelistRule):
        # Defined here: pyHanko is imported only where a PDF is verified (the child process).
        def apply_qualified(self, old: Any, new: Any) -> Any:
            return _added_annotations(old, new)

    return StandardDiffPolicy(
        global_rules=[*DEFAULT_DIFF_POLICY.global_rules, AddedAnnotations()],
        form_rule=DEFAULT_DIFF_POLICY.form_rule,
    )


def _added_annotations(old: Any, new: Any) -> Any:
    """The references a comment added after signing updated: the new markup annotations, and
    each page that only gained annotations."""
    from pyhanko.pdf_utils import generic
    from pyhanko.sign.diff_analysis import ModificationLevel, ReferenceUpdate

    for ref in new.explicit_refs_in_revision():
        existed = old.reader.xrefs.get_historical_ref(ref, old.revision) is not None
        after = new(ref)
        if not isinstance(after, generic.DictionaryObject):
            continue
        if not existed:
            if after.get("/Type") in (None, "/Annot") and after.get("/Subtype") in _MARKUP:
                yield ModificationLevel.ANNOTATIONS, ReferenceUpdate(ref)
            continue
        before = old(ref)
        if after.get("/Type") == "/Page" and _only_markup_added(before, after):
            yield ModificationLevel.ANNOTATIONS, ReferenceUpdate(ref)


def _only_markup_added(before: Any, after: Any) -> bool:
    """The page is unchanged but for annotations appended to its /Annots, one of them markup (a
    page that only gained a signature's widget is pyHanko's form rules' to explain)."""
    if set(before.keys()) - {"/Annots"} != set(after.keys()) - {"/Annots"}:
        return False
    if any(before.raw_get(key) != after.raw_get(key) for key in before if key != "/Annots"):
        return False
    old_refs = list(before.raw_get("/Annots")) if "/Annots" in before else []
    new_refs = list(after.raw_get("/Annots")) if "/Annots" in after else []
    if len(new_refs) <= len(old_refs) or new_refs[: len(old_refs)] != old_refs:
        return False
    added = [ref.get_object() for ref in new_refs[len(old_refs) :]]
    return any(getattr(a, "get", lambda _: None)("/Subtype") in _MARKUP for a in added)


def _key_usage() -> Any:
    """A signer's certificate must allow signing: digital signature or non-repudiation (pyHanko
    asks for non-repudiation alone by default; a seal's certificate often has only the first)."""
    from pyhanko.sign.validation.settings import KeyUsageConstraints

    return KeyUsageConstraints(
        key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
    )


def _timestamp_time(embedded: Any) -> dt.datetime | None:
    """The signature timestamp's time (RFC 3161, in the CMS's unsigned attributes), or None."""
    from pyhanko.sign.general import NonexistentAttributeError, find_unique_cms_attribute

    try:
        token = find_unique_cms_attribute(
            embedded.signer_info["unsigned_attrs"], "signature_time_stamp_token"
        )
    except NonexistentAttributeError:
        return None
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    value: dt.datetime = tst_info["gen_time"].native
    return value


def _only_signatures_added(status: Any, signature_fields: frozenset[str]) -> bool:
    from pyhanko.sign.diff_analysis import ModificationLevel

    changed = getattr(status.diff_result, "changed_form_fields", None)
    return (
        status.modification_level is ModificationLevel.FORM_FILLING
        and bool(changed)
        and set(changed or ()) <= signature_fields
    )


def _reasons(
    status: Any, cert: Any, signed_at: dt.datetime | None, only_signatures: bool
) -> list[Reason]:
    reasons = []
    if not status.intact or not status.valid:
        reasons.append(
            Reason(
                code=SIG_BROKEN,
                message="the signed bytes do not match the signature"
                if not status.intact
                else "the signature value does not verify with the signer's certificate",
            )
        )
    if not only_signatures:
        reasons += _modification_reasons(status)
    when = signed_at or dt.datetime.now(dt.UTC)
    not_before, not_after = (
        cert["tbs_certificate"]["validity"]["not_before"].native,
        cert["tbs_certificate"]["validity"]["not_after"].native,
    )
    if not not_before <= when <= not_after:
        reasons.append(
            Reason(
                code=SIG_CERT_EXPIRED,
                message=f"the signer's certificate was not valid at the signing time "
                f"({_iso(when)}; valid {_iso(not_before)} to {_iso(not_after)})",
            )
        )
    elif status.revoked:
        reasons.append(Reason(code=SIG_REVOKED, message="the signer's certificate is revoked"))
    elif not status.trusted:
        indication = status.trust_problem_indic
        reasons.append(
            Reason(
                code=SIG_UNTRUSTED,
                message="the signer's certificate does not chain to a trusted CA"
                + (f" ({indication.name})" if indication is not None else ""),
            )
        )
    return reasons


def _modification_reasons(status: Any) -> list[Reason]:
    from pyhanko.sign.diff_analysis import ModificationLevel

    level = status.modification_level
    if level is None:
        return []
    if level is ModificationLevel.OTHER or not status.docmdp_ok:
        detail = getattr(status.diff_result, "args", None) or ()
        extra = f": {_text(detail[0])}" if detail else ""
        return [
            Reason(
                code=SIG_MODIFIED,
                message="the document was changed after it was signed (pages or content, not "
                f"only annotations or form fields){extra}",
            )
        ]
    if level is ModificationLevel.ANNOTATIONS:
        return [
            Reason(
                code=SIG_ANNOTATED,
                message="annotations (comments, stamps) were added after it was signed",
            )
        ]
    if level is ModificationLevel.FORM_FILLING:
        fields = sorted(getattr(status.diff_result, "changed_form_fields", ()) or ())
        named = f": {', '.join(fields)}" if fields else ""
        return [Reason(code=SIG_FORM_FILLED, message=f"form fields were filled after it{named}")]
    return []


def _modifications(status: Any) -> str:
    level = status.modification_level
    return "none" if level is None else str(level.name).lower()


def _covers_whole_file(status: Any) -> bool:
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    return bool(status.coverage is SignatureCoverageLevel.ENTIRE_FILE)


def _name_part(cert: Any, key: str) -> str | None:
    value = cert.subject.native.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()


def _text(exc: object) -> str:
    return str(exc)[:300] or type(exc).__name__


# ----------------------------------------------------------------------------- child process


def _limit_memory(megabytes: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows: only the timeout bounds it there
        return
    limit = megabytes << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _check_file(path: Path, trust: Trust) -> PdfCheck:
    try:
        with path.open("rb") as source:
            return check_pdf(source, trust)
    except MemoryError:
        return failed(PDF_LIMIT_EXCEEDED, "verifying the PDF needed more memory than allowed")
    except RecursionError:
        return failed(PDF_MALFORMED, "not a readable PDF: its objects nest too deep")
    except Exception as exc:  # the child is the boundary: anything pyHanko raises is a verdict
        return failed(PDF_MALFORMED, f"not a readable PDF: {type(exc).__name__}: {_text(exc)}")


#: What a verifying process imports once, before its first PDF (check_pdf's own imports).
_PYHANKO_MODULES = (
    "asn1crypto.pem",
    "pyhanko.pdf_utils.reader",
    "pyhanko.sign.diff_analysis",
    "pyhanko.sign.general",
    "pyhanko.sign.validation",
    "pyhanko.sign.validation.dss",
    "pyhanko.sign.validation.settings",
    "pyhanko.sign.validation.status",
    "pyhanko_certvalidator",
)


def start_worker(memory_mb: int) -> None:
    """A persistent verifying process's start (the pool of gateway/usecases/
    document_signatures.py): the address-space limit first — it bounds everything the process
    will do — then pyHanko imported once, for every PDF the process verifies."""
    import importlib

    _limit_memory(memory_mb)
    logging.disable(logging.CRITICAL)  # pyHanko logs every failed check with its traceback
    warnings.simplefilter("ignore")
    for module in _PYHANKO_MODULES:
        importlib.import_module(module)


def verify_request(path: str, anchors: Sequence[str], crls: Sequence[str]) -> dict[str, Any]:
    """One PDF's verdict as JSON (:meth:`PdfCheck.to_json`), the trust read from its files: what
    a verifying process does per PDF, in the pool or alone (:func:`main`). Never raises for
    what the PDF or the trust files hold."""
    try:
        trust = Trust.from_files([Path(p) for p in anchors], [Path(p) for p in crls])
    except MemoryError:
        result = failed(PDF_LIMIT_EXCEEDED, "the trust alone needed more memory than allowed")
    except Exception as exc:  # a configuration problem, said as such for every PDF
        result = failed(PDF_TRUST_UNREADABLE, f"the configured trust cannot be read: {exc}")
    else:
        result = _check_file(Path(path), trust)
    return result.to_json()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m envelopes.pdf_signatures``: one request as JSON on stdin (``path``,
    ``anchors`` and ``crls`` as file paths, ``memory_mb``), the :class:`PdfCheck` as JSON on
    stdout. The memory limit is set before pyHanko is imported: it bounds everything. The
    gateway runs this for a PDF the pool could not give a verdict for (its process died)."""
    request = json.loads(sys.stdin.read())
    _limit_memory(int(request["memory_mb"]))
    logging.disable(logging.CRITICAL)  # pyHanko logs every failed check with its traceback
    result = verify_request(request["path"], request["anchors"], request["crls"])
    sys.stdout.write(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""docgw's one error tree. It lives in the bottom layer so every layer can raise and catch it.

    GatewayError                         code            (every subclass has a stable ``code``)
    ├── MetadataError                    METADATA_INVALID   bad document metadata (names the field)
    ├── TextInvalid                      TEXT_INVALID       a character XML cannot carry (xmltext)
    ├── UnitCodeError                    UNIT_CODE_INVALID
    ├── PackageError                     (reading packages)
    │   ├── XmlRejected                  XML_REJECTED        DTD, entities, depth, size limits
    │   ├── XmlMalformed                 XML_MALFORMED       not well-formed XML
    │   ├── PackageStructureError        PACKAGE_STRUCTURE   element missing / wrong / bad value
    │   └── AttachmentError              ATTACHMENT_INVALID  bad base64, manifest mismatch
    ├── AttachmentNameInvalid            ATTACHMENT_NAME_INVALID  a path, "." or "..", bad text
    ├── AttachmentEmpty                  ATTACHMENT_EMPTY   an attachment to send has no bytes
    ├── SchemaError                      SCHEMA_INVALID      XSD validation (element + rule)
    ├── SigningError                     SIGNING_FAILED      key/cert unusable for signing
    ├── VerificationError                (see SIGNATURE_* and CERT_* codes below)
    │   ├── SignatureMissing             SIGNATURE_MISSING
    │   ├── SignatureMalformed           SIGNATURE_MALFORMED
    │   ├── AlgorithmNotAllowed          SIGNATURE_ALGORITHM_NOT_ALLOWED
    │   ├── SignatureInvalid             SIGNATURE_INVALID   the signature value does not verify
    │   ├── HeaderTampered               SIGNED_HEADER_CHANGED
    │   ├── BusinessTampered             SIGNED_BUSINESS_CHANGED
    │   ├── ManifestTampered             SIGNED_MANIFEST_CHANGED
    │   ├── AttachmentTampered           SIGNED_ATTACHMENT_CHANGED
    │   ├── AttachmentAdded              ATTACHMENT_NOT_SIGNED
    │   ├── AttachmentRemoved            SIGNED_ATTACHMENT_MISSING
    │   ├── SignatureWrapping            SIGNATURE_WRAPPING
    │   ├── CertificateUntrusted         CERT_UNTRUSTED
    │   └── CertificateExpired           CERT_EXPIRED
    ├── SealError                        SEAL_INVALID        classified payload cannot be opened
    └── ZipRefused                       (a zipped attachment handed over as it came, not unpacked)
        ├── ZipEntryCount                ZIP_ENTRY_COUNT     not exactly one entry
        ├── ZipEntryPath                 ZIP_ENTRY_PATH      the entry name is a path
        ├── ZipTooLarge                  ZIP_TOO_LARGE       the entry is over the size cap
        ├── ZipBomb                      ZIP_BOMB            the entry is over the ratio cap
        └── ZipUnreadable                ZIP_UNREADABLE      corrupt, encrypted, unsupported method

The codes are part of docgw's interface (logs, API problem responses, CLI output): never rename one.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every expected failure in docgw. ``code`` is stable; ``str(err)`` is for people."""

    code = "GATEWAY_ERROR"

    def __init__(self, message: str, *, element: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The element or field the error is about (an XPath-like path or a JSON key), if any.
        self.element = element

    def __str__(self) -> str:
        where = f" [{self.element}]" if self.element else ""
        return f"{self.code}: {self.message}{where}"


class MetadataError(GatewayError):
    code = "METADATA_INVALID"


class TextInvalid(GatewayError):
    """Text with a character XML 1.0 cannot carry (NUL, a C0 control, a lone surrogate, U+FFFE,
    U+FFFF); ``element`` names the field."""

    code = "TEXT_INVALID"


class UnitCodeError(GatewayError):
    code = "UNIT_CODE_INVALID"


class PackageError(GatewayError):
    code = "PACKAGE_INVALID"


class XmlRejected(PackageError):
    code = "XML_REJECTED"


class XmlMalformed(PackageError):
    code = "XML_MALFORMED"


class XmlParserUnsupported(GatewayError):
    """The installed lxml cannot run docgw's hardened parser as it must (see xmlsafe)."""

    code = "XML_PARSER_UNSUPPORTED"


class PackageStructureError(PackageError):
    code = "PACKAGE_STRUCTURE"


class AttachmentError(PackageError):
    code = "ATTACHMENT_INVALID"


class AttachmentNameInvalid(GatewayError):
    """An attachment name to send that is not a plain file name (see attachments.check_name)."""

    code = "ATTACHMENT_NAME_INVALID"


class AttachmentEmpty(GatewayError):
    code = "ATTACHMENT_EMPTY"


class SchemaError(GatewayError):
    code = "SCHEMA_INVALID"

    def __init__(
        self,
        message: str,
        *,
        element: str | None = None,
        rule: str = "",
        errors: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, element=element)
        #: The schema rule that failed, e.g. "maxLength 500" or "missing required element To".
        self.rule = rule
        #: Every error the validator reported, as "<path>: <message> [<rule>]".
        self.errors = errors


class SigningError(GatewayError):
    code = "SIGNING_FAILED"


class VerificationError(GatewayError):
    code = "VERIFICATION_FAILED"


class SignatureMissing(VerificationError):
    code = "SIGNATURE_MISSING"


class SignatureMalformed(VerificationError):
    code = "SIGNATURE_MALFORMED"


class AlgorithmNotAllowed(VerificationError):
    code = "SIGNATURE_ALGORITHM_NOT_ALLOWED"


class SignatureInvalid(VerificationError):
    code = "SIGNATURE_INVALID"


class HeaderTampered(VerificationError):
    code = "SIGNED_HEADER_CHANGED"


class BusinessTampered(VerificationError):
    code = "SIGNED_BUSINESS_CHANGED"


class ManifestTampered(VerificationError):
    code = "SIGNED_MANIFEST_CHANGED"


class AttachmentTampered(VerificationError):
    code = "SIGNED_ATTACHMENT_CHANGED"


class AttachmentAdded(VerificationError):
    code = "ATTACHMENT_NOT_SIGNED"


class AttachmentRemoved(VerificationError):
    code = "SIGNED_ATTACHMENT_MISSING"


class SignatureWrapping(VerificationError):
    code = "SIGNATURE_WRAPPING"


class CertificateUntrusted(VerificationError):
    code = "CERT_UNTRUSTED"


class CertificateExpired(VerificationError):
    code = "CERT_EXPIRED"


class SealError(GatewayError):
    code = "SEAL_INVALID"


class ZipRefused(GatewayError):
    """A zipped attachment docgw does not unpack (envelopes.zipped). Never fatal to the package:
    the package is received and handed over with the zip as it came, and the code as a notice."""

    code = "ZIP_REFUSED"


class ZipEntryCount(ZipRefused):
    code = "ZIP_ENTRY_COUNT"


class ZipEntryPath(ZipRefused):
    code = "ZIP_ENTRY_PATH"


class ZipTooLarge(ZipRefused):
    code = "ZIP_TOO_LARGE"


class ZipBomb(ZipRefused):
    code = "ZIP_BOMB"


class ZipUnreadable(ZipRefused):
    code = "ZIP_UNREADABLE"

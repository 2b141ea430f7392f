"""Use-case errors (part of docgw's one error tree; codes are stable)."""

from __future__ import annotations

from envelopes.errors import GatewayError


class UnknownUnit(GatewayError):
    code = "UNKNOWN_UNIT"


class UnknownSender(GatewayError):
    code = "UNKNOWN_SENDER"


class NotFound(GatewayError):
    code = "NOT_FOUND"


class Forbidden(GatewayError):
    code = "FORBIDDEN"


class Conflict(GatewayError):
    code = "CONFLICT"


class ReasonRequired(GatewayError):
    code = "REASON_REQUIRED"


class SenderMismatch(GatewayError):
    code = "SENDER_MISMATCH"


class ReadyPackageRefused(GatewayError):
    """A ready package from the drop folder that docgw will not send as it is."""

    code = "READY_PACKAGE_REFUSED"


class IdempotencyKeyReused(GatewayError):
    """An Idempotency-Key sent again with another request than the one it was first used for."""

    code = "IDEMPOTENCY_KEY_REUSED"


class DocumentIdReused(GatewayError):
    """A new document (BussinessDocType 0) with the DocumentId of a document docgw already holds:
    receivers deduplicate on (sender, DocumentId), so one of the two would be dropped."""

    code = "DOCUMENT_ID_REUSED"


class DuplicateDocumentCode(GatewayError):
    """A new document with the số/ký hiệu its sender already used for a document promulgated in
    the same year, and the request did not say the repeat is intended."""

    code = "DUPLICATE_DOCUMENT_CODE"


class ClassifiedReaderRefused(GatewayError):
    """A classified message's content asked for by a caller who may not read it."""

    code = "CLASSIFIED_READER_REFUSED"


class PackageNotOpenable(GatewayError):
    """A classified copy this gateway does not open: a standard gateway, or no key for it."""

    code = "PACKAGE_NOT_OPENABLE"


class WebhookUrlInvalid(GatewayError):
    code = "WEBHOOK_URL_INVALID"


class ImportSourceUnreadable(GatewayError):
    """``docgw import``: the folder or ZIP given cannot be read at all."""

    code = "IMPORT_SOURCE_UNREADABLE"


class ImportNotOurs(GatewayError):
    """``docgw import``: neither the sender nor any recipient of a package is a local unit."""

    code = "IMPORT_NOT_OURS"


class ImportSealed(GatewayError):
    """``docgw import``: a sealed (classified) package; history is imported in plaintext only."""

    code = "IMPORT_SEALED"


class ImportTooLarge(GatewayError):
    """``docgw import``: a file over ``[api] max_upload_bytes``."""

    code = "IMPORT_TOO_LARGE"


class NoDirectory(GatewayError):
    """The channel named has no directory to sync (not an axis, or not configured)."""

    code = "CHANNEL_HAS_NO_DIRECTORY"

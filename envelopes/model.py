"""The typed model of edXML packages (QCVN 102:2016, DOMAIN.md §3–4).

Frozen, keyword-only dataclasses; change them with ``dataclasses.replace``. Field names are the QCVN
element names in snake_case. Dates are ``datetime.date``, timestamps naive ``datetime.datetime``
(the standard writes local Vietnamese time without an offset).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Classification(StrEnum):
    """docgw's own field, decided before packaging and never written into an axis package."""

    THUONG = "thuong"  # unclassified
    MAT = "mat"  # Mật
    TOI_MAT = "toi_mat"  # Tối mật
    TUYET_MAT = "tuyet_mat"  # Tuyệt mật, the most restricted

    @property
    def is_classified(self) -> bool:
        return self is not Classification.THUONG


class Priority(IntEnum):
    THUONG = 0
    KHAN = 1
    THUONG_KHAN = 2
    HOA_TOC = 3
    HOA_TOC_HEN_GIO = 4


class BusinessDocType(IntEnum):
    NEW = 0
    REVOKE = 1  # thu hồi
    UPDATE = 2
    REPLACE = 3


class StatusCode(StrEnum):
    """Business statuses (DOMAIN.md §4); they travel as status packages of their own."""

    ARRIVED = "01"
    REJECTED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    IN_PROGRESS = "05"
    COMPLETED = "06"
    RETRACT_REQUESTED = "13"
    UPDATE_AGREED = "15"
    UPDATE_REFUSED = "16"

    @property
    def requires_reason(self) -> bool:
        return self in (StatusCode.REJECTED, StatusCode.RETRACT_REQUESTED)

    @property
    def sent_by_sender(self) -> bool:
        """13 is sent by the document's sender; every other code by a receiver."""
        return self is StatusCode.RETRACT_REQUESTED


@dataclass(frozen=True, kw_only=True)
class Organization:
    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True, kw_only=True)
class DocumentCode:
    number: str
    notation: str

    def __str__(self) -> str:
        return f"{self.number}/{self.notation}"


@dataclass(frozen=True, kw_only=True)
class PromulgationInfo:
    place: str | None
    date: dt.date


@dataclass(frozen=True, kw_only=True)
class DocumentType:
    type: int
    type_name: str
    type_detail: int | None = None


@dataclass(frozen=True, kw_only=True)
class SignerInfo:
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class OtherInfo:
    priority: Priority = Priority.THUONG
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    #: ``Direction`` is written by the official SDK (true/false); not in QCVN's list, kept if seen.
    direction: bool | None = None
    appendixes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ResponseFor:
    """The document a reply or status is about."""

    organ_id: str
    code: str | None = None  # "số/ký hiệu" as one string, e.g. "7816/VPCP-TTĐT"
    promulgation_date: dt.date | None = None
    document_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class MessageHeader:
    from_: Organization
    to: tuple[Organization, ...]
    code: DocumentCode
    promulgation: PromulgationInfo
    document_type: DocumentType
    subject: str
    document_id: str
    content: str | None = None
    signer: SignerInfo | None = None
    due_date: dt.date | None = None
    to_places: tuple[str, ...] = ()
    other_info: OtherInfo = field(default_factory=OtherInfo)
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None


@dataclass(frozen=True, kw_only=True)
class TraceHeader:
    """One hop; the axis appends its own in transit, so these are never signed."""

    organ_id: str | None
    timestamp: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True, kw_only=True)
class Receiver:
    organ_id: str
    receiver_type: int | None = None


@dataclass(frozen=True, kw_only=True)
class UpdateInfo:
    """Bussiness/BussinessDocumentInfo, for BussinessDocType 2 (update)."""

    document_info: str | None = None
    document_receiver: str | None = None
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Replacement:
    """Bussiness/ReplacementInfoList/ReplacementInfo, for BussinessDocType 3 (replace)."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Business:
    """The ``Bussiness`` block (spelled so by the standard) inside TraceHeaderList."""

    doc_type: BusinessDocType = BusinessDocType.NEW
    document_id: str | None = None
    reason: str | None = None
    paper: int = 0
    staff_info: StaffInfo | None = None
    update: UpdateInfo | None = None
    replacements: tuple[Replacement, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AttachmentInfo:
    """What is known of one attachment once its bytes have been streamed through."""

    content_id: str  # without any "cid:" prefix
    name: str
    content_type: str
    size: int
    sha256: str  # hex digest of the decoded bytes
    description: str | None = None
    #: The type sniffed from the bytes where it differs from the label (e.g. "application/zip").
    sniffed_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class DocumentPackage:
    header: MessageHeader
    traces: tuple[TraceHeader, ...] = ()
    business: Business | None = None
    attachments: tuple[AttachmentInfo, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StatusPackage:
    from_: Organization
    response_for: ResponseFor
    status_code: StatusCode
    timestamp: dt.datetime
    description: str | None = None
    staff_info: StaffInfo | None = None


def strip_cid(content_id: str) -> str:
    """Manifest and attachments are linked by ContentId, compared without any ``cid:`` prefix."""
    content_id = content_id.strip()
    return content_id[4:] if content_id.lower().startswith("cid:") else content_id


def document_id_for(organ_id: str, date: dt.date, code: DocumentCode) -> str:
    """The DocumentId convention: ``<sender>,<yyyy/MM/dd>,<số>/<ký hiệu>``."""
    return f"{organ_id},{date:%Y/%m/%d},{code}"

"""Document metadata as the CLI and the HTTP API take it: JSON with the QCVN element names in
snake_case and ISO dates, checked strictly (this is the sending side) into the model.

The JSON is declared once, as the pydantic models below (:class:`Metadata` and the objects it
holds): each field's type, rule and description (``Field(description=…)``, not attribute
docstrings: reading those costs ~70 ms at every import). Parsing checks against them, and
docs/reference/metadata.md's field table is generated from them (``python -m
envelopes.metadata_reference``). Rules across fields (the promulgation date, the business type's
companions, repeated recipients) are checked when the request is built from the parsed JSON.

Every problem is a MetadataError naming the field (``to[2].organ_id``); unknown keys are errors too,
so a misspelt field is never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from envelopes.errors import GatewayError, MetadataError, TextInvalid
from envelopes.model import (
    Business,
    BusinessDocType,
    Classification,
    DocumentCode,
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
    UpdateInfo,
    document_id_for,
)
from envelopes.unit_codes import parse_strict
from envelopes.xmltext import check_text


@dataclass(frozen=True, kw_only=True)
class DocumentRequest:
    """What a caller asks docgw to send."""

    header: MessageHeader
    business: Business
    classification: Classification


# ---------------------------------------------------------------------------- one value's rules


@dataclass(frozen=True)
class Shape:
    """How a field's value looks where its type does not say it (the reference's "type")."""

    text: str


def _refuse(message: str, kind: str = "metadata") -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _text(value: Any, *, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _refuse("required")
        return None
    if not isinstance(value, str):
        raise _refuse("must be a string")
    try:
        check_text(value, element="")
    except TextInvalid as exc:  # keeps its own code; the path is added where it is known
        raise _refuse(exc.message, "text_invalid") from None
    return value.strip()


def _unit_code(value: Any) -> str:
    try:
        return parse_strict(_text(value, required=True) or "").value
    except GatewayError as exc:
        raise _refuse(exc.message) from None


def _whole(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _refuse("must be a whole number")
    return value


def _date(value: Any, *, required: bool) -> dt.date | None:
    text = _text(value, required=required)
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _refuse("must be an ISO date (2026-11-23)") from None


def _non_empty(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _refuse("must be a non-empty string")
    return _text(value, required=True) or ""


def _listed(value: Any, *, required: bool) -> Any:
    if value is None or value == []:
        if required:
            raise _refuse("at least one is required")
        return []
    if not isinstance(value, list):
        raise _refuse("must be a list")
    return value


def _classification(value: Any) -> Classification:
    try:
        return Classification(_text(value, required=True) or "")
    except ValueError:
        choices = ", ".join(c.value for c in Classification)
        raise _refuse(f"must be one of {choices}") from None


def _flag(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _refuse("must be true or false")
    return value


#: Text: blank is absent, the value is stripped; a limit (``max_length``, the probable QCVN limits
#: of DOMAIN.md §3, which the XSD enforces too) is declared on the field.
Text = Annotated[str | None, BeforeValidator(lambda v: _text(v, required=False))]
RequiredText = Annotated[str, BeforeValidator(lambda v: _text(v, required=True))]
UnitCodeText = Annotated[
    str, BeforeValidator(_unit_code), Shape("unit code (strict QCVN 102 or QĐ 20 form)")
]
#: A whole number (from 0, declared on the field); a boolean is not one here.
Whole = Annotated[int | None, BeforeValidator(_whole)]
IsoDate = Annotated[dt.date | None, BeforeValidator(lambda v: _date(v, required=False))]
RequiredIsoDate = Annotated[dt.date, BeforeValidator(lambda v: _date(v, required=True))]
Flag = Annotated[bool | None, BeforeValidator(_flag)]
Texts = Annotated[
    list[Annotated[str, BeforeValidator(_non_empty)]],
    BeforeValidator(lambda v: _listed(v, required=False)),
]
OPTIONAL_LIST = BeforeValidator(lambda v: _listed(v, required=False))
REQUIRED_LIST = BeforeValidator(lambda v: _listed(v, required=True))


# ------------------------------------------------------------------------------------- the JSON


class JsonObject(BaseModel):
    """One object of the metadata JSON: unknown keys refused, every value checked by its type."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OrganizationJson(JsonObject):
    model_config = ConfigDict(title="organization")
    organ_id: UnitCodeText = Field(
        json_schema_extra={"edxml": "OrganId"}, description="the unit's code"
    )
    organization_in_charge: Text = Field(
        None,
        max_length=200,
        json_schema_extra={"edxml": "OrganizationInCharge"},
        description="the organization in charge",
    )
    organ_name: Text = Field(
        None,
        max_length=200,
        json_schema_extra={"edxml": "OrganName"},
        description="the unit's name",
    )
    organ_add: Text = Field(
        None, max_length=250, json_schema_extra={"edxml": "OrganAdd"}, description="its address"
    )
    email: Text = Field(
        None, max_length=100, json_schema_extra={"edxml": "Email"}, description="its e-mail address"
    )
    telephone: Text = Field(
        None, json_schema_extra={"edxml": "Telephone"}, description="its telephone number"
    )
    fax: Text = Field(None, json_schema_extra={"edxml": "Fax"}, description="its fax number")
    website: Text = Field(None, json_schema_extra={"edxml": "Website"}, description="its website")

    def model(self) -> Organization:
        return Organization(**self.model_dump())


class CodeJson(JsonObject):
    model_config = ConfigDict(title="code")
    number: RequiredText = Field(
        max_length=11, json_schema_extra={"edxml": "Code/CodeNumber"}, description="số"
    )
    notation: RequiredText = Field(
        max_length=30, json_schema_extra={"edxml": "Code/CodeNotation"}, description="ký hiệu"
    )


class PromulgationJson(JsonObject):
    model_config = ConfigDict(title="promulgation")
    place: Text = Field(
        None,
        max_length=50,
        json_schema_extra={"edxml": "PromulgationInfo/Place"},
        description="where it was promulgated",
    )
    date: RequiredIsoDate = Field(
        json_schema_extra={"edxml": "PromulgationDate"},
        description="not after today (Vietnam time); written `yyyy/MM/dd`",
    )


class DocumentTypeJson(JsonObject):
    model_config = ConfigDict(title="document_type")
    type: Whole = Field(
        None, ge=0, json_schema_extra={"edxml": "DocumentType/Type"}, description="required"
    )
    type_name: RequiredText = Field(
        max_length=100, json_schema_extra={"edxml": "TypeName"}, description="always sent"
    )
    type_detail: Whole = Field(
        None, ge=0, json_schema_extra={"edxml": "TypeDetail"}, description="the type's detail"
    )


class SignerJson(JsonObject):
    model_config = ConfigDict(title="signer")
    competence: Text = Field(
        None,
        json_schema_extra={"edxml": "SignerInfo/Competence"},
        description='thẩm quyền ký (e.g. "KT. BỘ TRƯỞNG")',
    )
    position: Text = Field(
        None, json_schema_extra={"edxml": "SignerInfo/Position"}, description="chức vụ"
    )
    full_name: Text = Field(
        None, json_schema_extra={"edxml": "SignerInfo/FullName"}, description="họ tên"
    )


class ResponseForJson(JsonObject):
    model_config = ConfigDict(title="response_for")
    organ_id: UnitCodeText = Field(
        json_schema_extra={"edxml": "ResponseFor/OrganId"},
        description="the unit whose document this answers",
    )
    code: Text = Field(
        None, json_schema_extra={"edxml": "ResponseFor/Code"}, description="that document's code"
    )
    promulgation_date: IsoDate = Field(
        None, json_schema_extra={"edxml": "PromulgationDate"}, description="that document's date"
    )
    document_id: Text = Field(
        None,
        json_schema_extra={"edxml": "ResponseFor/DocumentId"},
        description="that document's id",
    )

    def model(self) -> ResponseFor:
        return ResponseFor(**self.model_dump())


class OtherInfoJson(JsonObject):
    model_config = ConfigDict(title="other_info")
    priority: Whole = Field(
        None,
        ge=0,
        le=4,
        json_schema_extra={"edxml": "OtherInfo/Priority"},
        description="0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc, 4 hỏa tốc hẹn giờ",
    )
    sphere_of_promulgation: Text = Field(
        None, json_schema_extra={"edxml": "SphereOfPromulgation"}, description="phạm vi ban hành"
    )
    typer_notation: Text = Field(
        None, json_schema_extra={"edxml": "TyperNotation"}, description="ký hiệu người đánh máy"
    )
    promulgation_amount: Whole = Field(
        None,
        ge=0,
        json_schema_extra={"edxml": "PromulgationAmount"},
        description="số bản phát hành",
    )
    page_amount: Whole = Field(
        None, ge=0, json_schema_extra={"edxml": "PageAmount"}, description="số trang"
    )
    direction: Flag = Field(
        None, json_schema_extra={"edxml": "Direction"}, description="written by the official SDK"
    )
    appendixes: Texts = Field(
        [], json_schema_extra={"edxml": "Appendixes/Appendix"}, description="the appendixes' names"
    )

    def model(self) -> OtherInfo:
        return OtherInfo(
            priority=Priority(self.priority or 0),
            sphere_of_promulgation=self.sphere_of_promulgation,
            typer_notation=self.typer_notation,
            promulgation_amount=self.promulgation_amount,
            page_amount=self.page_amount,
            direction=self.direction,
            appendixes=tuple(self.appendixes),
        )


class StaffInfoJson(JsonObject):
    model_config = ConfigDict(title="staff_info")
    department: Text = Field(
        None, json_schema_extra={"edxml": "StaffInfo/Department"}, description="phòng ban"
    )
    staff: Text = Field(None, json_schema_extra={"edxml": "StaffInfo/Staff"}, description="cán bộ")
    mobile: Text = Field(
        None, json_schema_extra={"edxml": "StaffInfo/Mobile"}, description="điện thoại"
    )
    email: Text = Field(None, json_schema_extra={"edxml": "StaffInfo/Email"}, description="e-mail")


class ReceiverJson(JsonObject):
    model_config = ConfigDict(title="receiver")
    organ_id: UnitCodeText = Field(
        json_schema_extra={"edxml": "ReceiverList/Receiver/OrganId"},
        description="the receiver's unit",
    )
    receiver_type: Whole = Field(
        None, ge=0, json_schema_extra={"edxml": "ReceiverType"}, description="the receiver's type"
    )


class UpdateJson(JsonObject):
    model_config = ConfigDict(title="update")
    document_info: Text = Field(
        None,
        json_schema_extra={"edxml": "BussinessDocumentInfo"},
        description="what is updated in the document",
    )
    document_receiver: Text = Field(
        None,
        json_schema_extra={"edxml": "BussinessDocReceiver"},
        description="what is updated in the receivers",
    )
    receivers: Annotated[list[ReceiverJson], OPTIONAL_LIST] = Field(
        [], json_schema_extra={"edxml": "ReceiverList"}, description="the receivers now"
    )


class ReplacementJson(JsonObject):
    model_config = ConfigDict(title="replacement")
    document_id: RequiredText = Field(
        json_schema_extra={"edxml": "ReplacementInfo/DocumentId"},
        description="the document replaced",
    )
    organ_ids: Texts = Field(
        [],
        json_schema_extra={"edxml": "OrganIdList/OrganId"},
        description="the units it was sent to",
    )


class BusinessJson(JsonObject):
    model_config = ConfigDict(title="business")
    doc_type: Whole = Field(
        None,
        ge=0,
        le=3,
        json_schema_extra={"edxml": "Bussiness/BussinessDocType"},
        description="0 new, 1 revoke, 2 update, 3 replace",
    )
    reason: Text = Field(
        None,
        json_schema_extra={"edxml": "BussinessDocReason"},
        description="required when doc_type ≠ 0",
    )
    paper: Whole = Field(
        None,
        ge=0,
        le=1,
        json_schema_extra={"edxml": "Paper"},
        description="1: a paper copy follows",
    )
    document_id: Text = Field(
        None,
        json_schema_extra={"edxml": "Bussiness/DocumentId"},
        description="the business document's id",
    )
    staff_info: StaffInfoJson | None = Field(
        None, json_schema_extra={"edxml": "StaffInfo"}, description="who handled it"
    )
    update: UpdateJson | None = Field(
        None,
        json_schema_extra={"edxml": "BussinessDocumentInfo"},
        description="required for doc_type 2",
    )
    replacements: Annotated[list[ReplacementJson], OPTIONAL_LIST] = Field(
        [],
        json_schema_extra={"edxml": "ReplacementInfoList"},
        description="required for doc_type 3",
    )


class Metadata(JsonObject):
    """The metadata JSON's top level."""

    classification: Annotated[Classification, BeforeValidator(_classification)] = Field(
        json_schema_extra={"edxml": "—"},
        description="docgw's own field: never written into the package",
    )
    from_: OrganizationJson = Field(
        alias="from", json_schema_extra={"edxml": "From"}, description="the sending unit"
    )
    to: Annotated[list[OrganizationJson], REQUIRED_LIST] = Field(
        json_schema_extra={"edxml": "To"}, description="at least one; each unit once"
    )
    code: CodeJson = Field(json_schema_extra={"edxml": "Code"}, description="số / ký hiệu")
    promulgation: PromulgationJson = Field(
        json_schema_extra={"edxml": "PromulgationInfo"},
        description="where and when it was promulgated",
    )
    document_type: DocumentTypeJson = Field(
        json_schema_extra={"edxml": "DocumentType"}, description="the kind of document"
    )
    subject: RequiredText = Field(
        max_length=500, json_schema_extra={"edxml": "Subject"}, description="trích yếu"
    )
    content: Text = Field(
        None, max_length=500, json_schema_extra={"edxml": "Content"}, description="nội dung"
    )
    signer: SignerJson | None = Field(
        None, json_schema_extra={"edxml": "SignerInfo"}, description="who signed it"
    )
    due_date: IsoDate = Field(None, json_schema_extra={"edxml": "DueDate"}, description="hạn xử lý")
    to_places: Texts = Field(
        [],
        json_schema_extra={"edxml": "ToPlaces/Place"},
        description="nơi nhận, as written on the document",
    )
    other_info: OtherInfoJson | None = Field(
        None, json_schema_extra={"edxml": "OtherInfo"}, description="priority, amounts, appendixes"
    )
    steering_type: Whole = Field(
        None,
        ge=0,
        le=2,
        json_schema_extra={"edxml": "SteeringType"},
        description="chỉ đạo điều hành",
    )
    response_for: Annotated[list[ResponseForJson], OPTIONAL_LIST] = Field(
        [], json_schema_extra={"edxml": "ResponseFor"}, description="the documents this one answers"
    )
    document_id: Text = Field(
        None,
        json_schema_extra={"edxml": "DocumentId"},
        description="null → `<from>,<yyyy/MM/dd>,<number>/<notation>`",
    )
    business: BusinessJson | None = Field(
        None,
        json_schema_extra={"edxml": "Bussiness"},
        description="the business type and its companions",
    )

    def request(self, today: dt.date) -> DocumentRequest:
        """The request, with the rules across fields."""
        promulgation = self.promulgation.date
        if promulgation > today:
            raise MetadataError(
                f"is after today ({today.isoformat()})", element="promulgation.date"
            )
        if self.document_type.type is None:
            raise MetadataError("required", element="document_type.type")
        sender = self.from_.model()
        code = DocumentCode(number=self.code.number, notation=self.code.notation)
        header = MessageHeader(
            from_=sender,
            to=_recipients(self.to),
            code=code,
            promulgation=PromulgationInfo(place=self.promulgation.place, date=promulgation),
            document_type=DocumentType(
                type=self.document_type.type,
                type_name=self.document_type.type_name,
                type_detail=self.document_type.type_detail,
            ),
            subject=self.subject,
            content=self.content,
            signer=SignerInfo(**self.signer.model_dump()) if self.signer else None,
            due_date=self.due_date,
            to_places=tuple(self.to_places),
            other_info=self.other_info.model() if self.other_info else OtherInfo(),
            response_for=tuple(r.model() for r in self.response_for),
            steering_type=self.steering_type,
            document_id=self.document_id or document_id_for(sender.organ_id, promulgation, code),
        )
        business = _business(self.business) if self.business else Business()
        return DocumentRequest(header=header, business=business, classification=self.classification)


def _recipients(to: list[OrganizationJson]) -> tuple[Organization, ...]:
    """``to``, each unit once: the store keeps one row per (message, recipient), so a repeat would
    be signed into the package and then refused by the database."""
    first_at: dict[str, str] = {}
    for i, recipient in enumerate(to):
        if recipient.organ_id in first_at:
            raise MetadataError(
                f"{recipient.organ_id} is already a recipient ({first_at[recipient.organ_id]})",
                element=f"to[{i}].organ_id",
            )
        first_at[recipient.organ_id] = f"to[{i}]"
    return tuple(r.model() for r in to)


def _business(given: BusinessJson) -> Business:
    doc_type = BusinessDocType(given.doc_type or 0)
    if doc_type is not BusinessDocType.NEW and given.reason is None:
        raise MetadataError(
            f"a reason is required for business type {doc_type.value}", element="business.reason"
        )
    if doc_type is BusinessDocType.UPDATE and given.update is None:
        raise MetadataError("required for an update (doc_type 2)", element="business.update")
    if doc_type is BusinessDocType.REPLACE and not given.replacements:
        raise MetadataError(
            "required for a replacement (doc_type 3)", element="business.replacements"
        )
    update = given.update
    return Business(
        doc_type=doc_type,
        document_id=given.document_id,
        reason=given.reason,
        paper=given.paper or 0,
        staff_info=StaffInfo(**given.staff_info.model_dump()) if given.staff_info else None,
        update=UpdateInfo(
            document_info=update.document_info,
            document_receiver=update.document_receiver,
            receivers=tuple(
                Receiver(organ_id=r.organ_id, receiver_type=r.receiver_type)
                for r in update.receivers
            ),
        )
        if update
        else None,
        replacements=tuple(
            Replacement(document_id=r.document_id, organ_ids=tuple(r.organ_ids))
            for r in given.replacements
        ),
    )


# ---------------------------------------------------------------------------------- the parser


def parse_metadata(data: bytes | str | Mapping[str, Any], *, today: dt.date) -> DocumentRequest:
    """Check metadata JSON (bytes, text or already decoded) and build the request.

    ``today`` is the sender's local date (Vietnam): the promulgation date may not be after it.
    """
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise MetadataError(f"not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise MetadataError("must be an object", element="(root)")
    try:
        metadata = Metadata.model_validate(data)
    except ValidationError as exc:
        raise _metadata_error(exc) from None
    return metadata.request(today)


_TYPE_WORDS: dict[str, str] = {
    "missing": "required",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
}


def _metadata_error(exc: ValidationError) -> GatewayError:
    """The first of pydantic's errors in docgw's words, at the field's path (``to[0].organ_id``)."""
    error = exc.errors()[0]
    loc = [("from" if part == "from_" else part) for part in error["loc"]]
    element = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    kind = error["type"]
    if kind == "text_invalid":
        return TextInvalid(error["msg"], element=element)
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1])
        return MetadataError(f"unknown field (known: {', '.join(known)})", element=element)
    ctx = error.get("ctx") or {}
    if kind == "metadata":
        message = error["msg"]
    elif kind in _TYPE_WORDS and error.get("input", "") is None:
        message = "required"  # null where an object is required: absent, as for a text
    elif kind == "string_too_long":
        message = f"longer than {ctx['max_length']} characters"
    elif kind == "less_than_equal":
        message = f"must be 0..{ctx['le']}"
    elif kind == "greater_than_equal":
        message = f"must be at least {ctx['ge']}"
    else:
        message = _TYPE_WORDS.get(kind, error["msg"])
    return MetadataError(message, element=element or "(root)")


def _known_fields(loc: list[int | str]) -> list[str]:
    """The keys the object at ``loc`` takes, as written in the JSON."""
    model: type[BaseModel] = Metadata
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields["from_" if part == "from" else str(part)]
        found = _model_in(field.annotation)
        if found is None:
            return []
        model = found
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_in(hint: Any) -> type[BaseModel] | None:
    """The object model a field holds (alone, optional or in a list)."""
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    for arg in getattr(hint, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


#: For envelopes.metadata_reference: the objects of the JSON, the top level first.
OBJECTS: tuple[type[JsonObject], ...] = (
    Metadata,
    OrganizationJson,
    CodeJson,
    PromulgationJson,
    DocumentTypeJson,
    SignerJson,
    OtherInfoJson,
    ResponseForJson,
    BusinessJson,
    StaffInfoJson,
    UpdateJson,
    ReceiverJson,
    ReplacementJson,
)

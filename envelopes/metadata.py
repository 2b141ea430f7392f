"""Document metadata as the CLI and the HTTP API take it: JSON with the QCVN element names in
snake_case and ISO dates, checked strictly (this is the sending side) into the model.

Every problem is a MetadataError naming the field (``to[2].organ_id``); unknown keys are errors too,
so a misspelt field is never silently dropped. See docs/reference/metadata.md for every key.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

#: Probable QCVN length limits (DOMAIN.md §3); the XSD enforces the same.
LIMITS = {
    "organization_in_charge": 200,
    "organ_name": 200,
    "organ_add": 250,
    "email": 100,
    "number": 11,
    "notation": 30,
    "place": 50,
    "type_name": 100,
    "subject": 500,
    "content": 500,
}


@dataclass(frozen=True, kw_only=True)
class DocumentRequest:
    """What a caller asks docgw to send."""

    header: MessageHeader
    business: Business
    classification: Classification


class _Obj:
    """One JSON object being read, with its path for error messages."""

    def __init__(self, value: Any, path: str, known: tuple[str, ...]) -> None:
        if not isinstance(value, Mapping):
            raise MetadataError("must be an object", element=path or "(root)")
        unknown = sorted(set(value) - set(known))
        if unknown:
            where = f"{path}.{unknown[0]}" if path else unknown[0]
            raise MetadataError(f"unknown field (known: {', '.join(known)})", element=where)
        self.value = value
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        return self.value.get(key)

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.value.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise MetadataError("required", element=self.at(key))
            return None
        if not isinstance(value, str):
            raise MetadataError("must be a string", element=self.at(key))
        limit = LIMITS.get(key)
        if limit is not None and len(value) > limit:
            raise MetadataError(f"longer than {limit} characters", element=self.at(key))
        return check_text(value, element=self.at(key)).strip()

    def required_text(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def integer(self, key: str, *, low: int = 0, high: int | None = None) -> int | None:
        value = self.value.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise MetadataError("must be a whole number", element=self.at(key))
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f"at least {low}"
            raise MetadataError(f"must be {bound}", element=self.at(key))
        return value

    def date(self, key: str, *, required: bool = False) -> dt.date | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise MetadataError("must be an ISO date (2026-11-23)", element=self.at(key)) from None

    def obj(self, key: str, known: tuple[str, ...], *, required: bool = False) -> _Obj | None:
        value = self.value.get(key)
        if value is None:
            if required:
                raise MetadataError("required", element=self.at(key))
            return None
        return _Obj(value, self.at(key), known)

    def items(self, key: str, *, required: bool = False) -> list[tuple[str, Any]]:
        value = self.value.get(key)
        if value is None or value == []:
            if required:
                raise MetadataError("at least one is required", element=self.at(key))
            return []
        if not isinstance(value, list):
            raise MetadataError("must be a list", element=self.at(key))
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def strings(self, key: str) -> tuple[str, ...]:
        result = []
        for path, item in self.items(key):
            if not isinstance(item, str) or not item.strip():
                raise MetadataError("must be a non-empty string", element=path)
            result.append(check_text(item, element=path).strip())
        return tuple(result)


_TOP = (
    "from", "to", "code", "promulgation", "document_type", "subject", "content", "signer",
    "due_date", "to_places", "other_info", "steering_type", "response_for", "document_id",
    "business", "classification",
)  # fmt: skip
_ORG = (
    "organ_id", "organization_in_charge", "organ_name", "organ_add", "email", "telephone", "fax",
    "website",
)  # fmt: skip


def _organization(obj: _Obj) -> Organization:
    return Organization(
        organ_id=parse_strict(obj.required_text("organ_id"), field=obj.at("organ_id")).value,
        organization_in_charge=obj.text("organization_in_charge"),
        organ_name=obj.text("organ_name"),
        organ_add=obj.text("organ_add"),
        email=obj.text("email"),
        telephone=obj.text("telephone"),
        fax=obj.text("fax"),
        website=obj.text("website"),
    )


def _staff(obj: _Obj | None) -> StaffInfo | None:
    if obj is None:
        return None
    return StaffInfo(
        department=obj.text("department"),
        staff=obj.text("staff"),
        mobile=obj.text("mobile"),
        email=obj.text("email"),
    )


def parse_metadata(data: bytes | str | Mapping[str, Any], *, today: dt.date) -> DocumentRequest:
    """Check metadata JSON (bytes, text or already decoded) and build the request.

    ``today`` is the sender's local date (Vietnam): the promulgation date may not be after it.
    """
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise MetadataError(f"not valid JSON: {exc}") from None
    try:
        return _parse(_Obj(data, "", _TOP), today)
    except GatewayError as exc:
        if isinstance(exc, MetadataError | TextInvalid):
            raise
        raise MetadataError(exc.message, element=exc.element) from exc


def _parse(top: _Obj, today: dt.date) -> DocumentRequest:
    classification_text = top.required_text("classification")
    try:
        classification = Classification(classification_text)
    except ValueError:
        choices = ", ".join(c.value for c in Classification)
        raise MetadataError(f"must be one of {choices}", element="classification") from None
    sender = _organization(_req(top.obj("from", _ORG, required=True)))
    recipients = _recipients(top)
    code_obj = _req(top.obj("code", ("number", "notation"), required=True))
    code = DocumentCode(
        number=code_obj.required_text("number"), notation=code_obj.required_text("notation")
    )
    prom_obj = _req(top.obj("promulgation", ("place", "date"), required=True))
    prom_date = prom_obj.date("date", required=True)
    assert prom_date is not None
    if prom_date > today:
        raise MetadataError(f"is after today ({today.isoformat()})", element="promulgation.date")
    type_obj = _req(top.obj("document_type", ("type", "type_name", "type_detail"), required=True))
    doc_type = type_obj.integer("type")
    if doc_type is None:
        raise MetadataError("required", element="document_type.type")
    header = MessageHeader(
        from_=sender,
        to=recipients,
        code=code,
        promulgation=PromulgationInfo(place=prom_obj.text("place"), date=prom_date),
        document_type=DocumentType(
            type=doc_type,
            type_name=type_obj.required_text("type_name"),
            type_detail=type_obj.integer("type_detail"),
        ),
        subject=top.required_text("subject"),
        content=top.text("content"),
        signer=_signer(top.obj("signer", ("competence", "position", "full_name"))),
        due_date=top.date("due_date"),
        to_places=top.strings("to_places"),
        other_info=_other_info(top),
        response_for=tuple(
            _response_for(_Obj(item, path, _RESPONSE)) for path, item in top.items("response_for")
        ),
        steering_type=top.integer("steering_type", high=2),
        document_id=top.text("document_id") or document_id_for(sender.organ_id, prom_date, code),
    )
    return DocumentRequest(header=header, business=_business(top), classification=classification)


def _recipients(top: _Obj) -> tuple[Organization, ...]:
    """``to``, each unit once: the store keeps one row per (message, recipient), so a repeat would
    be signed into the package and then refused by the database."""
    recipients: list[Organization] = []
    first_at: dict[str, str] = {}
    for path, item in top.items("to", required=True):
        recipient = _organization(_Obj(item, path, _ORG))
        if recipient.organ_id in first_at:
            raise MetadataError(
                f"{recipient.organ_id} is already a recipient ({first_at[recipient.organ_id]})",
                element=f"{path}.organ_id",
            )
        first_at[recipient.organ_id] = path
        recipients.append(recipient)
    return tuple(recipients)


def _req(obj: _Obj | None) -> _Obj:
    assert obj is not None  # required=True raised already
    return obj


def _signer(obj: _Obj | None) -> SignerInfo | None:
    if obj is None:
        return None
    return SignerInfo(
        competence=obj.text("competence"),
        position=obj.text("position"),
        full_name=obj.text("full_name"),
    )


_RESPONSE = ("organ_id", "code", "promulgation_date", "document_id")


def _response_for(obj: _Obj) -> ResponseFor:
    return ResponseFor(
        organ_id=parse_strict(obj.required_text("organ_id"), field=obj.at("organ_id")).value,
        code=obj.text("code"),
        promulgation_date=obj.date("promulgation_date"),
        document_id=obj.text("document_id"),
    )


_OTHER = (
    "priority", "sphere_of_promulgation", "typer_notation", "promulgation_amount", "page_amount",
    "direction", "appendixes",
)  # fmt: skip


def _other_info(top: _Obj) -> OtherInfo:
    obj = top.obj("other_info", _OTHER)
    if obj is None:
        return OtherInfo()
    direction = obj.raw("direction")
    if direction is not None and not isinstance(direction, bool):
        raise MetadataError("must be true or false", element=obj.at("direction"))
    return OtherInfo(
        priority=Priority(obj.integer("priority", high=4) or 0),
        sphere_of_promulgation=obj.text("sphere_of_promulgation"),
        typer_notation=obj.text("typer_notation"),
        promulgation_amount=obj.integer("promulgation_amount"),
        page_amount=obj.integer("page_amount"),
        direction=direction,
        appendixes=obj.strings("appendixes"),
    )


_BUSINESS = ("doc_type", "reason", "paper", "document_id", "staff_info", "update", "replacements")


def _business(top: _Obj) -> Business:
    obj = top.obj("business", _BUSINESS)
    if obj is None:
        return Business()
    doc_type = BusinessDocType(obj.integer("doc_type", high=3) or 0)
    reason = obj.text("reason")
    if doc_type is not BusinessDocType.NEW and reason is None:
        raise MetadataError(
            f"a reason is required for business type {doc_type.value}", element="business.reason"
        )
    update_obj = obj.obj("update", ("document_info", "document_receiver", "receivers"))
    if doc_type is BusinessDocType.UPDATE and update_obj is None:
        raise MetadataError("required for an update (doc_type 2)", element="business.update")
    replacements = tuple(
        Replacement(
            document_id=item_obj.required_text("document_id"),
            organ_ids=item_obj.strings("organ_ids"),
        )
        for item_obj in (
            _Obj(item, path, ("document_id", "organ_ids"))
            for path, item in obj.items("replacements")
        )
    )
    if doc_type is BusinessDocType.REPLACE and not replacements:
        raise MetadataError(
            "required for a replacement (doc_type 3)", element="business.replacements"
        )
    return Business(
        doc_type=doc_type,
        document_id=obj.text("document_id"),
        reason=reason,
        paper=obj.integer("paper", high=1) or 0,
        staff_info=_staff(obj.obj("staff_info", ("department", "staff", "mobile", "email"))),
        update=_update(update_obj),
        replacements=replacements,
    )


def _update(obj: _Obj | None) -> UpdateInfo | None:
    if obj is None:
        return None
    receivers = []
    for path, item in obj.items("receivers"):
        receiver = _Obj(item, path, ("organ_id", "receiver_type"))
        receivers.append(
            Receiver(
                organ_id=parse_strict(
                    receiver.required_text("organ_id"), field=receiver.at("organ_id")
                ).value,
                receiver_type=receiver.integer("receiver_type"),
            )
        )
    return UpdateInfo(
        document_info=obj.text("document_info"),
        document_receiver=obj.text("document_receiver"),
        receivers=tuple(receivers),
    )

"""An old system's export, written with docgw's own builders: documents G22 → H41 (sent, from
the tests' local unit) with H41's statuses 01 and 03, and documents H41 → G22 (received) with
G22's statuses 01 and 06; every package signed by its unit's test key."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from integration_support import RECIPIENT, SENDER

from envelopes.building import build_document_bytes, build_status
from envelopes.model import (
    DocumentCode,
    DocumentType,
    MessageHeader,
    Organization,
    PromulgationInfo,
    ResponseFor,
    StatusCode,
    StatusPackage,
    document_id_for,
)
from envelopes.signing import Signer
from gateway.keystore import unit_paths

DAY = dt.date(2025, 3, 14)


def signer(keys_dir: Path, code: str) -> Signer:
    key, cert = unit_paths(keys_dir, code)
    return Signer.from_pem(key.read_bytes(), cert.read_bytes())


def header(sender: str, to: str, number: int) -> MessageHeader:
    code = DocumentCode(number=str(number), notation="CV-CU")
    return MessageHeader(
        from_=Organization(organ_id=sender, organ_name=f"Đơn vị {sender}"),
        to=(Organization(organ_id=to, organ_name=f"Đơn vị {to}"),),
        code=code,
        promulgation=PromulgationInfo(place="Hà Nội", date=DAY),
        document_type=DocumentType(type=1, type_name="Công văn"),
        subject=f"Văn bản cũ số {number}",
        document_id=document_id_for(sender, DAY, code),
    )


def status(doc: MessageHeader, reporter: str, code: StatusCode, minute: int) -> StatusPackage:
    return StatusPackage(
        from_=Organization(organ_id=reporter, organ_name=f"Đơn vị {reporter}"),
        response_for=ResponseFor(
            organ_id=doc.from_.organ_id, code=str(doc.code), document_id=doc.document_id
        ),
        status_code=code,
        timestamp=dt.datetime(2025, 3, 14, 9, minute, 0),
        description="Đã xử lý" if code is StatusCode.COMPLETED else None,
    )


def history(keys_dir: Path, count: int) -> dict[str, bytes]:
    """``count`` sent and ``count`` received documents with two statuses each: 6×count files,
    named by what they are (the tests shuffle them)."""
    signers = {code: signer(keys_dir, code) for code in (SENDER, RECIPIENT)}
    files: dict[str, bytes] = {}
    for i in range(count):
        for sender, to, codes in (
            (SENDER, RECIPIENT, (StatusCode.ARRIVED, StatusCode.ACCEPTED)),
            (RECIPIENT, SENDER, (StatusCode.ARRIVED, StatusCode.COMPLETED)),
        ):
            doc = header(sender, to, 1000 + i)
            data, _ = build_document_bytes(doc, signer=signers[sender])
            files[f"doc-{sender}-{i}.edxml"] = data
            for minute, code in enumerate(codes):
                package = build_status(status(doc, to, code, minute), signer=signers[to])
                files[f"status-{to}-{i}-{code.value}.edxml"] = package
    return files


def resigned(keys_dir: Path, number: int) -> bytes:
    """The sent document ``number`` signed again: other bytes, the same (sender, DocumentId)."""
    doc = dataclasses.replace(header(SENDER, RECIPIENT, 1000 + number), subject="Bản sao khác")
    return build_document_bytes(doc, signer=signer(keys_dir, SENDER))[0]

"""The local unit registry: units (codes, names, parent, channel, secure endpoint) and their
certificates. Codes are checked strictly on registration (DOMAIN.md §2)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from gateway.bootstrap import Gateway
from gateway.store import queries
from gateway.store.records import CertificateRecord, UnitRecord
from gateway.usecases.errors import Conflict, NotFound

CSV_COLUMNS = ("code", "name", "parent_code", "code_qd20", "channel", "secure_endpoint")


class CertificateInvalid(GatewayError):
    code = "CERT_INVALID"


@dataclass(frozen=True, kw_only=True)
class UnitDetail:
    unit: UnitRecord
    certificates: tuple[CertificateRecord, ...]


def check_unit(unit: UnitRecord) -> UnitRecord:
    parse_strict(unit.code, field="code")
    if unit.parent_code:
        parse_strict(unit.parent_code, field="parent_code")
    if unit.code_qd20:
        parse_strict(unit.code_qd20, field="code_qd20")
    if not unit.name.strip():
        raise GatewayError("a unit needs a name", element="name")
    return unit


def certificate_record(unit_code: str, pem: str) -> CertificateRecord:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CertificateInvalid(f"not a PEM certificate: {exc}", element="certificate") from exc
    return CertificateRecord(
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        unit_code=unit_code,
        pem=pem.strip() + "\n",
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )


async def register_unit(
    gateway: Gateway, unit: UnitRecord, *, certificate_pem: str | None, actor: str
) -> bool:
    """Add or update a unit (and add a certificate); True when the unit is new."""
    check_unit(unit)
    record = certificate_record(unit.code, certificate_pem) if certificate_pem else None
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        created = await queries.upsert_unit(conn, unit, now=now)
        if record is not None:
            owner = await queries.certificate_owner(conn, record.fingerprint_sha256)
            if owner not in (None, unit.code):
                raise Conflict(f"this certificate is registered for {owner}", element="certificate")
            await queries.add_certificate(conn, record, now=now)
        await queries.audit(
            conn,
            now=now,
            actor=actor,
            action="unit_registered" if created else "unit_updated",
            reason=f"{unit.code} {unit.name}"
            + (f"; certificate {record.subject}" if record else ""),
        )
    return created


async def get_unit(gateway: Gateway, code: str) -> UnitDetail:
    async with gateway.engine.connect() as conn:
        unit = await queries.get_unit(conn, code)
        if unit is None:
            raise NotFound(f"no unit {code}")
        return UnitDetail(unit=unit, certificates=tuple(await queries.certificates(conn, code)))


async def list_units(
    gateway: Gateway, *, text: str | None = None, after: str | None = None, limit: int = 100
) -> list[UnitRecord]:
    async with gateway.engine.connect() as conn:
        return await queries.list_units(conn, text=text, after=after, limit=limit)


async def import_csv(gateway: Gateway, data: str, *, actor: str) -> tuple[int, int]:
    """Import units from CSV with a header row (columns: see CSV_COLUMNS; code and name required).
    All or nothing: one bad row (named by its line) imports none. Returns (created, updated)."""
    reader = csv.DictReader(io.StringIO(data))
    missing = {"code", "name"} - set(reader.fieldnames or ())
    if missing:
        raise GatewayError(
            f"the CSV needs the columns {', '.join(sorted(missing))}", element="header"
        )
    units = []
    for line, row in enumerate(reader, start=2):
        try:
            units.append(
                check_unit(
                    UnitRecord(
                        code=(row.get("code") or "").strip(),
                        name=(row.get("name") or "").strip(),
                        parent_code=(row.get("parent_code") or "").strip() or None,
                        code_qd20=(row.get("code_qd20") or "").strip() or None,
                        channel=(row.get("channel") or "").strip() or None,
                        secure_endpoint=(row.get("secure_endpoint") or "").strip() or None,
                    )
                )
            )
        except GatewayError as exc:
            raise type(exc)(f"line {line}: {exc.message}", element=exc.element) from exc
    now = gateway.clock()
    created = 0
    async with gateway.engine.begin() as conn:
        for unit in units:
            created += await queries.upsert_unit(conn, unit, now=now)
        await queries.audit(
            conn, now=now, actor=actor, action="units_imported", reason=f"{len(units)} units"
        )
    return created, len(units) - created

"""The local unit registry: units (codes, names, parent, channel, secure endpoint, Tuyệt mật
permission) and their certificates. Codes are checked strictly on registration (DOMAIN.md §2); a
secure endpoint must be an ``https://`` URL (``SECURE_ENDPOINT_INVALID``).

An update changes only what it names: registering an existing unit again with a new channel keeps
its secure endpoint, its ``allows_tuyet_mat``, whether it is local and whether it is active. The
Tuyệt mật permission is never implied: it is off until an admin sets it, explicitly, per unit.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from connectors.secure_endpoint import check_secure_endpoint
from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from envelopes.xmltext import check_text
from gateway.store import audit_queries, unit_queries
from gateway.store import registrations as versions
from gateway.store.records import CertificateRecord, UnitRecord
from gateway.store.tables import units
from gateway.usecases import certificates
from gateway.usecases.errors import Conflict, Forbidden, NotFound
from gateway.usecases.packages import overlap
from gateway.usecases.ports import Channels, Keys, Store


class Registry(Store, Keys, Channels, Protocol):
    """What the unit registry uses: the store, the local units (their keys), the channels."""


@dataclass(frozen=True, kw_only=True)
class UnitField:
    """One field a registration sets, as every surface names and checks it: the API's body, the
    CLI's ``docgw units add`` options and the CSV's columns all derive from :data:`UNIT_FIELD_SPECS`
    (each surface then applies its own permissions)."""

    name: str
    #: How docgw routes to the unit and where it sits: an admin's decision, never a member's.
    routing: bool = False
    #: Yes/no (a JSON boolean, ``--x``/``--no-x`` on the CLI, a true/false CSV cell); else text.
    flag: bool = False
    #: The CLI option's name (``--parent``), when it is not the field's own.
    option: str | None = None
    #: What the field means, for the CLI's help.
    help: str | None = None

    @property
    def cli_option(self) -> str:
        """The option as typed, e.g. ``--secure-endpoint``."""
        return "--" + (self.option or self.name).replace("_", "-")

    @property
    def max_length(self) -> int | None:
        """The units table's column width (text fields): longer is refused before the database."""
        column_type = units.c[self.name].type
        return None if self.flag else getattr(column_type, "length", None)


#: What a registration may set, besides ``code`` and a certificate. ``is_local`` and ``active``
#: belong to the gateway and the directory sync.
UNIT_FIELD_SPECS = (
    UnitField(name="name", help="required for a new unit"),
    UnitField(name="parent_code", routing=True, option="parent", help="the parent unit's code"),
    UnitField(name="code_qd20", routing=True, option="qd20", help="the unit's QĐ 20 code"),
    UnitField(name="channel", routing=True, help="the channel its documents go through"),
    UnitField(
        name="secure_endpoint",
        routing=True,
        help="its registered secure endpoint (the only place classified copies go)",
    ),
    UnitField(
        name="allows_tuyet_mat",
        routing=True,
        flag=True,
        help="allow Tuyệt mật on this unit's secure route; a new unit starts without it",
    ),
)
UNIT_FIELDS = tuple(spec.name for spec in UNIT_FIELD_SPECS)
#: The fields only an admin may set (a member token may set its own unit's name).
ROUTING_FIELDS = tuple(spec.name for spec in UNIT_FIELD_SPECS if spec.routing)
CSV_COLUMNS = ("code", *UNIT_FIELDS)
#: How a CSV cell (or a CLI value) says yes or no; an empty cell is no.
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0", "")


class CertificateInvalid(GatewayError):
    code = "CERT_INVALID"


@dataclass(frozen=True, kw_only=True)
class UnitDetail:
    unit: UnitRecord
    certificates: tuple[CertificateRecord, ...]


def check_unit(unit: UnitRecord) -> UnitRecord:
    parse_strict(unit.code, field="code")
    if unit.secure_endpoint:
        check_secure_endpoint(unit.secure_endpoint, element="secure_endpoint")
    if unit.parent_code:
        parse_strict(unit.parent_code, field="parent_code")
    if unit.code_qd20:
        parse_strict(unit.code_qd20, field="code_qd20")
    if not unit.name.strip():
        raise GatewayError("a unit needs a name", element="name")
    # The name goes into the packages the unit sends (OrganName) and into the database.
    check_text(unit.name, element="name")
    return unit


class UnknownChannel(GatewayError):
    code = "UNKNOWN_CHANNEL"


def check_channel(gateway: Registry, channel: str | None) -> None:
    """A unit's channel must be one this gateway has (UNKNOWN_CHANNEL): its documents would
    otherwise wait for a channel that never comes. A gateway with no channel at all (set up,
    channels not yet configured) takes any name: there is nothing yet to check it against."""
    if channel and gateway.channels and channel not in gateway.channels:
        raise UnknownChannel(
            f"không có kênh {channel!r} — no channel {channel!r} is configured "
            f"(configured: {', '.join(sorted(gateway.channels))})",
            element="channel",
        )


def parse_flag(value: str, *, element: str) -> bool:
    """A yes/no value as a CSV cell writes it: true/yes/1, false/no/0 or empty (no)."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise GatewayError(f"must be true or false, not {value!r}", element=element)


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
    gateway: Registry,
    unit: UnitRecord,
    *,
    certificate_pem: str | None,
    actor: str,
    given: Collection[str] | None = None,
) -> bool:
    """Add or update a unit (and add a certificate); True when the unit is new.

    ``given``: the fields of :data:`UNIT_FIELDS` the caller set. An existing unit changes only
    those; a new one takes ``unit`` as it is (what was not given keeps its default: no Tuyệt mật).
    None means every field of ``unit``, ``is_local`` and ``active`` included (a whole record, as
    the gateway's own set-up code registers units).
    """
    unknown = set(given or ()) - set(UNIT_FIELDS)
    if unknown:
        raise ValueError(f"not unit fields a registration sets: {sorted(unknown)}")
    parse_strict(unit.code, field="code")
    if given is not None and "channel" in given:
        # What an operator or a client sets; the gateway's own set-up (given None) is trusted.
        check_channel(gateway, unit.channel)
    record = certificate_record(unit.code, certificate_pem) if certificate_pem else None
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        existing = await unit_queries.get_unit(conn, unit.code) if given is not None else None
        if existing is not None and given is not None:
            # A stored endpoint is judged when it is given again, not when only the name changes
            # (e.g. an http:// one from before the rule: the secure connector refuses it anyway).
            kept = dataclasses.replace(existing, secure_endpoint=None)
            check_unit(dataclasses.replace(kept, **{f: getattr(unit, f) for f in given}))
        else:
            check_unit(unit)
        created = await unit_queries.upsert_unit(conn, unit, now=now, only=given)
        if record is not None:
            await certificates.check_upload(gateway, conn, record, element="certificate")
            owner = await unit_queries.certificate_owner(conn, record.fingerprint_sha256)
            if owner not in (None, unit.code):
                raise Conflict(f"this certificate is registered for {owner}", element="certificate")
            await unit_queries.add_certificate(conn, record, now=now)
        stored = await unit_queries.get_unit(conn, unit.code)
        assert stored is not None
        await versions.add_version(
            conn,
            stored,
            action="registered" if created else "updated",
            changed_by=actor,
            reason=f"certificate {record.fingerprint_sha256}" if record else None,
            now=now,
        )
        await audit_queries.audit(
            conn,
            now=now,
            actor=actor,
            action="unit_registered" if created else "unit_updated",
            reason=f"{unit.code} {unit.name}"
            + (f"; certificate {record.subject}" if record else ""),
        )
    return created


async def register_from_request(
    gateway: Registry,
    code: str,
    changes: Mapping[str, Any],
    *,
    certificate_pem: str | None,
    actor: str,
    member_unit: str | None,
) -> tuple[bool, UnitDetail]:
    """A registration as the API takes it: ``changes`` holds the fields of :data:`UNIT_FIELDS`
    the request names (None clears a text field; a None name keeps the name). A member token
    (``member_unit``) may register only its own unit and change only its name and certificates.
    Returns (created, the unit as stored)."""
    existing = await _existing_unit(gateway, code)
    unit = merged_unit(changes, code, existing, is_local=code in gateway.signers)
    if member_unit is not None:
        check_member_change(member_unit, existing, unit)
    if "channel" in changes:
        check_channel(gateway, unit.channel)
    created = await register_unit(
        gateway,
        unit,
        certificate_pem=certificate_pem,
        actor=actor,
        # A new unit is registered whole (is_local as the gateway knows it); an update writes
        # only what the request names.
        given=[key for key in UNIT_FIELDS if key in changes] if existing is not None else None,
    )
    return created, await get_unit(gateway, code)


async def _existing_unit(gateway: Registry, code: str) -> UnitRecord | None:
    try:
        return (await get_unit(gateway, code)).unit
    except NotFound:
        return None


def merged_unit(
    changes: Mapping[str, Any], code: str, existing: UnitRecord | None, *, is_local: bool
) -> UnitRecord:
    """The unit as it will be: fields the request leaves out keep their current values (an
    update must not reset is_local or active, which the API does not set, nor anything it does
    not name). ``allows_tuyet_mat`` is false for a new unit unless given."""
    routing = {key: changes[key] for key in ROUTING_FIELDS if key in changes}
    name = changes.get("name")
    if existing is None:
        return UnitRecord(code=code, name=name or "", is_local=is_local, **routing)
    if name is not None:
        routing["name"] = name
    return dataclasses.replace(existing, **routing)


def check_member_change(member_unit: str, before: UnitRecord | None, after: UnitRecord) -> None:
    """A member registers only its own unit, and never changes how docgw routes to it."""
    if after.code != member_unit:
        raise Forbidden(
            f"a member token of {member_unit} cannot register {after.code}", element="code"
        )
    reference = before or UnitRecord(code=after.code, name="")
    for field in ROUTING_FIELDS:
        if getattr(after, field) != getattr(reference, field):
            raise Forbidden(f"only an admin may set {field}", element=field)


async def get_unit(gateway: Registry, code: str) -> UnitDetail:
    async with gateway.engine.connect() as conn:
        unit = await unit_queries.get_unit(conn, code)
        if unit is None:
            raise NotFound(f"no unit {code}")
        found = await unit_queries.certificates(
            conn, code, now=gateway.clock(), overlap=overlap(gateway)
        )
        return UnitDetail(unit=unit, certificates=tuple(found))


async def list_units(
    gateway: Registry,
    *,
    text: str | None = None,
    parent: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[UnitRecord]:
    """Units by code; ``text`` finds codes by prefix and names accents and case aside,
    ``parent`` lists one unit's children (the registry as a tree)."""
    async with gateway.engine.connect() as conn:
        return await unit_queries.list_units(
            conn, text=text, parent=parent, after=after, limit=limit
        )


async def import_csv(gateway: Registry, data: str, *, actor: str) -> tuple[int, int]:
    """Import units from CSV with a header row (columns: see CSV_COLUMNS; code and name required).

    A column the header leaves out is left as it is on existing units (new units: its default);
    an empty cell of a column that is there clears it (``allows_tuyet_mat``: no). All or nothing:
    one bad row (named by its line) imports none. Returns (created, updated)."""
    reader = csv.DictReader(io.StringIO(data))
    header = [name.strip() for name in reader.fieldnames or ()]
    reader.fieldnames = header
    missing = {"code", "name"} - set(header)
    if missing:
        raise GatewayError(
            f"the CSV needs the columns {', '.join(sorted(missing))}", element="header"
        )
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if unknown:
        raise GatewayError(
            f"unknown column {unknown[0]!r} (known: {', '.join(CSV_COLUMNS)})", element="header"
        )
    given = [name for name in UNIT_FIELDS if name in header]
    units = []
    for line, row in enumerate(reader, start=2):
        try:
            unit = check_unit(_csv_unit(row))
            if "channel" in header:
                check_channel(gateway, unit.channel)
            units.append(unit)
        except GatewayError as exc:
            raise type(exc)(f"line {line}: {exc.message}", element=exc.element) from exc
    now = gateway.clock()
    created = 0
    async with gateway.engine.begin() as conn:
        for unit in units:
            created += await unit_queries.upsert_unit(conn, unit, now=now, only=given)
            stored = await unit_queries.get_unit(conn, unit.code)
            assert stored is not None
            await versions.add_version(
                conn, stored, action="imported", changed_by=actor, reason=None, now=now
            )
        await audit_queries.audit(
            conn, now=now, actor=actor, action="units_imported", reason=f"{len(units)} units"
        )
    return created, len(units) - created


def _csv_unit(row: dict[str, str | None]) -> UnitRecord:
    def text(column: str) -> str | None:
        return (row.get(column) or "").strip() or None

    values: dict[str, Any] = {
        spec.name: parse_flag(row.get(spec.name) or "", element=spec.name)
        if spec.flag
        else text(spec.name)
        for spec in UNIT_FIELD_SPECS
    }
    values["name"] = values["name"] or ""
    return UnitRecord(code=text("code") or "", **values)

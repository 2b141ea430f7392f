"""Member organisations look after their own units: a unit is *requested* (by a member for its
own unit or a unit under it, or by an admin) and stays pending until an admin approves or refuses
it, with a reason; the registry changes only on approval. Routing (channel, secure endpoint) may
be asked for, but it is the admin's approval that sets it; Tuyệt mật cannot be asked for.

Two admins deciding one request at once decide once: the decision is one UPDATE guarded by the
pending state (the second gets ``CONFLICT``). Every change the registry makes is a new version of
the unit (``unit_versions``: who, when, why; :func:`history`). Deactivating a unit or revoking a
certificate takes a reason: documents to the unit are held at their next claim (the delivery
checks read the registry there), and the hold says why.

An approved unit on an axis channel configured with ``register_units = true`` is registered at
the axis (registerAgency) after the approval commits; the outcome is stored on the request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError
from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from envelopes.xmltext import check_text
from gateway.bootstrap import Gateway
from gateway.store import audit_queries, unit_queries
from gateway.store import registrations as store
from gateway.store.records import UnitRecord
from gateway.usecases import certificates as certificates_
from gateway.usecases.errors import Conflict, Forbidden, NotFound
from gateway.usecases.operations import require_reason
from gateway.usecases.ports import Store
from gateway.usecases.registry import certificate_record, check_unit

log = logging.getLogger("docgw.registry")

#: What a request may ask for, besides the code and certificates. Contacts go to the axis with
#: registerAgency; the routing fields become the unit's only when an admin approves.
REQUEST_FIELDS = (
    "name",
    "parent_code",
    "code_qd20",
    "channel",
    "secure_endpoint",
    "mail",
    "mobile",
    "fax",
)
#: The unit's own columns among them.
UNIT_COLUMNS = ("name", "parent_code", "code_qd20", "channel", "secure_endpoint")
CONTACT_MAX = 200
STATES = (store.PENDING, store.APPROVED, store.REFUSED)


class RequestStateInvalid(GatewayError):
    code = "REQUEST_STATE_INVALID"


@dataclass(frozen=True, kw_only=True)
class UnitRequest:
    id: int
    code: str
    fields: Mapping[str, Any]
    #: Fingerprints (SHA-256) and subjects of the certificates sent with it.
    certificates: Sequence[Mapping[str, str]]
    requested_by: str
    requested_for: str | None
    requested_at: dt.datetime
    state: str
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    reason: str | None = None
    axis_outcome: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> UnitRequest:
        values = dict(row)
        values["certificates"] = [
            {k: v for k, v in c.items() if k != "pem"} for c in values["certificates"]
        ]
        return cls(**values)


def _reason(reason: str | None) -> str:
    """The operators' rule for a reason (operations.require_reason), stored as text."""
    why = require_reason(reason)
    check_text(why, element="reason")
    return why


def _requested_unit(code: str, fields: Mapping[str, Any]) -> UnitRecord:
    unknown = sorted(set(fields) - set(REQUEST_FIELDS))
    if unknown:
        raise GatewayError(
            f"not a field a request sets (known: {', '.join(REQUEST_FIELDS)})", element=unknown[0]
        )
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise GatewayError("must be text", element=name)
        if value and name not in UNIT_COLUMNS:
            check_text(value, element=name)
            if len(value) > CONTACT_MAX:
                raise GatewayError(f"longer than {CONTACT_MAX} characters", element=name)
    unit = UnitRecord(
        code=code,
        name=fields.get("name") or "",
        parent_code=fields.get("parent_code") or None,
        code_qd20=fields.get("code_qd20") or None,
        channel=fields.get("channel") or None,
        secure_endpoint=fields.get("secure_endpoint") or None,
    )
    return check_unit(unit)


async def request_unit(
    gateway: Gateway,
    code: str,
    fields: Mapping[str, Any],
    *,
    certificates: Sequence[str] = (),
    actor: str,
    member_unit: str | None,
) -> UnitRequest:
    """Ask for a unit (new, or a change of an existing one). A member (``member_unit``) asks only
    for its own unit or a unit whose parent is its own."""
    parse_strict(code, field="code")
    unit = _requested_unit(code, fields)
    if member_unit is not None and member_unit not in (code, unit.parent_code):
        raise Forbidden(
            f"a member of {member_unit} requests only its own unit or a unit under it",
            element="code",
        )
    if unit.channel and unit.channel not in gateway.channels:
        raise GatewayError(
            f"no channel named {unit.channel!r} is configured here", element="channel"
        )
    records = [certificate_record(code, pem) for pem in certificates]
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        pending = await store.list_requests(
            conn, state=store.PENDING, requested_for=None, limit=1000
        )
        if any(r["code"] == code for r in pending):
            raise Conflict(f"a request for {code} is already pending", element="code")
        for index, record in enumerate(records):
            await certificates_.check_upload(
                gateway, conn, record, element=f"certificates[{index}]"
            )
        request_id = await store.insert_request(
            conn,
            code=code,
            fields={k: v for k, v in fields.items() if v},
            certificates=[
                {"fingerprint_sha256": r.fingerprint_sha256, "subject": r.subject, "pem": r.pem}
                for r in records
            ],
            requested_by=actor,
            requested_for=member_unit,
            requested_at=now,
        )
        await audit_queries.audit(
            conn, now=now, actor=actor, action="unit_requested", reason=f"{code} #{request_id}"
        )
        row = await store.get_request(conn, request_id)
    assert row is not None
    log.info("unit_requested", extra={"request": request_id, "unit": code, "actor": actor})
    return UnitRequest.of(row)


async def list_requests(
    gateway: Gateway, *, state: str | None = None, member_unit: str | None, limit: int = 100
) -> list[UnitRequest]:
    """Newest first; a member sees the requests made for its unit."""
    if state is not None and state not in STATES:
        raise RequestStateInvalid(f"must be one of {', '.join(STATES)}", element="state")
    async with gateway.engine.connect() as conn:
        rows = await store.list_requests(conn, state=state, requested_for=member_unit, limit=limit)
    return [UnitRequest.of(row) for row in rows]


async def get_request(gateway: Gateway, request_id: int, *, member_unit: str | None) -> UnitRequest:
    async with gateway.engine.connect() as conn:
        row = await store.get_request(conn, request_id)
    if row is None or (member_unit is not None and row["requested_for"] != member_unit):
        raise NotFound(f"no unit request {request_id}")
    return UnitRequest.of(row)


async def decide(
    gateway: Gateway, request_id: int, *, approve: bool, reason: str | None, actor: str
) -> UnitRequest:
    """Approve (the registry takes the unit, its routing and certificates; a new version) or
    refuse a pending request."""
    why = _reason(reason)
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        row = await store.get_request(conn, request_id)
        if row is None:
            raise NotFound(f"no unit request {request_id}")
        state = store.APPROVED if approve else store.REFUSED
        if not await store.decide_request(
            conn, request_id, state=state, decided_by=actor, reason=why, now=now
        ):
            raise Conflict(f"unit request {request_id} was already decided", element="id")
        if approve:
            await _apply(gateway, conn, row, actor=actor, reason=why, now=now)
        await audit_queries.audit(
            conn,
            now=now,
            actor=actor,
            action=f"unit_request_{state}",
            reason=f"{row['code']} #{request_id}: {why}",
        )
    log.info(
        f"unit_request_{state}",
        extra={"request": request_id, "unit": row["code"], "actor": actor, "detail": why},
    )
    if approve:
        await _register_at_axis(gateway, request_id, row)
    decided = await get_request(gateway, request_id, member_unit=None)
    await _tell_requester(gateway, decided)
    return decided


async def _tell_requester(gateway: Gateway, request: UnitRequest) -> None:
    """Mail the decision to the request's contact address (its ``mail``) through the alerts'
    mail path, where the SMTP server is configured. A failure is logged, never undoes the
    decision."""
    # Imported here: the alert rules import the registry's neighbours.
    from gateway.usecases import alerts

    address = request.fields.get("mail")
    if not address or not alerts.can_mail(gateway):
        return
    approved = request.state == store.APPROVED
    vi, en = ("được duyệt", "approved") if approved else ("bị từ chối", "refused")
    subject = f"[docgw] Yêu cầu đơn vị #{request.id} {request.code} {vi} / request {en}"
    body = (
        f"Yêu cầu đăng ký đơn vị {request.code} (#{request.id}) đã {vi}.\n"
        f"Người quyết định: {request.decided_by}. Lý do: {request.reason}\n\n"
        f"Unit request #{request.id} for {request.code} was {en} by {request.decided_by}.\n"
        f"Reason: {request.reason}\n"
    )
    error = await alerts.mail(gateway, [address], subject, body)
    if error is not None:
        log.warning(
            "unit_request_mail_failed",
            extra={"request": request.id, "unit": request.code, "detail": error},
        )


async def _apply(
    gateway: Gateway,
    conn: Any,
    row: Mapping[str, Any],
    *,
    actor: str,
    reason: str,
    now: dt.datetime,
) -> None:
    code, fields = row["code"], row["fields"]
    unit = _requested_unit(code, fields)
    existing = await unit_queries.get_unit(conn, code)
    given = [name for name in UNIT_COLUMNS if fields.get(name)]
    if existing is None:
        await unit_queries.upsert_unit(conn, unit, now=now)
    else:
        await unit_queries.upsert_unit(conn, unit, now=now, only=given)
    for index, certificate in enumerate(row["certificates"]):
        record = certificate_record(code, certificate["pem"])
        # Checked again: it may have expired, or a CRL may list it, since it was asked for.
        await certificates_.check_upload(gateway, conn, record, element=f"certificates[{index}]")
        owner = await unit_queries.certificate_owner(conn, record.fingerprint_sha256)
        if owner not in (None, code):
            raise Conflict(f"this certificate is registered for {owner}", element="certificate")
        await unit_queries.add_certificate(conn, record, now=now)
    stored = await unit_queries.get_unit(conn, code)
    assert stored is not None
    await store.add_version(
        conn,
        stored,
        action="approved",
        changed_by=actor,
        reason=f"request #{row['id']}: {reason}",
        now=now,
    )


async def _register_at_axis(gateway: Gateway, request_id: int, row: Mapping[str, Any]) -> None:
    """registerAgency on the unit's channel when that channel is configured to register units."""
    fields = row["fields"]
    channel = fields.get("channel")
    if not channel or channel not in gateway.connectors:
        return
    if not getattr(gateway.settings.channel(channel), "register_units", False):
        return
    connector = gateway.connectors[channel]
    register = getattr(connector, "register_agency", None)
    if register is None:
        return
    try:
        await register(
            code=row["code"],
            name=fields.get("name") or row["code"],
            parent_code=fields.get("parent_code"),
            mail=fields.get("mail"),
            mobile=fields.get("mobile"),
            fax=fields.get("fax"),
        )
        outcome = "registered"
    except (ConnectorError, GatewayError) as exc:
        outcome = f"failed: {getattr(exc, 'code', type(exc).__name__)}: {exc}"
        log.warning(
            "unit_axis_registration_failed",
            extra={"request": request_id, "unit": row["code"], "channel": channel,
                   "detail": outcome},
        )  # fmt: skip
    async with gateway.engine.begin() as conn:
        await store.set_axis_outcome(conn, request_id, outcome)


async def set_active(
    gateway: Gateway, code: str, *, active: bool, reason: str | None, actor: str
) -> UnitRecord:
    """Deactivate (documents to the unit are held at their next claim) or reactivate a unit."""
    why = _reason(reason)
    now = gateway.clock()
    action = "reactivated" if active else "deactivated"
    async with gateway.engine.begin() as conn:
        unit = await unit_queries.get_unit(conn, code)
        if unit is None:
            raise NotFound(f"no unit {code}")
        if not await store.set_active(conn, code, active=active, now=now):
            raise Conflict(f"unit {code} is already {'active' if active else 'inactive'}")
        unit = dataclasses.replace(unit, active=active)
        await store.add_version(conn, unit, action=action, changed_by=actor, reason=why, now=now)
        await audit_queries.audit(
            conn, now=now, actor=actor, action=f"unit_{action}", reason=f"{code}: {why}"
        )
    log.info(f"unit_{action}", extra={"unit": code, "actor": actor, "detail": why})
    return unit


async def revoke_certificate(
    gateway: Store, fingerprint_sha256: str, *, reason: str | None, actor: str
) -> str:
    """Revoke a unit's certificate: it no longer verifies that unit's packages nor seals for it.
    Returns the unit's code."""
    why = _reason(reason)
    fingerprint = fingerprint_sha256.strip().lower().replace(":", "")
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        code = await store.revoke_certificate(conn, fingerprint, reason=why, now=now)
        if code is None:
            raise NotFound(f"no unrevoked certificate {fingerprint}", element="fingerprint")
        unit = await unit_queries.get_unit(conn, code)
        assert unit is not None
        await store.add_version(
            conn,
            unit,
            action="certificate_revoked",
            changed_by=actor,
            reason=f"{fingerprint}: {why}",
            now=now,
        )
        await audit_queries.audit(
            conn,
            now=now,
            actor=actor,
            action="certificate_revoked",
            reason=f"{code} {fingerprint}: {why}",
        )
    log.info("certificate_revoked", extra={"unit": code, "actor": actor, "detail": why})
    return code


async def history(gateway: Gateway, code: str) -> list[Mapping[str, Any]]:
    """Every version of a unit the registry recorded, newest first."""
    async with gateway.engine.connect() as conn:
        if await unit_queries.get_unit(conn, code) is None:
            raise NotFound(f"no unit {code}")
        return await store.unit_history(conn, code)

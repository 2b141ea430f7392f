"""``docgw package build --status CODE …``: the options of a status package (DOMAIN.md §4), checked
and turned into a :class:`StatusPackage` before anything is built."""

from __future__ import annotations

import argparse
import datetime as dt

from envelopes.model import Organization, ResponseFor, StaffInfo, StatusCode, StatusPackage
from envelopes.unit_codes import parse_strict
from envelopes.xmltext import check_text
from gateway.cli.common import VIETNAM, CliError
from gateway.domain.business import REPLY_CODES, StatusCodeInvalid
from gateway.usecases.errors import ReasonRequired

#: The options only a status package takes: (option, argparse dest, metavar, help).
STATUS_OPTIONS = (
    ("--from", "from_unit", "CODE", "the reporting unit (From/OrganId); required"),
    ("--from-name", "from_name", "NAME", "its name (From/OrganName)"),
    ("--document-id", "document_id", "ID", "the DocumentId of the document the status is about"),
    (
        "--response-for-organ",
        "response_for_organ",
        "CODE",
        "ResponseFor/OrganId (default: the DocumentId's unit; required for 13)",
    ),
    (
        "--response-for-code",
        "response_for_code",
        "SO/KY-HIEU",
        "the document's số/ký hiệu (default: from the DocumentId)",
    ),
    (
        "--response-for-date",
        "response_for_date",
        "YYYY-MM-DD",
        "the document's promulgation date (default: from the DocumentId)",
    ),
    ("--description", "description", "TEXT", "the reason (required for 02 and 13)"),
    ("--staff-department", "staff_department", "TEXT", "StaffInfo/Department"),
    ("--staff", "staff", "NAME", "StaffInfo/Staff: the person reporting"),
    ("--staff-mobile", "staff_mobile", "NUMBER", "StaffInfo/Mobile"),
    ("--staff-email", "staff_email", "ADDRESS", "StaffInfo/Email"),
)
OPTION_OF = {dest: option for option, dest, _, _ in STATUS_OPTIONS}


def add_options(build: argparse.ArgumentParser) -> None:
    group = build.add_argument_group("status package (with --status CODE)")
    for option, dest, metavar, text in STATUS_OPTIONS:
        group.add_argument(option, dest=dest, metavar=metavar, help=text)


def refuse_options(args: argparse.Namespace) -> None:
    """A status option given with ``--meta``: refused rather than silently left out."""
    for option, dest, _, _ in STATUS_OPTIONS:
        if getattr(args, dest) is not None:
            raise CliError(f"{option} is for a status package (--status CODE)", element=option)


def from_options(args: argparse.Namespace, *, now: dt.datetime) -> StatusPackage:
    """The status package the options describe, every value checked before anything is built.

    ResponseFor's OrganId, Code and PromulgationDate default to the parts of a DocumentId of the
    usual form ``<OrganId>,<yyyy/MM/dd>,<số/ký hiệu>`` — except OrganId for 13: the real sample of
    a 13 (the sender asks to retract) has the recipient's code there, not the DocumentId's sender
    (OrganId names whom the status is for), so for 13 it must be given."""
    code = _status_code(args.status)
    for option, dest, _, _ in STATUS_OPTIONS:  # the API's text rule, naming the option
        if getattr(args, dest) is not None:
            check_text(getattr(args, dest), element=option)
    if args.attach:
        raise CliError("a status package has no attachments", element="--attach")
    from_unit = parse_strict(_required(args, "from_unit"), field="--from").value
    document_id = _required(args, "document_id")
    organ, date, number = _document_id_parts(document_id)
    if code is StatusCode.RETRACT_REQUESTED:
        organ = None  # see the docstring: not derived for 13
    organ = _text(args.response_for_organ) or organ
    if organ is None:
        raise CliError(
            "required: the unit the status answers (ResponseFor/OrganId)"
            + ("" if code is StatusCode.RETRACT_REQUESTED else f"; {document_id!r} does not say"),
            element="--response-for-organ",
        )
    if args.response_for_date is not None:
        date = _iso_date(args.response_for_date)
    description = _text(args.description)
    if code.requires_reason and description is None:
        raise ReasonRequired(f"status {code.value} needs a reason", element="--description")
    staff = StaffInfo(
        department=_text(args.staff_department),
        staff=_text(args.staff),
        mobile=_text(args.staff_mobile),
        email=_text(args.staff_email),
    )
    return StatusPackage(
        from_=Organization(organ_id=from_unit, organ_name=_text(args.from_name)),
        response_for=ResponseFor(
            organ_id=parse_strict(organ, field="--response-for-organ").value,
            code=_text(args.response_for_code) or number,
            promulgation_date=date,
            document_id=document_id,
        ),
        status_code=code,
        timestamp=now.astimezone(VIETNAM).replace(tzinfo=None, microsecond=0),
        description=description,
        staff_info=None if staff == StaffInfo() else staff,
    )


def _status_code(value: str) -> StatusCode:
    """One rule with the API: 01 is docgw's own (sent on arrival), never built by hand."""
    if value not in REPLY_CODES:
        raise StatusCodeInvalid(
            f"must be one of {', '.join(REPLY_CODES)}, not {value!r} "
            "(01 is sent by docgw on arrival)",
            element="--status",
        )
    return StatusCode(value)


def _text(value: str | None) -> str | None:
    """An option's text, stripped; empty is not given (no empty element in the package)."""
    return (value or "").strip() or None


def _required(args: argparse.Namespace, dest: str) -> str:
    value = _text(getattr(args, dest))
    if value is None:
        raise CliError("required for a status package", element=OPTION_OF[dest])
    return value


def _document_id_parts(document_id: str) -> tuple[str | None, dt.date | None, str | None]:
    """(OrganId, date, số/ký hiệu) of a DocumentId of the usual form; Nones for another form
    (a UUID, say)."""
    parts = document_id.split(",", 2)
    if len(parts) != 3:
        return None, None, None
    organ, date_text, number = (part.strip() for part in parts)
    try:
        date = dt.datetime.strptime(date_text, "%Y/%m/%d").date()
    except ValueError:
        return None, None, None
    return organ or None, date, number or None


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"must be an ISO date (2026-11-23), not {text!r}", element="--response-for-date"
        ) from None

"""``docgw units request|requests|approve|refuse|deactivate|activate|revoke-certificate|history``:
registration with approval and the registry's history (the same use cases as the API's
``/api/v1/unit-requests`` and ``/api/v1/units/{code}/…``). The person acting is recorded: ``--as
NAME``, else the operating-system user."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
from typing import Any

from gateway.cli.common import VIETNAM, print_json, read_file, with_gateway
from gateway.usecases import registrations
from gateway.usecases.registrations import UnitRequest


def actor(args: argparse.Namespace) -> str:
    """Who acts: ``--as``, else the OS user (``cli:NAME``)."""
    return args.as_name or f"cli:{getpass.getuser()}"


def _line(request: UnitRequest) -> str:
    at = request.requested_at.astimezone(VIETNAM)
    line = (
        f"#{request.id:<5} {request.state:<9} {request.code:<15} {at:%Y-%m-%d %H:%M}  "
        f"{request.fields.get('name', '')}  (by {request.requested_by})"
    )
    if request.reason:
        line += f"  — {request.decided_by}: {request.reason}"
    if request.axis_outcome:
        line += f"  [axis: {request.axis_outcome}]"
    return line


def cmd_request(args: argparse.Namespace) -> int:
    fields = {
        name: getattr(args, name)
        for name in registrations.REQUEST_FIELDS
        if getattr(args, name) is not None
    }
    pems = [read_file(path).decode() for path in args.cert or ()]
    made = with_gateway(
        args,
        lambda gw: registrations.request_unit(
            gw, args.code, fields, certificates=pems, actor=actor(args), member_unit=args.for_unit
        ),
    )
    print(f"requested: {_line(made)}")
    return 0


def cmd_requests(args: argparse.Namespace) -> int:
    found = with_gateway(
        args,
        lambda gw: registrations.list_requests(
            gw, state=args.state, member_unit=args.for_unit, limit=args.limit
        ),
    )
    if args.json:
        print_json([dataclasses.asdict(r) for r in found])
        return 0
    if not found:
        print("no unit requests")
    for request in found:
        print(_line(request))
    return 0


def _decide(approve: bool) -> Any:
    def command(args: argparse.Namespace) -> int:
        decided = with_gateway(
            args,
            lambda gw: registrations.decide(
                gw, args.id, approve=approve, reason=args.reason, actor=actor(args)
            ),
        )
        print(_line(decided))
        return 0

    return command


def _activity(active: bool) -> Any:
    def command(args: argparse.Namespace) -> int:
        unit = with_gateway(
            args,
            lambda gw: registrations.set_active(
                gw, args.code, active=active, reason=args.reason, actor=actor(args)
            ),
        )
        print(f"{unit.code}: {'active' if unit.active else 'inactive'}")
        return 0

    return command


def cmd_revoke_certificate(args: argparse.Namespace) -> int:
    code = with_gateway(
        args,
        lambda gw: registrations.revoke_certificate(
            gw, args.fingerprint, reason=args.reason, actor=actor(args)
        ),
    )
    print(f"revoked: certificate {args.fingerprint} of {code}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    versions = with_gateway(args, lambda gw: registrations.history(gw, args.code))
    if args.json:
        print_json(versions)
        return 0
    for version in versions:
        at = version["changed_at"].astimezone(VIETNAM)
        unit = version["unit"]
        state = "active" if unit.get("active") else "inactive"
        why = f"  — {version['reason']}" if version["reason"] else ""
        print(
            f"v{version['version']:<3} {at:%Y-%m-%d %H:%M:%S}  {version['action']:<20} "
            f"{version['changed_by']}: {unit.get('name')} ({state}, channel "
            f"{unit.get('channel') or '-'}){why}"
        )
    return 0


def add_commands(units: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The registration commands, under ``docgw units``."""

    def with_actor(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--as", dest="as_name", help="who acts, for the audit (default: the OS user)"
        )
        return parser

    request = with_actor(units.add_parser("request", help="ask for a unit (an admin approves)"))
    request.add_argument("code")
    for name in registrations.REQUEST_FIELDS:
        option = {"parent_code": "--parent", "code_qd20": "--qd20"}.get(
            name, "--" + name.replace("_", "-")
        )
        request.add_argument(option, dest=name)
    request.add_argument("--cert", action="append", help="a PEM certificate (repeatable)")
    request.add_argument("--for", dest="for_unit", help="the member unit asking")
    request.set_defaults(handler=cmd_request)

    listing = units.add_parser("requests", help="unit requests, newest first")
    listing.add_argument("--state", choices=registrations.STATES)
    listing.add_argument("--for", dest="for_unit", help="only those a member unit made")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_requests)

    for name, approve in (("approve", True), ("refuse", False)):
        decide = with_actor(units.add_parser(name, help=f"{name} a pending unit request"))
        decide.add_argument("id", type=int)
        decide.add_argument("--reason", required=True)
        decide.set_defaults(handler=_decide(approve))

    for name, active in (("deactivate", False), ("activate", True)):
        switch = with_actor(
            units.add_parser(
                name,
                help="deactivate a unit (documents to it are held) or activate it again",
            )
        )
        switch.add_argument("code")
        switch.add_argument("--reason", required=True)
        switch.set_defaults(handler=_activity(active))

    revoke = with_actor(
        units.add_parser(
            "revoke-certificate", help="revoke a unit's certificate (by SHA-256 fingerprint)"
        )
    )
    revoke.add_argument("fingerprint")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(handler=cmd_revoke_certificate)

    history = units.add_parser("history", help="every recorded version of a unit")
    history.add_argument("code")
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=cmd_history)

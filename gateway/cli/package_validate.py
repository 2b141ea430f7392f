"""``docgw package validate FILE [--json]``: is a package valid against docgw's XSD (QCVN 102:2016,
docs/reference/cli.md)? lxml's validator judges (the one docgw runs on what it builds); when it
says no, xmlschema explains: every violation with its path, what the schema expects there and
what the package has instead."""

from __future__ import annotations

import argparse
import sys

from envelopes import schema
from envelopes.errors import SchemaError
from gateway.cli.common import print_json, read_file


def cmd_package_validate(args: argparse.Namespace) -> int:
    data = read_file(args.file)
    try:
        name = schema.validate_package_bytes(data)
    except SchemaError as exc:
        findings = schema.explain_bytes(data) if exc.rule not in _UNPARSED else ()
        _report_invalid(args, exc, findings)
        return 1
    kind = "status" if name == schema.STATUS_SCHEMA else "document"
    if args.json:
        print_json({"valid": True, "kind": kind, "schema": name})
    else:
        print(f"hợp lệ / valid: gói {kind} theo {name} (a {kind} package)")
    return 0


#: Failures before any schema ran: nothing for xmlschema to explain.
_UNPARSED = frozenset({"well-formed XML", "no DOCTYPE"})


def _report_invalid(
    args: argparse.Namespace, error: SchemaError, findings: tuple[schema.Finding, ...]
) -> None:
    if args.json:
        print_json(
            {
                "valid": False,
                "code": error.code,
                "element": error.element,
                "rule": error.rule,
                "message": error.message,
                "findings": [vars(f) for f in findings],
            }
        )
        return
    print(f"error: {error}", file=sys.stderr)
    print(f"không hợp lệ / invalid: {error.message} [{error.rule}]")
    if findings:
        print(f"chi tiết (xmlschema) / details: {len(findings)}")
    for finding in findings:
        print(f"  - {finding.path}")
        print(f"      lý do / reason:     {finding.reason}")
        if finding.expected is not None:
            print(f"      cần / expected:     {finding.expected}")
        if finding.found is not None:
            print(f"      thấy / found:       {finding.found}")


def add_parser(package_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = package_commands.add_parser(
        "validate",
        help="check a package against docgw's XSD and explain what is wrong",
        description="Exit 0 when the package (document or status, signed or not) is valid "
        "against docgw's XSD; else 1, with every violation: its path, what the schema expects "
        "and what the package has.",
    )
    validate.add_argument("file")
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(handler=cmd_package_validate)

"""``docgw send``, ``docgw units …`` and ``docgw route explain``: the CLI over the same use cases
as the HTTP API (``docgw queue …``: cli/queue.py)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from envelopes.metadata import parse_metadata
from gateway.bootstrap import Gateway
from gateway.cli import certificates, registrations
from gateway.cli.common import (
    ATTACH_OPTION,
    VIETNAM,
    actor,
    attachment_sources,
    print_json,
    read_file,
    with_actor,
    with_gateway,
    with_store,
)
from gateway.store import job_queries
from gateway.store.records import UnitRecord
from gateway.usecases import monitoring, registry, submit

CLI_CLIENT = "cli"


def cmd_send(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> tuple[submit.Submitted, int]:
        today = gateway.clock().astimezone(VIETNAM).date()
        request = parse_metadata(read_file(args.meta), today=today)
        submitted = await submit.submit_document(
            gateway,
            request,
            attachment_sources(args.attach),
            client=CLI_CLIENT,
            actor=actor(args),
            idempotency_key=args.idempotency_key,
        )
        since = gateway.clock() - monitoring.WORKER_SILENCE
        async with gateway.engine.connect() as conn:
            alive = await job_queries.live_workers(conn, since=since)
        return submitted, alive

    result, alive = with_gateway(args, work)
    verb = "accepted" if result.created else "already accepted (same idempotency key)"
    print(f"{verb}: {result.message_id} ({result.document_id}) state {result.state}")
    for route in result.routes:
        print(f"  {route.recipient}: {route.channel or 'HELD'} — {route.reason}")
    if alive == 0 and any(route.channel for route in result.routes):
        # Queued is not sent: only a running `docgw serve`/`docgw worker` sends it.
        print(
            "cảnh báo: không có tiến trình gửi nào đang chạy — warning: no worker is alive; "
            "the document waits in the queue until `docgw serve` or `docgw worker` runs",
            file=sys.stderr,
        )
    return 0


def cmd_route_explain(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> Any:
        today = gateway.clock().astimezone(VIETNAM).date()
        return await submit.explain_routes(
            gateway, parse_metadata(read_file(args.meta), today=today)
        )

    for route in with_gateway(args, work):
        print(f"{route.recipient}: {route.channel or 'HELD'} — {route.reason}")
    return 0


#: ``docgw units add`` option (argparse dest) → unit field: the registry's fields
#: (registry.UNIT_FIELD_SPECS), each with its CLI spelling.
UNIT_OPTIONS = {
    spec.cli_option.removeprefix("--").replace("-", "_"): spec.name
    for spec in registry.UNIT_FIELD_SPECS
}


def cmd_units_add(args: argparse.Namespace) -> int:
    """Add a unit, or change the fields given of an existing one (an empty value clears a text
    field); what is not given stays as it is."""
    given: dict[str, Any] = {}
    for option, field in UNIT_OPTIONS.items():
        value = getattr(args, option)
        if isinstance(value, str):
            value = value.strip() or ("" if field == "name" else None)
            given[field] = value
        elif value is not None:
            given[field] = value
    unit = dataclasses.replace(UnitRecord(code=args.code, name=""), **given)
    pem = read_file(args.cert).decode() if args.cert else None
    created = with_store(
        args,
        lambda gw: registry.register_unit(
            gw, unit, certificate_pem=pem, actor=actor(args), given=tuple(given)
        ),
    )
    print(f"{'added' if created else 'updated'} {args.code}")
    return 0


def _unit_line(unit: UnitRecord) -> str:
    state = "active" if unit.active else "inactive"
    replaced = f" (merged into {unit.replaced_by})" if unit.replaced_by else ""
    return f"{unit.code:<15} {unit.channel or '-':<10} {state:<8}  {unit.name}{replaced}"


def cmd_units_list(args: argparse.Namespace) -> int:
    units = with_store(
        args,
        lambda gw: registry.list_units(gw, text=args.q, parent=args.parent, limit=args.limit),
    )
    if not units:
        print("no units")
    for unit in units:
        print(_unit_line(unit))
    return 0


def cmd_units_tree(args: argparse.Namespace) -> int:
    """A unit and its children, ``--depth`` levels down (each level one query)."""

    async def work(gateway: Gateway) -> list[tuple[int, UnitRecord]]:
        root = (await registry.get_unit(gateway, args.code)).unit
        lines = [(0, root)]

        async def below(code: str, depth: int) -> None:
            if depth > args.depth:
                return
            children = await registry.list_units(gateway, parent=code, limit=args.limit)
            for child in children:
                lines.append((depth, child))
                await below(child.code, depth + 1)

        await below(root.code, 1)
        return lines

    for depth, unit in with_store(args, work):
        print("  " * depth + _unit_line(unit))
    return 0


def cmd_units_show(args: argparse.Namespace) -> int:
    detail = with_store(args, lambda gw: registry.get_unit(gw, args.code))
    print_json(detail)
    return 0


def cmd_units_import(args: argparse.Namespace) -> int:
    data = read_file(args.csv).decode("utf-8-sig")
    created, updated = with_store(args, lambda gw: registry.import_csv(gw, data, actor=actor(args)))
    print(f"imported: {created} added, {updated} updated")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = with_actor(commands.add_parser("send", help="submit a document to send"))
    send.add_argument("--meta", required=True)
    send.add_argument("--attach", **ATTACH_OPTION)
    send.add_argument("--idempotency-key")
    send.set_defaults(handler=cmd_send)

    route = commands.add_parser("route", help="routing").add_subparsers(
        dest="route_command", required=True
    )
    explain = route.add_parser("explain", help="where a document would go, and why")
    explain.add_argument("--meta", required=True)
    explain.set_defaults(handler=cmd_route_explain)

    units = commands.add_parser("units", help="the unit registry").add_subparsers(
        dest="units_command", required=True
    )
    add = with_actor(
        units.add_parser(
            "add",
            help="add a unit, or change what the options give of an existing one",
            description="Add a unit (--name required), or update one: only the options given "
            'change; an empty value ("") clears a text field.',
        )
    )
    add.add_argument("code")
    for spec in registry.UNIT_FIELD_SPECS:
        if spec.flag:
            # --x / --no-x; None when neither is given (the field is left as it is).
            off = spec.cli_option.replace("--", "--no-", 1)
            add.add_argument(
                spec.cli_option,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{spec.help} ({off}: turn it off)",
            )
        else:
            add.add_argument(spec.cli_option, help=spec.help)
    add.add_argument("--cert", help="a PEM certificate to register for the unit")
    add.set_defaults(handler=cmd_units_add)
    lst = units.add_parser("list")
    lst.add_argument("--q", help="a code prefix, or words of the name (lao cai finds Lào Cai)")
    lst.add_argument("--parent", help="only this unit's children")
    lst.add_argument("--limit", type=int, default=100)
    lst.set_defaults(handler=cmd_units_list)
    tree = units.add_parser("tree", help="a unit and the units under it")
    tree.add_argument("code")
    tree.add_argument("--depth", type=int, default=1, help="levels below the unit (default 1)")
    tree.add_argument("--limit", type=int, default=500, help="children shown per unit")
    tree.set_defaults(handler=cmd_units_tree)
    shw = units.add_parser("show")
    shw.add_argument("code")
    shw.set_defaults(handler=cmd_units_show)
    imp = with_actor(units.add_parser("import", help="import units from CSV (all or nothing)"))
    imp.add_argument("csv")
    imp.set_defaults(handler=cmd_units_import)
    registrations.add_commands(units)
    certificates.add_commands(units)

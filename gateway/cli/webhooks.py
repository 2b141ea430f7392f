"""``docgw webhooks add|list|remove|replay``: the webhook endpoints the local system registers
(the same use cases as ``/api/v1/webhooks``)."""

from __future__ import annotations

import argparse

from gateway.bootstrap import Gateway
from gateway.cli.common import actor, print_json, with_actor, with_gateway
from gateway.store.webhooks import Endpoint
from gateway.usecases import webhooks
from gateway.web.problems import BadRequest


def _line(endpoint: Endpoint) -> str:
    state = "ok" if not endpoint.failures else f"FAILING ×{endpoint.failures}"
    line = (
        f"{endpoint.id}  {endpoint.unit_code or '(all units)'}  {endpoint.url}  "
        f"cursor {endpoint.position}  pending {endpoint.pending}  {state}"
    )
    if endpoint.failures:
        line += f"  next {endpoint.next_attempt_at:%Y-%m-%d %H:%M:%S}  last error: "
        line += endpoint.last_error or ""
    return line


def cmd_add(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> tuple[Endpoint, str]:
        return await webhooks.add(gateway, url=args.url, unit_code=args.unit, actor=actor(args))

    endpoint, secret = with_gateway(args, work)
    print(f"added {endpoint.id} for {endpoint.unit_code or 'every unit'}: {endpoint.url}")
    print(f"secret (shown once; keep it where the receiver verifies signatures): {secret}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    found = with_gateway(args, webhooks.listing)
    if args.json:
        print_json([{k: v for k, v in vars(e).items() if k != "secret"} for e in found])
    for endpoint in [] if args.json else found:
        print(_line(endpoint))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> None:
        await webhooks.remove(gateway, args.id)

    with_gateway(args, work)
    print(f"removed {args.id}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    after = args.after
    if not after.isascii() or not after.isdigit():
        raise BadRequest("a feed cursor (a number; 0: from the start)", element="after")

    async def work(gateway: Gateway) -> None:
        await webhooks.replay(gateway, args.id, after=int(after))

    with_gateway(args, work)
    print(f"{args.id}: every event after cursor {after} is delivered again at the next run")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("webhooks", help="webhook endpoints").add_subparsers(
        dest="webhooks_command", required=True
    )
    add = with_actor(group.add_parser("add", help="register an endpoint; prints its secret once"))
    add.add_argument("url")
    add.add_argument("--unit", help="a local unit (default: every unit's events)")
    add.set_defaults(handler=cmd_add)
    listing = group.add_parser("list", help="endpoints with what waits and what failed")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    remove = group.add_parser("remove", help="remove an endpoint")
    remove.add_argument("id")
    remove.set_defaults(handler=cmd_remove)
    replay = group.add_parser("replay", help="deliver again every event after a cursor")
    replay.add_argument("id")
    replay.add_argument("--after", required=True, help="a feed cursor (0: from the start)")
    replay.set_defaults(handler=cmd_replay)

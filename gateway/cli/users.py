"""``docgw users add|list|disable|reset``: the console's people (the same use cases as the
console's admin page). A password is read from standard input with ``--password-stdin``, else a
random one is made and printed once (never on the command line, where ``ps`` would show it)."""

from __future__ import annotations

import argparse
import secrets
import sys

from gateway.bootstrap import Gateway
from gateway.cli.common import print_json, with_gateway
from gateway.usecases import users

CLI_ACTOR = "cli"


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, whether it was made here and must be shown)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return secrets.token_urlsafe(15), True


def cmd_add(args: argparse.Namespace) -> int:
    password, made = _password(args)

    async def work(gateway: Gateway) -> None:
        await users.add_user(
            gateway,
            name=args.name,
            role=args.role,
            password=password,
            units=args.unit or (),
            language=args.language,
            actor=CLI_ACTOR,
        )

    with_gateway(args, work)
    print(f"đã thêm / added {args.name} ({args.role})")
    if made:
        print(f"mật khẩu (hiện một lần) / password (shown once): {password}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    found = with_gateway(args, users.list_users)
    if args.json:
        print_json(
            [
                {
                    "name": u.name,
                    "role": u.role,
                    "units": list(u.units),
                    "language": u.language,
                    "disabled": u.disabled_at is not None,
                    "locked_until": u.locked_until,
                }
                for u in found
            ]
        )
        return 0
    for u in found:
        state = "disabled" if u.disabled_at else "active"
        print(f"{u.name}  {u.role}  {' '.join(u.units) or '-'}  {u.language}  {state}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> None:
        await users.disable_user(gateway, args.name, actor=CLI_ACTOR)

    with_gateway(args, work)
    print(f"đã khóa / disabled {args.name}; every session of it ended")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    password, made = _password(args)

    async def work(gateway: Gateway) -> None:
        await users.reset_password(gateway, args.name, password, actor=CLI_ACTOR)

    with_gateway(args, work)
    print(f"đã đặt lại mật khẩu / password reset for {args.name} (to be changed at next login)")
    if made:
        print(f"mật khẩu (hiện một lần) / password (shown once): {password}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("users", help="people of the operator console").add_subparsers(
        dest="users_command", required=True
    )
    add = group.add_parser("add", help="add a person; prints a made password once")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "operator", "member"])
    add.add_argument("--unit", action="append", help="a member's unit (repeat for several)")
    add.add_argument("--language", default="vi", choices=list(users.LANGUAGES))
    add.add_argument("--password-stdin", action="store_true", help="read the password (1 line)")
    add.set_defaults(handler=cmd_add)
    listing = group.add_parser("list", help="every person, role, units, state")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    disable = group.add_parser("disable", help="disable a person and end its sessions")
    disable.add_argument("name")
    disable.set_defaults(handler=cmd_disable)
    reset = group.add_parser("reset", help="set a new password, to be changed at next login")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password (1 line)")
    reset.set_defaults(handler=cmd_reset)

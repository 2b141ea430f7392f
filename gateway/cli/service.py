"""``docgw init``, ``docgw serve`` and ``docgw tokens …``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

from envelopes.errors import GatewayError
from gateway import keystore
from gateway.bootstrap import build
from gateway.cli.common import (
    actor,
    existing_database,
    moment_text,
    print_json,
    settings_from,
    with_actor,
    with_store,
)
from gateway.service import serve
from gateway.settings import load_settings
from gateway.store.database import migrate
from gateway.store.records import UnitRecord
from gateway.usecases import registry, tokens

DEMO_PEER = ("000.00.00.H41", "UBND tỉnh Nghệ An")

CONFIG_TEMPLATE = """\
# docgw configuration, written by `docgw init`. Reference: docs/reference/config.md
[database]
url = "sqlite+aiosqlite:///{db}"

[api]
host = "127.0.0.1"
port = {port}

[gateway]
local_units = ["{unit}"]

[keys]
dir = "keys"
trust_anchors = ["keys/ca.cert.pem"]

[delivery]
workers = 2

# Until the real axis connectors are configured, documents go to an in-memory stand-in of the axis
# (it accepts everything and keeps nothing across restarts).
[channels.axis]
kind = "fake"
axis = true
"""


class AlreadyInitialised(GatewayError):
    code = "ALREADY_INITIALISED"


def cmd_init(args: argparse.Namespace) -> int:
    home = Path(args.dir)
    config = home / "docgw.toml"
    if config.exists():
        raise AlreadyInitialised(f"{config} exists already; nothing was changed")
    home.mkdir(parents=True, exist_ok=True)
    # This gateway's own unit wins: the demo peer is left out when it has the same code.
    with_peer = args.unit != DEMO_PEER[0]
    keystore.init_keys(home / "keys", [args.unit, DEMO_PEER[0]] if with_peer else [args.unit])
    config.write_text(
        CONFIG_TEMPLATE.format(db=(home / "docgw.db").resolve(), unit=args.unit, port=args.port),
        encoding="utf-8",
    )
    token = asyncio.run(_initialise_database(config, args.unit, with_peer=with_peer))
    print(f"wrote {config}, keys in {home / 'keys'}, database {home / 'docgw.db'}")
    if with_peer:
        print(f"registered {args.unit} (this gateway) and {DEMO_PEER[0]} (a demo peer on 'axis')")
    else:
        print(f"registered {args.unit} (this gateway); no demo peer (it has this unit's code)")
    print("admin token (shown once, store it now):")
    print(token)
    return 0


async def _initialise_database(config: Path, unit: str, *, with_peer: bool) -> str:
    settings = load_settings(config)
    gateway = await build(settings)
    units = [(unit, f"Đơn vị {unit}", True)] + ([(*DEMO_PEER, False)] if with_peer else [])
    try:
        await migrate(gateway.engine)
        keys = settings.resolve(settings.keys.dir)
        for code, name, local in units:
            await registry.register_unit(
                gateway,
                UnitRecord(code=code, name=name, channel="axis", is_local=local),
                certificate_pem=(keys / f"{code}.cert.pem").read_text(encoding="utf-8"),
                actor="init",
            )
        return await tokens.create_token(gateway, name="admin", role="admin")
    finally:
        await gateway.close()


def cmd_serve(args: argparse.Namespace) -> int:
    asyncio.run(serve(existing_database(settings_from(args))))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    asyncio.run(serve(existing_database(settings_from(args)), api=False))
    return 0


def cmd_tokens_create(args: argparse.Namespace) -> int:
    token = with_store(
        args,
        lambda gw: tokens.create_token(
            gw,
            name=args.name,
            role=args.role,
            unit_code=args.unit,
            actor=actor(args),
            expires_in=dt.timedelta(days=args.expires_days) if args.expires_days else None,
        ),
    )
    print(token)
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    found = with_store(args, tokens.list_tokens)
    if args.json:
        print_json(found)
        return 0
    if not found:
        print("không có token — no tokens")
    for token in found:
        state = (
            f"revoked {moment_text(token.revoked_at, utc=args.utc)}"
            if token.revoked_at
            else "active"
        )
        print(
            f"{token.name:<20} {token.role:<8} {token.unit_code or '-':<15} "
            f"created {moment_text(token.created_at, utc=args.utc)}  expires "
            f"{moment_text(token.expires_at, utc=args.utc) if token.expires_at else 'never'}  "
            f"{state}"
        )
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    with_store(args, lambda gw: tokens.revoke_token(gw, args.name, actor=actor(args)))
    print(f"revoked {args.name}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser("init", help="write a working config, keys and database")
    init.add_argument("--dir", default="docgw-home", help="where (default: docgw-home/)")
    init.add_argument("--unit", default="000.00.00.G22", help="this gateway's unit code")
    init.add_argument("--port", type=int, default=8080)
    init.set_defaults(handler=cmd_init)

    serve_parser = commands.add_parser("serve", help="run the API, the workers and the scheduler")
    serve_parser.set_defaults(handler=cmd_serve)
    worker = commands.add_parser("worker", help="run the workers and the scheduler, no API")
    worker.set_defaults(handler=cmd_worker)

    token_commands = commands.add_parser("tokens", help="API tokens").add_subparsers(
        dest="tokens_command", required=True
    )
    create = with_actor(token_commands.add_parser("create", help="create a token (printed once)"))
    create.add_argument("--role", required=True, choices=[r.value for r in tokens.Role])
    create.add_argument("--name", required=True)
    create.add_argument("--unit", help="the member unit's code (role member)")
    create.add_argument(
        "--expires-days", type=float, help="it authenticates no more after this many days"
    )
    create.set_defaults(handler=cmd_tokens_create)
    listing = token_commands.add_parser("list", help="tokens (never their value), live first")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--utc", action="store_true", help="times in UTC (default: Vietnam)")
    listing.set_defaults(handler=cmd_tokens_list)
    revoke = with_actor(token_commands.add_parser("revoke", help="revoke a token"))
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_tokens_revoke)

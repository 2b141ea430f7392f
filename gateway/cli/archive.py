"""``docgw archive run|list|export|hold|release``: the ASiC-E archive (see
gateway/usecases/archive.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.bootstrap import Gateway
from gateway.cli.common import with_gateway
from gateway.store import archive as store
from gateway.usecases import archive


def cmd_run(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> tuple[archive.ArchiveRun, tuple[str, ...]]:
        return await archive.archive_due(gateway), await archive.purge_expired(gateway)

    done, purged = with_gateway(args, work)
    print(f"archived {len(done.archived)} ({done.timestamped} timestamped), purged {len(purged)}")
    for message_id in purged:
        print(f"purged: {message_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> list[store.ArchiveItem]:
        async with gateway.reader.connect() as conn:
            return await store.items(conn, held_only=args.held, limit=args.limit)

    for item in with_gateway(args, work):
        state = "purged" if item.purged_at else ("HELD" if item.legal_hold else "archived")
        stamp = " timestamped" if item.timestamped else ""
        print(
            f"{item.message_id} {state}{stamp} {item.archived_at.isoformat()} "
            f"statuses={item.status_count} {item.hold_reason or ''}".rstrip()
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> bytes:
        return await archive.export(gateway, args.id)

    Path(args.out).write_bytes(with_gateway(args, work))
    print(f"written: {args.out}")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    hold = args.archive_command == "hold"

    async def work(gateway: Gateway) -> None:
        await archive.set_hold(gateway, args.id, hold=hold, reason=args.reason)

    with_gateway(args, work)
    print(f"{'held' if hold else 'released'}: {args.id}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("archive", help="ASiC-E archive containers, legal hold")
    sub = parser.add_subparsers(dest="archive_command", required=True)
    run = sub.add_parser("run", help="archive what is due and purge what retention allows, now")
    run.set_defaults(handler=cmd_run)
    listing = sub.add_parser("list", help="archive items, newest first")
    listing.add_argument("--held", action="store_true", help="only items under legal hold")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=cmd_list)
    export = sub.add_parser("export", help="write a message's container (.asice)")
    export.add_argument("id")
    export.add_argument("--out", required=True)
    export.set_defaults(handler=cmd_export)
    for name, text in (("hold", "put under legal hold"), ("release", "release a legal hold")):
        action = sub.add_parser(name, help=f"{text} (a reason is required)")
        action.add_argument("id")
        action.add_argument("--reason", required=True)
        action.set_defaults(handler=cmd_hold)

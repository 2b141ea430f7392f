"""``docgw directory sync|runs``: keep the unit registry in step with a channel's national
directory, and see what each sync changed (the same use cases as the scheduler's job and
``/api/v1/directory/syncs``)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

from gateway.cli.common import VIETNAM, print_json, with_gateway
from gateway.usecases import directory


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no change"


def cmd_sync(args: argparse.Namespace) -> int:
    report = with_gateway(args, lambda gw: directory.sync_channel(gw, args.channel, full=args.full))
    if args.json:
        print_json(dataclasses.asdict(report))
        return 0
    print(
        f"{report.channel}: {report.mode} sync, {report.listed} listed "
        f"({report.nonconforming} non-conforming codes): {_counts(report.counts)}"
    )
    for kind in directory.CHANGE_KINDS:
        for change in report.changes.get(kind, ())[:10]:
            print(f"  {kind:<10} {_change(change)}")
    for code, waiting in report.stranded.items():
        print(f"  WARNING: {code} is closed but {waiting} recipient(s) still wait to be sent to it")
    return 0


def _change(change: Mapping[str, Any]) -> str:
    rest = ", ".join(f"{k} {v}" for k, v in change.items() if k != "code" and v is not None)
    return f"{change['code']}  {rest}"


def cmd_runs(args: argparse.Namespace) -> int:
    runs = with_gateway(
        args, lambda gw: directory.list_syncs(gw, channel=args.channel, limit=args.limit)
    )
    if args.json:
        print_json(runs)
        return 0
    if not runs:
        print("no directory sync yet")
    for run in runs:
        started = run["started_at"].astimezone(VIETNAM)
        print(
            f"{run['id']:>5}  {started:%Y-%m-%d %H:%M:%S}  {run['channel']:<10} "
            f"{run['mode']:<11} {run['listed']:>7} listed  {_counts(run['counts'])}"
        )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "directory", help="the national directory in the unit registry"
    ).add_subparsers(dest="directory_command", required=True)
    sync = group.add_parser(
        "sync",
        help="sync a channel's directory now (the changes since the last sync, or all of it)",
    )
    sync.add_argument("channel", help="an axis channel's name (vxp or soap)")
    sync.add_argument("--full", action="store_true", help="read the whole listing")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(handler=cmd_sync)
    runs = group.add_parser("runs", help="the latest syncs and what each changed")
    runs.add_argument("--channel")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(handler=cmd_runs)

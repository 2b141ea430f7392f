"""``docgw import SOURCE``: an old system's exported packages become history (see
gateway/usecases/importing.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from gateway.bootstrap import Gateway
from gateway.cli.common import json_default, with_gateway
from gateway.domain.imports import ImportOutcome
from gateway.usecases import importing


def cmd_import(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> importing.ImportReport:
        return await importing.import_source(
            gateway, Path(args.source), also_local=tuple(args.local_unit)
        )

    report = with_gateway(args, work)
    for f in report.files:
        if f.outcome is ImportOutcome.IMPORTED:
            trust = "verified" if f.verified else "UNVERIFIED"
            print(f"imported {f.kind} {f.direction} {trust}: {f.name} -> {f.message_id}")
        else:
            print(f"{f.outcome}: {f.name}: {f.reason}")
    print("summary: " + ", ".join(f"{k} {v}" for k, v in report.summary().items()))
    if args.report:
        body = {"summary": report.summary(), "files": [dataclasses.asdict(f) for f in report.files]}
        Path(args.report).write_text(
            json.dumps(body, default=json_default, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "import", help="import an old system's exported packages as history (folder or ZIP)"
    )
    parser.add_argument("source", help="a folder (read recursively) or a ZIP of edXML packages")
    parser.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--local-unit",
        action="append",
        default=[],
        metavar="CODE",
        help="count this unit as local for the run (repeatable): an old system's unit",
    )
    parser.set_defaults(handler=cmd_import)

"""``docgw report monthly --period 2026-11 [--unit CODE]`` and ``docgw report weekly --week
2026-W48``: a report made now, written to a folder (CSV and PDF by default) and, with ``--mail``,
e-mailed where ``[reports]`` configures it; ``docgw report due`` runs the scheduled job once."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.bootstrap import Gateway
from gateway.cli.common import with_gateway
from gateway.domain.periods import PeriodKind
from gateway.usecases import report_files, reports


def cmd_report(args: argparse.Namespace) -> int:
    kind = PeriodKind(args.report_command)
    name = args.period if kind is PeriodKind.MONTHLY else args.week

    async def work(gateway: Gateway) -> list[Path]:
        period = reports.period_of(gateway, kind, name)
        report = await reports.build_report(gateway, period, args.unit)
        folder = Path(args.output_dir) if args.output_dir else None
        folder = folder or gateway.settings.resolve(gateway.settings.reports.folder)
        stem = report_files.file_stem(report)
        formats = args.format or report_files.SCHEDULED_FORMATS
        files = {f"{stem}.{fmt}": report_files.render(report, fmt) for fmt in formats}
        written = [report_files.write_atomically(folder, n, d) for n, d in files.items()]
        if args.mail:
            report_files.send_mail(
                gateway.settings.reports,
                report_files.title(report),
                files,
                ca_file=report_files.smtp_ca_file(gateway),
            )
        return written

    for path in with_gateway(args, work):
        print(path)
    return 0


def cmd_report_due(args: argparse.Namespace) -> int:
    for key in with_gateway(args, report_files.produce_due_reports):
        print(f"produced {key}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="reports: documents sent and received")
    kinds = report.add_subparsers(dest="report_command", required=True)
    examples = (("monthly", "--period", "2026-11"), ("weekly", "--week", "2026-W48"))
    for kind, option, example in examples:
        parser = kinds.add_parser(kind, help=f"the {kind} report ({option} {example})")
        parser.add_argument(option, required=True, help=f"e.g. {example}")
        parser.add_argument("--unit", help="one unit's report (default: the whole gateway)")
        parser.add_argument(
            "--format", action="append", choices=sorted(report_files.FORMATS),
            help="csv, pdf or json; repeat for several (default: csv and pdf)",
        )  # fmt: skip
        parser.add_argument("--output-dir", help="default: [reports] folder")
        parser.add_argument("--mail", action="store_true", help="also e-mail it ([reports] smtp)")
        parser.set_defaults(handler=cmd_report)
    due = kinds.add_parser("due", help="make the closed periods' reports not yet made (the job)")
    due.set_defaults(handler=cmd_report_due)

"""``docgw backup create | verify | prune``, ``docgw restore`` and ``docgw audit verify``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from envelopes.errors import GatewayError
from gateway.bootstrap import Gateway
from gateway.cli.common import DEFAULT_CONFIG, print_json, settings_from, with_gateway
from gateway.settings import Settings
from gateway.store import audit_chain
from gateway.usecases import backup


class AuditChainBroken(GatewayError):
    code = "AUDIT_CHAIN_BROKEN"


def _config_file(args: argparse.Namespace) -> Path | None:
    if getattr(args, "config", None):
        return Path(args.config)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _opening(args: argparse.Namespace, settings: Settings) -> backup.Protection:
    """What opens a backup's key archive: the passphrase, and the private key given by --key."""
    key = backup.load_private_key(Path(args.key)) if args.key else None
    return backup.Protection(passphrase=settings.backup.passphrase, private_key=key)


def cmd_create(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    target = Path(args.to) if args.to else settings.resolve(settings.backup.dir)

    async def work(gateway: Gateway) -> backup.Created:
        return await backup.create_backup(
            settings,
            target,
            protection=backup.protection_of(settings),
            config=_config_file(args),
            now=gateway.clock(),
        )

    created = with_gateway(args, work)
    head = created.manifest["audit_head"]
    print(f"backup written: {created.path} (audit chain at {head['seq']}: {head['hash']})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    manifest = backup.verify_backup(Path(args.backup), protection=_opening(args, settings))
    print(f"backup verified: {args.backup}")
    print_json({k: manifest[k] for k in ("created_at", "schema_revision", "audit_head", "files")})
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    target = Path(args.to) if args.to else settings.resolve(settings.backup.dir)
    keep = args.keep if args.keep is not None else settings.backup.keep
    for removed in backup.prune_backups(target, keep=keep):
        print(f"removed: {removed}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings: Settings = settings_from(args)
    config = backup.restore_backup(
        Path(args.backup),
        Path(args.dir),
        protection=_opening(args, settings),
        database_url=args.database_url,
    )
    print(f"restored into {args.dir}; start it with: docgw --config {config} serve")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    async def work(gateway: Gateway) -> audit_chain.ChainReport:
        async with gateway.engine.connect() as conn:
            return await audit_chain.verify(conn)

    report = with_gateway(args, work)
    if report.broken is not None:
        broken = report.broken
        row = f"row id {broken.row_id}" if broken.row_id is not None else "rows"
        raise AuditChainBroken(
            f"{broken.kind}: {row} at place {broken.seq}: {broken.detail}",
            element=f"audit_events.id={broken.row_id}" if broken.row_id is not None else None,
        )
    print(f"audit chain intact: {report.rows} rows, head {report.head_seq} {report.head_hash}")
    return 0


def register(commands: Any) -> None:
    group = commands.add_parser("backup", help="backups of the database and keys").add_subparsers(
        dest="backup_command", required=True
    )
    create = group.add_parser("create", help="write one consistent backup")
    create.add_argument("--to", help="the folder to write into (default: backup.dir)")
    create.set_defaults(handler=cmd_create)
    verify = group.add_parser("verify", help="check a backup without restoring it")
    verify.add_argument("backup", help="the backup's folder")
    verify.add_argument("--key", help="PEM private key, for a backup sealed for a certificate")
    verify.set_defaults(handler=cmd_verify)
    prune = group.add_parser("prune", help="keep the newest backups, remove the others")
    prune.add_argument("--to", help="the backups' folder (default: backup.dir)")
    prune.add_argument("--keep", type=int, help="how many to keep (default: backup.keep)")
    prune.set_defaults(handler=cmd_prune)
    restore = commands.add_parser("restore", help="bring a gateway back from a backup")
    restore.add_argument("backup", help="the backup's folder")
    restore.add_argument("--dir", required=True, help="an empty folder for the restored gateway")
    restore.add_argument("--database-url", help="PostgreSQL: an empty database to restore into")
    restore.add_argument("--key", help="PEM private key, for a backup sealed for a certificate")
    restore.set_defaults(handler=cmd_restore)
    audit = commands.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    audit_verify = audit.add_parser("verify", help="check the audit trail's hash chain")
    audit_verify.set_defaults(handler=cmd_audit_verify)

"""``docgw units certificates --expiring-days N`` and ``docgw units crls [--refresh]``: the
expiry list and the CRLs (the same use cases as ``/api/v1/certificates/…``)."""

from __future__ import annotations

import argparse
import dataclasses

from gateway.cli.common import VIETNAM, actor, print_json, with_actor, with_store
from gateway.usecases import certificates


def cmd_expiring(args: argparse.Namespace) -> int:
    found = with_store(args, lambda gw: certificates.expiring(gw, days=args.expiring_days))
    if args.json:
        print_json([dataclasses.asdict(e) for e in found])
        return 0
    if not found:
        print(f"no certificate expires within {args.expiring_days} days")
    for entry in found:
        where = "local" if entry.is_local else "partner"
        print(
            f"{entry.unit_code:<15} {where:<7} {entry.not_after.astimezone(VIETNAM):%Y-%m-%d}  "
            f"{entry.days_left:>4} days  {entry.fingerprint_sha256[:16]}…  {entry.subject}"
        )
    return 0


def cmd_crls(args: argparse.Namespace) -> int:
    if args.refresh:
        done = with_store(args, lambda gw: certificates.refresh_crls(gw, actor=actor(args)))
        for source in done.read:
            print(f"read    {source}")
        for source, reason in done.failed:
            print(f"FAILED  {source}: {reason}")
        for fingerprint, code in done.revoked:
            print(f"revoked {fingerprint} of {code}")
        return 1 if done.failed else 0
    held = with_store(args, certificates.held_crls)
    if args.json:
        print_json([dataclasses.asdict(c) for c in held])
        return 0
    if not held:
        print("no CRL held")
    for crl in held:
        following = f"{crl.next_update:%Y-%m-%d %H:%M}" if crl.next_update else "-"
        print(
            f"{crl.issuer}  this {crl.this_update:%Y-%m-%d %H:%M}  next {following}  "
            f"fetched {crl.fetched_at.astimezone(VIETNAM):%Y-%m-%d %H:%M}  ({crl.source})"
        )
    return 0


def add_commands(units: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The certificate commands, under ``docgw units``."""
    listing = units.add_parser(
        "certificates", help="the units' certificates expiring within N days, soonest first"
    )
    listing.add_argument("--expiring-days", type=int, default=60, metavar="N")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_expiring)

    crls = with_actor(
        units.add_parser("crls", help="the CRLs held; --refresh reads them now and applies them")
    )
    crls.add_argument(
        "--refresh",
        action="store_true",
        help="read every configured CRL and revoke the registered certificates they list",
    )
    crls.add_argument("--json", action="store_true")
    crls.set_defaults(handler=cmd_crls)

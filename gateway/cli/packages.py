"""``docgw keys …`` and ``docgw package …``: development keys and the package tool."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from cryptography import x509

from envelopes import sealing, signing
from envelopes.building import build_document, build_status
from envelopes.metadata import parse_metadata
from envelopes.model import AttachmentInfo
from envelopes.reading import PackageKind, ParsedPackage, SinkFactory, read_package
from envelopes.verification import verify_document, verify_status
from envelopes.zipped import ZipOrPdfSpool
from gateway import keystore
from gateway.cli import package_validate, status_package
from gateway.cli.common import (
    ATTACH_OPTION,
    VIETNAM,
    CliError,
    InputFileError,
    actor,
    attachment_sources,
    print_json,
    read_file,
    settings_from,
    with_actor,
    with_store,
)
from gateway.domain.business import REPLY_CODES
from gateway.settings import DocumentSignatureSettings
from gateway.usecases import document_signatures, own_keys

# ------------------------------------------------------------------------------------------ keys


def cmd_keys_init(args: argparse.Namespace) -> int:
    written = keystore.init_keys(Path(args.dir), args.unit, force=args.force)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing to do: keys for every unit are already in {args.dir}")
    print("These are development keys. Production keys come from the government CA.")
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    entries = keystore.list_keys(Path(args.dir))
    if not entries:
        print(f"no certificates in {args.dir} (run: docgw keys init --unit CODE)")
    now = dt.datetime.now(dt.UTC)
    for entry in entries:
        role = "CA  " if entry.is_ca else "unit"
        state = "EXPIRED" if entry.not_after < now else f"expires {entry.not_after:%Y-%m-%d}"
        key = "key" if entry.has_private_key else "no key"
        print(f"{role}  {entry.subject:<60}  {state}  ({key})  {entry.path}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    key_path, csr_path = keystore.rotate(Path(args.dir), args.unit, key_size=args.key_size)
    print(f"wrote {key_path} (mode 0600; never commit it)")
    print(f"wrote {csr_path}: send it to the CA, then `docgw keys install --unit {args.unit} CERT`")
    return 0


def cmd_keys_install(args: argparse.Namespace) -> int:
    pem = read_file(args.cert)
    path = with_store(
        args,
        lambda gw: own_keys.install_certificate(gw, args.unit, pem, actor=actor(args)),
    )
    print(f"installed {path}; the previous key is kept for the overlap. Restart `docgw serve`.")
    return 0


# --------------------------------------------------------------------------------------- package


def cmd_package_build(args: argparse.Namespace) -> int:
    """A document package from ``--meta`` and ``--attach``, or a status package from ``--status``
    and its options; signed (or ``--unsigned``), sealed with ``--seal-for``, written atomically.
    Every input is checked before the key is read and anything is built."""
    now = dt.datetime.now(VIETNAM)
    if args.status is not None:
        status = status_package.from_options(args, now=now)
        signer = _signer(args)

        def write(out: IO[bytes]) -> None:
            out.write(build_status(status, signer=signer))

        what = f"status {status.status_code.value} about {status.response_for.document_id}"
    else:
        status_package.refuse_options(args)
        request = parse_metadata(read_file(args.meta), today=now.date())
        attachments = attachment_sources(args.attach)
        signer = _signer(args)

        def write(out: IO[bytes]) -> None:
            build_document(
                request.header,
                out=out,
                attachments=attachments,
                business=request.business,
                signer=signer,
            )

        what = (
            f"document id {request.header.document_id}, "
            f"classification {request.classification.value}"
        )
    out_path = Path(args.output)
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        with partial.open("wb") as out:
            write(out)
        if args.seal_for:
            _seal_file(partial, x509.load_pem_x509_certificate(read_file(args.seal_for)))
        partial.replace(out_path)  # atomic: a reader never sees half a package
    finally:
        partial.unlink(missing_ok=True)
    print(f"wrote {out_path} ({what})")
    return 0


def _signer(args: argparse.Namespace) -> signing.Signer | None:
    if args.unsigned:
        return None
    if not args.key or not args.cert:
        raise CliError("--key and --cert are required (or --unsigned)")
    return signing.Signer.from_pem(read_file(args.key), read_file(args.cert))


def _seal_file(path: Path, cert: x509.Certificate) -> None:
    sealed = path.with_name(path.name + ".sealed")
    with path.open("rb") as src, sealed.open("wb") as dst:
        sealing.seal_stream(src, dst, cert)
    sealed.replace(path)


def _trust(args: argparse.Namespace) -> signing.TrustPolicy:
    try:
        return signing.TrustPolicy.from_pem(read_file(args.trust), allow_sha1=args.allow_sha1)
    except ValueError as exc:
        raise CliError(f"{args.trust} holds no usable certificate: {exc}") from exc


def _open_package(path: str, sink_factory: SinkFactory | None = None) -> ParsedPackage:
    try:
        with open(path, "rb") as stream:
            return read_package(stream, sink_factory=sink_factory)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from exc


def cmd_package_verify(args: argparse.Namespace) -> int:
    trust = _trust(args)
    # PDFs are kept: their own signatures are the "documents" section.
    parsed = _open_package(args.file, ZipOrPdfSpool)
    try:
        summary = _verify_summary(args, parsed, trust)
    finally:
        for attachment in parsed.attachments:
            if attachment.content is not None:
                attachment.content.close()
    if args.json:
        print_json(summary)
    else:
        print(f"valid {summary['kind']} package, signed by {summary['signer'].subject}")
        if summary["kind"] == "document":
            _print_documents(summary["documents"])
    return 0


def _verify_summary(
    args: argparse.Namespace, parsed: ParsedPackage, trust: signing.TrustPolicy
) -> dict[str, Any]:
    if parsed.kind is PackageKind.STATUS:
        status = verify_status(parsed, trust)
        summary: dict[str, Any] = {
            "valid": True,
            "kind": "status",
            "signer": status.signer,
            "status_code": status.status.status_code.value,
        }
    else:
        document = verify_document(parsed, trust)
        summary = {
            "valid": True,
            "kind": "document",
            "signer": document.signer,
            "document_id": document.package.header.document_id,
            "attachments": len(document.package.attachments),
            "notices": document.notices,
            "documents": _documents(args, document.package.attachments, parsed),
        }
    return summary


def _documents(
    args: argparse.Namespace, infos: Sequence[AttachmentInfo], parsed: ParsedPackage
) -> list[dict[str, Any]]:
    """The PDFs' own signatures, verified as a receiving gateway verifies them: against
    ``--document-trust``, else the configuration's documents trust (``--config``), else
    ``--trust``; within the configured (or default) bounds."""
    settings = settings_from(args) if args.config else None
    documents = settings.documents if settings else DocumentSignatureSettings()
    if args.document_trust:
        anchors, crls = [Path(p) for p in args.document_trust], list[Path]()
    elif settings is not None:
        anchors, crls = document_signatures.trust_files(settings)
    else:
        anchors, crls = [Path(args.trust)], list[Path]()
    found = document_signatures.pdf_attachments(
        infos, {a.content_id: a.content for a in parsed.attachments}
    )
    rows = asyncio.run(
        document_signatures.check_with(
            documents, found, anchors=anchors, crls=crls, now=dt.datetime.now(dt.UTC)
        )
    )
    return [document_signatures.row_json(row) for row in rows]


def _print_documents(documents: list[dict[str, Any]]) -> None:
    """Vietnamese first: what a clerk reads before registering the document."""
    if not documents:
        print("văn bản PDF / PDF documents: không có / none")
        return
    print("văn bản PDF / PDF documents:")
    for item in documents:
        why = f" ({item['reason']}: {item['detail']})" if item["reason"] else ""
        print(f"  - {item['attachment']}: {_VERDICTS[item['verdict']]}{why}")
        for signature in item["signatures"]:
            when = signature["signed_at"] or "?"
            kind = "dấu thời gian / timestamp" if signature["timestamped"] else "tự khai / claimed"
            codes = ", ".join(r["code"] for r in signature["reasons"])
            print(
                f"      {signature['field']}: {signature['signer']} — "
                f"{signature['organisation'] or '?'}, {when} ({kind}), "
                f"{_VERDICTS[signature['verdict']]}{f' [{codes}]' if codes else ''}"
            )


_VERDICTS = {
    "valid": "chữ ký hợp lệ / valid",
    "unsigned": "không ký số / unsigned",
    "failing": "chữ ký không hợp lệ / failing",
}


def cmd_package_inspect(args: argparse.Namespace) -> int:
    parsed = _open_package(args.file)
    summary = inspect_summary(parsed)
    if args.json:
        print_json(summary)
        return 0
    for key, value in summary.items():
        if key == "attachments":
            print("attachments:")
            for item in value:
                sniffed = f" (bytes are {item['sniffed_type']})" if item["sniffed_type"] else ""
                print(
                    f"  - {item['name']}  {item['content_type']}{sniffed}  {item['size']} bytes"
                    f"  sha256 {item['sha256']}"
                )
        elif key == "notices":
            print("warnings:" if value else "warnings: none")
            for notice in value:
                print(f"  - {notice.code}: {notice.message}")
        else:
            print(f"{key}: {value}")
    return 0


def inspect_summary(parsed: ParsedPackage) -> dict[str, Any]:
    """An unverified summary of a package, for people (``docgw package inspect``)."""
    signed = parsed.root.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature") is not None
    if parsed.kind is PackageKind.STATUS:
        status = parsed.status()
        return {
            "kind": "status",
            "sender": status.from_.organ_id,
            "status_code": status.status_code.value,
            "status": status.status_code.name.lower(),
            "description": status.description,
            "response_for": status.response_for.document_id,
            "timestamp": status.timestamp,
            "signed": signed,
            "notices": parsed.notices,
        }
    document = parsed.document()
    header = document.header
    return {
        "kind": "document",
        "sender": header.from_.organ_id,
        "recipients": [to.organ_id for to in header.to],
        "document_id": header.document_id,
        "code": str(header.code),
        "subject": header.subject,
        "promulgation_date": header.promulgation.date,
        "business_type": document.business.doc_type.name.lower() if document.business else None,
        "status_code": None,
        "signed": signed,
        "attachments": [dataclasses.asdict(a) for a in document.attachments],
        "notices": parsed.notices,
    }


def cmd_package_open(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(read_file(args.key), password=None)
    out_path = Path(args.output)
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        with open(args.file, "rb") as src, partial.open("wb") as dst:
            container = sealing.sniff(src.read(sealing.SNIFF_LENGTH))
            src.seek(0)
            sealing.open_stream(src, dst, key)
        partial.replace(out_path)
    except OSError as exc:
        raise InputFileError(f"cannot open {args.file}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)
    print(f"wrote {out_path} (opened {_CONTAINERS[container]} seal)")
    return 0


#: What ``package open`` says it opened, so an operator checking by hand knows which container.
_CONTAINERS: dict[sealing.SealFormat | None, str] = {
    None: "a",  # open_stream refuses it first
    sealing.SealFormat.CMS: "a CMS AuthEnvelopedData (RFC 5083)",
    sealing.SealFormat.DGWSEAL1: "an old-format DGWSEAL1",
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="development keys and certificates").add_subparsers(
        dest="keys_command", required=True
    )
    init = keys.add_parser("init", help="create a development CA and a certificate per unit")
    init.add_argument("--dir", default="keys", help="where to write (default: keys/)")
    init.add_argument(
        "--unit",
        action="append",
        default=[],
        metavar="CODE",
        help="a unit code to issue a signing certificate for (repeatable)",
    )
    init.add_argument("--force", action="store_true", help="replace existing keys")
    init.set_defaults(handler=cmd_keys_init)
    show = keys.add_parser("show", help="list certificates with their expiry")
    show.add_argument("--dir", default="keys")
    show.set_defaults(handler=cmd_keys_show)
    rotate = keys.add_parser(
        "rotate", help="make a new signing key and a certificate request (CSR) for the CA"
    )
    rotate.add_argument("--unit", required=True, metavar="CODE")
    rotate.add_argument("--dir", default="keys", help="the keys folder (default: keys/)")
    rotate.add_argument("--key-size", type=int, default=3072, choices=(2048, 3072, 4096))
    rotate.set_defaults(handler=cmd_keys_rotate)
    install = with_actor(
        keys.add_parser(
            "install",
            help="install the CA's certificate for the rotated key (the old one verifies on "
            "through the overlap)",
        )
    )
    install.add_argument("--unit", required=True, metavar="CODE")
    install.add_argument("cert", help="the issued certificate (PEM)")
    install.set_defaults(handler=cmd_keys_install)

    package = commands.add_parser("package", help="build, verify and inspect edXML packages")
    package_commands = package.add_subparsers(dest="package_command", required=True)
    build = package_commands.add_parser(
        "build",
        help="build (and sign) a document package, or a status package",
        description="A document package from --meta (and --attach), or a status package from "
        "--status CODE and the status options.",
    )
    kind = build.add_mutually_exclusive_group(required=True)
    kind.add_argument("--meta", help="document metadata JSON")
    kind.add_argument(
        "--status",
        metavar="CODE",
        help=f"build a status package: {', '.join(REPLY_CODES)} (01 is sent by docgw itself)",
    )
    build.add_argument("--attach", **ATTACH_OPTION)
    status_package.add_options(build)
    build.add_argument("--key", help="the sending unit's private key (PEM)")
    build.add_argument("--cert", help="the sending unit's certificate (PEM)")
    build.add_argument("--unsigned", action="store_true", help="build without a signature")
    build.add_argument(
        "--seal-for",
        metavar="CERT",
        help="encrypt the signed package for this recipient certificate",
    )
    build.add_argument("-o", "--output", required=True)
    build.set_defaults(handler=cmd_package_build)
    verify = package_commands.add_parser("verify", help="verify a package's signature")
    verify.add_argument("file")
    verify.add_argument("--trust", required=True, help="PEM: CA certificate(s) or the sender's")
    verify.add_argument(
        "--allow-sha1",
        action="store_true",
        help="accept RSA-SHA1 (only for a peer known to need it)",
    )
    verify.add_argument(
        "--document-trust",
        action="append",
        default=[],
        metavar="PEM",
        help="CA certificate(s) the PDFs' own signatures must chain to (repeatable; default: "
        "the configuration's documents trust with --config, else --trust)",
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_package_verify)
    inspect = package_commands.add_parser("inspect", help="summarize a package (not verified)")
    inspect.add_argument("file")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(handler=cmd_package_inspect)
    open_ = package_commands.add_parser("open", help="decrypt a sealed (classified) package")
    open_.add_argument("file")
    open_.add_argument("--key", required=True, help="the recipient's private key (PEM)")
    open_.add_argument("-o", "--output", required=True)
    open_.set_defaults(handler=cmd_package_open)
    package_validate.add_parser(package_commands)

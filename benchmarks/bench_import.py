"""``docgw import`` benchmark: an old system's export of N packages (default 10,000) made with
docgw's own builders, imported into a fresh SQLite gateway, beside a reference measured in the same
run on the same files: the bare cost of reading each package (``read_package``) and hashing it.

Run by hand (tests/integration/test_benchmark_import_smoke.py only checks that it runs)::

    .venv/bin/python benchmarks/bench_import.py               # 10,000 packages
    .venv/bin/python benchmarks/bench_import.py --quick       # 300 packages, a smoke run
    .venv/bin/python benchmarks/bench_import.py --postgres URL  # the same on PostgreSQL

The export: documents from the local unit G22 to H41 (sent), each with H41's statuses 01 and 03,
so a third of the packages are documents and two thirds statuses; the files are shuffled, so
statuses often arrive before their document (the pending path). Every package is signed and every
sender's certificate registered: the import verifies each signature (RSA-2048, SHA-256).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from envelopes.building import build_document_bytes, build_status
from envelopes.model import (
    DocumentCode,
    DocumentType,
    MessageHeader,
    Organization,
    PromulgationInfo,
    ResponseFor,
    StatusCode,
    StatusPackage,
    document_id_for,
)
from envelopes.reading import read_package
from envelopes.signing import Signer
from gateway.bootstrap import build
from gateway.keystore import init_keys, unit_paths
from gateway.settings import load_settings
from gateway.store.database import migrate
from gateway.store.records import UnitRecord
from gateway.usecases import importing, registry

SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"
DAY = PromulgationInfo(place="Hà Nội", date=__import__("datetime").date(2025, 3, 14))
TITLE = "SUMMARY: docgw import beside the bare read+hash of the same packages"


def signer(keys: Path, code: str) -> Signer:
    key, cert = unit_paths(keys, code)
    return Signer.from_pem(key.read_bytes(), cert.read_bytes())


def export(folder: Path, keys: Path, count: int) -> None:
    """``count`` packages (rounded down to whole documents with their two statuses)."""
    import datetime as dt

    signers = {c: signer(keys, c) for c in (SENDER, RECIPIENT)}
    names: list[tuple[str, bytes]] = []
    for i in range(count // 3):
        code = DocumentCode(number=str(i + 1), notation="CV-CU")
        header = MessageHeader(
            from_=Organization(organ_id=SENDER, organ_name="Văn phòng Chính phủ"),
            to=(Organization(organ_id=RECIPIENT, organ_name="UBND tỉnh Nghệ An"),),
            code=code,
            promulgation=DAY,
            document_type=DocumentType(type=1, type_name="Công văn"),
            subject=f"Văn bản lưu trữ số {i + 1} về việc liên thông văn bản điện tử",
            document_id=document_id_for(SENDER, DAY.date, code),
        )
        names.append((f"doc-{i}.edxml", build_document_bytes(header, signer=signers[SENDER])[0]))
        for minute, status_code in enumerate((StatusCode.ARRIVED, StatusCode.ACCEPTED)):
            status = StatusPackage(
                from_=Organization(organ_id=RECIPIENT),
                response_for=ResponseFor(
                    organ_id=SENDER, code=str(code), document_id=header.document_id
                ),
                status_code=status_code,
                timestamp=dt.datetime(2025, 3, 14, 9, minute, 0),
            )
            package = build_status(status, signer=signers[RECIPIENT])
            names.append((f"status-{i}-{status_code.value}.edxml", package))
    random.Random(1).shuffle(names)
    folder.mkdir()
    for index, (name, data) in enumerate(names):
        (folder / f"{index:06d}-{name}").write_bytes(data)


def reference(folder: Path) -> tuple[int, float]:
    """The bare cost: read every file, hash it, parse it with the reader docgw uses."""
    started = time.perf_counter()
    files = 0
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        read_package(data)
        files += 1
    return files, time.perf_counter() - started


async def run_import(folder: Path, keys: Path, url: str) -> tuple[dict[str, int], float]:
    config = folder.parent / "docgw.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[gateway]\nlocal_units = ["{SENDER}"]\n'
        f'[keys]\ndir = "{keys}"\n',
        encoding="utf-8",
    )
    gateway = await build(load_settings(config, {}))
    try:
        await migrate(gateway.engine)
        for code in (SENDER, RECIPIENT):
            await registry.register_unit(
                gateway,
                UnitRecord(code=code, name=f"Đơn vị {code}", is_local=code == SENDER),
                certificate_pem=unit_paths(keys, code)[1].read_text(),
                actor="bench",
            )
        started = time.perf_counter()
        report = await importing.import_source(gateway, folder)
        return report.summary(), time.perf_counter() - started
    finally:
        await gateway.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="300 packages")
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database")
    args = parser.parse_args()
    count = 300 if args.quick else args.count
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        keys = work / "keys"
        init_keys(keys, [SENDER, RECIPIENT])
        started = time.perf_counter()
        export(work / "export", keys, count)
        files = len(list((work / "export").iterdir()))
        print(f"export: {files} packages built and signed in {time.perf_counter() - started:.1f} s")
        ref_files, ref_seconds = reference(work / "export")
        url = args.postgres or f"sqlite+aiosqlite:///{work}/docgw.db"
        summary, seconds = asyncio.run(run_import(work / "export", keys, url))
    if summary != {"imported": files, "skipped": 0, "refused": 0}:
        print(f"error: the import did not import every package: {summary}", file=sys.stderr)
        return 1
    rate, ref_rate = files / seconds, ref_files / ref_seconds
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(TITLE)
    print("| measurement | packages | seconds | packages/s |")
    print("|---|---|---|---|")
    print(f"| docgw import ({database}, verify + store) | {files} | {seconds:.1f} | {rate:.0f} |")
    print(
        f"| reference: read_package + SHA-256 | {ref_files} | {ref_seconds:.1f} | {ref_rate:.0f} |"
    )
    print(f"| ratio import / reference | | | {rate / ref_rate:.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

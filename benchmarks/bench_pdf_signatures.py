"""What verifying the documents' own signatures costs: one signed PDF verified in process
(``envelopes.pdf_signatures.check_pdf``), in a process of its own (``document_signatures.
check_alone``: a Python start and pyHanko's import per PDF, the fallback), and through the
persistent pool the gateway uses (``document_signatures.check_bounded``: its first PDF starts the
pool, the others find it warm); and a pool process's peak memory for a large signed PDF against
the PDF's size. Run by hand::

    .venv/bin/python benchmarks/bench_pdf_signatures.py [--runs 5] [--large-mib 64]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' PDF makers

warnings.simplefilter("ignore")

import pdfs  # noqa: E402  # tests/pdfs.py
import pki  # noqa: E402  # tests/pki.py
from cryptography.hazmat.primitives import serialization  # noqa: E402

from envelopes.pdf_signatures import Trust, check_pdf  # noqa: E402
from gateway.settings import DocumentSignatureSettings  # noqa: E402
from gateway.usecases.document_signatures import (  # noqa: E402
    check_alone,
    check_bounded,
    shutdown_pools,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--large-mib", type=int, default=64)
    args = parser.parse_args()
    ca_pem = pki.dev_ca().certificate.public_bytes(serialization.Encoding.PEM)
    with tempfile.TemporaryDirectory() as folder:
        ca = Path(folder) / "ca.pem"
        ca.write_bytes(ca_pem)
        trust = Trust.from_files([ca])
        signed = pdfs.sign(pdfs.plain_pdf(), pki.unit())
        settings = DocumentSignatureSettings(max_pdf_bytes=1 << 40, timeout_seconds=600)

        start = time.perf_counter()
        for _ in range(args.runs):
            check_pdf(io.BytesIO(signed), trust)
        inline = (time.perf_counter() - start) / args.runs
        path = Path(folder) / "signed.pdf"
        path.write_bytes(signed)
        start = time.perf_counter()
        for _ in range(args.runs):
            asyncio.run(check_alone(path, settings, anchors=[ca], crls=[]))
        alone = (time.perf_counter() - start) / args.runs
        start = time.perf_counter()
        asyncio.run(check_bounded(io.BytesIO(signed), settings, anchors=[ca]))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.runs):
            asyncio.run(check_bounded(io.BytesIO(signed), settings, anchors=[ca]))
        warm = (time.perf_counter() - start) / args.runs
        print(f"small signed PDF ({len(signed)} bytes), {args.runs} runs each:")
        for label, seconds, note in (
            ("in process", inline, ""),
            ("a process of its own", alone, f"{alone / inline:.1f}× in process"),
            ("pool, first PDF", cold, "starts the pool"),
            ("pool, warm", warm, f"{warm / inline:.1f}× in process"),
        ):
            print(f"  {label:<22}{seconds * 1000:8.1f} ms   {note}")
        shutdown_pools(wait=True)

        large = pdfs.sign(
            pdfs.with_large_stream(pdfs.plain_pdf(pages=20), args.large_mib << 20), pki.unit()
        )
        start = time.perf_counter()
        result = asyncio.run(check_bounded(io.BytesIO(large), settings, anchors=[ca]))
        elapsed = time.perf_counter() - start
        shutdown_pools(wait=True)  # its processes exit: their peaks are counted
        # The largest child's peak (KiB on Linux): this one, the small ones stay far below.
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(
            f"large signed PDF ({len(large) >> 20} MiB): {result.verdict.value} in {elapsed:.1f} s"
        )
        print(f"  the pool process's peak RSS {peak >> 20} MiB ({peak / len(large):.2f}× the PDF)")


if __name__ == "__main__":
    main()

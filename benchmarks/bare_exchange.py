"""The bare reference pipeline of the exchange benchmark: only the unavoidable work of a signed
exchange, which docgw's exchange is measured against (docs/performance.md, issue 20).

Per document: build and sign a package (the same 2 KB of metadata and 100 KB attachment as the
exchange benchmark) → persist it with fsync → POST it over loopback → the receiver reads and
verifies it → persists it with fsync → builds and signs status 01 and answers with it → the sender
reads and verifies the receipt → persists it with fsync. One process per side, no relay, no
database, no polling; the sender keeps ``--clients`` documents in flight, as the exchange
benchmark's API clients do. docgw's own envelope core builds, signs, reads and verifies, so the
ratio measures what docgw adds around it.

Run by bench_exchange.py, interleaved with docgw's runs; by hand::

    .venv/bin/python benchmarks/bare_exchange.py --documents 500
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from bench_envelopes import BUSINESS, HEADER, sources_from_bytes

from envelopes.building import build_document, build_status
from envelopes.model import Organization, ResponseFor, StatusCode, StatusPackage
from envelopes.reading import read_package
from envelopes.signing import Signer, TrustPolicy
from envelopes.verification import verify_document, verify_status
from gateway.keystore import create_ca, issue_unit_certificate

HOST = "127.0.0.1"
SENDER = HEADER.from_.organ_id
RECIPIENT = HEADER.to[0].organ_id


@dataclass(frozen=True, kw_only=True)
class BareFigures:
    documents: int
    seconds: float
    #: CPU seconds of both processes over the measured documents.
    cpu: float

    @property
    def rate(self) -> float:
        return self.documents / self.seconds

    @property
    def cpu_ms_per_document(self) -> float:
        return self.cpu / self.documents * 1000


def write_keys(folder: Path) -> None:
    """A CA and a unit certificate for each side, as PEM files in ``folder``."""
    ca = create_ca()
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    for name, unit in (("sender", SENDER), ("receiver", RECIPIENT)):
        issued = issue_unit_certificate(ca, unit)
        (folder / f"{name}.key.pem").write_bytes(issued.key_pem)
        (folder / f"{name}.cert.pem").write_bytes(issued.cert_pem)


def load(folder: Path, name: str) -> tuple[Signer, TrustPolicy]:
    signer = Signer.from_pem(
        (folder / f"{name}.key.pem").read_bytes(), (folder / f"{name}.cert.pem").read_bytes()
    )
    return signer, TrustPolicy.from_pem((folder / "ca.pem").read_bytes())


def persist(path: Path, data: bytes) -> None:
    """Written and fsynced (in a thread: documents in flight overlap their waits for the disk)."""
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


# ------------------------------------------------------------------------------- the receiver


async def serve(port: int, keys: Path, folder: Path) -> None:
    signer, trust = load(keys, "receiver")
    received = 0

    async def package(request: web.Request) -> web.Response:
        nonlocal received
        body = await request.read()
        verified = verify_document(read_package(body), trust)
        received += 1
        await asyncio.to_thread(persist, folder / f"in-{received}.edxml", body)
        header = verified.package.header
        receipt = build_status(
            StatusPackage(
                from_=Organization(organ_id=RECIPIENT),
                response_for=ResponseFor(
                    organ_id=header.from_.organ_id, code=str(header.code), document_id=None
                ),
                status_code=StatusCode.ARRIVED,
                timestamp=dt.datetime.now(dt.UTC),
            ),
            signer=signer,
        )
        return web.Response(body=receipt, content_type="application/xml")

    async def cpu(_: web.Request) -> web.Response:
        return web.json_response({"cpu": time.process_time()})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/package", package)
    app.router.add_get("/cpu", cpu)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    await asyncio.Event().wait()


# --------------------------------------------------------------------------------- the sender


async def send(url: str, keys: Path, folder: Path, documents: int, clients: int) -> BareFigures:
    signer, trust = load(keys, "sender")
    attachment = b"%PDF-1.7\n" + os.urandom(100 * 1024 - 9)
    sent = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        sent += 1
        number = sent
        out = io.BytesIO()
        build_document(
            HEADER, out=out, attachments=sources_from_bytes(attachment), business=BUSINESS,
            signer=signer,
        )  # fmt: skip
        package = out.getvalue()
        await asyncio.to_thread(persist, folder / f"out-{number}.edxml", package)
        async with session.post(f"{url}/package", data=package) as response:
            response.raise_for_status()
            receipt = await response.read()
        verify_status(read_package(receipt), trust)
        await asyncio.to_thread(persist, folder / f"receipt-{number}.edxml", receipt)

    async def worker(session: aiohttp.ClientSession, count: int) -> None:
        for _ in range(count):
            await one(session)

    async def batch(session: aiohttp.ClientSession, count: int) -> None:
        shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
        await asyncio.gather(*(worker(session, share) for share in shares))

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await batch(session, max(clients, 10))  # warm-up: connections, lazy loading
        async with session.get(f"{url}/cpu") as response:
            receiver_before = (await response.json())["cpu"]
        cpu_before = time.process_time()
        started = time.perf_counter()
        await batch(session, documents)
        seconds = time.perf_counter() - started
        cpu_after = time.process_time()
        async with session.get(f"{url}/cpu") as response:
            receiver_after = (await response.json())["cpu"]
    return BareFigures(
        documents=documents,
        seconds=seconds,
        cpu=(cpu_after - cpu_before) + (receiver_after - receiver_before),
    )


# ---------------------------------------------------------------------------------- the driver


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def run_bare(documents: int, clients: int, python: str = sys.executable) -> BareFigures:
    """Both sides as processes of their own, ``documents`` measured after a warm-up."""
    with tempfile.TemporaryDirectory(prefix="docgw-bare-") as tmp:
        folder = Path(tmp)
        write_keys(folder)
        port = free_port()
        script = str(Path(__file__).resolve())
        receiver = subprocess.Popen(
            [python, script, "receiver", "--port", str(port), "--keys", tmp, "--folder", tmp]
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or receiver.poll() is not None:
                        raise RuntimeError("the bare receiver did not start") from None
                    time.sleep(0.05)
            sender = subprocess.run(
                [python, script, "sender", "--url", f"http://{HOST}:{port}", "--keys", tmp,
                 "--folder", tmp, "--documents", str(documents), "--clients", str(clients)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
        return BareFigures(**json.loads(sender.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("role", nargs="?", choices=("receiver", "sender"), help="internal")
    parser.add_argument("--port", type=int)
    parser.add_argument("--url")
    parser.add_argument("--keys", type=Path)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    if args.role == "receiver":
        asyncio.run(serve(args.port, args.keys, args.folder))
        return 0
    if args.role == "sender":
        figures = asyncio.run(send(args.url, args.keys, args.folder, args.documents, args.clients))
        print(json.dumps(figures.__dict__))
        return 0
    figures = run_bare(args.documents, args.clients)
    print(
        f"bare pipeline: {figures.rate:,.0f} documents/s, "
        f"{figures.cpu_ms_per_document:.2f} ms CPU per document (both processes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

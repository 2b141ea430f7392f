"""Exchange benchmark: documents per second from gateway A through the VXP axis to gateway B, each
verified at B and answered with 01, which A records.

Run by hand (this is not a test; tests/integration/test_benchmark_outbox_smoke.py only checks that
it runs)::

    .venv/bin/python benchmarks/bench_exchange.py            # the full run (a minute or two)
    .venv/bin/python benchmarks/bench_exchange.py --quick    # a reduced smoke run
    .venv/bin/python benchmarks/bench_exchange.py --profile  # + where A's and B's time goes

Everything on this machine, as it would be deployed, one process each:

* the axis simulator, ``docgw axis-sim`` (VXP: HMAC-signed requests, packages read and traced);
* gateway A (000.00.00.G22) and gateway B (000.00.00.H41), ``docgw serve`` each (API, two delivery
  workers, scheduler), with their own database and a VXP channel polling every 50 ms;
* this driver, which submits through A's HTTP API (multipart, as a document-management system
  does) with 8 concurrent clients, then reads A's database for the outcome.

One document: about 2 KB of metadata (the outbox benchmark's) and a 100 KB attachment of random
bytes. Its path: A builds and signs it and sends it to the axis; B polls the axis, downloads it,
verifies the signature against A's registered certificate, stores it, acknowledges it, builds and
signs status 01 and sends it to the axis; A polls the axis, downloads the status, verifies it and
records 01 for B. The rate is documents over the time from the first submission to the last 01
recorded at A; latency per document is ``recipients.business_updated_at - messages.created_at`` in
A's database (submit accepted → 01 recorded). Both gateways run on SQLite, then both on PostgreSQL
(``TEST_POSTGRES_URL``, fresh databases), unless ``--databases`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import sqlalchemy as sa
from bare_exchange import BareFigures, run_bare
from bench_outbox import (
    RECIPIENT,
    SENDER,
    Latency,
    fresh_database,
    latency,
    metadata,
    metadata_bytes,
    postgres_available,
    postgres_base,
    print_environment,
    print_table,
    register,
    verdict,
    write_config,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.bootstrap import build
from gateway.keystore import init_keys
from gateway.settings import load_settings
from gateway.store.database import create_engine, migrate
from gateway.store.tables import messages, recipients
from gateway.usecases import tokens

HOST = "127.0.0.1"
DOCGW = Path(sys.executable).parent / "docgw"
CLIENTS = 8
ATTACHMENT_BYTES = 100 * 1024
WARMUP = 10
#: Targets (issue 20, docs/performance.md): docgw's rate as a share of the bare pipeline's, measured
#: in the same run, and its CPU per document (A, B, the simulator, PostgreSQL) as a multiple.
RATE_SHARE = {"sqlite": 0.66, "postgresql": 0.5}
CPU_MULTIPLE = 2.5
POLL_SECONDS = 0.05

TABLE_TITLE = "SUMMARY: exchange A → axis → B → 01 at A beside the bare pipeline of the same rounds"
TABLE_COLUMNS = (
    "measurement", "figure", "ratio to bare", "p50 / p99 submit→01", "target", "result"
)  # fmt: skip

#: Runs docgw's command line under cProfile (``--profile``), timing the main thread's CPU (not
#: the wall clock, which would count the event loop's idle waits): ``main.py PROFILE ARGS…``.
PROFILED_MAIN = """\
import cProfile, sys, time
from gateway.cli import main
output = sys.argv.pop(1)
profile = cProfile.Profile(time.thread_time)
profile.enable()
try:
    code = main(sys.argv[1:])
finally:
    profile.disable()
    profile.dump_stats(output)
sys.exit(code)
"""


@dataclass(frozen=True, kw_only=True)
class Sizes:
    #: Submitted all at once (8 clients as fast as A answers): the throughput.
    documents: int
    #: Then submitted at PACED_RATE: the latency when the gateways keep up.
    paced: int


FULL = Sizes(documents=1000, paced=200)
QUICK = Sizes(documents=60, paced=20)
PACED_RATE = 10.0  # documents per second


@dataclass(kw_only=True)
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]
    profile: Path | None = None

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self.log_file.close()
        return code


@dataclass(kw_only=True)
class Run:
    kind: str
    folder: Path
    keys: Path
    profile: bool
    processes: list[Process] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ExchangeFigures:
    kind: str
    accepted_rate: float
    rate: float
    latency: Latency
    paced_latency: Latency
    verified_at_b: int
    submitted: int
    #: CPU ms per document of every process of the exchange (A, B, the simulator, PostgreSQL),
    #: not the driver's (the bare pipeline has no document-management system submitting).
    cpu_ms: float


def cpu_seconds(pid: int, *, with_exited_children: bool = False) -> float | None:
    """User + system CPU seconds of a process so far (Linux), or None; with its exited (reaped)
    children's if asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12])
    if with_exited_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds of the PostgreSQL server: its processes alive now, and those that have exited
    (a backend of a closed connection: the postmaster reaps it and its CPU time moves to the
    postmaster's children times). Counting the live ones only missed most of the server's CPU when
    a pool opened and closed connections under load (Linux; 0 elsewhere)."""
    total = 0.0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("postgres"):
                continue
        except OSError:
            continue
        total += cpu_seconds(int(entry.name), with_exited_children=True) or 0.0
    return total


def machine_ticks() -> tuple[int, int] | None:
    """(all, steal) clock ticks of the whole machine so far, from /proc/stat (Linux), or None.
    Steal is time the hypervisor gave this guest's CPUs to someone else."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[7]


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> str:
    if before is None or after is None or after[0] <= before[0]:
        return "unknown"
    return f"{100 * (after[1] - before[1]) / (after[0] - before[0]):.0f} %"


def cpu_snapshot(run: Run) -> dict[str, float]:
    snapshot = {"driver": time.process_time()}
    for process in run.processes:
        seconds = cpu_seconds(process.popen.pid)
        if seconds is not None:
            snapshot[process.name] = seconds
    if run.kind == "postgresql":
        snapshot["postgresql"] = postgres_cpu_seconds()
    return snapshot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(port: int, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited: see {process.log}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} is not listening on {port}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


def start(run: Run, name: str, args: Sequence[str]) -> Process:
    log = run.folder / f"{name}.log"
    log_file = log.open("wb")
    profile = run.folder / f"{name}.prof" if run.profile and name != "axis" else None
    command = (
        [sys.executable, str(run.folder / "main.py"), str(profile), *args]
        if profile
        else [str(DOCGW), *args]
    )
    popen = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    process = Process(name=name, popen=popen, log=log, log_file=log_file, profile=profile)
    run.processes.append(process)
    return process


async def start_gateway(
    run: Run, *, name: str, unit: str, url: str, axis_url: str, system: str, secret: str
) -> tuple[int, str, str]:
    """Seed the gateway's database, then ``docgw serve`` it; returns (port, config, token)."""
    port = free_port()
    extra = (
        f'[api]\nhost = "{HOST}"\nport = {port}\n'
        f'[channels.axis]\nkind = "vxp"\nendpoint = "{axis_url}"\n'
        f'system_id = "{system}"\nsecret = "{secret}"\n'
        f"poll_seconds = {POLL_SECONDS}\nsent_states_seconds = 0\n"
    )
    config = write_config(
        run.folder / f"{name}.toml",
        url=url,
        keys=run.keys,
        local_units=(unit,),
        workers=2,
        # docgw's default: new work is announced to the workers; this only paces retries.
        idle_poll_seconds=0.5,
        extra=extra,
    )
    gateway = await build(load_settings(config, {}))
    try:
        await migrate(gateway.engine)
        await register(gateway, run.keys, [(SENDER, "axis"), (RECIPIENT, "axis")])
        token = await tokens.create_token(gateway, name="bench", role="admin")
    finally:
        await gateway.close()
    process = start(run, name, ["--config", str(config), "serve"])
    await wait_for_port(port, process)
    return port, str(config), token


def document_form(number: int, attachment: bytes) -> aiohttp.FormData:
    meta = metadata(SENDER, RECIPIENT)
    meta["code"] = {"number": str(number), "notation": "VPCP-KSTT"}
    form = aiohttp.FormData()
    form.add_field(
        "metadata", json.dumps(meta, ensure_ascii=False).encode(), content_type="application/json"
    )
    form.add_field("attachment", attachment, filename="phu-luc.pdf", content_type="application/pdf")
    return form


async def submit_through_api(
    session: aiohttp.ClientSession, url: str, token: str, numbers: Sequence[int], attachment: bytes
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in numbers:
        queue.put_nowait(number)

    async def client() -> None:
        while not queue.empty():
            number = queue.get_nowait()
            async with session.post(
                f"{url}/api/v1/messages",
                data=document_form(number, attachment),
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                if response.status != 201:
                    text = await response.text()
                    raise RuntimeError(f"A refused document {number}: {response.status} {text}")

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


async def count_arrived(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                sa.select(sa.func.count())
                .select_from(recipients.join(messages, messages.c.id == recipients.c.message_id))
                .where(
                    messages.c.direction == "out",
                    messages.c.kind == "document",
                    recipients.c.business_status.is_not(None),
                )
            )
            or 0
        )


async def outcome(engine: AsyncEngine, since: dt.datetime) -> tuple[list[float], dt.datetime]:
    """(submit → 01 seconds per measured document, when the last 01 was recorded) at A."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(messages.c.created_at, recipients.c.business_updated_at)
                .join(recipients, recipients.c.message_id == messages.c.id)
                .where(
                    messages.c.direction == "out",
                    messages.c.kind == "document",
                    messages.c.created_at >= since,
                )
            )
        ).all()
    done = [(created, arrived) for created, arrived in rows if arrived is not None]
    return [(a - c).total_seconds() for c, a in done], max(a for _, a in done)


async def verified_at(url: str) -> int:
    """Documents B stored: each was verified against A's registered certificate first."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(
                    sa.select(sa.func.count()).where(
                        messages.c.direction == "in",
                        messages.c.kind == "document",
                        messages.c.signer_subject.is_not(None),
                    )
                )
                or 0
            )
    finally:
        await engine.dispose()


async def until_arrived(engine: AsyncEngine, expected: int, run: Run) -> None:
    deadline = time.monotonic() + max(120.0, expected / 5)
    while await count_arrived(engine) < expected:
        for process in run.processes:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited: see {process.log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await count_arrived(engine)} of {expected} 01s at A")
        await asyncio.sleep(0.2)


async def bench_exchange(run: Run, sizes: Sizes) -> ExchangeFigures:
    (run.folder / "main.py").write_text(PROFILED_MAIN, encoding="utf-8")
    secret_a, secret_b = secrets.token_hex(16), secrets.token_hex(16)
    axis_port = free_port()
    axis = start(
        run,
        "axis",
        ["axis-sim", "--host", HOST, "--port", str(axis_port), "--directory-size", "100",
         "--systems", f"sys-a:{secret_a}:{SENDER}", f"sys-b:{secret_b}:{RECIPIENT}"],
    )  # fmt: skip
    await wait_for_port(axis_port, axis)
    axis_url = f"http://{HOST}:{axis_port}"
    attachment = b"%PDF-1.7\n" + os.urandom(ATTACHMENT_BYTES - 9)
    async with AsyncExitStack() as stack:
        url_a = await stack.enter_async_context(fresh_database(run.kind, run.folder))
        url_b = await stack.enter_async_context(fresh_database(run.kind, run.folder))
        port_a, _, token = await start_gateway(
            run, name="gateway-a", unit=SENDER, url=url_a, axis_url=axis_url,
            system="sys-a", secret=secret_a,
        )  # fmt: skip
        await start_gateway(
            run, name="gateway-b", unit=RECIPIENT, url=url_b, axis_url=axis_url,
            system="sys-b", secret=secret_b,
        )  # fmt: skip
        engine_a = create_engine(url_a)
        stack.push_async_callback(engine_a.dispose)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS))
        )
        api = f"http://{HOST}:{port_a}"
        # Warm up: connections, prepared statements, the first poll ticks.
        await submit_through_api(session, api, token, range(1, WARMUP + 1), attachment)
        await until_arrived(engine_a, WARMUP, run)
        numbers = range(WARMUP + 1, WARMUP + sizes.documents + 1)
        since = dt.datetime.now(dt.UTC)
        cpu_before = cpu_snapshot(run)
        ticks_before = machine_ticks()
        started = time.perf_counter()
        await submit_through_api(session, api, token, numbers, attachment)
        accepted = time.perf_counter() - started
        print(f"  {run.kind}: A's API accepted {sizes.documents} in {accepted:.2f} s", flush=True)
        await until_arrived(engine_a, WARMUP + sizes.documents, run)
        cpu_after = cpu_snapshot(run)
        steal = steal_share(ticks_before, machine_ticks())
        seconds, last = await outcome(engine_a, since)
        elapsed = (last - since).total_seconds()
        rate = len(seconds) / elapsed
        print(f"  {run.kind}: 01 at A for all {len(seconds)} after {elapsed:.2f} s", flush=True)
        spent = {k: cpu_after[k] - v for k, v in cpu_before.items() if k in cpu_after}
        cpu_ms = sum(v for k, v in spent.items() if k != "driver") / sizes.documents * 1000
        print(
            f"  {run.kind}: CPU ms per document: "
            + ", ".join(f"{k} {v / sizes.documents * 1000:.1f}" for k, v in spent.items())
            + f" (at this rate, 2 cores offer {2000 / rate:.0f} ms per document)",
            flush=True,
        )
        # A busy neighbour on the host shows here as steal — or not at all, when it only shares
        # the cores' caches: runs compare by their CPU per document, in interleaved pairs.
        print(f"  {run.kind}: host steal while measured: {steal} of the CPUs' time", flush=True)
        paced_since = dt.datetime.now(dt.UTC)
        start_number = WARMUP + sizes.documents + 1
        await submit_paced(
            session, api, token, range(start_number, start_number + sizes.paced), attachment
        )
        total = WARMUP + sizes.documents + sizes.paced
        await until_arrived(engine_a, total, run)
        paced, _ = await outcome(engine_a, paced_since)
        print(
            f"  {run.kind}: {len(paced)} more at {PACED_RATE:.0f}/s: submit → 01 {latency(paced)}",
            flush=True,
        )
        await stop_all(run)
        verified = await verified_at(url_b) - WARMUP
    return ExchangeFigures(
        kind=run.kind,
        accepted_rate=sizes.documents / accepted,
        rate=rate,
        latency=latency(seconds),
        paced_latency=latency(paced),
        verified_at_b=verified,
        submitted=sizes.documents + sizes.paced,
        cpu_ms=cpu_ms,
    )


async def submit_paced(
    session: aiohttp.ClientSession, url: str, token: str, numbers: Sequence[int], attachment: bytes
) -> None:
    """One submission every 1/PACED_RATE s, each in its own task (a slow answer does not delay
    the next one)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for index, number in enumerate(numbers):
        tasks.append(
            asyncio.create_task(submit_through_api(session, url, token, [number], attachment))
        )
        await asyncio.sleep(max(0.0, start + (index + 1) / PACED_RATE - loop.time()))
    await asyncio.gather(*tasks)


async def stop_all(run: Run) -> None:
    """Stop the gateways first (their last polls reach a live axis), then the axis. A process
    that fails to stop cleanly, or logged a traceback, is reported (the figures stand)."""
    for process in sorted(run.processes, key=lambda p: p.name == "axis"):
        if process.popen.poll() is None:
            code = await asyncio.to_thread(process.stop)
            if code != 0:
                print(f"  note: {process.name} exited {code}", flush=True)
        elif not process.log_file.closed:
            process.log_file.close()
        text = process.log.read_text(errors="replace")
        if "Traceback" in text:
            excerpt = text[text.index("Traceback") :].strip().splitlines()
            print(f"  note: {process.name} logged a traceback:", flush=True)
            for line in [*excerpt[:3], "  …", *excerpt[-3:]]:
                print(f"    | {line}", flush=True)


def print_profiles(run: Run, documents: int, limit: int = 25) -> None:
    import pstats

    for process in run.processes:
        if process.profile is None or not process.profile.exists():
            continue
        stats = pstats.Stats(str(process.profile))
        print(f"\nPROFILE: {run.kind}, {process.name}: main-thread CPU, whole run")
        print("  by package (ms per measured document):")
        for package, seconds in sorted(by_package(stats).items(), key=lambda kv: -kv[1])[:12]:
            print(f"    {seconds / documents * 1000:7.2f}  {package}")
        stats.sort_stats("tottime").print_stats(limit)
        stats.sort_stats("cumulative").print_stats(r"gateway|connectors|envelopes", limit)


def by_package(stats: Any) -> dict[str, float]:
    """Own CPU time grouped by top-level package (docgw's by module)."""
    totals: dict[str, float] = {}
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif any(f"/{top}/" in filename for top in ("gateway", "connectors", "envelopes")):
            key = "docgw " + "/".join(Path(filename).parts[-2:])
        elif filename.startswith("~"):
            key = f"builtin {name}"
        else:
            key = f"stdlib {Path(filename).name}"
        totals[key] = totals.get(key, 0.0) + own
    return totals


async def run_all(
    sizes: Sizes, kinds: Sequence[str], rounds: int, profile: bool, keep: Path | None
) -> int:
    """``rounds`` rounds, each the bare pipeline then docgw on each database: every docgw figure
    is compared with the bare run of its own round, so a machine slowing down between rounds
    moves both."""
    bare: list[BareFigures] = []
    figures: list[tuple[int, ExchangeFigures]] = []
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="docgw-bench-exchange-") as tmp:
        keys = Path(tmp) / "keys"
        init_keys(keys, [SENDER, RECIPIENT])
        for number in range(rounds):
            print(f"\nround {number + 1}: the bare pipeline", flush=True)
            reference = await asyncio.to_thread(run_bare, sizes.documents, CLIENTS)
            bare.append(reference)
            print(
                f"  bare: {reference.rate:,.0f} documents/s, "
                f"{reference.cpu_ms_per_document:.2f} ms CPU per document",
                flush=True,
            )
            for kind in kinds:
                if kind == "postgresql":
                    why = await postgres_available()
                    if why is not None:
                        missing[kind] = f"no PostgreSQL at {postgres_base()} ({why[:80]})"
                        print(f"\n{kind}: skipped, {missing[kind]}")
                        continue
                folder = Path(tmp) / f"{kind}-{number}"
                folder.mkdir()
                run = Run(kind=kind, folder=folder, keys=keys, profile=profile)
                print(f"round {number + 1}: {kind}: simulator, A, B as processes", flush=True)
                try:
                    figures.append((number, await bench_exchange(run, sizes)))
                finally:
                    for process in run.processes:
                        if process.popen.poll() is None:
                            process.stop()
                if profile:
                    print_profiles(run, sizes.documents + WARMUP)
                if keep is not None:
                    shutil.copytree(folder, keep / folder.name, dirs_exist_ok=True)
    print_table(TABLE_TITLE, TABLE_COLUMNS, summary_rows(bare, figures, kinds, missing))
    return 0


def summary_rows(
    bare: Sequence[BareFigures],
    figures: Sequence[tuple[int, ExchangeFigures]],
    kinds: Sequence[str],
    missing: dict[str, str],
) -> list[tuple[str, ...]]:
    """Each docgw run beside the bare run of its round, as ratios with their targets."""
    rows: list[tuple[str, ...]] = []
    for number, reference in enumerate(bare):
        rows.append((f"round {number + 1}: bare pipeline", f"{reference.rate:,.0f}/s", "1.00",
                     "-", "-", "-"))  # fmt: skip
        rows.append((f"round {number + 1}: bare CPU per document",
                     f"{reference.cpu_ms_per_document:.2f} ms", "1.00", "-", "-", "-"))  # fmt: skip
    for kind in kinds:
        found = [(n, f) for n, f in figures if f.kind == kind]
        if not found:
            rows.append((f"{kind}: not measured", missing.get(kind, "?"), "-", "-", "-", "-"))
            continue
        for number, f in found:
            rate_ratio = f.rate / bare[number].rate
            cpu_ratio = f.cpu_ms / bare[number].cpu_ms_per_document
            share = RATE_SHARE[kind]
            rows += [
                (f"round {number + 1}: {kind}: A → axis → B verified → 01 at A",
                 f"{f.rate:,.0f}/s", f"{rate_ratio:.2f}", str(f.latency), f">= {share:.2f}",
                 verdict(rate_ratio, share)),
                (f"round {number + 1}: {kind}: CPU per document, all processes",
                 f"{f.cpu_ms:.2f} ms", f"{cpu_ratio:.2f}", "-", f"<= {CPU_MULTIPLE:.1f}",
                 "meets" if cpu_ratio <= CPU_MULTIPLE else "MISSES"),
                (f"round {number + 1}: {kind}: submitted through A's API, {CLIENTS} clients",
                 f"{f.accepted_rate:,.0f}/s", "-", "-", "-", "-"),
                (f"round {number + 1}: {kind}: paced at {PACED_RATE:.0f}/s", "-", "-",
                 str(f.paced_latency), "p50 < 150 ms", "-"),
                (f"round {number + 1}: {kind}: verified and stored at B",
                 f"{f.verified_at_b:,} of {f.submitted:,}", "-", "-", "-", "-"),
            ]  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a reduced smoke run")
    parser.add_argument("--documents", type=int, help="documents to measure")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of bare pipeline + docgw (default 2)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile gateways A and B")
    parser.add_argument(
        "--keep", type=Path, help="a folder to copy the run (logs, configs, profiles) into"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.documents:
        sizes = dataclasses.replace(sizes, documents=args.documents)
    print_environment("exchange", args.quick)
    print(
        f"  documents: {sizes.documents} (+{WARMUP} to warm up), {metadata_bytes():,} bytes of "
        f"metadata JSON + a {ATTACHMENT_BYTES // 1024} KB attachment; {CLIENTS} API clients; "
        f"polls every {POLL_SECONDS * 1000:.0f} ms"
    )
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    rounds = 1 if args.quick else args.rounds
    return asyncio.run(run_all(sizes, kinds, rounds, args.profile, args.keep))


if __name__ == "__main__":
    sys.exit(main())

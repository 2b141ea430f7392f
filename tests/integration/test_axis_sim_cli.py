"""``docgw axis-sim`` as a real process: its start-time flags take effect over HTTP, on the VXP
axis and on the SOAP variant (``--soap-port``, spoken to with zeep through docgw's SOAP
connector) alike — the fault flags, ``--national-directory``, ``--systems`` with their secrets.
Each process listens on free loopback ports and is stopped with SIGTERM, as a person would stop
it with Ctrl-C; it must stop cleanly."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pki import RECEIVER, SENDER, attachment_sources, sample_header, unit

from connectors.base import (
    Delivery,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
)
from connectors.soap_axis import SoapAxisConnector
from connectors.vxp import VxpConnector
from envelopes.building import build_document_bytes
from envelopes.model import Business, Classification
from envelopes.signing import Signer

DOCGW = Path(sys.executable).parent / "docgw"
REPO = Path(__file__).resolve().parents[2]
A_SYSTEM, A_SECRET = "he-thong-a", "bi-mat-a"
B_SYSTEM, B_SECRET = "he-thong-b", "bi-mat-b"
SYSTEMS = ["--systems", f"{A_SYSTEM}:{A_SECRET}:{SENDER}", f"{B_SYSTEM}:{B_SECRET}:{RECEIVER}"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@functools.cache
def document() -> bytes:
    issued = unit(SENDER)
    data, _ = build_document_bytes(
        sample_header(),  # from SENDER to RECEIVER
        attachments=attachment_sources({"cong-van.pdf": b"%PDF-1.7\n" + bytes(range(256))}),
        business=Business(),
        signer=Signer(private_key=issued.key, certificate=issued.certificate),
    )
    return data


def delivery() -> Delivery:
    data = document()
    return Delivery(
        message_id="msg-1",
        document_id=sample_header().document_id,
        kind="document",
        sender=SENDER,
        recipients=(RECEIVER,),
        classification=Classification.THUONG,
        open_package=lambda: io.BytesIO(data),
        package_size=len(data),
        package_sha256=hashlib.sha256(data).hexdigest(),
        attempt=1,
    )


@dataclass
class Simulator:
    vxp: str
    soap: str
    http: aiohttp.ClientSession

    def vxp_connector(self, system: str, secret: str, **fields: Any) -> VxpConnector:
        return VxpConnector(
            name="axis",
            endpoint=self.vxp,
            system_id=system,
            secret=secret.encode(),
            session=self.http,
            **{"timeout": 60.0, **fields},
        )

    def soap_connector(self, system: str, secret: str, **fields: Any) -> SoapAxisConnector:
        return SoapAxisConnector(
            name="lgsp",
            endpoint=f"{self.soap}/DocumentService",
            system_id=system,
            secret=secret.encode(),
            **{"timeout_seconds": 10.0, **fields},
        )

    async def faults(self, base: str, **changes: Any) -> dict[str, Any]:
        if changes:
            request = self.http.post(f"{base}/_sim/faults", json=changes)
        else:
            request = self.http.get(f"{base}/_sim/faults")
        async with request as answer:
            assert answer.status == 200, await answer.text()
            settings: dict[str, Any] = await answer.json()
            return settings

    async def state(self, base: str) -> dict[str, Any]:
        async with self.http.get(f"{base}/_sim/state") as answer:
            snapshot: dict[str, Any] = await answer.json()
            return snapshot


@asynccontextmanager
async def axis_sim(*flags: str, startup_timeout: float = 60.0) -> AsyncIterator[Simulator]:
    port, soap_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        str(DOCGW), "axis-sim", "--port", str(port), "--soap-port", str(soap_port), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    printed: list[bytes] = []
    try:
        deadline = time.monotonic() + startup_timeout
        while not any(b"SOAP variant" in line for line in printed):
            line = await asyncio.wait_for(process.stdout.readline(), deadline - time.monotonic())
            if not line:
                raise AssertionError(f"axis-sim exited {await process.wait()}: {printed}")
            printed.append(line)
        async with aiohttp.ClientSession() as http:
            yield Simulator(
                vxp=f"http://127.0.0.1:{port}", soap=f"http://127.0.0.1:{soap_port}", http=http
            )
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                assert await asyncio.wait_for(process.wait(), 20) == 0
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def outcomes(calls: int, call: Any) -> dict[str, int]:
    seen = {"ok": 0, "unavailable": 0}
    for _ in range(calls):
        try:
            await call()
            seen["ok"] += 1
        except PeerUnavailable:
            seen["unavailable"] += 1
    return seen


async def soap_secrets_hold(sim: Simulator) -> dict[str, bytes]:
    """``--systems`` on the SOAP variant: a wrong secret is refused (FailedAuthentication), A's
    own secret delivers; what B then finds pending, by remote id, each package as fetched."""
    soap_a = sim.soap_connector(A_SYSTEM, A_SECRET)
    soap_b = sim.soap_connector(B_SYSTEM, B_SECRET, receivers=(RECEIVER,))
    intruder = sim.soap_connector(A_SYSTEM, "not-the-secret")
    try:
        with pytest.raises(PeerRefused, match="FailedAuthentication"):
            await intruder.deliver(delivery())
        assert (await soap_a.deliver(delivery())).remote_id
        items = await soap_b.pending("document")
        return {item.remote_id: await soap_b.fetch(item) for item in items}
    finally:
        for connector in (soap_a, soap_b, intruder):
            await connector.close()


def test_fault_flags_and_the_national_directory_take_effect_on_both_variants() -> None:
    flags: Sequence[str] = [
        *SYSTEMS,
        "--national-directory",
        "--seed", "3",
        "--error-rate", "0.5",
        "--latency-ms", "100",
        "--burst-5xx", "1",
        "--duplicate-delivery-rate", "1.0",
        "--hang-seconds", "7",
    ]  # fmt: skip

    async def scenario() -> None:
        async with axis_sim(*flags) as sim:
            expected = {
                "error_rate": 0.5,
                "latency_ms": 100,
                "burst_5xx": 1,
                "duplicate_delivery_rate": 1.0,
                "hang_seconds": 7.0,
                "timeout_after_commit_rate": 0.0,
                "drop_connection": False,
                "down_until": None,
            }
            assert await sim.faults(sim.vxp) == expected
            assert await sim.faults(sim.soap) == expected  # the same flags, the same faults

            # VXP: the burst first, then about half the requests fail; each waits 100 ms.
            a = sim.vxp_connector(A_SYSTEM, A_SECRET, attempts=1)
            with pytest.raises(PeerUnavailable, match="HTTP 503"):
                await a.pending("document")
            started = time.monotonic()
            seen = await outcomes(20, functools.partial(a.pending, "document"))
            assert time.monotonic() - started >= 20 * 0.1
            assert seen["ok"] > 0 and seen["unavailable"] > 0
            vxp_state = await sim.state(sim.vxp)
            assert vxp_state["counters"]["faults_burst_5xx"] == 1
            assert vxp_state["counters"]["faults_error"] == seen["unavailable"]

            # SOAP, through zeep: the same.
            soap_a = sim.soap_connector(A_SYSTEM, A_SECRET)
            try:
                with pytest.raises(PeerUnavailable, match="burst"):
                    await soap_a.organizations()
                seen = await outcomes(20, soap_a.organizations)
                assert seen["ok"] > 0 and seen["unavailable"] > 0
                soap_state = await sim.state(sim.soap)
                assert soap_state["counters"]["faults_error"] == seen["unavailable"]
            finally:
                await soap_a.close()

            # Faults off at run time, on each variant's own control.
            for base in (sim.vxp, sim.soap):
                assert (await sim.faults(base, error_rate=0, latency_ms=0))["error_rate"] == 0

            # --national-directory: about 120,000 agencies, over HTTP.
            assert (await sim.state(sim.vxp))["directory_size"] >= 120_000
            agencies = await a.agencies()
            assert len(agencies) >= 120_000
            assert {SENDER, RECEIVER} <= {e.code for e in agencies}

            # --duplicate-delivery-rate on both: one send, two deliveries to the receiver.
            b = sim.vxp_connector(B_SYSTEM, B_SECRET)
            await sim.vxp_connector(A_SYSTEM, A_SECRET).deliver(delivery())
            assert len(await b.pending("document")) == 2

            # --systems: the secrets hold on the SOAP variant too; two deliveries of one send.
            received = await soap_secrets_hold(sim)
            assert len(received) == 2
            assert len(received) == 2
            first, second = received.values()
            assert first == second

    asyncio.run(scenario())


def test_down_windows_and_commits_left_unanswered_set_at_start() -> None:
    flags = [
        *SYSTEMS,
        "--down-until", str(time.time() + 600),
        "--timeout-after-commit-rate", "1.0",
        "--drop-connection",
    ]  # fmt: skip

    async def scenario() -> None:
        async with axis_sim(*flags) as sim:
            a = sim.vxp_connector(A_SYSTEM, A_SECRET, attempts=1, timeout=5.0)
            soap_a = sim.soap_connector(A_SYSTEM, A_SECRET, timeout_seconds=5.0)
            try:
                with pytest.raises(PeerUnavailable, match="HTTP 503"):
                    await a.deliver(delivery())
                with pytest.raises(PeerUnavailable, match="down"):
                    await soap_a.deliver(delivery())

                for base in (sim.vxp, sim.soap):
                    await sim.faults(base, down_until=None)
                with pytest.raises(OutcomeUnknown):
                    await a.deliver(delivery())
                with pytest.raises(OutcomeUnknown):
                    await soap_a.deliver(delivery())
                for base in (sim.vxp, sim.soap):
                    snapshot = await sim.state(base)
                    assert snapshot["counters"]["faults_down"] == 1
                    assert snapshot["counters"]["timeouts_after_commit"] == 1
                    assert snapshot["packages"] == 1  # committed, then the connection dropped
            finally:
                await soap_a.close()

    asyncio.run(scenario())


def stopped_at_start(command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` run to its end (from the repository): it must exit 2, a usage error."""
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done
    return done


@pytest.mark.parametrize(
    "flags", [["--error-rate", "2"], ["--burst-5xx", "-1"]], ids=["rate", "negative"]
)
def test_a_fault_flag_out_of_range_stops_the_simulator_before_it_listens(
    flags: list[str],
) -> None:
    done = stopped_at_start([str(DOCGW), "axis-sim", "--port", str(free_port()), *flags])
    assert "docgw axis-sim:" in done.stderr
    assert "listening" not in done.stdout


def test_the_soap_simulator_alone_reads_the_same_system_flags() -> None:
    """``python -m connectors.simulators.soap_axis`` takes ``--systems``, ``--seed`` and
    ``--max-skew`` as ``docgw axis-sim`` does: the systems' secrets hold, a malformed system
    stops it before it listens."""
    bad = stopped_at_start(
        [sys.executable, "-m", "connectors.simulators.soap_axis", "--systems", "no-secret"]
    )
    assert "is not SYSTEM:SECRET:UNIT[,UNIT]" in bad.stderr

    async def scenario() -> None:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connectors.simulators.soap_axis", "--port", str(port),
            *SYSTEMS, "--seed", "3", "--max-skew", "0",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.startswith(b"SOAP axis simulator: "), line
            # --max-skew 0 is no check: a skew of 0 s would refuse every token below.
            async with aiohttp.ClientSession() as http:
                sim = Simulator(vxp="", soap=f"http://127.0.0.1:{port}", http=http)
                assert len(await soap_secrets_hold(sim)) == 1
                snapshot = await sim.state(sim.soap)
                assert snapshot["systems"] == {
                    A_SYSTEM: {"units": [SENDER]},
                    B_SYSTEM: {"units": [RECEIVER]},
                }
                assert snapshot["counters"]["auth_failures"] == 1
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()

    asyncio.run(scenario())

"""The archive: ASiC-E containers checked by tools that are not docgw (``unzip``, ``openssl cms``,
``openssl ts``, digests recomputed here), re-archived as statuses arrive, timestamped by an RFC 3161
authority on loopback (``openssl ts -reply``), purged after retention — never under legal hold,
never out of date."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from import_support import header, history, signer, status
from integration_support import RECIPIENT, SENDER
from lxml import etree

from envelopes.building import build_status
from envelopes.model import StatusCode
from envelopes.namespaces import QCVN
from gateway.bootstrap import Gateway
from gateway.scheduler import create_scheduler
from gateway.store.tables import archive_items, audit_events, blobs, messages
from gateway.usecases import archive, importing, operations
from gateway.usecases.errors import NotFound
from gateway.usecases.jobs import scheduled_jobs

MIMETYPE = b"application/vnd.etsi.asic-e+zip"
ASIC = "{http://uri.etsi.org/02918/v1.2.1#}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


async def _import(gateway: Gateway, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        outcome = await importing.import_file(gateway, name, data)
        assert outcome.outcome == "imported", outcome


async def _sent_document_id(gateway: Gateway) -> str:
    async with gateway.engine.connect() as conn:
        found = await conn.scalar(
            sa.select(messages.c.id).where(
                messages.c.kind == "document", messages.c.direction == "out"
            )
        )
    assert found is not None
    return str(found)


def late_status(keys_dir: Path, code: StatusCode, minute: int) -> bytes:
    """H41's later status about the sent document 0 of import_support.history."""
    doc = header(SENDER, RECIPIENT, 1000)
    return build_status(status(doc, RECIPIENT, code, minute), signer=signer(keys_dir, RECIPIENT))


def check_container(path: Path, out: Path, ca: Path) -> dict[str, bytes]:
    """Everything a relying party checks, without docgw: the ZIP, ``mimetype`` first and stored,
    every data object's digest against the manifest, the CMS signature over the manifest."""
    tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    raw = path.read_bytes()
    # Local header of the first entry: name at 30, stored (method 0), no extra field.
    assert raw[30:38] == b"mimetype" and raw[8:10] == b"\0\0" and raw[28:30] == b"\0\0"
    assert raw[38 : 38 + len(MIMETYPE)] == MIMETYPE
    out.mkdir()
    subprocess.run(["unzip", "-q", str(path), "-d", str(out)], check=True)
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    manifest = etree.fromstring(
        files["META-INF/ASiCManifest.xml"], etree.XMLParser(resolve_entities=False, no_network=True)
    )
    listed = {}
    for reference in manifest.iter(f"{ASIC}DataObjectReference"):
        algorithm = reference.find(f"{DS}DigestMethod").get("Algorithm")  # type: ignore[union-attr]
        assert algorithm == "http://www.w3.org/2001/04/xmlenc#sha256"
        listed[reference.get("URI")] = reference.findtext(f"{DS}DigestValue")
    data_objects = {n for n in files if not n.startswith("META-INF/") and n != "mimetype"}
    assert set(listed) == data_objects
    for name, digest in listed.items():
        assert base64.b64encode(hashlib.sha256(files[name]).digest()).decode() == digest, name
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
         "-in", str(out / "META-INF/signature.p7s"),
         "-content", str(out / "META-INF/ASiCManifest.xml"),
         "-CAfile", str(ca), "-out", "/dev/null"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    return files


def test_containers_verify_without_docgw_and_follow_late_statuses(
    make_gateway: Callable[..., Any], tmp_path: Path, keys_dir: Path
) -> None:
    async def scenario() -> tuple[bytes, bytes, int]:
        async with make_gateway() as gateway:
            await _import(gateway, history(keys_dir, 1))
            first = await archive.archive_due(gateway)
            assert len(first.archived) == 2  # the sent and the received document
            assert (await archive.archive_due(gateway)).archived == ()  # nothing changed
            sent = await _sent_document_id(gateway)
            before = await archive.export(gateway, sent)
            await _import(gateway, {"late-04": late_status(keys_dir, StatusCode.ASSIGNED, 9)})
            again = await archive.archive_due(gateway)
            assert again.archived == (sent,)  # out of date: archived again
            after = await archive.export(gateway, sent)
            async with gateway.engine.connect() as conn:
                old = hashlib.sha256(before).hexdigest()
                left = await conn.scalar(
                    sa.select(sa.func.count()).select_from(blobs).where(blobs.c.sha256 == old)
                )
            # A recipient that moves makes it out of date too, once it is settled again.
            await operations.resend(gateway, sent, reason="gửi lại", actor="test")
            assert (await archive.archive_due(gateway)).archived == ()  # queued: not settled
            await operations.cancel(gateway, sent, reason="thôi", actor="test")
            assert (await archive.archive_due(gateway)).archived == (sent,)
            latest = zipfile.ZipFile(io.BytesIO(await archive.export(gateway, sent)))
            assert '"cancelled"' in latest.read("history.json").decode()
            return before, after, int(left or 0)

    before, after, old_blobs = asyncio.run(scenario())
    assert old_blobs == 0  # the replaced container is gone
    ca = keys_dir / "ca.cert.pem"
    (tmp_path / "before.asice").write_bytes(before)
    (tmp_path / "after.asice").write_bytes(after)
    check_container(tmp_path / "before.asice", tmp_path / "before", ca)
    files = check_container(tmp_path / "after.asice", tmp_path / "after", ca)
    statuses = sorted(n for n in files if n.startswith("statuses/"))
    assert [n.split("-")[1] for n in statuses] == ["01", "03", "04"]
    assert "package.edxml" in files and "history.json" in files
    assert b"1000/CV-CU" in files["package.edxml"]
    # The package inside carries its own XML-DSig, which xmlsec1 checks against the CA.
    ids = [a for e in ("MessageHeader", "Bussiness", "edXMLManifest", "ContentTransferEncoded")
           for a in ("--id-attr:Id", f"{QCVN}:{e}")]  # fmt: skip
    package = subprocess.run(
        ["xmlsec1", "--verify", "--enabled-key-data", "x509", "--trusted-pem", str(ca), *ids,
         str(tmp_path / "after" / "package.edxml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert package.returncode == 0 and "OK" in package.stdout + package.stderr, package.stderr
    # The checks can fail: a changed status breaks its digest, a changed manifest the signature.
    tampered = tmp_path / "after" / statuses[0]
    tampered.write_bytes(tampered.read_bytes().replace(b"01", b"06", 1))
    listed = hashlib.sha256(tampered.read_bytes()).digest()
    assert base64.b64encode(listed) not in files["META-INF/ASiCManifest.xml"]
    manifest = tmp_path / "after" / "META-INF/ASiCManifest.xml"
    manifest.write_bytes(manifest.read_bytes().replace(b"statuses/", b"statuseZ/", 1))
    refused = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
         "-in", str(tmp_path / "after" / "META-INF/signature.p7s"), "-content", str(manifest),
         "-CAfile", str(ca), "-out", "/dev/null"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0


# --------------------------------------------------------------------------- RFC 3161 on loopback


def _tsa(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a time-stamping unit it issued: (ca.pem, tsa.pem, tsa.key)."""
    now = dt.datetime.now(dt.UTC)

    def issue(
        subject: str, key: rsa.RSAPrivateKey, issuer: x509.Name, signer_key: rsa.RSAPrivateKey
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
        )
        is_ca = subject.endswith("CA")
        builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), True)
        if not is_ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
        return builder.sign(signer_key, hashes.SHA256())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA CA")])
    ca = issue("Test TSA CA", ca_key, ca_name, ca_key)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = issue("Test TSA", tsa_key, ca_name, ca_key)
    paths = directory / "ca.pem", directory / "tsa.pem", directory / "tsa.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        tsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def _start_tsa(directory: Path) -> tuple[web.AppRunner, int]:
    """``openssl ts -reply`` behind HTTP on loopback, as RFC 3161 §3.4 has it."""
    ca, cert, key = _tsa(directory)
    config = directory / "tsa.cnf"
    config.write_text(
        "[tsa]\ndefault_tsa = tsa_config\n[tsa_config]\n"
        f"serial = {directory}/serial\nsigner_digest = sha256\n"
        "default_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\n"
        "ess_cert_id_alg = sha256\n",
        encoding="utf-8",
    )
    (directory / "serial").write_text("01\n")

    async def reply(request: web.Request) -> web.Response:
        assert request.content_type == "application/timestamp-query"
        query = directory / "query.tsq"
        query.write_bytes(await request.read())
        answer = directory / "reply.tsr"
        process = await asyncio.create_subprocess_exec(
            "openssl", "ts", "-reply", "-config", str(config), "-queryfile", str(query),
            "-signer", str(cert), "-inkey", str(key), "-chain", str(ca), "-out", str(answer),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await process.wait() == 0
        return web.Response(body=answer.read_bytes(), content_type="application/timestamp-reply")

    app = web.Application()
    app.router.add_post("/tsa", reply)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


def test_a_configured_timestamp_authority_stamps_the_signature(
    make_gateway: Callable[..., Any], tmp_path: Path, keys_dir: Path
) -> None:
    tsa_dir = tmp_path / "tsa"
    tsa_dir.mkdir()

    async def scenario() -> bytes:
        runner, port = await _start_tsa(tsa_dir)
        try:
            extra = f'[archive]\ntsa_url = "http://127.0.0.1:{port}/tsa"\n'
            async with make_gateway(extra=extra) as gateway:
                await _import(gateway, history(keys_dir, 1))
                done = await archive.archive_due(gateway)
                assert done.timestamped == 2
                return await archive.export(gateway, await _sent_document_id(gateway))
        finally:
            await runner.cleanup()

    container = tmp_path / "stamped.asice"
    container.write_bytes(asyncio.run(scenario()))
    files = check_container(container, tmp_path / "stamped", keys_dir / "ca.cert.pem")
    assert "META-INF/timestamp.tst" in files
    verified = subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in",
         str(tmp_path / "stamped/META-INF/timestamp.tst"),
         "-data", str(tmp_path / "stamped/META-INF/signature.p7s"),
         "-CAfile", str(tsa_dir / "ca.pem"), "-untrusted", str(tsa_dir / "tsa.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verified.returncode == 0 and "OK" in verified.stdout, verified.stdout + verified.stderr
    # The token is over the signature: other data does not verify against it.
    other = tmp_path / "other.bin"
    other.write_bytes(b"not the signature")
    refused = subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in",
         str(tmp_path / "stamped/META-INF/timestamp.tst"), "-data", str(other),
         "-CAfile", str(tsa_dir / "ca.pem"), "-untrusted", str(tsa_dir / "tsa.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0


# ------------------------------------------------------------------------- retention, legal hold


def test_retention_purges_only_what_is_archived_current_and_not_held(
    make_gateway: Callable[..., Any], keys_dir: Path
) -> None:
    async def scenario() -> None:
        async with make_gateway(extra="[archive]\nretention_days = 30\n") as gateway:
            await _import(gateway, history(keys_dir, 3))
            assert len((await archive.archive_due(gateway)).archived) == 6
            async with gateway.engine.begin() as conn:
                ids = list(
                    await conn.scalars(
                        sa.select(messages.c.id)
                        .where(messages.c.kind == "document")
                        .order_by(messages.c.document_id, messages.c.direction)
                    )
                )
                # All six are past retention, but the newest by creation is kept young.
                old = gateway.clock() - dt.timedelta(days=40)
                await conn.execute(
                    messages.update().where(messages.c.id.in_(ids[:5])).values(created_at=old)
                )
            held, young = ids[1], ids[5]
            await archive.set_hold(gateway, held, hold=True, reason="Thanh tra 2026/15")
            # A status about the sent document 0 arrives: its container is out of date.
            await _import(gateway, {"late-05": late_status(keys_dir, StatusCode.IN_PROGRESS, 8)})
            stale = await _doc_zero(gateway)
            assert stale not in (held, young)
            purged = await archive.purge_expired(gateway)
            assert set(purged) == set(ids) - {held, young, stale}
            with pytest.raises(NotFound):
                await archive.export(gateway, purged[0])
            await archive.export(gateway, held)  # still there
            async with gateway.engine.connect() as conn:
                logged = set(
                    await conn.scalars(
                        sa.select(audit_events.c.message_id).where(
                            audit_events.c.action == "archive_purged"
                        )
                    )
                )
                containers = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(archive_items)
                    .where(archive_items.c.container_sha256.is_not(None))
                )
            assert logged == set(purged)
            assert containers == 3
            # Released, the held one goes at the next purge; the stale one once re-archived.
            await archive.set_hold(gateway, held, hold=False, reason="Thanh tra đã xong")
            assert (await archive.archive_due(gateway)).archived == (stale,)
            assert set(await archive.purge_expired(gateway)) == {held, stale}

    asyncio.run(scenario())


async def _doc_zero(gateway: Gateway) -> str:
    doc = header(SENDER, RECIPIENT, 1000)
    async with gateway.engine.connect() as conn:
        found = await conn.scalar(
            sa.select(messages.c.id).where(
                messages.c.kind == "document", messages.c.document_id == doc.document_id
            )
        )
    return str(found)


def test_the_scheduler_runs_the_archive_job(
    make_gateway: Callable[..., Any], keys_dir: Path
) -> None:
    """The job is wired: run as the scheduler runs it, it archives what is due."""

    async def scenario() -> None:
        async with make_gateway(extra="[archive]\ninterval_seconds = 7\n") as gateway:
            await _import(gateway, history(keys_dir, 1))
            scheduler = create_scheduler(gateway, scheduled_jobs(gateway))
            scheduler.start(paused=True)
            try:
                job = scheduler.get_job("archive")
                assert job is not None and job.trigger.seconds == 7
                await job.func()
            finally:
                scheduler.shutdown(wait=False)
            async with gateway.engine.connect() as conn:
                count = await conn.scalar(sa.select(sa.func.count()).select_from(archive_items))
            assert count == 2

    asyncio.run(scenario())

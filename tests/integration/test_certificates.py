"""Certificates over their life, on both databases, over real HTTP on loopback:

* an upload refused with its own code for each fault (expired, not yet valid, wrong key usage,
  untrusted chain, revoked by a CRL held, a key too weak), through ``POST /api/v1/units`` and a
  unit request;
* a CRL (made by the test CA, checked by ``openssl crl``) served over HTTP, fetched by the
  scheduled ``crls`` job: the registered certificate it lists is revoked, the unit shows why, and
  the unit's packages verify no more;
* rollover: packages signed with the old or the new key verify during the overlap, only the new
  one's after; the new one is current at once; the expiry list leaves the retired one out;
* ``docgw keys rotate``'s CSR verified by ``openssl req -verify``, the key 0600; ``keys install``
  registers the issued certificate, keeps the previous pair;
* a unit request's decision mailed to its requester (an aiosmtpd server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.policy
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from integration_support import OTHER, RECIPIENT, SENDER, register_all, write_config
from pki import NEW_DOCUMENT, build_signed

from envelopes.errors import GatewayError, VerificationError
from envelopes.reading import read_package
from envelopes.signing import Signer
from envelopes.verification import verify_document
from gateway import keystore
from gateway.bootstrap import Gateway, build
from gateway.keystore import Issued, create_ca, issue_unit_certificate, load_issued
from gateway.settings import load_settings
from gateway.store import unit_queries
from gateway.store.database import migrate
from gateway.usecases import certificates, jobs, own_keys, registry, tokens
from gateway.usecases.errors import UnknownSender
from gateway.usecases.packages import current_certificate, trust_for
from gateway.web.app import create_app

NEW_UNIT = "000.02.00.G22"
OPENSSL = shutil.which("openssl")
#: Another document of the same sender (the first one's DocumentId would be a duplicate).
LATER_DOCUMENT = dataclasses.replace(
    NEW_DOCUMENT, document_id=NEW_DOCUMENT.document_id.replace("7816", "7817")
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def gateway_with(
    database_url: str, keys_dir: Path, tmp_path: Path, *, anchors: bool, extra: str = ""
) -> AsyncIterator[Gateway]:
    """make_gateway's gateway, with ``keys.trust_anchors`` = the keys folder's CA when
    ``anchors``."""
    config = write_config(
        tmp_path / f"docgw-{uuid.uuid4().hex[:6]}.toml",
        database_url=database_url,
        keys_dir=keys_dir,
        local_units=(SENDER,),
        extra='[channels.axis]\nkind = "fake"\n' + extra,
    )
    if anchors:
        text = config.read_text(encoding="utf-8")
        anchor = f'trust_anchors = ["{keys_dir / keystore.CA_CERT}"]\n'
        config.write_text(text.replace("[keys]\n", "[keys]\n" + anchor, 1), encoding="utf-8")
    gateway = await build(load_settings(config, {}), connectors=None)
    try:
        await migrate(gateway.engine)
        await register_all(gateway, keys_dir)
        yield gateway
    finally:
        await gateway.close()


def dev_ca(keys_dir: Path) -> Issued:
    return load_issued(keys_dir / keystore.CA_KEY, keys_dir / keystore.CA_CERT)


def pem(issued: Issued) -> str:
    return issued.cert_pem.decode()


def leaf(
    ca: Issued,
    *,
    key_usage: x509.KeyUsage | None = None,
    key_size: int = 2048,
    not_before: dt.datetime | None = None,
    days: float = 365,
) -> Issued:
    """A unit certificate issued by ``ca`` with what a case needs different."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    usage = key_usage or signing_usage()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, NEW_UNIT)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(usage, critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key=key, certificate=cert)


def signing_usage(*, sign: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def crl_of(ca: Issued, *revoked: x509.Certificate) -> bytes:
    """A DER CRL of ``ca`` listing ``revoked`` (keyCompromise)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + dt.timedelta(days=7))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - dt.timedelta(minutes=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


async def problem(answer: Any) -> tuple[int, str, str | None]:
    body = await answer.json()
    return answer.status, body.get("code"), body.get("element")


def test_each_fault_of_an_upload_is_refused_with_its_own_code(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    ca = dev_ca(keys_dir)
    revoked = leaf(ca)
    crl_dir = tmp_path / "crls"
    crl_dir.mkdir()
    (crl_dir / "dev.crl").write_bytes(crl_of(ca, revoked.certificate))
    now = dt.datetime.now(dt.UTC)
    cases = {
        "CERT_EXPIRED": leaf(ca, not_before=now - dt.timedelta(days=400), days=365),
        "CERT_NOT_YET_VALID": leaf(ca, not_before=now + dt.timedelta(days=2)),
        "CERT_KEY_USAGE": leaf(ca, key_usage=signing_usage(sign=False)),
        "CERT_UNTRUSTED": leaf(create_ca()),
        "CERT_KEY_TOO_WEAK": leaf(ca, key_size=1024),
        "CERT_REVOKED": revoked,
    }

    async def scenario() -> None:
        async with (
            gateway_with(
                database_url,
                keys_dir,
                tmp_path,
                anchors=True,
                extra=f'[certificates]\ncrl_dir = "{crl_dir}"\n',
            ) as gateway,
            TestClient(TestServer(create_app(gateway))) as client,
        ):
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            member = bearer(
                await tokens.create_token(gateway, name="vpcp", role="member", unit_code=SENDER)
            )
            refreshed = await client.post("/api/v1/certificates/crls/refresh", headers=admin)
            assert refreshed.status == 200, await refreshed.text()
            assert (await refreshed.json())["read"] == [str(crl_dir / "dev.crl")]
            held = await (await client.get("/api/v1/certificates/crls", headers=admin)).json()
            assert held["items"][0]["issuer"] == ca.certificate.subject.rfc4514_string()
            for code, issued in cases.items():
                body = {"code": NEW_UNIT, "name": "Vụ Tổng hợp", "certificate_pem": pem(issued)}
                answer = await client.post("/api/v1/units", json=body, headers=admin)
                assert await problem(answer) == (422, code, "certificate"), code
                # The same rule when a member asks for the unit.
                request = {"code": NEW_UNIT, "name": "Vụ Tổng hợp", "parent_code": SENDER}
                answer = await client.post(
                    "/api/v1/unit-requests",
                    json={**request, "certificates": [pem(issued)]},
                    headers=member,
                )
                assert await problem(answer) == (422, code, "certificates[0]"), code
            async with gateway.engine.connect() as conn:
                assert await unit_queries.get_unit(conn, NEW_UNIT) is None
            # A good one passes.
            body = {"code": NEW_UNIT, "name": "Vụ Tổng hợp", "certificate_pem": pem(leaf(ca))}
            answer = await client.post("/api/v1/units", json=body, headers=admin)
            assert answer.status == 201, await answer.text()

    asyncio.run(scenario())


async def serve_bytes(path: str, data: bytes) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="application/pkix-crl")

    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}{path}"


@pytest.mark.skipif(OPENSSL is None, reason="needs openssl")
def test_a_crl_fetched_by_the_job_revokes_what_it_lists_and_its_packages_verify_no_more(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    ca = dev_ca(keys_dir)
    sender_pair = load_issued(*keystore.unit_paths(keys_dir, SENDER))
    crl = crl_of(ca, sender_pair.certificate)
    # The CRL is a real one: openssl checks its signature against the CA.
    (tmp_path / "list.crl").write_bytes(crl)
    checked = subprocess.run(
        [OPENSSL, "crl", "-inform", "DER", "-in", str(tmp_path / "list.crl"), "-noout",
         "-CAfile", str(keys_dir / keystore.CA_CERT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout
    sender_signer = Signer.from_pem(sender_pair.key_pem, sender_pair.cert_pem)
    package = build_signed({"a.txt": b"x"}, sender_signer)
    later = build_signed({"b.txt": b"y"}, sender_signer, LATER_DOCUMENT)

    async def scenario() -> None:
        runner, url = await serve_bytes("/ca.crl", crl)
        try:
            extra = f'[certificates]\ncrl_urls = ["{url}"]\ncrl_refresh_hours = 6\n'
            async with (
                gateway_with(database_url, keys_dir, tmp_path, anchors=True, extra=extra) as gw,
                TestClient(TestServer(create_app(gw))) as client,
            ):
                async with gw.reader.connect() as conn:
                    verify_document(read_package(package), await trust_for(gw, conn, SENDER))
                admin = bearer(await tokens.create_token(gw, name="admin", role="admin"))
                xml = {**admin, "Content-Type": "application/xml"}
                taken = await client.post("/api/v1/inbox", data=package, headers=xml)
                assert taken.status == 201, await taken.text()
                [job] = [j for j in jobs.scheduled_jobs(gw) if j.name == "crls"]
                assert job.seconds == 6 * 3600 and job.at_start
                done = await job.run()
                assert done.revoked == ((sender_pair_fingerprint(sender_pair), SENDER),)
                # A package its revoked certificate signed is refused at intake.
                refused = await client.post("/api/v1/inbox", data=later, headers=xml)
                assert await problem(refused) == (422, "UNKNOWN_SENDER", None)
                shown = await (await client.get(f"/api/v1/units/{SENDER}", headers=admin)).json()
                [certificate] = shown["certificates"]
                assert certificate["revoked"] is True
                assert certificate["revoked_reason"].startswith("CRL of ")
                assert "key_compromise" in certificate["revoked_reason"]
                async with gw.reader.connect() as conn:
                    with pytest.raises(UnknownSender, match="revoked"):
                        await trust_for(gw, conn, SENDER)
                    assert await current_certificate(conn, SENDER, gw.clock()) is None
                # Read again: nothing more to revoke.
                assert (await job.run()).revoked == ()
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def sender_pair_fingerprint(issued: Issued) -> str:
    return issued.certificate.fingerprint(hashes.SHA256()).hex()


def test_rollover_both_verify_during_the_overlap_then_only_the_new_one(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    ca = dev_ca(keys_dir)
    old = load_issued(*keystore.unit_paths(keys_dir, SENDER))
    new = issue_unit_certificate(ca, SENDER)
    signed_old = build_signed({"a.txt": b"old"}, Signer.from_pem(old.key_pem, old.cert_pem))
    signed_new = build_signed({"a.txt": b"new"}, Signer.from_pem(new.key_pem, new.cert_pem))

    async def verifies(gateway: Gateway, package: bytes) -> bool:
        async with gateway.reader.connect() as conn:
            trust = await trust_for(gateway, conn, SENDER)
        try:
            verify_document(read_package(package), trust)
        except VerificationError:
            return False
        return True

    async def scenario() -> None:
        extra = "[certificates]\noverlap_days = 10\n"
        async with gateway_with(database_url, keys_dir, tmp_path, anchors=True, extra=extra) as gw:
            start = dt.datetime.now(dt.UTC)
            gw.clock = lambda: start
            unit = (await registry.get_unit(gw, SENDER)).unit
            await registry.register_unit(gw, unit, certificate_pem=pem(new), actor="test", given=())
            async with gw.reader.connect() as conn:
                current = await current_certificate(conn, SENDER, start)
            assert current == new.certificate  # sealing uses the newest at once
            assert await verifies(gw, signed_old) and await verifies(gw, signed_new)
            gw.clock = lambda: start + dt.timedelta(days=9, hours=23)
            assert await verifies(gw, signed_old)
            gw.clock = lambda: start + dt.timedelta(days=10, minutes=1)
            assert not await verifies(gw, signed_old)
            assert await verifies(gw, signed_new)
            detail = await registry.get_unit(gw, SENDER)
            retired = {c.fingerprint_sha256: c.retired for c in detail.certificates}
            assert retired == {
                sender_pair_fingerprint(old): True,
                sender_pair_fingerprint(new): False,
            }
            # The expiry list: within two years both would, but the retired one is left out.
            listed = await certificates.expiring(gw, days=3 * 365)
            assert sender_pair_fingerprint(old) not in {e.fingerprint_sha256 for e in listed}
            assert sender_pair_fingerprint(new) in {e.fingerprint_sha256 for e in listed}

    asyncio.run(scenario())


def test_the_expiry_list_over_the_api(database_url: str, keys_dir: Path, tmp_path: Path) -> None:
    ca = dev_ca(keys_dir)
    soon = issue_unit_certificate(ca, OTHER, days=20)

    async def scenario() -> None:
        async with (
            gateway_with(database_url, keys_dir, tmp_path, anchors=True) as gw,
            TestClient(TestServer(create_app(gw))) as client,
        ):
            admin = bearer(await tokens.create_token(gw, name="admin", role="admin"))
            member = bearer(
                await tokens.create_token(gw, name="m", role="member", unit_code=SENDER)
            )
            unit = (await registry.get_unit(gw, OTHER)).unit
            await registry.register_unit(
                gw, unit, certificate_pem=pem(soon), actor="test", given=()
            )
            answer = await client.get("/api/v1/certificates/expiring?days=30", headers=admin)
            assert answer.status == 200, await answer.text()
            [item] = (await answer.json())["items"]
            assert item["unit_code"] == OTHER and item["is_local"] is False
            assert item["days_left"] in (19, 20)
            listed = await (
                await client.get("/api/v1/certificates/expiring?days=10", headers=admin)
            ).json()
            assert listed["items"] == []
            bad = await client.get("/api/v1/certificates/expiring?days=-1", headers=admin)
            assert await problem(bad) == (400, "BAD_REQUEST", "days")
            forbidden = await client.get("/api/v1/certificates/expiring", headers=member)
            assert forbidden.status == 403

    asyncio.run(scenario())


@pytest.mark.skipif(OPENSSL is None, reason="needs openssl")
def test_keys_rotate_makes_a_csr_openssl_verifies_and_install_keeps_the_old_key(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    own = tmp_path / "keys"
    shutil.copytree(keys_dir, own)
    key_path, csr_path = keystore.rotate(own, SENDER, key_size=2048)
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    checked = subprocess.run(
        [OPENSSL, "req", "-verify", "-in", str(csr_path), "-noout", "-text"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "verify OK" in checked.stdout + checked.stderr
    assert "Digital Signature" in checked.stdout
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    old_cert = (own / f"{SENDER}.cert.pem").read_bytes()
    assert csr.subject == x509.load_pem_x509_certificate(old_cert).subject
    # The CA issues it (openssl x509 -req, as a CA would).
    issued_path = tmp_path / "issued.pem"
    made = subprocess.run(
        [OPENSSL, "x509", "-req", "-in", str(csr_path), "-CA", str(own / keystore.CA_CERT),
         "-CAkey", str(own / keystore.CA_KEY), "-CAcreateserial", "-days", "365",
         "-copy_extensions", "copyall", "-out", str(issued_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    stranger = issue_unit_certificate(dev_ca(own), SENDER).cert_pem

    async def scenario() -> None:
        config = write_config(
            tmp_path / "docgw.toml",
            database_url=database_url,
            keys_dir=own,
            local_units=(SENDER,),
        )
        gateway = await build(load_settings(config, {}), connectors=None)
        try:
            await migrate(gateway.engine)
            await register_all(gateway, own)
            with pytest.raises(GatewayError, match="does not certify the pending key"):
                await own_keys.install_certificate(gateway, SENDER, stranger, actor="test")
            installed = await own_keys.install_certificate(
                gateway, SENDER, issued_path.read_bytes(), actor="test"
            )
            assert installed.read_bytes() == issued_path.read_bytes()
            detail = await registry.get_unit(gateway, SENDER)
            assert len(detail.certificates) == 2
            async with gateway.reader.connect() as conn:
                current = await current_certificate(conn, SENDER, gateway.clock())
            assert current is not None
            assert current.public_bytes(serialization.Encoding.PEM) == issued_path.read_bytes()
        finally:
            await gateway.close()
        old_key, old_cert_path = keystore.previous_paths(own, SENDER)
        assert old_cert_path.read_bytes() == old_cert
        assert os.stat(old_key).st_mode & 0o777 == 0o600
        assert os.stat(own / f"{SENDER}.key.pem").st_mode & 0o777 == 0o600
        assert not key_path.exists() and not csr_path.exists()
        # The next start loads the previous pair (sealed copies for it still open).
        rebuilt = await build(load_settings(config, {}), connectors=None)
        try:
            assert SENDER in rebuilt.previous_signers
        finally:
            await rebuilt.close()

    asyncio.run(scenario())


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def test_the_requester_is_mailed_the_decision(
    database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    extra = (
        f'[reports]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_starttls = false\n'
        'mail_from = "docgw@example.vn"\nmail_to = ["bao-cao@example.vn"]\n'
    )

    async def scenario() -> None:
        async with (
            gateway_with(database_url, keys_dir, tmp_path, anchors=False, extra=extra) as gw,
            TestClient(TestServer(create_app(gw))) as client,
        ):
            admin = bearer(await tokens.create_token(gw, name="admin", role="admin"))
            member = bearer(
                await tokens.create_token(gw, name="vpcp", role="member", unit_code=SENDER)
            )
            for code, verb in ((NEW_UNIT, "approve"), ("000.03.00.G22", "refuse")):
                body = {
                    "code": code,
                    "name": "Vụ Pháp chế",
                    "parent_code": SENDER,
                    "mail": "vuphapche@chinhphu.vn",
                }
                made = await client.post("/api/v1/unit-requests", json=body, headers=member)
                assert made.status == 201, await made.text()
                number = (await made.json())["id"]
                answer = await client.post(
                    f"/api/v1/unit-requests/{number}/{verb}",
                    json={"reason": "theo Quyết định 12/QĐ"},
                    headers=admin,
                )
                assert answer.status == 200, await answer.text()

    try:
        asyncio.run(scenario())
    finally:
        smtp.stop()
    approved, refused = inbox.messages
    assert approved["To"] == "vuphapche@chinhphu.vn"
    assert "approved" in approved["Subject"] and NEW_UNIT in approved["Subject"]
    assert "theo Quyết định 12/QĐ" in approved.get_content()
    assert "refused" in refused["Subject"] and "bị từ chối" in refused["Subject"]
    assert RECIPIENT not in approved.get_content()


@pytest.mark.skipif(OPENSSL is None, reason="needs openssl")
def test_the_cli_lists_expiring_refreshes_crls_refuses_and_rotates(tmp_path: Path) -> None:
    """``docgw`` as a real process on the SQLite ``docgw init`` makes (its trust anchor: the
    development CA)."""
    home = tmp_path / "home"
    docgw_bin = Path(sys.executable).parent / "docgw"

    def docgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(docgw_bin), *args], capture_output=True, text=True, timeout=120, check=False
        )

    assert docgw("init", "--dir", str(home), "--unit", SENDER).returncode == 0
    config = home / "docgw.toml"
    (home / "crls").mkdir()
    with config.open("a", encoding="utf-8") as handle:
        handle.write('\n[certificates]\ncrl_dir = "crls"\n')
    keys = home / "keys"
    ca = dev_ca(keys)
    expired = leaf(ca, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=400), days=365)
    (tmp_path / "expired.pem").write_bytes(expired.cert_pem)
    refused = docgw(
        "--config", str(config), "units", "add", NEW_UNIT, "--name", "Vụ Tổng hợp",
        "--cert", str(tmp_path / "expired.pem"),
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: CERT_EXPIRED") and "[certificate]" in refused.stderr

    listed = docgw("--config", str(config), "units", "certificates", "--expiring-days", "800")
    assert listed.returncode == 0, listed.stderr
    assert SENDER in listed.stdout and "local" in listed.stdout
    none = docgw("--config", str(config), "units", "certificates", "--expiring-days", "10")
    assert "no certificate expires within 10 days" in none.stdout

    peer = load_issued(*keystore.unit_paths(keys, "000.00.00.H41"))  # init's demo peer
    (home / "crls" / "dev.crl").write_bytes(crl_of(ca, peer.certificate))
    refreshed = docgw("--config", str(config), "units", "crls", "--refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "revoked " in refreshed.stdout and "000.00.00.H41" in refreshed.stdout
    held = docgw("--config", str(config), "units", "crls")
    assert ca.certificate.subject.rfc4514_string() in held.stdout

    rotated = docgw("keys", "rotate", "--dir", str(keys), "--unit", SENDER, "--key-size", "2048")
    assert rotated.returncode == 0, rotated.stderr
    key_path, csr_path = keystore.pending_paths(keys, SENDER)
    assert key_path.stat().st_mode & 0o777 == 0o600
    issued = tmp_path / "issued.pem"
    made = subprocess.run(
        [OPENSSL, "x509", "-req", "-in", str(csr_path), "-CA", str(keys / keystore.CA_CERT),
         "-CAkey", str(keys / keystore.CA_KEY), "-CAcreateserial", "-days", "365",
         "-copy_extensions", "copyall", "-out", str(issued)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    installed = docgw("--config", str(config), "keys", "install", "--unit", SENDER, str(issued))
    assert installed.returncode == 0, installed.stderr
    assert (keys / f"{SENDER}.cert.pem").read_bytes() == issued.read_bytes()
    shown = docgw("--config", str(config), "units", "certificates", "--expiring-days", "800")
    lines = [line for line in shown.stdout.splitlines() if line.startswith(SENDER)]
    assert len(lines) == 2  # both verify during the overlap

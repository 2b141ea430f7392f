"""The sealed container against Debian's ``openssl cms``, both ways: real processes, real files.

* docgw seals (the library, and ``docgw package build --seal-for``) → ``openssl cms -decrypt``
  recovers the exact bytes;
* ``openssl cms -encrypt -aes-256-gcm`` seals, in DER and in the streamed indefinite-length form →
  docgw opens it (the library, and ``docgw package open``);
* for RSA-OAEP and for ECDH (P-256, and P-384), with keys and certificates made by openssl itself;
* what docgw refuses from openssl: PKCS#1 v1.5 key transport, EnvelopedData (AES-CBC, no tag).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from envelopes import dgwseal1, sealing
from envelopes.errors import SealError
from envelopes.sealing import SealFormat, sniff

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

REPO = Path(__file__).resolve().parents[2]
DOCGW = Path(sys.executable).parent / "docgw"
#: Three 1 MiB chunks and a bit: the streams cross chunk boundaries both ways.
PAYLOAD = os.urandom(3 * 1024 * 1024 + 4097)


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@dataclass(frozen=True)
class Party:
    kind: str
    key_path: Path
    cert_path: Path

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    @property
    def key(self) -> PrivateKeyTypes:
        return serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)

    def encrypt_options(self) -> list[str]:
        """What ``openssl cms -encrypt`` needs for the algorithms docgw accepts."""
        if self.kind == "rsa":
            return [
                "-keyopt", "rsa_padding_mode:oaep",
                "-keyopt", "rsa_oaep_md:sha256",
                "-keyopt", "rsa_mgf1_md:sha256",
            ]  # fmt: skip
        return ["-keyopt", "ecdh_kdf_md:sha256"]


KEYGEN = {
    "rsa": ["-newkey", "rsa:2048"],
    "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
}


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Party]:
    """A key and a self-issued certificate per kind, made by openssl."""
    made_by_kind = {}
    for kind, keygen in KEYGEN.items():
        directory = tmp_path_factory.mktemp(kind)
        key, cert = directory / "key.pem", directory / "cert.pem"
        made = openssl(
            "req", "-x509", *keygen, "-nodes", "-keyout", key, "-out", cert,
            "-subj", f"/C=VN/O=UBND tỉnh Nghệ An/CN=000.00.00.H41 {kind}", "-days", "2",
            "-addext", "keyUsage=digitalSignature,keyEncipherment,keyAgreement",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        made_by_kind[kind] = Party(kind=kind, key_path=key, cert_path=cert)
    return made_by_kind


@pytest.fixture(params=sorted(KEYGEN))
def party(request: pytest.FixtureRequest, parties: dict[str, Party]) -> Party:
    return parties[str(request.param)]


@pytest.fixture(params=["rsa", "p256"])
def main_party(request: pytest.FixtureRequest, parties: dict[str, Party]) -> Party:
    return parties[str(request.param)]


def test_openssl_decrypts_what_docgw_seals(party: Party, tmp_path: Path) -> None:
    plain, sealed, out = tmp_path / "plain", tmp_path / "sealed", tmp_path / "out"
    plain.write_bytes(PAYLOAD)
    with plain.open("rb") as src, sealed.open("wb") as dst:
        sealing.seal_stream(src, dst, party.cert)
    result = openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", sealed,
        "-recip", party.cert_path, "-inkey", party.key_path, "-out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == PAYLOAD
    # openssl finds the same structure docgw documents (envelopes/cms.py).
    structure = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", sealed).stdout
    assert "contentType: id-smime-ct-authEnvelopedData" in structure
    assert "algorithm: aes-256-gcm" in structure
    assert ("rsaesOaep" if party.kind == "rsa" else "dhSinglePass-stdDH-sha") in structure


def test_openssl_decrypts_what_docgw_seals_from_a_pipe(main_party: Party, tmp_path: Path) -> None:
    """A source of unknown length (here a real pipe) is sealed in the indefinite-length form."""
    plain, sealed, out = tmp_path / "plain", tmp_path / "sealed", tmp_path / "out"
    plain.write_bytes(PAYLOAD)
    with subprocess.Popen(["cat", str(plain)], stdout=subprocess.PIPE) as cat:
        assert cat.stdout is not None
        with sealed.open("wb") as dst:
            sealing.seal_stream(cat.stdout, dst, main_party.cert)
    assert sealed.read_bytes()[:2] == b"\x30\x80"
    result = openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", sealed,
        "-recip", main_party.cert_path, "-inkey", main_party.key_path, "-out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == PAYLOAD


def test_openssl_refuses_what_docgw_sealed_once_altered(main_party: Party, tmp_path: Path) -> None:
    party = main_party
    sealed = bytearray(sealing.seal(PAYLOAD[:5000], party.cert))
    sealed[-40] ^= 0x01  # a ciphertext byte
    (tmp_path / "sealed").write_bytes(bytes(sealed))
    result = openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", tmp_path / "sealed",
        "-recip", party.cert_path, "-inkey", party.key_path, "-out", tmp_path / "out",
    )  # fmt: skip
    assert result.returncode != 0


@pytest.mark.parametrize("stream", [False, True], ids=["der", "streamed-ber"])
def test_docgw_opens_what_openssl_seals(party: Party, tmp_path: Path, stream: bool) -> None:
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(PAYLOAD)
    result = openssl(
        "cms", "-encrypt", "-aes-256-gcm", "-binary", "-outform", "DER",
        *(["-stream"] if stream else []), "-in", plain, "-out", sealed,
        "-recip", party.cert_path, *party.encrypt_options(),  # -keyopt applies to the -recip before
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = sealed.read_bytes()
    assert (data[1] == 0x80) is stream  # indefinite length when streamed
    assert sniff(data) is SealFormat.CMS
    assert sealing.read_seal_header(data[:2048]).is_for(party.cert)
    out = io.BytesIO()
    with sealed.open("rb") as src:
        sealing.open_stream(src, out, party.key)
    assert out.getvalue() == PAYLOAD


@pytest.mark.parametrize("kind", ["p256", "p384"])
def test_docgw_opens_openssl_defaults_for_ec(
    tmp_path: Path, parties: dict[str, Party], kind: str
) -> None:
    """Without options openssl derives the EC key-encryption key with SHA-1 (RFC 5753's
    dhSinglePass-stdDH-sha1kdf-scheme): still sound as a KDF, and opened. (RSA without options
    is PKCS#1 v1.5: refused, below.)"""
    party = parties[kind]
    (tmp_path / "plain").write_bytes(PAYLOAD[:10_000])
    result = openssl(
        "cms", "-encrypt", "-aes-256-gcm", "-binary", "-outform", "DER",
        "-in", tmp_path / "plain", "-out", tmp_path / "sealed", "-recip", party.cert_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sealing.open_sealed((tmp_path / "sealed").read_bytes(), party.key) == PAYLOAD[:10_000]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-aes-256-gcm"], "PKCS#1 v1.5"),
        (["-aes-256-cbc"], "not AuthEnvelopedData"),
    ],
    ids=["pkcs1-v1.5", "enveloped-cbc"],
)
def test_docgw_refuses_what_it_must_not_trust(
    tmp_path: Path, parties: dict[str, Party], options: list[str], message: str
) -> None:
    party = parties["rsa"]
    (tmp_path / "plain").write_bytes(b"<edXMLEnvelope/>")
    result = openssl(
        "cms", "-encrypt", *options, "-binary", "-outform", "DER",
        "-in", tmp_path / "plain", "-out", tmp_path / "sealed", "-recip", party.cert_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with pytest.raises(SealError, match=message):
        sealing.open_sealed((tmp_path / "sealed").read_bytes(), party.key)


# --- the operator's tools ------------------------------------------------------------------------


def docgw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCGW), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_package_build_seal_for_and_package_open_both_formats(
    main_party: Party, tmp_path: Path
) -> None:
    party = main_party
    sealed = tmp_path / "document.sealed"
    built = docgw(
        "package", "build", "--meta", REPO / "examples" / "new-document.json",
        "--attach", REPO / "examples" / "van-ban.txt", "--unsigned",
        "--seal-for", party.cert_path, "-o", sealed,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert sniff(sealed.read_bytes()) is SealFormat.CMS
    by_openssl = tmp_path / "by-openssl.edxml"
    result = openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", sealed,
        "-recip", party.cert_path, "-inkey", party.key_path, "-out", by_openssl,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "kết nối liên thông".encode() in by_openssl.read_bytes()

    by_docgw = tmp_path / "by-docgw.edxml"
    opened = docgw("package", "open", sealed, "--key", party.key_path, "-o", by_docgw)
    assert opened.returncode == 0, opened.stderr
    assert "CMS" in opened.stdout
    assert by_docgw.read_bytes() == by_openssl.read_bytes()

    # The same package in the old container, as a stored copy would hold it.
    old = tmp_path / "document.dgwseal1"
    old.write_bytes(dgwseal1.seal(by_openssl.read_bytes(), party.cert))
    from_old = tmp_path / "from-old.edxml"
    opened = docgw("package", "open", old, "--key", party.key_path, "-o", from_old)
    assert opened.returncode == 0, opened.stderr
    assert "DGWSEAL1" in opened.stdout
    assert from_old.read_bytes() == by_openssl.read_bytes()

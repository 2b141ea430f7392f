"""Envelope benchmarks for docgw: build+sign and read+verify rates, and peak memory.

Run by hand (this is not a test; tests/integration/test_benchmark_smoke.py only checks that it
runs)::

    .venv/bin/python benchmarks/bench_envelopes.py            # the full run (under a minute)
    .venv/bin/python benchmarks/bench_envelopes.py --quick    # a reduced smoke run (no 100 MB)

It measures the docgw that Python imports: the installed copy in .venv (a snapshot taken by the
last ``pip install .``), unless ``PYTHONPATH=.`` puts the working tree first. The first lines of
the output say which one ran, with its git commit.

Everything runs on ONE core at a time: docgw's envelope code is single-threaded (lxml,
cryptography and hashlib each work on one thread here), and the child processes of the memory
measurements run one after another. ``--cpu N`` also pins the process (and its children) to CPU N,
which steadies the figures on a quiet machine; on a shared, busy one it is better left off, so the
scheduler can move the process away from a competing one. The load average is printed before and
after: figures from a busy machine are low, and a ratio to the raw RSA rate can then mislead.

What it prints, in one run:

1. the raw RSA-2048 sign and verify rates of ``cryptography`` (PKCS#1 v1.5, SHA-256);
2. packages built+signed and read+verified per second, for a MessageHeader of about 2 KB of
   Vietnamese text with no attachment and with 100 KB, 1 MB and 10 MB of random (incompressible)
   bytes, each beside the raw RSA rate as a ratio; median of 3 rounds, each round repeating the
   operation for at least 1 s;
3. the peak RSS growth of build+sign and read+verify with a 10 MB and a 100 MB attachment, each
   in a fresh process: file on disk → package file; package file read as a stream, with no sink and
   with a sink factory writing to temp files;
4. the same 10 MB package through signxml (whole-document sign; verify of a docgw package), in
   fresh processes: rate and peak RSS, for comparison;

and a summary table with the targets beside the figures.

Peak RSS is ``getrusage(RUSAGE_SELF).ru_maxrss`` after the operation minus ``VmRSS`` just before
it. Linux carries ru_maxrss across exec: a child started directly by this (large) process would
report *this* process's peak as its own. Each child is therefore started through a small launcher
process, so its ru_maxrss starts at the launcher's ~10 MB; as a cross-check, the child also resets
its high-water mark (``/proc/self/clear_refs``) and reports ``VmHWM``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import importlib.metadata
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cryptography
import lxml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from envelopes.attachments import AttachmentSource
from envelopes.building import build_document
from envelopes.model import (
    Business,
    BusinessDocType,
    DocumentCode,
    DocumentType,
    MessageHeader,
    Organization,
    OtherInfo,
    Priority,
    PromulgationInfo,
    SignerInfo,
    StaffInfo,
    document_id_for,
)
from envelopes.namespaces import EXC_C14N, q
from envelopes.reading import read_package
from envelopes.signing import Signer, TrustPolicy
from envelopes.verification import verify_document
from gateway.keystore import create_ca, issue_unit_certificate

KIB = 1 << 10
MIB = 1 << 20
RATE_SIZES = (0, 100 * KIB, MIB, 10 * MIB)
MEMORY_SIZES_FULL = (10 * MIB, 100 * MIB)
MEMORY_SIZES_QUICK = (10 * MIB,)
SIGNXML_SIZE = 10 * MIB
SENDER = "000.00.00.G22"
ATTACHMENT_NAME = "Phu-luc-kem-theo-cong-van-7816.bin"

TABLE_TITLE = "SUMMARY: figures beside their targets (one core)"
TABLE_COLUMNS = ("measurement", "figure", "vs raw RSA", "target", "result")

#: Targets (docs/performance.md).
SMALL_SIGN_SHARE = 0.50  # built+signed at >= 50% of the raw RSA sign rate
SMALL_VERIFY_RATE = 1500.0  # verified per second
LARGE_RATE = 20.0  # 10 MB packages per second, both ways
RSS_MULTIPLE = 2.0  # peak RSS growth below 2x the attachment

#: Runs the child given as arguments and passes its exit code on. It stays small (~10 MB), so the
#: child's ru_maxrss, which Linux carries across exec from the process that started it, starts low.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


@dataclass(frozen=True, kw_only=True)
class Timing:
    min_seconds: float
    rounds: int


FULL = Timing(min_seconds=1.0, rounds=3)
QUICK = Timing(min_seconds=0.2, rounds=1)


# ----------------------------------------------------------------------------- the test data


def realistic_header() -> MessageHeader:
    """A công văn from Văn phòng Chính phủ to three provinces: about 2 KB of Vietnamese text."""
    code = DocumentCode(number="7816", notation="VPCP-KSTT")
    date = dt.date(2024, 3, 15)
    provinces = (
        ("000.00.00.H44", "Thừa Thiên Huế", "16 Lê Lợi, thành phố Huế"),
        ("000.00.00.H26", "Hải Dương", "45 Quang Trung, thành phố Hải Dương"),
        ("000.00.00.H58", "Quảng Nam", "62 Hùng Vương, thành phố Tam Kỳ"),
    )
    return MessageHeader(
        from_=Organization(
            organ_id=SENDER,
            organization_in_charge="Chính phủ nước Cộng hòa xã hội chủ nghĩa Việt Nam",
            organ_name="Văn phòng Chính phủ",
            organ_add="Số 1 Hoàng Hoa Thám, phường Ngọc Hà, quận Ba Đình, thành phố Hà Nội",
            email="vanthu@chinhphu.vn",
            telephone="080 43100",
            website="vpcp.chinhphu.vn",
        ),
        to=tuple(
            Organization(
                organ_id=organ_id,
                organization_in_charge=f"Ủy ban nhân dân tỉnh {name}",
                organ_name=f"Văn phòng Ủy ban nhân dân tỉnh {name}",
                organ_add=address,
                email=f"vanphong@{organ_id.lower().replace('.', '')}.gov.vn",
            )
            for organ_id, name, address in provinces
        ),
        code=code,
        promulgation=PromulgationInfo(place="Hà Nội", date=date),
        document_type=DocumentType(type=1, type_detail=0, type_name="Công văn"),
        subject=(
            "V/v đôn đốc triển khai kết nối, liên thông phần mềm quản lý văn bản và điều hành "
            "giữa các cơ quan hành chính nhà nước qua Trục liên thông văn bản quốc gia, bảo đảm "
            "gửi, nhận văn bản điện tử có ký số theo quy chuẩn kỹ thuật QCVN 102:2016/BTTTT"
        ),
        content=(
            "Thực hiện chỉ đạo của Thủ tướng Chính phủ tại Chỉ thị số 02/CT-TTg, Văn phòng Chính "
            "phủ đề nghị Ủy ban nhân dân các tỉnh rà soát, hoàn thành việc kết nối phần mềm quản "
            "lý văn bản với Trục liên thông văn bản quốc gia trước ngày 30 tháng 4 năm 2024; báo "
            "cáo kết quả thực hiện, khó khăn, vướng mắc (nếu có) về Văn phòng Chính phủ (Cục Kiểm "
            "soát thủ tục hành chính) để tổng hợp, báo cáo Thủ tướng Chính phủ."
        ),
        signer=SignerInfo(
            competence="KT. BỘ TRƯỞNG, CHỦ NHIỆM",
            position="Phó Chủ nhiệm Văn phòng Chính phủ",
            full_name="Nguyễn Sỹ Hiệp",
        ),
        due_date=dt.date(2024, 4, 30),
        to_places=(
            "Như trên;",
            "Thủ tướng, các Phó Thủ tướng Chính phủ (để báo cáo);",
            "Các bộ, cơ quan ngang bộ, cơ quan thuộc Chính phủ;",
            "Lưu: VT, KSTT (3b).",
        ),
        other_info=OtherInfo(
            priority=Priority.KHAN,
            sphere_of_promulgation="Liên thông văn bản quốc gia",
            typer_notation="NTH",
            promulgation_amount=12,
            page_amount=3,
            appendixes=(
                "Phụ lục I: Danh sách cơ quan, đơn vị chưa hoàn thành kết nối",
                "Phụ lục II: Mẫu báo cáo kết quả kết nối, liên thông",
            ),
        ),
        steering_type=1,
        document_id=document_id_for(SENDER, date, code),
    )


#: Built once: making the model is the caller's work, not part of build+sign.
HEADER = realistic_header()

BUSINESS = Business(
    doc_type=BusinessDocType.NEW,
    document_id=f"{SENDER},2024/03/15,7816/VPCP-KSTT",
    reason="Văn bản điện tử mới",
    paper=0,
    staff_info=StaffInfo(
        department="Phòng Hành chính - Văn thư",
        staff="Nguyễn Thị Ngọc Trâm",
        mobile="0912000001",
        email="vanthu@chinhphu.vn",
    ),
)


def header_size(package: bytes) -> tuple[int, int]:
    """(UTF-8 bytes of text, bytes of serialized MessageHeader) in a built package."""
    root = etree.fromstring(package)
    header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}/{q('MessageHeader')}")
    assert header is not None
    text = sum(len((e.text or "").strip().encode()) for e in header.iter())
    return text, len(etree.tostring(header, method="c14n", exclusive=True))


@dataclass(frozen=True, kw_only=True)
class Keys:
    signer: Signer
    trust: TrustPolicy
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    @classmethod
    def create(cls) -> Keys:
        ca = create_ca()
        unit = issue_unit_certificate(ca, SENDER)
        return cls(
            signer=Signer(private_key=unit.key, certificate=unit.certificate),
            trust=TrustPolicy(anchors=(ca.certificate,)),
            key_pem=unit.key_pem,
            cert_pem=unit.cert_pem,
            ca_pem=ca.cert_pem,
        )

    def write(self, directory: Path) -> None:
        (directory / "unit.key.pem").write_bytes(self.key_pem)
        (directory / "unit.cert.pem").write_bytes(self.cert_pem)
        (directory / "ca.cert.pem").write_bytes(self.ca_pem)

    @classmethod
    def load(cls, directory: Path) -> Keys:
        key_pem = (directory / "unit.key.pem").read_bytes()
        cert_pem = (directory / "unit.cert.pem").read_bytes()
        ca_pem = (directory / "ca.cert.pem").read_bytes()
        return cls(
            signer=Signer.from_pem(key_pem, cert_pem),
            trust=TrustPolicy.from_pem(ca_pem),
            key_pem=key_pem,
            cert_pem=cert_pem,
            ca_pem=ca_pem,
        )


def sources_from_bytes(data: bytes) -> list[AttachmentSource]:
    if not data:
        return []
    return [AttachmentSource(name=ATTACHMENT_NAME, open=functools.partial(io.BytesIO, data))]


def source_from_file(path: Path) -> AttachmentSource:
    return AttachmentSource(name=ATTACHMENT_NAME, open=functools.partial(path.open, "rb"))


def build(out: IO[bytes], sources: Sequence[AttachmentSource], keys: Keys) -> None:
    build_document(HEADER, out=out, attachments=sources, business=BUSINESS, signer=keys.signer)


def build_bytes(data: bytes, keys: Keys) -> bytes:
    out = io.BytesIO()
    build(out, sources_from_bytes(data), keys)
    return out.getvalue()


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for start in range(0, size, MIB):
            out.write(os.urandom(min(MIB, size - start)))


# ------------------------------------------------------------------------------------ timing


def rate(operation: Callable[[], object], timing: Timing) -> float:
    """Operations per second: the median of ``rounds`` rounds of at least ``min_seconds``."""
    operation()  # warm-up: lazy schema loading, first allocations
    rates = []
    for _ in range(timing.rounds):
        count = 0
        start = time.perf_counter()
        while True:
            operation()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= timing.min_seconds:
                break
        rates.append(count / elapsed)
    return statistics.median(rates)


def size_label(size: int) -> str:
    if size == 0:
        return "no attachment"
    if size >= MIB:
        return f"{size // MIB} MB"
    return f"{size // KIB} KB"


# --------------------------------------------------------------------------- 1. raw RSA rates


@dataclass(frozen=True, kw_only=True)
class RawRsa:
    sign: float
    verify: float


def bench_raw_rsa(keys: Keys, timing: Timing) -> RawRsa:
    key = keys.signer.private_key
    public = key.public_key()
    message = os.urandom(1000)  # about the size of a canonical SignedInfo
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())

    def verify() -> None:
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())

    return RawRsa(
        sign=rate(lambda: key.sign(message, padding.PKCS1v15(), hashes.SHA256()), timing),
        verify=rate(verify, timing),
    )


# --------------------------------------------------------------------------- 2. package rates


@dataclass(frozen=True, kw_only=True)
class RateRow:
    size: int
    package_bytes: int
    build: float
    verify: float


def bench_rates(keys: Keys, timing: Timing, raw: RawRsa) -> list[RateRow]:
    rows = []
    for size in RATE_SIZES:
        data = os.urandom(size)
        sources = sources_from_bytes(data)
        package = build_bytes(data, keys)
        verified = verify_document(read_package(package), keys.trust)  # a sanity check
        assert len(verified.package.attachments) == (1 if size else 0)

        def build_once(sources: Sequence[AttachmentSource] = sources) -> None:
            build(io.BytesIO(), sources, keys)

        def verify_once(package: bytes = package) -> None:
            verify_document(read_package(package), keys.trust)

        row = RateRow(
            size=size,
            package_bytes=len(package),
            build=rate(build_once, timing),
            verify=rate(verify_once, timing),
        )
        rows.append(row)
        build_share, verify_share = share(row.build, raw.sign), share(row.verify, raw.verify)
        print(
            f"  {size_label(size):>13}  package {row.package_bytes / KIB:>9,.0f} KB  "
            f"build+sign {per_second(row.build):>10} ({build_share:>5} of raw sign)  "
            f"read+verify {per_second(row.verify):>10} ({verify_share:>6} of raw verify)",
            flush=True,
        )
    return rows


# ---------------------------------------------------------------- 3./4. memory, in fresh children


@dataclass(frozen=True, kw_only=True)
class ChildResult:
    op: str
    size: int
    seconds: float  # the measured operation, once
    growth_kib: int  # ru_maxrss after - VmRSS before
    hwm_growth_kib: int | None  # VmHWM after (reset before) - VmRSS before
    rss_before_kib: int
    document_bytes: int
    rate: float | None = None

    @property
    def multiple(self) -> float:
        return self.growth_kib * KIB / self.size


def run_child(spec: dict[str, Any]) -> ChildResult:
    command = [
        sys.executable, "-S", "-c", LAUNCHER,
        sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise RuntimeError(f"child {spec['op']} failed with exit code {result.returncode}")
    return ChildResult(**json.loads(result.stdout.strip().splitlines()[-1]))


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _child_docgw(spec: dict[str, Any], keys: Keys) -> Callable[[], object]:
    work = Path(spec["dir"])
    op = spec["op"]
    # Warm up with a small package, so lazy loads (schemas, OpenSSL) are not counted.
    verify_document(read_package(build_bytes(b"warm-up", keys)), keys.trust)
    if op == "build":
        source = source_from_file(Path(spec["attachment"]))
        target = Path(spec["package"])

        def build_to_file() -> None:
            with target.open("wb") as out:
                build(out, [source], keys)

        return build_to_file
    factory = functools.partial(tempfile.TemporaryFile, dir=work) if op == "verify-sink" else None
    package = Path(spec["package"])

    def verify_from_file() -> None:
        with package.open("rb") as stream:
            verified = verify_document(read_package(stream, sink_factory=factory), keys.trust)
        assert verified.package.attachments[0].size == spec["size"]

    return verify_from_file


def _child_signxml(spec: dict[str, Any], keys: Keys) -> Callable[[], object]:
    from signxml import SignatureConfiguration, XMLSigner, XMLVerifier

    package = Path(spec["package"])
    parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
    key = serialization.load_pem_private_key(keys.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    ca_path = Path(spec["dir"]) / "ca.cert.pem"

    if spec["op"] == "signxml-sign":
        signed_path = Path(spec["dir"]) / "signxml-signed.xml"

        def sign() -> None:
            # Enveloped, over the whole document (Reference URI=""), exclusive C14N. signxml's
            # sign() has no parser argument and re-parses its input with libxml2's default
            # limits, which refuse a 10 MB text node; its private _parser is the only way in.
            signer = XMLSigner(c14n_algorithm=EXC_C14N)
            signer._parser = parser  # type: ignore[assignment]
            root = etree.fromstring(package.read_bytes(), parser)
            signed = signer.sign(root, key=key, cert=[keys.signer.certificate])
            signed_path.write_bytes(etree.tostring(signed, encoding="UTF-8", xml_declaration=True))

        return sign

    def verify() -> None:
        # A docgw package: 4 references (header, Bussiness, manifest, the attachment by the
        # base64 transform), certificate chained to the CA.
        results = XMLVerifier().verify(
            package.read_bytes(),
            ca_pem_file=str(ca_path),
            parser=parser,
            expect_config=SignatureConfiguration(expect_references=4),
        )
        assert isinstance(results, list) and len(results) == 4

    return verify


def child_main(spec: dict[str, Any]) -> None:
    """In a fresh process: prepare, then measure one operation's peak RSS (and maybe its rate)."""
    keys = Keys.load(Path(spec["dir"]))
    prepare = _child_signxml if spec["op"].startswith("signxml") else _child_docgw
    operation = prepare(spec, keys)
    gc.collect()
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    operation()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = _status_kib("VmHWM") if reset else None
    result: dict[str, Any] = {
        "op": spec["op"],
        "size": spec["size"],
        "seconds": seconds,
        "growth_kib": peak - before,
        "hwm_growth_kib": None if hwm is None else hwm - before,
        "rss_before_kib": before,
        "document_bytes": Path(spec["package"]).stat().st_size,
    }
    if spec.get("rate"):
        result["rate"] = rate(operation, Timing(**spec["rate"]))
    print(json.dumps(result))


@dataclass(frozen=True, kw_only=True)
class Files:
    directory: Path
    attachment: dict[int, Path] = field(default_factory=dict)
    signed: dict[int, Path] = field(default_factory=dict)
    unsigned: dict[int, Path] = field(default_factory=dict)


def prepare_files(directory: Path, keys: Keys, sizes: Sequence[int]) -> Files:
    """Attachment files and the packages built from them, written by streaming (small RSS)."""
    keys.write(directory)
    files = Files(directory=directory)
    for size in sizes:
        attachment = directory / f"attachment-{size}.bin"
        write_random(attachment, size)
        files.attachment[size] = attachment
        files.signed[size] = directory / f"signed-{size}.edxml"
        with files.signed[size].open("wb") as out:
            build(out, [source_from_file(attachment)], keys)
        if size != SIGNXML_SIZE:
            continue
        files.unsigned[size] = directory / f"unsigned-{size}.edxml"
        with files.unsigned[size].open("wb") as out:
            build_document(
                HEADER,
                out=out,
                attachments=[source_from_file(attachment)],
                business=BUSINESS,
            )
    return files


MEMORY_OPS = (
    ("build", "build+sign, file -> file"),
    ("verify", "read+verify from file, no sink"),
    ("verify-sink", "read+verify from file, sink to temp file"),
)


def describe(result: ChildResult, what: str) -> str:
    hwm = "n/a" if result.hwm_growth_kib is None else f"{result.hwm_growth_kib / KIB:6.1f} MB"
    return (
        f"  {size_label(result.size):>6}  {what:<42} peak RSS growth "
        f"{result.growth_kib / KIB:7.1f} MB = {result.multiple:4.2f}x attachment "
        f"= {result.growth_kib * KIB / result.document_bytes:4.2f}x package "
        f"(VmHWM check {hwm}; RSS before {result.rss_before_kib / KIB:.0f} MB; "
        f"{result.seconds:.2f} s)"
    )


def bench_memory(files: Files, sizes: Sequence[int]) -> list[ChildResult]:
    results = []
    for size in sizes:
        for op, what in MEMORY_OPS:
            package = files.attachment[size].with_name(f"built-{size}.edxml")
            spec = {
                "op": op,
                "size": size,
                "dir": str(files.directory),
                "attachment": str(files.attachment[size]),
                "package": str(package if op == "build" else files.signed[size]),
            }
            result = run_child(spec)
            results.append(result)
            print(describe(result, what), flush=True)
    return results


def bench_signxml(files: Files, timing: Timing) -> list[ChildResult]:
    results = []
    rounds = {"min_seconds": timing.min_seconds, "rounds": timing.rounds}
    for op, what, package in (
        ("signxml-sign", "signxml sign, whole document", files.unsigned[SIGNXML_SIZE]),
        ("signxml-verify", "signxml verify of a docgw package", files.signed[SIGNXML_SIZE]),
    ):
        spec = {
            "op": op,
            "size": SIGNXML_SIZE,
            "dir": str(files.directory),
            "package": str(package),
            "rate": rounds,
        }
        result = run_child(spec)
        results.append(result)
        print(f"{describe(result, what)}\n{'':>10}rate {result.rate:.2f}/s", flush=True)
    return results


# ------------------------------------------------------------------------------------ summary


def per_second(rate: float) -> str:
    """A rate with enough digits that the verdict beside it can be checked by eye."""
    return (
        f"{rate:,.0f}/s" if rate >= 1000 else f"{rate:,.1f}/s" if rate >= 100 else f"{rate:.2f}/s"
    )


def share(value: float, reference: float) -> str:
    """A ratio as a percentage, never rounded up onto a target: 49.6%, 1.2%, 0.037%."""
    percent = 100 * value / reference
    return f"{percent:.1f}%" if percent >= 1 else f"{percent:.2g}%"


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def summary_rows(
    raw: RawRsa,
    rates: Sequence[RateRow],
    memory: Sequence[ChildResult],
    signxml: Sequence[ChildResult],
) -> list[tuple[str, str, str, str, str]]:
    rows = [
        ("raw RSA-2048 sign (PKCS1v15, SHA-256)", f"{raw.sign:,.0f}/s", "100%", "-", ""),
        ("raw RSA-2048 verify", f"{raw.verify:,.0f}/s", "100%", "-", ""),
    ]
    for row in rates:
        label = size_label(row.size)
        build_target, verify_target = "-", "-"
        build_ok: bool | None = None
        verify_ok: bool | None = None
        if row.size == 0:
            build_target = f">= {SMALL_SIGN_SHARE:.0%} of raw sign"
            build_ok = row.build >= SMALL_SIGN_SHARE * raw.sign
            verify_target = f">= {SMALL_VERIFY_RATE:,.0f}/s"
            verify_ok = row.verify >= SMALL_VERIFY_RATE
        elif row.size == 10 * MIB:
            build_target = verify_target = f">= {LARGE_RATE:.0f}/s"
            build_ok, verify_ok = row.build >= LARGE_RATE, row.verify >= LARGE_RATE
        rows.append(
            (
                f"build+sign, 2 KB header, {label}",
                per_second(row.build),
                share(row.build, raw.sign),
                build_target,
                "" if build_ok is None else _verdict(build_ok),
            )
        )
        rows.append(
            (
                f"read+verify, 2 KB header, {label}",
                per_second(row.verify),
                share(row.verify, raw.verify),
                verify_target,
                "" if verify_ok is None else _verdict(verify_ok),
            )
        )
    names = dict(MEMORY_OPS)
    for result in memory:
        rows.append(
            (
                f"peak RSS growth, {names[result.op]}, {size_label(result.size)}",
                f"{result.growth_kib / KIB:.1f} MB = {result.multiple:.2f}x",
                "",
                f"< {RSS_MULTIPLE:.0f}x attachment",
                _verdict(result.multiple < RSS_MULTIPLE),
            )
        )
    for result in signxml:
        what = "sign (whole document)" if result.op == "signxml-sign" else "verify (docgw pkg)"
        rows.append(
            (
                f"signxml {what}, {size_label(result.size)}: rate",
                per_second(result.rate or 0),
                "",
                "(comparison)",
                "",
            )
        )
        rows.append(
            (
                f"signxml {what}, {size_label(result.size)}: peak RSS growth",
                f"{result.growth_kib / KIB:.1f} MB = {result.multiple:.2f}x",
                "",
                "(comparison)",
                "",
            )
        )
    return rows


def print_table(rows: Sequence[tuple[str, str, str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in [TABLE_COLUMNS, *rows]) for i in range(len(TABLE_COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(f"\n{TABLE_TITLE}")
    print(line(TABLE_COLUMNS))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


# --------------------------------------------------------------------------------------- main


def pin(cpu: int | None) -> str:
    if cpu is None:
        return "single-threaded, not pinned (--cpu N pins); children run one at a time"
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError) as exc:
        return f"single-threaded; pinning to CPU {cpu} failed ({exc})"
    return f"single-threaded, pinned to CPU {cpu}; children inherit the pin, run one at a time"


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def docgw_source() -> str:
    """Where envelopes was imported from and, for a git checkout, its commit."""
    import envelopes

    package = Path(envelopes.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(package)
    return f"{package} (git {commit})"


def print_environment(quick: bool, core: str) -> None:
    from cryptography.hazmat.backends.openssl.backend import backend

    print(f"docgw envelope benchmark{' (--quick)' if quick else ''}")
    print(f"  machine: {os.cpu_count()} CPUs, {cpu_model()}; {platform.platform()}")
    print(f"  core:    {core}")
    print(f"  load:    {load_average()} (1, 5, 15 min) at the start")
    print(f"  docgw:   {docgw_source()}")
    print(
        f"  python {platform.python_version()}, lxml {lxml.__version__} "
        f"(libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}), "
        f"cryptography {cryptography.__version__} ({backend.openssl_version_text()}), "
        f"signxml {importlib.metadata.version('signxml')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="reduced smoke run, no 100 MB")
    parser.add_argument("--cpu", type=int, help="pin to this CPU (default: not pinned)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    timing = QUICK if args.quick else FULL
    print_environment(args.quick, pin(args.cpu))
    keys = Keys.create()
    text_bytes, header_bytes = header_size(build_bytes(b"", keys))
    print(
        f"  header:  MessageHeader with {text_bytes:,} bytes of Vietnamese text "
        f"({header_bytes:,} bytes serialized); attachments are random bytes"
    )
    timing_note = f"median of {timing.rounds} round(s) of >= {timing.min_seconds} s"

    print(f"\n1. Raw RSA-2048, cryptography, PKCS1v15 + SHA-256 ({timing_note})")
    raw = bench_raw_rsa(keys, timing)
    print(f"  sign {raw.sign:,.0f}/s   verify {raw.verify:,.0f}/s", flush=True)

    print(f"\n2. Packages per second, in memory ({timing_note})")
    rates = bench_rates(keys, timing, raw)

    memory_sizes = MEMORY_SIZES_QUICK if args.quick else MEMORY_SIZES_FULL
    with tempfile.TemporaryDirectory(prefix="docgw-bench-") as tmp:
        files = prepare_files(Path(tmp), keys, memory_sizes)
        print("\n3. Peak RSS growth over the RSS just before the operation, one fresh process each")
        memory = bench_memory(files, memory_sizes)
        print(f"\n4. signxml on the same {size_label(SIGNXML_SIZE)} package, fresh processes")
        signxml = bench_signxml(files, timing)

    print_table(summary_rows(raw, rates, memory, signxml))
    print(f"\nload average at the end: {load_average()} (1, 5, 15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

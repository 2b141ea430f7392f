"""A VXP-compatible national axis on loopback, with fault injection (``docgw axis-sim``).

It accepts what the official SDK sends and what :mod:`connectors.vxp` sends (DOMAIN.md §5):
``POST /{operation}`` (``GET`` for downloadEdoc and the counts) with signed ``XroadVnpt-*``
headers, JSON answers ``{status, ErrorCode, ErrorDesc, …}``. docs/reference/connectors.md has the
table of operations: what is checked, what is answered, what is known and what assumed.

What it does with a package (``sendEdoc``)
------------------------------------------
1. authenticates the system (HMAC of :mod:`connectors.vxp_signing`, the timestamp within
   ``max_skew`` — 15 minutes by default, see ``DEFAULT_VXP_MAX_SKEW``; a failure answers HTTP 401
   with ErrorCode 15), checks ``hash-file`` (either form) against the package — the body, or the
   body less the CRLF the SDK writes after the package (10) —, reads the package's routing
   fields with :func:`envelopes.reading.read_routing` — docgw's hardened parser; attachments are
   passed over and the rest of the header is not judged, as a router need not (unreadable → 22;
   messagetype and package kind must agree);
2. checks the sender: the package's From/OrganId (and the ``from`` header, when given, must be the
   same) is one of the units the calling system serves (19);
3. routes by MessageHeader/To/OrganId — a status package, which has no To, by the ``to`` header or
   else its ResponseFor/OrganId — to the systems serving those units (unknown → 18, locked → 23);
   nothing is queued unless every receiver is known;
4. appends its own TraceHeader *textually* (:func:`append_trace_header`): everything else stays
   byte-identical, as on the real axis, so docgw's signature (by Id over MessageHeader, Bussiness,
   manifest and attachments) still verifies at the receiver;
5. queues one item per recipient unit, each with its own receiver docId, and answers the sender's
   DocId. Every sendEdoc answer carries ``DocId`` — empty on FAIL — since the SDK reads it even
   from a FAIL answer.

Receivers count (countReceiveEdoc / countReceiveStatus: ``count``), list (getReceivedEdocList:
items whose state is not done/fail), download (getEdoc, base64 in JSON; or ``GET /downloadEdoc``,
the raw package) and acknowledge (updateStatus done|fail|processing); the sender sees per-recipient
states
(getSentEdocList: sendStatus is ``done`` once queued, receiveStatus the recipient's state). The
directory answers getAgenciesList, getAgenciesListQD20, getSynchronizeUnit, registerAgency and
deleteAgency (the unit in ``AgencyCode``, as the SDK names it); registerAgency also makes the new
code a unit of the calling system (probable: that is how an agency joins the axis behind its
system), deleteAgency removes it.

Error codes are the probable ones of DOMAIN.md §5; where the API is silent the simulator picks:
unknown docId or bad parameter (deleteAgency without ``AgencyCode`` included) → 10; agency already
registered / invalid code → 22; deleting an unknown agency → 18; an operation called with a method
it does not take → HTTP 405 with 10.

Faults (:class:`AxisFaults`; at start, or ``POST /_sim/faults`` with any subset as JSON)
----------------------------------------------------------------------------------------
The model is :mod:`connectors.simulators.faults`, shared with the SOAP variant: latency, down
windows, 5xx bursts, an error rate (503/500 with ErrorCode 20, before anything is committed),
sendEdoc calls that commit and then hang or drop the connection, and duplicate deliveries (two
receiver docIds for one recipient, and items listed twice).

The request is read whole before any fault is applied, so every body the simulator receives is
recorded (``AxisState.received_bodies``, with each request's line and headers in
``received_heads``; ``record_file`` and the ``record_bytes`` hook, when set): a test can prove that
classified content never reached it. ``GET /_sim/state`` shows counts
and queues. The ``/_sim`` endpoints are unauthenticated: the simulator listens on loopback and is
a test tool.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import random
import re
import signal
import sys
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

import pybase64
from aiohttp import web

from connectors.offload import run_blocking
from connectors.simulators import faults as fault_model
from connectors.simulators.common import (
    DEFAULT_MAX_SKEW,
    DEFAULT_VXP_MAX_SKEW,
    AxisSystem,
    add_system_arguments,
    max_skew_from,
    request_head,
)
from connectors.simulators.faults import AxisFaults, add_fault_arguments, faults_from
from connectors.vxp_signing import (
    VIETNAM,
    VerifiedRequest,
    VxpAuthError,
    hash_file,
    hash_file_matches,
    parse_timestamp,
    verify_request,
)
from envelopes.errors import GatewayError
from envelopes.reading import PackageKind, Routing, read_routing
from envelopes.unit_codes import parse_strict

RECEIVE_STATES = ("initial", "processing", "done", "fail")
ACK_STATES = ("done", "fail", "processing")
TRACE_TIMESTAMP = "%Y/%m/%d %H:%M:%S"
#: What the SDK writes after the package on sendEdoc (not covered by ``hash-file``).
SDK_TRAILER = b"\r\n"

# ---------------------------------------------------------------------------------------- state


@dataclass(frozen=True, kw_only=True, slots=True)
class Agency:
    """One directory entry. ``parent_code`` is explicit: real directories re-parent codes."""

    id: int
    code: str
    code_qd20: str
    name: str
    parent_id: int | None = None
    parent_code: str | None = None
    mail: str = ""
    old_code: str | None = None
    updated_at: float = 0.0
    deleted: bool = False


@dataclass(kw_only=True)
class QueuedItem:
    """One package waiting for one recipient unit (the receiver's docId is its own)."""

    doc_id: str
    sender_doc_id: str
    to_code: str
    from_code: str
    system_id: str  # the receiving system
    message_type: str
    data: bytes
    created_at: float
    status: str = "initial"
    description: str = ""
    updated_at: float | None = None


@dataclass(kw_only=True)
class SentEdoc:
    doc_id: str
    system_id: str  # the sending system
    from_code: str
    message_type: str
    document_id: str | None
    created_at: float
    receiver_doc_ids: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class AxisState:
    systems: dict[str, AxisSystem] = field(default_factory=dict)
    #: Directory by QCVN 102 code, in listing order.
    directory: dict[str, Agency] = field(default_factory=dict)
    faults: AxisFaults = field(default_factory=AxisFaults)
    locked_units: set[str] = field(default_factory=set)
    sent: dict[str, SentEdoc] = field(default_factory=dict)
    #: Every queued item by its receiver docId; ``queues`` orders them per recipient unit.
    items: dict[str, QueuedItem] = field(default_factory=dict)
    queues: dict[str, list[str]] = field(default_factory=dict)
    #: Per unit, the docIds getReceivedEdocList still lists (not yet done or fail), in queue
    #: order: a poll reads these, not every item the unit ever received.
    listed: dict[str, dict[str, None]] = field(default_factory=dict)
    received_bodies: list[bytes] = field(default_factory=list)
    #: Each recorded request's line and headers, as received ("POST /sendEdoc HTTP/1.1", ...).
    received_heads: list[bytes] = field(default_factory=list)
    record_bodies: bool = True
    record_file: Path | None = None
    #: Called with (operation, body) for every request body received, before anything else.
    record_bytes: Callable[[str, bytes], None] | None = None
    #: How far a request's timestamp may be from now (None: any); the default window and why:
    #: ``DEFAULT_VXP_MAX_SKEW``.
    max_skew: dt.timedelta | None = dt.timedelta(seconds=DEFAULT_VXP_MAX_SKEW)
    #: The OrganId of the TraceHeader the axis appends; None: the sending unit's code.
    trace_organ_id: str | None = None
    seed: int | None = None
    clock: Callable[[], float] = time.time
    counters: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._listings: dict[str, bytes] = {}
        self._next_id = max((a.id for a in self.directory.values()), default=0) + 1

    # -- systems and units

    def add_system(self, system_id: str, secret: bytes, units: Sequence[str]) -> None:
        self.systems[system_id] = AxisSystem(secret=secret, units=tuple(units))
        for unit in units:
            if unit not in self.directory:
                self.add_agency(code=unit, name=f"Đơn vị {unit}")

    def secret_for(self, system_id: str) -> bytes | None:
        system = self.systems.get(system_id)
        return system.secret if system is not None else None

    def system_of(self, unit: str) -> str | None:
        for system_id, system in self.systems.items():
            if unit in system.units:
                return system_id
        return None

    # -- directory

    def load_directory(self, agencies: Sequence[Agency]) -> None:
        """Add a directory (e.g. :func:`generate_directory`); an entry already present under the
        same code is replaced, and entries added before it are renumbered after it."""
        loaded = {a.code: a for a in agencies}
        earlier = [a for a in self.directory.values() if a.code not in loaded]
        self.directory = loaded
        self._next_id = max((a.id for a in agencies), default=0) + 1
        for agency in earlier:
            self.directory[agency.code] = dataclasses.replace(agency, id=self._next_id)
            self._next_id += 1
        self._listings.clear()

    def add_agency(
        self, *, code: str, name: str, parent_code: str | None = None, mail: str = ""
    ) -> Agency:
        parent = self.directory.get(parent_code) if parent_code else None
        agency = Agency(
            id=self._next_id,
            code=code,
            code_qd20=qd20_code(code),
            name=name,
            parent_id=parent.id if parent is not None else None,
            parent_code=parent_code,
            mail=mail,
            updated_at=self.clock(),
        )
        self._next_id += 1
        self.directory[code] = agency
        self._listings.clear()
        return agency

    def change_agency(self, code: str, **changes: Any) -> Agency:
        """Rename, re-parent (``parent_code``) or re-code (``old_code``: the code it replaces,
        after a merger) an agency: getSynchronizeUnit reports it as changed from now on."""
        agency = self.directory[code]
        if "parent_code" in changes:
            parent = self.directory.get(changes["parent_code"] or "")
            changes["parent_id"] = parent.id if parent is not None else None
        self.directory[code] = dataclasses.replace(agency, **changes, updated_at=self.clock())
        self._listings.clear()
        return self.directory[code]

    def remove_agency(self, code: str) -> None:
        agency = self.directory[code]
        self.directory[code] = dataclasses.replace(agency, deleted=True, updated_at=self.clock())
        for system_id, system in list(self.systems.items()):
            if code in system.units:
                units = tuple(u for u in system.units if u != code)
                self.systems[system_id] = dataclasses.replace(system, units=units)
        self._listings.clear()

    def listing(self, operation: str, build: Callable[[], list[dict[str, Any]]]) -> bytes:
        """A directory answer, serialised once until the directory changes (120k entries)."""
        if operation not in self._listings:
            self._listings[operation] = _encode(_ok(data=build()))
        return self._listings[operation]

    # -- recording and faults

    def record(self, operation: str, body: bytes, head: bytes = b"") -> None:
        if self.record_bytes is not None:
            self.record_bytes(operation, body)
        if self.record_bodies:
            self.received_bodies.append(body)
            self.received_heads.append(head)
        if self.record_file is not None:
            with self.record_file.open("ab") as out:
                out.write(f"--- {operation} {len(body)}\n".encode())
                out.write(body)
                out.write(b"\n")

    def set_faults(self, faults: AxisFaults) -> None:
        """Replace the faults; ``burst_5xx`` counts down as the burst is served."""
        self.faults = faults

    def snapshot(self) -> dict[str, Any]:
        return {
            "systems": {k: {"units": list(v.units)} for k, v in self.systems.items()},
            "packages": len(self.sent),
            "counters": dict(self.counters),
            "queues": {
                unit: [
                    {
                        "docId": item.doc_id,
                        "senderDocId": item.sender_doc_id,
                        "from": item.from_code,
                        "messagetype": item.message_type,
                        "status": item.status,
                        "size": len(item.data),
                    }
                    for item in (self.items[doc_id] for doc_id in doc_ids)
                ]
                for unit, doc_ids in self.queues.items()
            },
            "received_bodies": len(self.received_bodies),
            "directory_size": sum(1 for a in self.directory.values() if not a.deleted),
            "faults": dataclasses.asdict(self.faults),
        }


# ------------------------------------------------------------------------------- trace headers

_TRACE_LIST = re.compile(rb"<(?:([A-Za-z_][\w.\-]*):)?TraceHeaderList(?=[\s/>])[^>]*?(/?)>")
_BUSINESS = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?Bussiness(?=[\s/>])")


def append_trace_header(package: bytes, *, organ_id: str | None, timestamp: dt.datetime) -> bytes:
    """Add ``<TraceHeader><OrganId/><Timestamp/></TraceHeader>`` to the package's TraceHeaderList,
    textually, with the list's own prefix; every other byte is left as it was.

    The entry goes after the existing TraceHeaders and before Bussiness (QCVN order, which docgw's
    XSD enforces) — i.e. before ``</…TraceHeaderList>`` when there is no Bussiness. A package
    without a TraceHeaderList (a status package) is returned unchanged.
    """
    opening = _TRACE_LIST.search(package)
    if opening is None:
        return package
    prefix = opening.group(1) + b":" if opening.group(1) else b""
    moment = timestamp.astimezone(VIETNAM) if timestamp.tzinfo else timestamp
    parts = [b"<", prefix, b"TraceHeader>"]
    if organ_id:
        parts += [b"<", prefix, b"OrganId>", escape(organ_id).encode(), b"</", prefix, b"OrganId>"]
    stamp = moment.strftime(TRACE_TIMESTAMP).encode()
    parts += [b"<", prefix, b"Timestamp>", stamp, b"</", prefix, b"Timestamp>"]
    parts += [b"</", prefix, b"TraceHeader>"]
    entry = b"".join(parts)
    if opening.group(2) == b"/":  # <TraceHeaderList/>
        head = package[: opening.end() - 2].rstrip() + b">"
        closing = b"</" + prefix + b"TraceHeaderList>"
        return head + entry + closing + package[opening.end() :]
    close = re.compile(rb"</" + re.escape(prefix) + rb"TraceHeaderList\s*>").search(
        package, opening.end()
    )
    if close is None:
        return package
    business = _BUSINESS.search(package, opening.end(), close.start())
    at = business.start() if business is not None else close.start()
    indent = _whitespace_before(package, at, opening.end())
    if business is None and b"\n" in indent:
        entry = b"  " + entry
    return package[:at] + entry + indent + package[at:]


def _whitespace_before(data: bytes, at: int, floor: int) -> bytes:
    start = at
    while start > floor and data[start - 1 : start] in (b" ", b"\t", b"\n", b"\r"):
        start -= 1
    return data[start:at]


# ------------------------------------------------------------------------------------ directory

_PROVINCES = (
    "An Giang", "Bà Rịa - Vũng Tàu", "Bạc Liêu", "Bắc Giang", "Bắc Kạn", "Bắc Ninh", "Bến Tre",
    "Bình Dương", "Bình Định", "Bình Phước", "Bình Thuận", "Cà Mau", "Cao Bằng", "Cần Thơ",
    "Đà Nẵng", "Đắk Lắk", "Đắk Nông", "Điện Biên", "Đồng Nai", "Đồng Tháp", "Gia Lai", "Hà Giang",
    "Hà Nam", "Hà Nội", "Hà Tĩnh", "Hải Dương", "Hải Phòng", "Hậu Giang", "Hòa Bình", "Hưng Yên",
    "Khánh Hòa", "Kiên Giang", "Kon Tum", "Lai Châu", "Lâm Đồng", "Lạng Sơn", "Lào Cai",
    "Long An", "Nam Định", "Nghệ An", "Ninh Bình", "Ninh Thuận", "Phú Thọ", "Phú Yên",
    "Quảng Bình", "Quảng Nam", "Quảng Ngãi", "Quảng Ninh", "Quảng Trị", "Sóc Trăng", "Sơn La",
    "Tây Ninh", "Thái Bình", "Thái Nguyên", "Thanh Hóa", "Thừa Thiên Huế", "Tiền Giang",
    "Hồ Chí Minh", "Trà Vinh", "Tuyên Quang", "Vĩnh Long", "Vĩnh Phúc", "Yên Bái",
)  # fmt: skip
_CITIES = {"Cần Thơ", "Đà Nẵng", "Hà Nội", "Hải Phòng", "Hồ Chí Minh"}
#: The province numbers (H13 …) seen in packages from the field (shared/samples/real), so that the
#: simulated directory agrees with them and with docgw's docs (H41 is Nghệ An there); the real
#: list is not alphabetical, and the other provinces are numbered alphabetically around these.
_FIELD_PROVINCE_NUMBERS = {13: "Đà Nẵng", 14: "Cao Bằng", 41: "Nghệ An"}


def _numbered_provinces() -> list[tuple[int, str]]:
    others = iter(p for p in _PROVINCES if p not in _FIELD_PROVINCE_NUMBERS.values())
    return [
        (number, _FIELD_PROVINCE_NUMBERS.get(number) or next(others))
        for number in range(1, len(_PROVINCES) + 1)
    ]


_MINISTRIES = (
    "Bộ Quốc phòng", "Bộ Công an", "Bộ Ngoại giao", "Bộ Nội vụ", "Bộ Tư pháp",
    "Bộ Kế hoạch và Đầu tư", "Bộ Tài chính", "Bộ Công Thương",
    "Bộ Nông nghiệp và Phát triển nông thôn", "Bộ Giao thông vận tải", "Bộ Xây dựng",
    "Bộ Tài nguyên và Môi trường", "Bộ Thông tin và Truyền thông",
    "Bộ Lao động - Thương binh và Xã hội", "Bộ Văn hóa, Thể thao và Du lịch",
    "Bộ Khoa học và Công nghệ", "Bộ Giáo dục và Đào tạo", "Bộ Y tế", "Ủy ban Dân tộc",
    "Ngân hàng Nhà nước Việt Nam", "Thanh tra Chính phủ", "Văn phòng Chính phủ",
    "Bảo hiểm xã hội Việt Nam", "Thông tấn xã Việt Nam", "Đài Tiếng nói Việt Nam",
    "Đài Truyền hình Việt Nam", "Viện Hàn lâm Khoa học và Công nghệ Việt Nam",
    "Viện Hàn lâm Khoa học xã hội Việt Nam", "Học viện Chính trị quốc gia Hồ Chí Minh",
)  # fmt: skip
_ORGANISATIONS = (
    "Ủy ban Trung ương Mặt trận Tổ quốc Việt Nam", "Tổng Liên đoàn Lao động Việt Nam",
    "Trung ương Đoàn Thanh niên Cộng sản Hồ Chí Minh", "Trung ương Hội Liên hiệp Phụ nữ Việt Nam",
    "Trung ương Hội Nông dân Việt Nam", "Trung ương Hội Cựu chiến binh Việt Nam",
)  # fmt: skip
_DEPARTMENTS = (
    "Văn phòng UBND", "Sở Nội vụ", "Sở Tư pháp", "Sở Kế hoạch và Đầu tư", "Sở Tài chính",
    "Sở Công Thương", "Sở Nông nghiệp và Phát triển nông thôn", "Sở Giao thông vận tải",
    "Sở Xây dựng", "Sở Tài nguyên và Môi trường", "Sở Thông tin và Truyền thông",
    "Sở Lao động - Thương binh và Xã hội", "Sở Văn hóa, Thể thao và Du lịch",
    "Sở Khoa học và Công nghệ", "Sở Giáo dục và Đào tạo", "Sở Y tế", "Thanh tra tỉnh",
    "Ban Dân tộc", "Ban Quản lý các khu công nghiệp",
)  # fmt: skip
_MINISTRY_UNITS = (
    "Văn phòng", "Vụ Tổ chức cán bộ", "Vụ Pháp chế", "Vụ Kế hoạch - Tài chính",
    "Vụ Hợp tác quốc tế", "Thanh tra", "Cục Công nghệ thông tin", "Trung tâm Thông tin",
    "Tạp chí", "Viện Chiến lược",
)  # fmt: skip
_DEPARTMENT_UNITS = ("Văn phòng", "Thanh tra", "Phòng Tổ chức - Hành chính", "Phòng Kế hoạch",
                     "Chi cục", "Trung tâm")  # fmt: skip
_LOCAL_UNITS = ("Trường Mầm non", "Trường Tiểu học", "Trường Trung học cơ sở", "Trạm Y tế",
                "Công an", "Hợp tác xã", "Nhà văn hóa", "Ban Chỉ huy Quân sự")  # fmt: skip
_SYLLABLES = (
    "An", "Bình", "Hòa", "Phú", "Tân", "Thạnh", "Long", "Mỹ", "Đông", "Tây", "Nam", "Bắc",
    "Hưng", "Thuận", "Phước", "Lộc", "Quang", "Trung", "Hải", "Sơn", "Xuân", "Thịnh", "Vĩnh",
    "Đức", "Minh", "Thành", "Cẩm", "Hà", "Kim", "Ngọc", "Yên", "Lâm", "Nghĩa", "Hợp", "Tiến",
)  # fmt: skip


def qd20_code(code: str) -> str:
    """A plausible Decision 20 code for a QCVN 102 code: the used groups, level 1 first
    (``000.46.24.H44`` → ``H44.24.46``); non-conforming codes are kept as they are."""
    groups = code.split(".")
    if len(groups) != 4:
        return code.upper()
    used = [g for g in reversed(groups) if g.strip("0")]
    return ".".join(used)


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    ascii_only = "".join(c for c in plain if c.isascii() and c.isalnum())
    return ascii_only.lower()


def _place(rng: random.Random) -> str:
    return f"{rng.choice(_SYLLABLES)} {rng.choice(_SYLLABLES)}"


def generate_directory(n: int, seed: int = 0) -> list[Agency]:
    """``n`` plausible agencies with QCVN 102 codes, explicit parents and Vietnamese names.

    Level 1: provincial People's Committees (H01…), People's Councils (K01…), ministries and
    government bodies (G01…, Văn phòng Chính phủ at G22) and mass organisations (T01…); level 2:
    departments and districts / a ministry's units; level 3: communes and departments' units;
    level 4 fills up the rest (schools, health stations …), round-robin over level 3. About 1% of
    level-3 agencies are re-parented (after a merger, the code no longer says the parent) and about
    2% carry an old code, as real directories do. Deterministic for a seed; 120,000 in well under
    a second.
    """
    builder = _DirectoryBuilder(n=n, rng=random.Random(seed))
    level3 = builder.level3(builder.level2(builder.roots()))
    builder.level4(level3)
    return builder.out


#: (agency, mail domain, kind) while the directory is built.
_Node = tuple[Agency, str, str]


@dataclass(kw_only=True)
class _DirectoryBuilder:
    n: int
    rng: random.Random
    out: list[Agency] = field(default_factory=list)

    def add(self, code: str, name: str, parent: Agency | None, domain: str) -> Agency | None:
        if len(self.out) >= self.n:
            return None
        qd20 = qd20_code(code)
        old_code = None
        if parent is not None and self.rng.random() < 0.02:
            old_code = f"{code[:4]}{self.rng.randrange(100):02d}{code[6:]}"
        agency = Agency(
            id=len(self.out) + 1,
            code=code,
            code_qd20=qd20,
            name=name,
            parent_id=parent.id if parent is not None else None,
            parent_code=parent.code if parent is not None else None,
            mail=f"vanthu.{qd20.lower().replace('.', '')}@{domain}.gov.vn",
            old_code=old_code,
        )
        self.out.append(agency)
        return agency

    def roots(self) -> list[_Node]:
        wanted: list[tuple[str, str, str, str]] = []  # code, name, domain, kind
        for index, province in _numbered_provinces():
            title = "thành phố" if province in _CITIES else "tỉnh"
            domain = _slug(province)
            wanted.append((f"H{index:02d}", f"UBND {title} {province}", domain, "province"))
            wanted.append((f"K{index:02d}", f"HĐND {title} {province}", domain, "council"))
        for index, ministry in enumerate(_MINISTRIES, start=1):
            wanted.append((f"G{index:02d}", ministry, _slug(ministry)[:16], "ministry"))
        for index, organisation in enumerate(_ORGANISATIONS, start=1):
            wanted.append((f"T{index:02d}", organisation, _slug(organisation)[:16], "other"))
        nodes = []
        for level1, name, domain, kind in wanted:
            root = self.add(f"000.00.00.{level1}", name, None, domain)
            if root is not None:
                nodes.append((root, domain, kind))
        return nodes

    def _children_names(self, root: Agency, kind: str) -> list[tuple[str, str]]:
        if kind == "province":
            province = root.name.split(" ", 2)[2]
            names = [(f"{d} tỉnh {province}", "department") for d in _DEPARTMENTS]
            districts = self.rng.randint(7, 12)
            return names + [
                (f"UBND huyện {_place(self.rng)}", "district") for _ in range(districts)
            ]
        if kind == "ministry":
            return [(f"{u} - {root.name}", "department") for u in _MINISTRY_UNITS]
        return [
            (f"Văn phòng {root.name}", "department"),
            (f"Ban Tổ chức {root.name}", "department"),
        ]

    def level2(self, roots: list[_Node]) -> list[_Node]:
        nodes = []
        for root, domain, kind in roots:
            for index, (name, child_kind) in enumerate(self._children_names(root, kind), 1):
                child = self.add(f"000.00.{index:02d}.{root.code[-3:]}", name, root, domain)
                if child is not None:
                    nodes.append((child, domain, child_kind))
        return nodes

    def level3(self, level2: list[_Node]) -> list[_Node]:
        siblings: dict[str, list[Agency]] = {}
        for parent, _, _ in level2:
            siblings.setdefault(parent.code[-3:], []).append(parent)
        nodes: list[_Node] = []
        for parent, domain, kind in level2:
            district = kind == "district"
            count = self.rng.randint(10, 18) if district else self.rng.randint(3, 6)
            for index in range(1, count + 1):
                name = (
                    f"UBND xã {_place(self.rng)}"
                    if district
                    else f"{_DEPARTMENT_UNITS[index - 1]} - {parent.name}"
                )
                code = f"000.{index:02d}.{parent.code[7:9]}.{parent.code[-3:]}"
                child = self.add(code, name, parent, domain)
                if child is None:
                    return nodes
                others = siblings[parent.code[-3:]]
                if len(others) > 1 and self.rng.random() < 0.01:  # re-parented after a merger
                    other = self.rng.choice(others)
                    child = dataclasses.replace(child, parent_id=other.id, parent_code=other.code)
                    self.out[-1] = child
                nodes.append((child, domain, "commune" if district else "unit"))
        return nodes

    def level4(self, level3: list[_Node]) -> None:
        serial = 0
        while len(self.out) < self.n and level3 and serial < 999:
            serial += 1
            for parent, domain, kind in level3:
                if kind == "commune":
                    place = parent.name.removeprefix("UBND xã ")
                    name = f"{_LOCAL_UNITS[(serial + parent.id) % len(_LOCAL_UNITS)]} {place}"
                    if serial > len(_LOCAL_UNITS):
                        name += f" số {serial // len(_LOCAL_UNITS) + 1}"
                else:
                    name = f"Phòng số {serial}, {parent.name}"
                if self.add(f"{serial:03d}.{parent.code[4:]}", name, parent, domain) is None:
                    return


def _agency_json(agency: Agency) -> dict[str, Any]:
    return {
        "id": agency.id,
        "code": agency.code,
        "pid": agency.parent_id if agency.parent_id is not None else 0,
        "name": agency.name,
        "mail": agency.mail,
        "oldCode": agency.old_code or "",
    }


def _agency_qd20_json(agency: Agency) -> dict[str, Any]:
    return {
        "id": agency.id,
        "code": agency.code_qd20,
        "code102": agency.code,
        "pid": agency.parent_id if agency.parent_id is not None else 0,
        "name": agency.name,
        "mail": agency.mail,
    }


# ------------------------------------------------------------------------------------ answers


def _ok(**fields: Any) -> dict[str, Any]:
    return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", **fields}


def _encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _answer(payload: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=_encode(payload), status=status, content_type="application/json")


def _fail(code: str, description: str, status: int = 200, **fields: str) -> web.Response:
    return _answer(
        {"status": "FAIL", "ErrorCode": code, "ErrorDesc": description, **fields}, status
    )


def _send_fail(code: str, description: str, status: int = 200) -> web.Response:
    """A sendEdoc refusal: ``DocId`` is there, empty (the SDK reads it from every answer)."""
    return _fail(code, description, status, DocId="")


def _now_text(state: AxisState, moment: float | None = None) -> str:
    when = dt.datetime.fromtimestamp(state.clock() if moment is None else moment, VIETNAM)
    return when.strftime(TRACE_TIMESTAMP)


# --------------------------------------------------------------------------------- operations

Operation = Callable[[AxisState, VerifiedRequest, bytes, web.Request], Awaitable[web.Response]]


def _receivers(params: Mapping[str, str], routing: Routing) -> list[str]:
    """The receiving units of a package: a document's To list; a status package's ``to`` header,
    or else its ResponseFor/OrganId."""
    if routing.kind is PackageKind.DOCUMENT:
        return list(routing.receivers)
    to = _parse_to(params.get("to", ""))
    return to or ([routing.response_to] if routing.response_to else [])


def _parse_to(text: str) -> list[str]:
    """The ``to`` header: JSON array or string (the SDK sends JSON text), or a comma list."""
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        value = text.split(",")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(v).strip() for v in value if str(v).strip()]


async def send_edoc(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    params = verified.params
    body = await _package_named(body, params.get("hash-file", ""))
    if not body:
        return _send_fail("10", "empty file, or hash-file does not match the package")
    message_type = params.get("messagetype", "edoc")
    if message_type not in ("edoc", "status"):
        return _send_fail("22", f"unknown messagetype {message_type!r}")
    try:
        routing = await run_blocking(len(body), read_routing, body)
        kind, from_code = routing.kind, routing.sender
        receivers = _receivers(params, routing)
    except (GatewayError, ValueError) as exc:
        return _send_fail("22", f"package not compliant: {exc}")
    if (kind is PackageKind.STATUS) != (message_type == "status"):
        return _send_fail("22", f"messagetype {message_type} but a {kind.value} package")
    header_from = params.get("from")
    if header_from and header_from != from_code:
        return _send_fail("22", f"from {header_from} but the package is from {from_code}")
    if from_code not in state.systems[verified.system_id].units:
        return _send_fail("19", f"sender {from_code} is not registered for {verified.system_id}")
    receivers = list(dict.fromkeys(receivers))
    unknown = [r for r in receivers if state.system_of(r) is None]
    if unknown or not receivers:
        return _send_fail("18", f"unknown receiver {', '.join(unknown) or '(none)'}")
    locked = [r for r in receivers if r in state.locked_units]
    if locked:
        return _send_fail("23", f"receiver locked: {', '.join(locked)}")
    sent = _commit(state, verified.system_id, from_code, message_type, receivers, body, routing)
    await fault_model.after_commit(state, request, request.app[STOPPING])
    return _answer(_ok(DocId=sent.doc_id))


async def _package_named(body: bytes, hash_text: str) -> bytes:
    """The package ``hash-file`` names: the body, or the body less the CRLF the SDK writes after
    the package (its hash covers the package alone); empty when it names neither."""
    candidates = [body[: -len(SDK_TRAILER)], body] if body.endswith(SDK_TRAILER) else [body]
    for package in candidates:
        if package and hash_file_matches(
            hash_text, await run_blocking(len(package), hash_file, package)
        ):
            return package
    return b""


def _commit(
    state: AxisState,
    system_id: str,
    from_code: str,
    message_type: str,
    receivers: list[str],
    body: bytes,
    routing: Routing,
) -> SentEdoc:
    now = state.clock()
    data = append_trace_header(
        body,
        organ_id=state.trace_organ_id or from_code,
        timestamp=dt.datetime.fromtimestamp(now, VIETNAM),
    )
    sent = SentEdoc(
        doc_id=str(uuid.uuid4()),
        system_id=system_id,
        from_code=from_code,
        message_type=message_type,
        document_id=routing.document_id,
        created_at=now,
    )
    state.sent[sent.doc_id] = sent
    state.counters["packages"] += 1
    for unit in receivers:
        for _ in range(fault_model.copies(state)):
            item = QueuedItem(
                doc_id=str(uuid.uuid4()),
                sender_doc_id=sent.doc_id,
                to_code=unit,
                from_code=from_code,
                system_id=state.system_of(unit) or "",
                message_type=message_type,
                data=data,
                created_at=now,
            )
            state.items[item.doc_id] = item
            state.queues.setdefault(unit, []).append(item.doc_id)
            state.listed.setdefault(unit, {})[item.doc_id] = None
            sent.receiver_doc_ids.append(item.doc_id)
    return sent


async def get_received_edoc_list(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    message_type = verified.params.get("messagetype", "edoc")
    rate = state.faults.duplicate_delivery_rate
    data: list[dict[str, Any]] = []
    for unit in state.systems[verified.system_id].units:
        for doc_id in state.listed.get(unit, ()):
            item = state.items[doc_id]
            if item.message_type != message_type:
                continue
            entry = {
                "docId": item.doc_id,
                "from": item.from_code,
                "to": item.to_code,
                "status": item.status,
                "created_time": _now_text(state, item.created_at),
                "messageType": item.message_type,
                "serviceType": "eDoc",
            }
            data.append(entry)
            if fault_model.chance(state, rate):
                data.append(dict(entry))  # listed twice
    return _answer(_ok(data=data))


def _count_listed(state: AxisState, system_id: str, message_type: str) -> web.Response:
    """What getReceivedEdocList would list for the system (duplicates not injected), counted."""
    count = sum(
        1
        for unit in state.systems[system_id].units
        for doc_id in state.listed.get(unit, ())
        if state.items[doc_id].message_type == message_type
    )
    return _answer(_ok(count=count))


async def count_receive_edoc(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    return _count_listed(state, verified.system_id, "edoc")


async def count_receive_status(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    return _count_listed(state, verified.system_id, "status")


def _own_item(state: AxisState, verified: VerifiedRequest) -> QueuedItem | None:
    item = state.items.get(verified.params.get("docId", ""))
    if item is None or item.system_id != verified.system_id:
        return None  # another system's item is as unknown as a missing one
    return item


async def get_edoc(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    item = _own_item(state, verified)
    if item is None:
        return _fail("10", "unknown docId")
    state.counters["downloads"] += 1
    encoded = await run_blocking(len(item.data), pybase64.b64encode, item.data)
    # Base64 needs no JSON escaping: the answer is put together around it instead of passing
    # the whole package text through the JSON encoder (a fifth of the simulator's CPU).
    body = _encode(_ok())[:-1] + b',"data":"' + encoded + b'"}'
    return web.Response(body=body, content_type="application/json")


async def download_edoc(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    """``GET /downloadEdoc`` (docId in ``XroadVnpt-docId``, as for getEdoc): the raw package."""
    item = _own_item(state, verified)
    if item is None:
        return _fail("10", "unknown docId")
    state.counters["downloads"] += 1
    return web.Response(body=item.data, content_type="application/octet-stream")


async def update_status(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    item = _own_item(state, verified)
    if item is None:
        return _fail("10", "unknown docId")
    status = verified.params.get("status", "")
    if status not in ACK_STATES:
        return _fail("10", f"status must be one of {', '.join(ACK_STATES)}")
    item.status = status
    listed = state.listed.setdefault(item.to_code, {})
    if status in ("done", "fail"):
        listed.pop(item.doc_id, None)
    else:
        listed.setdefault(item.doc_id)
    item.description = unquote(verified.params.get("description", ""))
    item.updated_at = state.clock()
    return _answer(_ok())


async def get_sent_edoc_list(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    doc_id = verified.params.get("docId")
    sent = [
        s
        for s in state.sent.values()
        if s.system_id == verified.system_id and (doc_id is None or s.doc_id == doc_id)
    ]
    if doc_id is not None and not sent:
        return _fail("10", "unknown docId")
    data = []
    for edoc in sent:
        for receiver_id in edoc.receiver_doc_ids:
            item = state.items[receiver_id]
            data.append(
                {
                    "senderDocId": edoc.doc_id,
                    "receiverDocId": item.doc_id,
                    "fromCode": edoc.from_code,
                    "toCode": item.to_code,
                    "messageType": edoc.message_type,
                    "serviceType": "eDoc",
                    "sendStatus": "done",
                    "sendStatusDesc": "Đã gửi lên trục",
                    "receiveStatus": item.status,
                    "receiveStatusDesc": item.description,
                    "sentTime": _now_text(state, edoc.created_at),
                    "receivedTime": _now_text(state, item.updated_at) if item.updated_at else "",
                }
            )
    return _answer(_ok(data=data))


async def get_agencies_list(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    payload = state.listing(
        "getAgenciesList",
        lambda: [_agency_json(a) for a in state.directory.values() if not a.deleted],
    )
    return web.Response(body=payload, content_type="application/json")


async def get_agencies_list_qd20(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    payload = state.listing(
        "getAgenciesListQD20",
        lambda: [_agency_qd20_json(a) for a in state.directory.values() if not a.deleted],
    )
    return web.Response(body=payload, content_type="application/json")


async def get_synchronize_unit(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    since = 0.0
    if verified.params.get("fromDate"):
        try:
            since = parse_timestamp(verified.params["fromDate"]).timestamp()
        except ValueError as exc:
            return _fail("10", f"fromDate: {exc}")
    data = []
    for agency in state.directory.values():
        if agency.updated_at < since:
            continue
        entry = _agency_json(agency)
        entry.update(
            pcode=agency.parent_code or "",
            codeQD20=agency.code_qd20,
            status="deleted" if agency.deleted else "active",
            updatedTime=_now_text(state, agency.updated_at),
        )
        data.append(entry)
    return _answer(_ok(data=data))


async def register_agency(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    try:
        fields = json.loads(body.decode("utf-8"))
        code = str(fields["code"]).strip()
        name = str(fields["name"]).strip()
        parse_strict(code, field="code")
    except (ValueError, KeyError, TypeError, AttributeError, GatewayError) as exc:
        return _fail("22", f"invalid agency: {exc}")
    if not name:
        return _fail("22", "invalid agency: name is empty")
    existing = state.directory.get(code)
    if existing is not None and not existing.deleted:
        return _fail("22", f"agency {code} is already registered")
    parent_code = str(fields.get("pcode") or "").strip() or None
    if parent_code is not None and parent_code not in state.directory:
        return _fail("22", f"unknown parent {parent_code}")
    state.add_agency(
        code=code, name=name, parent_code=parent_code, mail=str(fields.get("mail") or "")
    )
    system = state.systems[verified.system_id]
    state.systems[verified.system_id] = dataclasses.replace(system, units=(*system.units, code))
    return _answer(_ok())


async def delete_agency(
    state: AxisState, verified: VerifiedRequest, body: bytes, request: web.Request
) -> web.Response:
    # The SDK names the unit AgencyCode; a request without it names no unit.
    code = verified.params.get("AgencyCode", "")
    if not code:
        return _fail("10", "AgencyCode is missing")
    agency = state.directory.get(code)
    if agency is None or agency.deleted:
        return _fail("18", f"unknown agency {code!r}")
    state.remove_agency(code)
    return _answer(_ok())


OPERATIONS: dict[str, Operation] = {
    "sendEdoc": send_edoc,
    "getReceivedEdocList": get_received_edoc_list,
    "getEdoc": get_edoc,
    "updateStatus": update_status,
    "getSentEdocList": get_sent_edoc_list,
    "getAgenciesList": get_agencies_list,
    "getAgenciesListQD20": get_agencies_list_qd20,
    "getSynchronizeUnit": get_synchronize_unit,
    "registerAgency": register_agency,
    "deleteAgency": delete_agency,
    "countReceiveEdoc": count_receive_edoc,
    "countReceiveStatus": count_receive_status,
    "downloadEdoc": download_edoc,
}
#: The HTTP method(s) each operation takes: POST, but for these (the SDK's GETs). The counts also
#: take POST, as every other call does (assumed: DOMAIN.md does not say).
METHODS: dict[str, frozenset[str]] = {
    "downloadEdoc": frozenset({"GET"}),
    "countReceiveEdoc": frozenset({"GET", "POST"}),
    "countReceiveStatus": frozenset({"GET", "POST"}),
}

# ------------------------------------------------------------------------------------ the app

STATE = web.AppKey("axis_state", AxisState)
STOPPING = web.AppKey("axis_stopping", asyncio.Event)


async def _operation(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    operation = request.match_info["operation"]
    body = await request.read()
    state.record(operation, body, request_head(request) if state.record_bodies else b"")
    state.counters["requests"] += 1
    await fault_model.delay(state)
    # The SDK reads DocId from every sendEdoc answer, a refusal's included.
    doc_id = {"DocId": ""} if operation == "sendEdoc" else {}
    injected = fault_model.request_fault(state, state.clock())
    if injected is not None:
        return _fail("20", injected.reason, injected.status, **doc_id)
    try:
        verified = verify_request(
            request.headers.items(),
            state.secret_for,
            dt.datetime.fromtimestamp(state.clock(), dt.UTC),
            state.max_skew,
        )
    except VxpAuthError as exc:
        state.counters["auth_failures"] += 1
        return _fail("15", f"bad credentials: {exc}", 401, **doc_id)
    handler = OPERATIONS.get(operation)
    if handler is None:
        return _fail("10", f"unknown operation {operation!r}", status=404)
    if request.method not in METHODS.get(operation, frozenset({"POST"})):
        return _fail("10", f"{operation} does not take {request.method}", status=405)
    return await handler(state, verified, body, request)


async def _on_shutdown(app: web.Application) -> None:
    app[STOPPING].set()  # wakes handlers hanging on a simulated timeout


def create_axis_app(state: AxisState, *, max_body: int = 1 << 30) -> web.Application:
    app = web.Application(client_max_size=max_body)
    app[STATE] = state
    app[STOPPING] = asyncio.Event()
    fault_model.add_fault_control(
        app, lambda request: request.app[STATE], lambda request: request.app[STATE].snapshot()
    )
    app.router.add_post("/{operation}", _operation)
    app.router.add_get("/{operation}", _operation)
    app.on_shutdown.append(_on_shutdown)
    return app


@asynccontextmanager
async def running_axis(
    state: AxisState, *, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 2.0
) -> AsyncIterator[str]:
    """Serve the simulator while the block runs; yields its base URL (port 0: any free port)."""
    runner = web.AppRunner(
        create_axis_app(state), access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------------------------- the CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docgw axis-sim",
        description="A VXP-compatible national axis on loopback, with fault injection. "
        "Secrets given here are for the simulator only: never put a real axis secret on a "
        "command line (it shows in the process list and the shell history).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    add_system_arguments(
        parser,
        seed=0,
        skewed="a request timestamp",
        max_skew_note=f"default {DEFAULT_VXP_MAX_SKEW:g}, as the official SDK reuses one "
        f"timestamp for minutes; when not given, the SOAP variant keeps its {DEFAULT_MAX_SKEW:g}",
    )
    parser.add_argument("--directory-size", type=int, default=1000)
    parser.add_argument(
        "--national-directory", action="store_const", const=120_000, dest="directory_size",
        help="seed the directory with about 120,000 agencies, the size of the national one",
    )  # fmt: skip
    parser.add_argument(
        "--soap-port", type=int, default=0,
        help="also serve the SOAP variant (a provincial platform) on this port; 0: off",
    )  # fmt: skip
    parser.add_argument("--record", type=Path, help="append every request body to this file")
    add_fault_arguments(parser)
    return parser


def _state_from(args: argparse.Namespace) -> AxisState:
    skew = max_skew_from(args, DEFAULT_VXP_MAX_SKEW)
    state = AxisState(
        faults=faults_from(args),
        # A long-running simulator keeps no bodies in memory; --record keeps them on disk.
        record_bodies=False,
        record_file=args.record,
        max_skew=dt.timedelta(seconds=skew) if skew is not None else None,
        seed=args.seed,
    )
    state.load_directory(generate_directory(args.directory_size, args.seed))
    for system_id, secret, units in args.systems:
        state.add_system(system_id, secret, units)
    return state


async def _serve(
    state: AxisState,
    host: str,
    port: int,
    soap_port: int = 0,
    soap_skew: float | None = DEFAULT_MAX_SKEW,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with running_axis(state, host=host, port=port) as url:
        systems = ", ".join(f"{k} ({', '.join(v.units)})" for k, v in state.systems.items())
        print(f"docgw axis simulator listening on {url}", flush=True)
        print(f"  systems: {systems or 'none'}; directory: {len(state.directory)} agencies")
        print(f"  state: {url}/_sim/state  faults: POST {url}/_sim/faults", flush=True)
        soap = await _start_soap(state, host, soap_port, soap_skew) if soap_port else None
        try:
            await stop.wait()
        finally:
            if soap is not None:
                await soap.cleanup()


async def _start_soap(
    state: AxisState, host: str, port: int, max_skew: float | None
) -> web.AppRunner:
    """The SOAP variant: the same systems, secrets, units, seed and start-time faults, but its
    own timestamp tolerance (``max_skew``: ``--max-skew`` when given, else the SOAP default), its
    own queues (a provincial platform) and its own run-time fault control (``POST /_sim/faults``
    on its port: a burst set on one variant is not spent by the other)."""
    from connectors.base import DirectoryEntry
    from connectors.simulators.soap_axis import SoapAxisState, create_soap_app

    units = dict.fromkeys(u for system in state.systems.values() for u in system.units)
    known = [state.directory[u] for u in units if u in state.directory]
    soap_state = SoapAxisState(
        organizations=[
            DirectoryEntry(code=a.code, name=a.name, parent_code=a.parent_code) for a in known
        ],
        faults=state.faults,
        max_skew=max_skew,
        seed=state.seed,
    )
    for system_id, system in state.systems.items():
        soap_state.add_system(system_id, system.secret, system.units)
    runner = web.AppRunner(create_soap_app(soap_state), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    url = f"http://{host}:{port}"
    print(f"  SOAP variant: {url}/DocumentService?wsdl", flush=True)
    print(f"  state: {url}/_sim/state  faults: POST {url}/_sim/faults", flush=True)
    return runner


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        state = _state_from(args)
    except ValueError as exc:
        print(f"docgw axis-sim: {exc}", file=sys.stderr)
        return 2
    soap_skew = max_skew_from(args)  # a UsernameToken is fresh per request: its own default
    asyncio.run(_serve(state, args.host, args.port, args.soap_port, soap_skew))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What docgw's VXP connector puts on the wire, operation by operation, recorded by a plain HTTP
server on loopback and checked against vectors written here from DOMAIN.md §5 — independently of
the connector's code: the compact JSON, the HMAC-SHA256, the per-byte hash-file without leading
zeros and the timestamp's form and clock are computed with the standard library, never with
``connectors.vxp_signing``.

By default the connector must speak as the official SDK does (what the real axis is known to
accept): ``XroadVnpt-timestamp`` as ``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time, stamped afresh for
every request; ``hash-file`` per byte; ``XroadVnpt-version: 3.0.201608`` on every request;
deleteAgency naming the unit ``AgencyCode``. The other forms are settings, checked last.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from connectors.base import Delivery
from connectors.vxp import VxpConnector
from connectors.vxp_signing import HashFileForm, TimestampFormat
from envelopes.model import Classification

SYSTEM, SECRET = "docgw-vpcp", "bí-mật-của-hệ-thống".encode()
A_UNIT, B_UNIT = "000.00.00.G22", "000.00.00.H41"
VIETNAM = dt.timezone(dt.timedelta(hours=7))
SDK_TIMESTAMP = re.compile(r"(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{4})")
META = {"XroadVnpt-sign-header", "XroadVnpt-sign-header-key", "XroadVnpt-hash-header"}
VERSION = ("XroadVnpt-version", "3.0.201608")
JSON_TYPE = "application/json"


def package_with_a_small_digest_byte() -> bytes:
    """A package whose SHA-256 has a byte below 0x10, so that the SDK's form differs from the
    64-digit one (it drops that byte's leading zero)."""
    for n in itertools.count():
        data = f'<?xml version="1.0" encoding="UTF-8"?><edXML n="{n}">gói tin</edXML>'.encode()
        if any(byte < 0x10 for byte in hashlib.sha256(data).digest()):
            return data
    raise AssertionError("unreachable")


PACKAGE = package_with_a_small_digest_byte()
#: Java's Integer.toHexString per byte, as the SDK writes hash-file (DOMAIN.md §5).
SDK_HASH = "".join(format(byte, "x") for byte in hashlib.sha256(PACKAGE).digest())
CANONICAL_HASH = hashlib.sha256(PACKAGE).hexdigest()
#: A moment for getSynchronizeUnit's fromDate: 23:47:54.445 on 7 December 2026 in Hà Nội.
SINCE = dt.datetime(2026, 12, 7, 16, 47, 54, 445000, tzinfo=dt.UTC)


# ------------------------------------------------------------------------------- the recorder


@dataclasses.dataclass(frozen=True)
class Recorded:
    method: str
    operation: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float  # the server's clock when the request arrived (epoch seconds)

    def header(self, name: str) -> str:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) == 1, (self.operation, name, values)
        return values[0]


#: The answers an axis gives (DOMAIN.md §5), enough for the connector to go on.
ANSWERS: dict[str, dict[str, Any]] = {
    "sendEdoc": {"DocId": "sender-doc-1"},
    "getReceivedEdocList": {
        "data": [{"docId": "receiver-doc-1", "from": A_UNIT, "to": B_UNIT, "status": "initial"}]
    },
    "getEdoc": {"data": base64.b64encode(PACKAGE).decode()},
    "getSentEdocList": {"data": [{"toCode": B_UNIT, "sendStatus": "done"}]},
    "getAgenciesList": {"data": [{"id": 1, "code": A_UNIT, "pid": 0, "name": "VPCP"}]},
    "getAgenciesListQD20": {"data": [{"id": 1, "code": "G22", "code102": A_UNIT, "pid": 0}]},
    "getSynchronizeUnit": {"data": []},
}


@asynccontextmanager
async def recorder() -> AsyncIterator[tuple[str, list[Recorded]]]:
    seen: list[Recorded] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            Recorded(
                method=request.method,
                operation=request.match_info["operation"],
                headers=[(k.decode(), v.decode()) for k, v in request.raw_headers],
                body=body,
                received_at=time.time(),
            )
        )
        answer = {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Thành công"}
        answer.update(ANSWERS.get(request.match_info["operation"], {}))
        return web.json_response(answer)

    app = web.Application()
    app.router.add_route("*", "/{operation}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


def delivery(kind: str = "document") -> Delivery:
    return Delivery(
        message_id="msg-1",
        document_id="000.00.00.G22,2026/12/07,1/VPCP",
        kind=kind,
        sender=A_UNIT,
        recipients=(B_UNIT,),
        classification=Classification.THUONG,
        open_package=lambda: io.BytesIO(PACKAGE),
        package_size=len(PACKAGE),
        package_sha256=CANONICAL_HASH,
        attempt=1,
    )


def recorded(calls: Callable[[VxpConnector], Awaitable[None]], **settings: Any) -> list[Recorded]:
    async def scenario() -> list[Recorded]:
        async with recorder() as (url, seen), aiohttp.ClientSession() as session:
            connector = VxpConnector(
                name="axis",
                endpoint=url,
                system_id=SYSTEM,
                secret=SECRET,
                session=session,
                timeout=10.0,
                **settings,
            )
            await calls(connector)
            return seen

    return asyncio.run(scenario())


# ------------------------------------------------------------------------------- the checks


def sdk_moment(text: str) -> dt.datetime:
    """``ddMMyyyy'T'HHmmss+SSSS`` read as Vietnam local time; SSSS is milliseconds."""
    match = SDK_TIMESTAMP.fullmatch(text)
    assert match is not None, f"{text!r} is not ddMMyyyy'T'HHmmss+SSSS"
    day, month, year, hour, minute, second, millis = (int(g) for g in match.groups())
    assert millis < 1000, text
    return dt.datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=VIETNAM)


def check_signature(request: Recorded, expected: dict[str, str]) -> dt.datetime:
    """The request carries exactly the signed parameters ``expected`` (besides timestamp and
    systemid), signed as DOMAIN.md §5 says; returns the request's timestamp."""
    names = request.header("XroadVnpt-sign-header-key").split(";")
    sign_header = request.header("XroadVnpt-sign-header")
    pairs = json.loads(sign_header, object_pairs_hook=list)
    # Compact JSON (no spaces, UTF-8 as is) keyed by XroadVnpt-<name> in the listed order.
    assert sign_header == json.dumps(dict(pairs), separators=(",", ":"), ensure_ascii=False)
    assert [k for k, _ in pairs] == [f"XroadVnpt-{n}" for n in names]
    signed = {k.removeprefix("XroadVnpt-"): v for k, v in pairs}
    assert signed.pop("systemid") == SYSTEM
    stamp = signed.pop("timestamp")
    assert signed == expected, request.operation
    # Each signed value is sent as its own header too, and nothing else under the prefix but
    # the signature's three headers and the SDK's unsigned version.
    for key, value in pairs:
        assert request.header(key) == value
    prefixed = sorted(k for k, _ in request.headers if k.lower().startswith("xroadvnpt-"))
    assert prefixed == sorted([k for k, _ in pairs] + [*META, VERSION[0]]), request.operation
    assert request.header(VERSION[0]) == VERSION[1]
    assert request.header("Content-Type") == expected["Content-Type"]
    assert (
        request.header("XroadVnpt-hash-header")
        == hmac.new(SECRET, sign_header.encode("utf-8"), hashlib.sha256).hexdigest()
    )
    return sdk_moment(stamp)


def check_fresh(request: Recorded, moment: dt.datetime) -> None:
    """The timestamp is the moment the request was made, in Vietnam time (UTC+7)."""
    assert abs(moment.timestamp() - request.received_at) < 5.0, (request.operation, moment)


# -------------------------------------------------------------------------------- the tests


async def every_operation(connector: VxpConnector) -> None:
    assert (await connector.deliver(delivery())).remote_id == "sender-doc-1"
    await connector.deliver(delivery("status"))
    (item,) = await connector.pending("document")
    await connector.pending("status")
    assert await connector.fetch(item) == PACKAGE
    await asyncio.sleep(1.1)  # a timestamp reused from the first requests would show now
    await connector.acknowledge(item, ok=True)
    await connector.acknowledge(item, ok=False, reason="Gói tin hỏng")
    await connector.sent_states("sender-doc-1")
    await connector.agencies()
    await connector.agencies_qd20()
    await connector.synchronize_units(SINCE)
    await connector.register_agency(
        code="000.00.01.G22", name="Cục Kiểm soát", parent_code=A_UNIT, mail="vt@chinhphu.vn"
    )
    await connector.delete_agency("000.00.01.G22")


def json_call(**params: str) -> dict[str, str]:
    return {"Content-Type": JSON_TYPE, **params}


#: Each operation docgw uses, in the order above: its signed parameters (DOMAIN.md §5; where
#: DOMAIN.md is silent — description, fromDate — docgw's documented choice) and its body.
EXPECTED: list[tuple[str, dict[str, str], bytes | None]] = [
    (
        "sendEdoc",
        {
            "Content-Type": "application/octet-stream",
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "from": A_UNIT,
            "hash-file": SDK_HASH,
        },
        PACKAGE,
    ),
    (
        "sendEdoc",
        {
            "Content-Type": "application/octet-stream",
            "servicetype": "eDoc",
            "messagetype": "status",
            "from": A_UNIT,
            "hash-file": SDK_HASH,
            "to": f'["{B_UNIT}"]',
        },
        PACKAGE,
    ),
    ("getReceivedEdocList", json_call(servicetype="eDoc", messagetype="edoc"), b""),
    ("getReceivedEdocList", json_call(servicetype="eDoc", messagetype="status"), b""),
    ("getEdoc", json_call(servicetype="eDoc", docId="receiver-doc-1"), b""),
    ("updateStatus", json_call(servicetype="eDoc", docId="receiver-doc-1", status="done"), b""),
    (
        "updateStatus",
        json_call(
            servicetype="eDoc",
            docId="receiver-doc-1",
            status="fail",
            description=quote("Gói tin hỏng".encode(), safe=""),
        ),
        b"",
    ),
    ("getSentEdocList", json_call(servicetype="eDoc", docId="sender-doc-1"), b""),
    ("getAgenciesList", json_call(), b""),
    ("getAgenciesListQD20", json_call(), b""),
    ("getSynchronizeUnit", json_call(fromDate="07122026T234754+0445"), b""),
    ("registerAgency", json_call(), None),  # the JSON body, checked below
    ("deleteAgency", json_call(AgencyCode="000.00.01.G22"), b""),
]


def test_every_operation_speaks_the_official_sdks_wire_forms_by_default() -> None:
    seen = recorded(every_operation)
    assert [(r.method, r.operation) for r in seen] == [("POST", op) for op, _, _ in EXPECTED]
    moments = []
    for request, (operation, params, body) in zip(seen, EXPECTED, strict=True):
        moment = check_signature(request, params)
        check_fresh(request, moment)
        moments.append(moment)
        if body is not None:
            assert request.body == body, operation
    # Stamped per request: those after the pause are later than those before it.
    assert min(moments[5:]) - max(moments[:5]) >= dt.timedelta(seconds=1)
    assert json.loads(seen[-2].body) == {
        "pcode": A_UNIT,
        "code": "000.00.01.G22",
        "name": "Cục Kiểm soát",
        "mail": "vt@chinhphu.vn",
        "mobile": "",
        "fax": "",
    }
    # The package goes out alone: hash-file names exactly the body.
    assert SDK_HASH != CANONICAL_HASH and len(SDK_HASH) < 64


def test_the_other_forms_are_available_as_settings() -> None:
    async def calls(connector: VxpConnector) -> None:
        await connector.deliver(delivery())
        await connector.delete_agency("000.00.01.G22")

    send, delete = recorded(
        calls,
        timestamp_format=TimestampFormat.EPOCH_MILLIS,
        hash_form=HashFileForm.CANONICAL,
        delete_agency_param="code",
    )
    for request in (send, delete):
        stamp = request.header("XroadVnpt-timestamp")
        assert re.fullmatch(r"\d{13}", stamp), stamp
        assert abs(int(stamp) / 1000 - request.received_at) < 5.0
        assert request.header(VERSION[0]) == VERSION[1]
    assert send.header("XroadVnpt-hash-file") == CANONICAL_HASH
    assert delete.header("XroadVnpt-code") == "000.00.01.G22"
    assert not any(k.lower() == "xroadvnpt-agencycode" for k, _ in delete.headers)

"""Requests docgw refuses at the boundary (issue 13), over real HTTP on loopback, on SQLite and
PostgreSQL: each is a 4xx problem naming the field, and nothing is stored (a count of every table
before and after); none reaches the builder or the database.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from integration_support import OTHER, RECIPIENT, SENDER
from test_api import (
    API_SETTINGS,
    MESSAGES,
    MULTIPART,
    PDF,
    Client,
    expect_problem,
    form,
    make_tokens,
    metadata,
    ok,
    run,
    serve,
    snapshot,
    submit,
)

from connectors.fake import FakeConnector
from gateway.bootstrap import Gateway

Scenario = Any


def scenario_with(make_gateway: Any, body: Scenario) -> None:
    """Run ``body(gateway, client, who)`` against a served gateway with the test tokens."""

    async def scenario() -> None:
        fake = FakeConnector(name="axis")
        async with (
            make_gateway(connectors={"axis": fake}, extra=API_SETTINGS) as gateway,
            serve(gateway) as client,
        ):
            await body(gateway, client, await make_tokens(gateway))

    run(scenario)


async def refused_unchanged(
    gateway: Gateway,
    response_of: Any,
    status: int,
    code: str,
    element: str | None = None,
) -> dict[str, Any]:
    before = await snapshot(gateway)
    body = await expect_problem(await response_of(), status, code, element)
    assert await snapshot(gateway) == before
    return body


async def raw_exchange(client: Client, request: bytes) -> tuple[int, bytes]:
    """Bytes as they are: no HTTP client sends header bytes that are not UTF-8."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), answer
    return int(head.split()[1]), body


def submission(headers: bytes, meta: Any = None) -> bytes:
    """A whole multipart submission with extra raw header lines."""
    raw = json.dumps(meta or metadata(), ensure_ascii=False).encode()
    body = (
        b"--b0undary\r\nContent-Disposition: form-data; name=metadata\r\n\r\n" + raw + b"\r\n"
        b'--b0undary\r\nContent-Disposition: form-data; name="attachment"; filename="a.pdf"\r\n'
        b"\r\n%PDF-1.7 x\r\n--b0undary--\r\n"
    )
    head = (
        b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
        + headers
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    return head + body


# ------------------------------------------------------------------- header bytes not UTF-8


def test_a_bearer_token_that_is_not_utf8_is_401_not_500(make_gateway: Any) -> None:
    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        before = await snapshot(gateway)
        status, answer = await raw_exchange(
            client, submission(b"Authorization: Bearer \xff\xfe\x80dgw\r\n")
        )
        assert status == 401, answer
        assert json.loads(answer)["code"] == "UNAUTHORIZED"
        assert await snapshot(gateway) == before

    scenario_with(make_gateway, body)


def test_an_idempotency_key_that_is_not_utf8_is_refused_naming_it(make_gateway: Any) -> None:
    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        token = who["operator"]["Authorization"].encode()
        before = await snapshot(gateway)
        status, answer = await raw_exchange(
            client,
            submission(b"Authorization: " + token + b"\r\nIdempotency-Key: k\xff\xfe-1\r\n"),
        )
        problem = json.loads(answer)
        assert status == 422, answer
        assert (problem["code"], problem["element"]) == ("TEXT_INVALID", "Idempotency-Key")
        assert await snapshot(gateway) == before

    scenario_with(make_gateway, body)


# --------------------------------------------------------- text XML cannot carry, by field

BAD_TEXT = {
    "subject": ("subject", "V/v kết nối\x00 liên thông"),
    "a control character in a recipient's name": ("to[0].organ_name", "UBND\x07 tỉnh"),
    "U+FFFF": ("content", "nội dung \uffff"),
    "U+FFFE": ("signer.full_name", "Nguyễn \ufffeVăn A"),
    "a lone surrogate": ("promulgation.place", "Hà \ud800Nội"),
    "a list item": ("to_places[0]", "Như \x1btrên"),
    "the business staff": ("business.staff_info.staff", "Trần\x0bThị B"),
}


def _set(meta: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    """``meta`` with the field at ``path`` (``a.b[0].c``) set to ``value``."""
    target: Any = meta
    steps = [s for part in path.split(".") for s in part.replace("]", "").split("[")]
    for step in steps[:-1]:
        target = target[int(step)] if step.isdigit() else target[step]
    last = steps[-1]
    target[int(last) if last.isdigit() else last] = value
    return meta


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_metadata_text_xml_cannot_carry_is_refused_naming_the_field(
    make_gateway: Any, case: str
) -> None:
    field, value = BAD_TEXT[case]
    # JSON escapes every such character (ensure_ascii), lone surrogates included.
    raw = json.dumps(_set(metadata(), field, value)).encode()

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        await refused_unchanged(
            gateway,
            lambda: client.post(MESSAGES, data=form(raw, PDF), headers=who["operator"]),
            422,
            "TEXT_INVALID",
            field,
        )
        # The same check before routing: nothing is explained either.
        await refused_unchanged(
            gateway,
            lambda: client.post(f"{MESSAGES[:-9]}/route/explain", data=raw, headers=who["admin"]),
            422,
            "TEXT_INVALID",
            field,
        )

    scenario_with(make_gateway, body)


def test_a_status_description_or_staff_xml_cannot_carry_is_refused(make_gateway: Any) -> None:
    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        sent = (await submit(client, who["operator"]))["id"]
        url = f"{MESSAGES}/{sent}/status"
        for reply, element in (
            ({"code": "13", "description": "thu hồi\x00"}, "description"),
            ({"code": "13", "description": "thu hồi\ud83d"}, "description"),
            (
                {"code": "13", "description": "thu hồi", "staff_info": {"staff": "B\x01"}},
                "staff_info.staff",
            ),
        ):
            raw = json.dumps(reply).encode()
            await refused_unchanged(
                gateway,
                lambda raw=raw: client.post(url, data=raw, headers=who["operator"]),
                422,
                "TEXT_INVALID",
                element,
            )
        # The control: the same reply with clean text is queued.
        await ok(
            await client.post(
                url, json={"code": "13", "description": "thu hồi"}, headers=who["operator"]
            ),
            201,
        )

    scenario_with(make_gateway, body)


def test_parameters_xml_cannot_carry_are_400_naming_them(make_gateway: Any) -> None:
    """On PostgreSQL a NUL in a looked-up value was a database error (500)."""

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        admin = who["admin"]
        for url, element in (
            (f"{MESSAGES}/abc%00def", "id"),
            (f"{MESSAGES}?text=a%00b", "text"),
            (f"{MESSAGES}?sender=%01", "sender"),
            (f"{MESSAGES[:-9]}/units/000.00.00.G22%00", "code"),
            (f"{MESSAGES[:-9]}/units?q=%1f", "q"),
        ):
            await refused_unchanged(
                gateway, lambda url=url: client.get(url, headers=admin), 400, "BAD_REQUEST", element
            )

    scenario_with(make_gateway, body)


# ---------------------------------------------------------------------------- recipients


def test_the_same_recipient_twice_is_refused_before_the_build(make_gateway: Any) -> None:
    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        meta = metadata(to=(RECIPIENT, OTHER, RECIPIENT))
        problem = await refused_unchanged(
            gateway,
            lambda: client.post(MESSAGES, data=form(meta, PDF), headers=who["operator"]),
            422,
            "METADATA_INVALID",
            "to[2].organ_id",
        )
        assert "to[0]" in problem["detail"]

    scenario_with(make_gateway, body)


# ---------------------------------------------------------------------------- attachments

BAD_NAMES = {
    "dot-dot": 'filename=".."',
    "dot": 'filename="."',
    "absolute": 'filename="/etc/passwd"',
    "parent": 'filename="../../van-ban.pdf"',
    "windows parent": 'filename="..\\\\..\\\\van-ban.pdf"',
    "windows path": 'filename="C:\\\\Users\\\\vt\\\\cong-van.pdf"',
    "drive": 'filename="C:van-ban.pdf"',
    "folder": 'filename="ho-so/van-ban.pdf"',
    "rfc 2231 not utf-8": "filename*=UTF-8''van-ban-%FF%FE.pdf",
    "rfc 2231 traversal": "filename*=UTF-8''..%2Fvan-ban.pdf",
    "control character": "filename*=UTF-8''van%01ban.pdf",
    "nul": "filename*=UTF-8''van-ban.pdf%00.exe",
    "unknown charset": "filename*=x-no-such-charset''van-ban.pdf",
}


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_an_attachment_name_that_is_not_a_file_name_is_refused(
    make_gateway: Any, case: str
) -> None:
    disposition = f'form-data; name="attachment"; {BAD_NAMES[case]}'.encode()
    raw = json.dumps(metadata(), ensure_ascii=False).encode()
    data = (
        b"--b0undary\r\nContent-Disposition: form-data; name=metadata\r\n\r\n" + raw
        + b"\r\n--b0undary\r\nContent-Disposition: " + disposition + b"\r\n\r\n%PDF-1.7 x"
        + b"\r\n--b0undary--\r\n"
    )  # fmt: skip

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        await refused_unchanged(
            gateway,
            lambda: client.post(MESSAGES, data=data, headers={**who["operator"], **MULTIPART}),
            422,
            "ATTACHMENT_NAME_INVALID",
            "attachment",
        )

    scenario_with(make_gateway, body)


def test_an_attachment_name_with_bytes_not_utf8_is_refused(make_gateway: Any) -> None:
    """Raw bytes in the quoted filename (not RFC 2231): once turned into U+FFFD or a crash."""
    raw = json.dumps(metadata(), ensure_ascii=False).encode()
    data = (
        b"--b0undary\r\nContent-Disposition: form-data; name=metadata\r\n\r\n" + raw
        + b'\r\n--b0undary\r\nContent-Disposition: form-data; name="attachment"; '
        + b'filename="van-ban-\xff\xfe.pdf"\r\n\r\n%PDF-1.7 x\r\n--b0undary--\r\n'
    )  # fmt: skip

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        await refused_unchanged(
            gateway,
            lambda: client.post(MESSAGES, data=data, headers={**who["operator"], **MULTIPART}),
            422,
            "ATTACHMENT_NAME_INVALID",
            "attachment",
        )

    scenario_with(make_gateway, body)


def test_a_zero_byte_attachment_is_refused(make_gateway: Any) -> None:
    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        empty = ("trong.pdf", b"", "application/pdf")
        await refused_unchanged(
            gateway,
            lambda: client.post(MESSAGES, data=form(metadata(), PDF, empty), headers=who["admin"]),
            422,
            "ATTACHMENT_EMPTY",
            "attachment",
        )

    scenario_with(make_gateway, body)


# ---------------------------------------------------------------------------------- units


def test_a_unit_name_with_nul_or_control_characters_is_refused(make_gateway: Any) -> None:
    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        units_url = f"{MESSAGES[:-9]}/units"
        for name in ("Sở\x00 Nội vụ", "Sở\x1b[31m Nội vụ"):
            raw = json.dumps({"code": "000.00.00.H99", "name": name}).encode()
            await refused_unchanged(
                gateway,
                lambda raw=raw: client.post(units_url, data=raw, headers=who["admin"]),
                422,
                "TEXT_INVALID",
                "name",
            )
        # A member renaming its own unit is held to the same rule.
        raw = json.dumps({"code": SENDER, "name": "VPCP\x08"}).encode()
        await refused_unchanged(
            gateway,
            lambda: client.post(units_url, data=raw, headers=who["sender"]),
            422,
            "TEXT_INVALID",
            "name",
        )

    scenario_with(make_gateway, body)


def test_the_registry_refuses_a_control_character_in_a_unit_name_from_any_surface(
    make_gateway: Any,
) -> None:
    """The CLI and the CSV import reach the registry without the API's JSON check."""
    from envelopes.errors import GatewayError
    from gateway.store.records import UnitRecord
    from gateway.usecases import registry

    async def scenario() -> None:
        async with make_gateway() as gateway:
            before = await snapshot(gateway)
            with pytest.raises(GatewayError) as refused:
                await registry.register_unit(
                    gateway,
                    UnitRecord(code="000.00.00.H99", name="Sở\x00Nội vụ"),
                    certificate_pem=None,
                    actor="test",
                )
            assert (refused.value.code, refused.value.element) == ("TEXT_INVALID", "name")
            with pytest.raises(GatewayError) as in_csv:
                await registry.import_csv(
                    gateway, "code,name\n000.00.00.H98,Sở\x07 Tư pháp\n", actor="test"
                )
            assert (in_csv.value.code, in_csv.value.element) == ("TEXT_INVALID", "name")
            assert await snapshot(gateway) == before

    run(scenario)


# ------------------------------------------------------------------------- idempotency key


def test_an_idempotency_key_reused_with_another_request_is_422(make_gateway: Any) -> None:
    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        key = {"Idempotency-Key": "vb-2026-0042"}
        headers = {**who["operator"], **key}
        first = await ok(
            await client.post(MESSAGES, data=form(metadata(), PDF), headers=headers), 201
        )
        other_pdf = ("van-ban.pdf", b"%PDF-1.7 another text", "application/pdf")
        for changed in (
            form(metadata(subject="Another subject"), PDF),
            form(metadata(), other_pdf),
            form(metadata(), PDF, ("phu-luc.pdf", b"%PDF-1.7 more", "application/pdf")),
            form(metadata(to=(OTHER,)), PDF),
            form(metadata(classification="mat"), PDF),
        ):
            problem = await refused_unchanged(
                gateway,
                lambda changed=changed: client.post(MESSAGES, data=changed, headers=headers),
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "Idempotency-Key",
            )
            assert first["id"] in problem["detail"]
        # The same request with the same key (another multipart boundary): the original, 200.
        again = await ok(
            await client.post(MESSAGES, data=form(metadata(), PDF), headers=headers), 200
        )
        assert (again["id"], again["created"]) == (first["id"], False)
        # Another token's key is its own (a document of its own: the same DocumentId or số/ký
        # hiệu again would be refused for what it is).
        other_client = await ok(
            await client.post(
                MESSAGES,
                data=form(metadata(number="7817", subject="Another subject"), PDF),
                headers={**who["admin"], **key},
            ),
            201,
        )
        assert other_client["id"] != first["id"]

    scenario_with(make_gateway, body)


def test_a_new_key_raced_by_two_different_requests_gives_the_loser_422(make_gateway: Any) -> None:
    """Two requests with one new key, sent at once: both pass the early look-up, both are built,
    one stores and the other meets the key's unique constraint — and is compared like any
    repeat (it used to get the winner's message, its own document silently dropped)."""

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        for round_ in range(4):
            headers = {**who["operator"], "Idempotency-Key": f"dua-{round_}"}
            number = str(8000 + round_)
            responses = await asyncio.gather(
                client.post(MESSAGES, data=form(metadata(number=number), PDF), headers=headers),
                client.post(
                    MESSAGES,
                    data=form(metadata(number=number, subject="Khác"), PDF),
                    headers=headers,
                ),
            )
            statuses = sorted(response.status for response in responses)
            assert statuses == [201, 422], [await r.text() for r in responses]
            loser = next(r for r in responses if r.status == 422)
            assert (await loser.json())["code"] == "IDEMPOTENCY_KEY_REUSED"

    scenario_with(make_gateway, body)


def test_a_classified_document_repeated_with_its_key_is_compared_through_the_seal(
    make_gateway: Any,
) -> None:
    """A classified message stores only a copy sealed for the sender: the comparison opens it."""

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        headers = {**who["operator"], "Idempotency-Key": "mat-0001"}
        meta = metadata(classification="mat")
        first = await ok(await client.post(MESSAGES, data=form(meta, PDF), headers=headers), 201)
        again = await ok(await client.post(MESSAGES, data=form(meta, PDF), headers=headers), 200)
        assert again["id"] == first["id"]
        await refused_unchanged(
            gateway,
            lambda: client.post(
                MESSAGES,
                data=form(metadata(classification="mat", number="9"), PDF),
                headers=headers,
            ),
            422,
            "IDEMPOTENCY_KEY_REUSED",
            "Idempotency-Key",
        )

    scenario_with(make_gateway, body)


# ----------------------------------------------------------------- a member's invisible message


def test_a_member_asking_about_a_message_it_may_not_see_gets_404_for_every_action(
    make_gateway: Any,
) -> None:
    """SENDER → RECIPIENT is invisible to OTHER's member: a status reply of any code is 404
    (a receiver's code once answered 409, naming the direction), like reading it."""

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        sent = (await submit(client, who["operator"]))["id"]
        other = who["other"]
        for code in ("03", "13"):
            await refused_unchanged(
                gateway,
                lambda code=code: client.post(
                    f"{MESSAGES}/{sent}/status", json={"code": code}, headers=other
                ),
                404,
                "NOT_FOUND",
            )
        await expect_problem(
            await client.get(f"{MESSAGES}/{sent}", headers=other), 404, "NOT_FOUND"
        )
        for action in ("resend", "cancel", "reroute"):
            # Operator actions are staff-only: refused by role, before the message is looked up.
            response = await client.post(
                f"{MESSAGES}/{sent}/{action}", json={"reason": "x"}, headers=other
            )
            await expect_problem(response, 403, "FORBIDDEN")
        # The control: the sender's own member may ask, and is told the state (409).
        await expect_problem(
            await client.post(
                f"{MESSAGES}/{sent}/status", json={"code": "03"}, headers=who["sender"]
            ),
            409,
            "CONFLICT",
        )

    scenario_with(make_gateway, body)


def test_a_refusal_that_echoes_a_lone_surrogate_is_still_a_problem(make_gateway: Any) -> None:
    """The problem names the field as sent; a lone surrogate in it could not be encoded (500)."""

    async def body(gateway: Gateway, client: Client, who: dict[str, dict[str, str]]) -> None:
        raw = b'{"code": "000.00.00.H99", "name": "S\\u1edf", "\\ud800x": 1}'
        problem = await refused_unchanged(
            gateway,
            lambda: client.post(f"{MESSAGES[:-9]}/units", data=raw, headers=who["admin"]),
            400,
            "BAD_REQUEST",
        )
        assert problem["element"] == "?x"

    scenario_with(make_gateway, body)

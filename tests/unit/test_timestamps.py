"""RFC 3161 DER, sans I/O: the request's fields, and what is taken from an answer — only a granted
token for the imprint asked for."""

from __future__ import annotations

import hashlib

import pytest

from envelopes import timestamps
from envelopes.timestamps import TimestampRefused, _der, _integer

IMPRINT = hashlib.sha256(b"signature bytes").digest()
#: A stand-in token: a ContentInfo-shaped SEQUENCE that carries the imprint inside.
TOKEN = _der(0x30, _der(0x06, b"\x2a\x86\x48") + _der(0x04, IMPRINT))


def response(status: int, token: bytes | None = TOKEN) -> bytes:
    return _der(0x30, _der(0x30, _integer(status)) + (token or b""))


def test_the_request_carries_version_imprint_nonce_and_cert_req() -> None:
    query, imprint = timestamps.request(b"signature bytes", nonce=5)
    assert imprint == IMPRINT
    sha256 = bytes.fromhex("300d06096086480165030402010500")
    expected = _der(
        0x30,
        _integer(1) + _der(0x30, sha256 + _der(0x04, IMPRINT)) + _integer(5) + b"\x01\x01\xff",
    )
    assert query == expected


@pytest.mark.parametrize("status", [0, 1])
def test_a_granted_answer_gives_its_token(status: int) -> None:
    assert timestamps.token_from_response(response(status), IMPRINT) == TOKEN


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (response(2), "status 2"),  # rejection
        (response(0, token=None), "no token"),
        (response(0, token=_der(0x30, _der(0x04, b"\0" * 32))), "not for the data"),
        (b"\x30\x05\x30", "cut short"),
        (b"\x04\x01\x00", "not a TimeStampResp"),  # an OCTET STRING
    ],
    ids=["rejected", "no-token", "other-imprint", "truncated", "not-a-response"],
)
def test_anything_else_is_refused(answer: bytes, message: str) -> None:
    with pytest.raises(TimestampRefused, match=message):
        timestamps.token_from_response(answer, IMPRINT)

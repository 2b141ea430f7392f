"""RFC 3161 time-stamp requests and responses, sans I/O: the request's DER, and the token taken
out of the authority's answer once its status says granted. The token itself is checked by
whoever relies on it (``openssl ts -verify``); here only its imprint is compared with what was
asked, so a token for other data is never kept.

The DER is written and read by hand: the request is four fixed fields, and of the response only
the status and the token's bytes are needed (``cryptography`` has no RFC 3161 support).
"""

from __future__ import annotations

import hashlib
import secrets

from envelopes.errors import GatewayError

#: id-sha256 with NULL parameters.
_SHA256_ALGORITHM = bytes.fromhex("300d06096086480165030402010500")


class TimestampRefused(GatewayError):
    """The timestamp authority refused, or answered something that is not a token for the data."""

    code = "TIMESTAMP_REFUSED"


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def request(data: bytes, *, nonce: int | None = None) -> tuple[bytes, bytes]:
    """(TimeStampReq DER, the SHA-256 imprint asked for); certReq true, a random nonce."""
    imprint = hashlib.sha256(data).digest()
    message_imprint = _der(0x30, _SHA256_ALGORITHM + _der(0x04, imprint))
    body = (
        _integer(1)
        + message_imprint
        + _integer(nonce if nonce is not None else secrets.randbits(63))
        + _der(0x01, b"\xff")
    )
    return _der(0x30, body), imprint


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``at``."""
    if at + 2 > len(data):
        raise TimestampRefused("the answer is cut short")
    tag, first = data[at], data[at + 1]
    start = at + 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise TimestampRefused("the answer is not DER")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + size > len(data):
        raise TimestampRefused("the answer is cut short")
    return tag, start, start + size


def token_from_response(response: bytes, imprint: bytes) -> bytes:
    """The TimeStampToken (a CMS ContentInfo, DER) of a granted TimeStampResp for ``imprint``."""
    tag, start, end = _read(response, 0)
    if tag != 0x30:
        raise TimestampRefused("the answer is not a TimeStampResp")
    tag, status_start, status_end = _read(response, start)
    if tag != 0x30:
        raise TimestampRefused("the answer has no PKIStatusInfo")
    tag, value_start, value_end = _read(response, status_start)
    status = int.from_bytes(response[value_start:value_end], "big") if tag == 0x02 else -1
    if status not in (0, 1):  # granted, grantedWithMods
        raise TimestampRefused(f"the timestamp authority answered status {status}")
    if status_end >= end:
        raise TimestampRefused("the answer carries no token")
    tag, token_start, token_end = _read(response, status_end)
    token = response[status_end:token_end]
    # The imprint sits inside the signed TSTInfo: finding its DER encoding there ties the token
    # to the data asked for (the signature over it is for the verifier to check).
    if _der(0x04, imprint) not in token:
        raise TimestampRefused("the token is not for the data asked for")
    del token_start
    return token

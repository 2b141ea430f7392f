"""VXP request authentication (DOMAIN.md §5): vectors built by hand here, independently of the
module — the JSON text is written out character by character and the HMAC computed with hmac and
hashlib — then every way a request can be wrong is refused with VXP_AUTH_FAILED. The defaults are
the official SDK's forms; epoch milliseconds and the canonical hash stay available as settings."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import io
import itertools

import pytest

from connectors.vxp_signing import (
    HashFileForm,
    TimestampFormat,
    VxpAuthError,
    hash_file,
    hash_file_matches,
    parse_timestamp,
    render_hash,
    sdk_hash_form,
    sign_headers,
    verify_headers,
    verify_request,
)
from envelopes.errors import GatewayError

SYSTEM = "vpcp.g22"
SECRET = b"bi-mat-cua-he-thong"
#: 2024-03-15 08:30:00.123 in Hà Nội = 01:30:00.123 UTC.
MOMENT = dt.datetime(2024, 3, 15, 1, 30, 0, 123000, tzinfo=dt.UTC)
EPOCH_MS = str(calendar.timegm((2024, 3, 15, 1, 30, 0)) * 1000 + 123)
SDK_STAMP = "15032024T083000+0123"  # ddMMyyyy'T'HHmmss+SSSS, Vietnam time
PARAMS = {
    "Content-Type": "application/octet-stream",
    "servicetype": "eDoc",
    "messagetype": "edoc",
    "from": "000.00.00.G22",
    "hash-file": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
}


def hand_built(timestamp: str, params: dict[str, str], secret: bytes = SECRET) -> dict[str, str]:
    """The headers DOMAIN.md §5 describes, built without the module: values here hold no
    character JSON would escape, so the compact JSON is plain concatenation."""
    names = ["timestamp", "systemid", *params]
    values = {"timestamp": timestamp, "systemid": SYSTEM, **params}
    json_text = "{" + ",".join(f'"XroadVnpt-{n}":"{values[n]}"' for n in names) + "}"
    headers = {f"XroadVnpt-{n}": values[n] for n in names}
    if "Content-Type" in params:
        headers["Content-Type"] = params["Content-Type"]
    headers["XroadVnpt-sign-header-key"] = ";".join(names)
    headers["XroadVnpt-sign-header"] = json_text
    headers["XroadVnpt-hash-header"] = hmac.new(
        secret, json_text.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    headers["XroadVnpt-version"] = "3.0.201608"  # the SDK's, unsigned, on every request
    return headers


def secrets(system_id: str) -> bytes | None:
    return SECRET if system_id == SYSTEM else None


def signed(**changes: object) -> dict[str, str]:
    arguments: dict[str, object] = {
        "system_id": SYSTEM,
        "secret": SECRET,
        "timestamp": MOMENT,
        "params": PARAMS,
    }
    arguments.update(changes)
    return sign_headers(**arguments)  # type: ignore[arg-type]


def verify(headers: dict[str, str] | list[tuple[str, str]], **kwargs: object) -> str:
    return verify_headers(headers, secrets, kwargs.pop("now", MOMENT), **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- vectors


def test_sign_headers_matches_the_hand_built_vector_in_the_sdk_form_by_default() -> None:
    assert signed() == hand_built(SDK_STAMP, PARAMS)
    assert signed()["XroadVnpt-version"] == "3.0.201608"


def test_the_epoch_millis_setting_matches_its_vector() -> None:
    assert EPOCH_MS == "1710466200123"
    assert signed(timestamp_format=TimestampFormat.EPOCH_MILLIS) == hand_built(EPOCH_MS, PARAMS)


def test_the_sdk_timestamp_keeps_milliseconds_on_four_digits_in_vietnam_time() -> None:
    # 23:47:54.445 in Hà Nội on 7 December 2026 is 16:47:54.445 UTC (DOMAIN.md's example).
    moment = dt.datetime(2026, 12, 7, 16, 47, 54, 445000, tzinfo=dt.UTC)
    stamp = signed(timestamp=moment)["XroadVnpt-timestamp"]
    assert stamp == "07122026T234754+0445"
    assert parse_timestamp(stamp) == moment
    # Past midnight in Hà Nội while still the day before in UTC: the local date is written.
    late = dt.datetime(2026, 12, 7, 17, 0, 0, 7000, tzinfo=dt.UTC)
    assert signed(timestamp=late)["XroadVnpt-timestamp"] == "08122026T000000+0007"


def test_a_fixed_vector_pins_the_hmac() -> None:
    params = {"Content-Type": "application/json", "servicetype": "eDoc", "docId": "42"}
    headers = signed(params=params, timestamp_format=TimestampFormat.EPOCH_MILLIS)
    assert headers["XroadVnpt-sign-header"] == (
        '{"XroadVnpt-timestamp":"1710466200123","XroadVnpt-systemid":"vpcp.g22",'
        '"XroadVnpt-Content-Type":"application/json","XroadVnpt-servicetype":"eDoc",'
        '"XroadVnpt-docId":"42"}'
    )
    assert headers["XroadVnpt-sign-header-key"] == (
        "timestamp;systemid;Content-Type;servicetype;docId"
    )
    assert headers["XroadVnpt-hash-header"] == hand_built(EPOCH_MS, params)["XroadVnpt-hash-header"]
    assert headers["XroadVnpt-hash-header"] == headers["XroadVnpt-hash-header"].lower()


def test_non_ascii_values_are_signed_as_raw_utf8_not_escaped() -> None:
    params = {"Content-Type": "application/json", "name": "Văn phòng Chính phủ"}
    headers = signed(params=params)
    assert '"XroadVnpt-name":"Văn phòng Chính phủ"' in headers["XroadVnpt-sign-header"]
    assert headers == hand_built(SDK_STAMP, params)


def test_timestamps_parse_in_both_forms() -> None:
    assert parse_timestamp(EPOCH_MS) == MOMENT
    assert parse_timestamp(SDK_STAMP) == MOMENT
    with pytest.raises(ValueError):
        parse_timestamp("2024-03-15T08:30:00")


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError):
        signed(timestamp=dt.datetime(2024, 3, 15, 8, 30))


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "line\nbreak", "nul\x00"])
def test_header_injection_is_refused_when_signing(value: str) -> None:
    with pytest.raises(ValueError):
        signed(params={**PARAMS, "from": value})


# -------------------------------------------------------------------------------- verification


def test_a_signed_request_verifies_to_its_system() -> None:
    assert verify(signed()) == SYSTEM
    assert verify(hand_built(SDK_STAMP, PARAMS)) == SYSTEM
    assert verify(hand_built(EPOCH_MS, PARAMS)) == SYSTEM


def test_verify_request_returns_only_the_signed_parameters() -> None:
    verified = verify_request(signed(), secrets, MOMENT)
    assert verified.system_id == SYSTEM
    assert verified.timestamp == MOMENT
    assert dict(verified.params) == PARAMS


def test_header_names_are_case_insensitive() -> None:
    assert verify({k.lower(): v for k, v in signed().items()}) == SYSTEM


def test_the_sdk_unsigned_version_header_is_tolerated_and_not_required() -> None:
    headers = signed()
    assert verify(headers) == SYSTEM
    del headers["XroadVnpt-version"]
    assert verify(headers) == SYSTEM


def refused(headers: dict[str, str] | list[tuple[str, str]], **kwargs: object) -> VxpAuthError:
    with pytest.raises(VxpAuthError) as caught:
        verify(headers, **kwargs)
    assert caught.value.code == "VXP_AUTH_FAILED"
    assert isinstance(caught.value, GatewayError)
    return caught.value


def test_a_wrong_secret_is_refused() -> None:
    error = refused(signed(secret=b"not-the-secret"))
    assert error.element == "XroadVnpt-hash-header"


def test_a_wrong_hmac_is_refused() -> None:
    headers = signed()
    digest = headers["XroadVnpt-hash-header"]
    headers["XroadVnpt-hash-header"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    refused(headers)


def test_a_tampered_header_value_is_refused() -> None:
    headers = signed()
    headers["XroadVnpt-from"] = "000.00.00.H41"  # the signed JSON still says G22
    assert refused(headers).element == "XroadVnpt-from"


def test_tampering_with_the_signed_json_breaks_the_hmac() -> None:
    headers = signed()
    headers["XroadVnpt-from"] = "000.00.00.H41"
    headers["XroadVnpt-sign-header"] = headers["XroadVnpt-sign-header"].replace(
        "000.00.00.G22", "000.00.00.H41"
    )
    assert refused(headers).element == "XroadVnpt-hash-header"


def test_an_unsigned_parameter_header_is_refused() -> None:
    # Otherwise a handler could read a docId nobody signed.
    refused({**signed(), "XroadVnpt-docId": "someone-elses-document"})


def test_dropping_a_name_from_the_key_list_is_refused() -> None:
    headers = signed()
    headers["XroadVnpt-sign-header-key"] = "timestamp;systemid;Content-Type"
    refused(headers)


def test_a_repeated_header_is_refused() -> None:
    items = [*signed().items(), ("XroadVnpt-from", "000.00.00.H41")]
    refused(items)


@pytest.mark.parametrize(
    "missing",
    [
        "XroadVnpt-sign-header",
        "XroadVnpt-sign-header-key",
        "XroadVnpt-hash-header",
        "XroadVnpt-timestamp",
        "XroadVnpt-systemid",
        "XroadVnpt-hash-file",
    ],
)
def test_a_missing_header_is_refused(missing: str) -> None:
    headers = signed()
    del headers[missing]
    refused(headers)


def test_timestamp_and_systemid_must_be_signed() -> None:
    names = ["Content-Type", "servicetype"]
    json_text = '{"XroadVnpt-Content-Type":"application/json","XroadVnpt-servicetype":"eDoc"}'
    headers = {
        "XroadVnpt-Content-Type": "application/json",
        "XroadVnpt-servicetype": "eDoc",
        "XroadVnpt-sign-header-key": ";".join(names),
        "XroadVnpt-sign-header": json_text,
        "XroadVnpt-hash-header": hmac.new(SECRET, json_text.encode(), hashlib.sha256).hexdigest(),
    }
    refused(headers)


def test_an_unknown_system_is_refused() -> None:
    error = refused(signed(system_id="stranger"))
    assert "stranger" in error.message


def test_a_stale_timestamp_is_refused() -> None:
    later = MOMENT + dt.timedelta(minutes=6)
    refused(signed(), now=later, max_skew=dt.timedelta(minutes=5))
    refused(signed(), now=MOMENT - dt.timedelta(minutes=6), max_skew=dt.timedelta(minutes=5))
    assert verify(signed(), now=later, max_skew=dt.timedelta(minutes=10)) == SYSTEM
    assert verify(signed(), now=later + dt.timedelta(days=30), max_skew=None) == SYSTEM


def test_a_malformed_sign_header_is_refused() -> None:
    headers = signed()
    headers["XroadVnpt-sign-header"] = "not json"
    refused(headers)


# ----------------------------------------------------------------------------------- hash-file


def digest_with_a_small_byte() -> tuple[bytes, str]:
    """Some data whose SHA-256 has a byte below 0x10 (the SDK drops its leading zero)."""
    for n in itertools.count():
        data = f"gói tin {n}".encode()
        digest = hashlib.sha256(data).hexdigest()
        if any(digest[i] == "0" for i in range(0, 64, 2)):
            return data, digest
    raise AssertionError("unreachable")


def test_hash_file_is_canonical_sha256_hex_for_bytes_and_streams() -> None:
    data = b"<edXML/>" * 100_000
    expected = hashlib.sha256(data).hexdigest()
    assert hash_file(data) == expected
    assert hash_file(io.BytesIO(data)) == expected
    assert hash_file(iter([data[:5], data[5:]])) == expected
    assert len(expected) == 64


def test_the_sdk_leading_zero_dropping_form_is_accepted() -> None:
    data, digest = digest_with_a_small_byte()
    sdk = "".join(format(byte, "x") for byte in hashlib.sha256(data).digest())  # Java toHexString
    assert len(sdk) < 64
    assert sdk_hash_form(digest) == sdk
    assert render_hash(digest, HashFileForm.SDK) == sdk
    assert render_hash(digest) == sdk  # the default: the SDK's form
    assert render_hash(digest, HashFileForm.CANONICAL) == digest
    assert hash_file_matches(sdk, hash_file(data))
    assert hash_file_matches(digest, hash_file(data))
    assert hash_file_matches(digest.upper(), hash_file(data))


def test_a_wrong_or_empty_hash_file_does_not_match() -> None:
    data, digest = digest_with_a_small_byte()
    other = hashlib.sha256(data + b"!").hexdigest()
    assert not hash_file_matches(other, digest)
    assert not hash_file_matches(sdk_hash_form(other), digest)
    assert not hash_file_matches("", digest)
    assert not hash_file_matches("not hex at all", digest)

"""How a VXP (national axis) request is authenticated — sans I/O: values in, headers out.

The rules (DOMAIN.md §5, as the official SDK implements them)
------------------------------------------------------------
Every parameter of a call travels as an HTTP header ``XroadVnpt-<name>``. The signed names are the
client's ``timestamp`` and ``systemid``, then ``Content-Type`` and the call's own parameters
(``from``, ``servicetype=eDoc``, ``messagetype=edoc|status``, ``docId``, ``status``, ``hash-file``,
``to`` …). The client

1. builds a JSON object ``{"XroadVnpt-<name>": "<value>", …}`` over those names, compact
   (no spaces) and in the order the names are listed;
2. sends it verbatim as ``XroadVnpt-sign-header``;
3. sends the names, ``;``-joined and without the prefix, as ``XroadVnpt-sign-header-key``;
4. sends ``XroadVnpt-hash-header`` = lower-case hex HMAC-SHA256(secret, UTF-8 of that JSON);
5. also sends every ``XroadVnpt-<name>`` header itself (and a plain ``Content-Type``).

``hash-file`` is the SHA-256 of the package. The SDK writes each byte with Java's
``Integer.toHexString`` — ``"%x"``, so a byte below 0x10 loses its leading zero and the text is
shorter than 64 characters (and ambiguous). docgw sends that form by default, as the axis is known
to accept it (:class:`HashFileForm`), and accepts both on check.

The SDK also sends ``XroadVnpt-version: 3.0.201608`` on every request, outside the signature;
:func:`sign_headers` does the same (:data:`SDK_VERSION`).

Where DOMAIN.md is thin (probable, configurable)
------------------------------------------------
* **Timestamp format.** The SDK formats its timestamp with
  ``SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")`` in Vietnam local time — e.g.
  ``07122026T234754+0445``, where ``+SSSS`` is a literal ``+`` and the milliseconds on four
  digits: docgw's default (:attr:`TimestampFormat.SDK`). Epoch milliseconds as a decimal string
  (:attr:`TimestampFormat.EPOCH_MILLIS`) stay available for a platform that wants them. The
  verifier accepts both. docgw stamps every request afresh; the SDK stamps once, when its service
  object is built, and reuses that timestamp for every call the object makes, so an axis cannot
  enforce freshness tightly: ``max_skew`` is a parameter (``None`` disables the check).
* **Compact JSON** is ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``, which is
  what Gson's ``JsonObject.toString()`` writes for these values (no HTML escaping, no ``\\u``
  escapes for non-ASCII). Key order is the order the names are listed (the SDK's order is a Java
  HashMap's, i.e. arbitrary): the verifier therefore never re-serialises — it checks the HMAC over
  the JSON text exactly as received, then checks each signed value against its header.
* The secret is used as its UTF-8 bytes (the SDK: ``secret.getBytes("UTF-8")``).

Verification (what :func:`verify_headers` demands)
--------------------------------------------------
The three signature headers are present; the JSON is an object of strings whose keys are exactly
the ``XroadVnpt-`` + each listed name; ``timestamp`` and ``systemid`` are among them; each signed
value equals the header of that name; no other ``XroadVnpt-*`` header is present (except the SDK's
unsigned ``XroadVnpt-version``), so what a handler reads from the headers is what was signed; no
``XroadVnpt-*`` header is repeated; the system is known; the HMAC matches (constant-time); the
timestamp is within ``max_skew`` of ``now``. Anything else raises :class:`VxpAuthError`
(``VXP_AUTH_FAILED``) naming the header at fault.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import IO

from envelopes.errors import GatewayError

PREFIX = "XroadVnpt-"
SIGN_HEADER = f"{PREFIX}sign-header"
SIGN_HEADER_KEY = f"{PREFIX}sign-header-key"
HASH_HEADER = f"{PREFIX}hash-header"
#: Sent by the SDK on every request outside the signature; tolerated unsigned.
VERSION_HEADER = f"{PREFIX}version"
#: The value the official SDK (SDKVXP 2.0.1) sends in it (DOMAIN.md §5).
SDK_VERSION = "3.0.201608"
_PREFIX_LOWER = PREFIX.lower()
_META = {SIGN_HEADER.lower(), SIGN_HEADER_KEY.lower(), HASH_HEADER.lower()}
_UNSIGNED_ALLOWED = {VERSION_HEADER.lower()}
#: Names every signed request must carry.
REQUIRED_NAMES = ("timestamp", "systemid")

#: Vietnam has kept UTC+7 without daylight saving since 1975: a fixed offset is exact.
VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header field-name (RFC 9110)
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SDK_TIMESTAMP = re.compile(r"(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{3,4})")
_EPOCH_MILLIS = re.compile(r"\d{1,16}")
_HEX = re.compile(r"[0-9a-f]+")
_CHUNK = 1 << 20


class VxpAuthError(GatewayError):
    """A VXP request whose authentication headers do not hold (the axis answers ErrorCode 15)."""

    code = "VXP_AUTH_FAILED"


class TimestampFormat(StrEnum):
    """How the client writes ``XroadVnpt-timestamp`` (probable: see the module docstring)."""

    SDK = "sdk"  # "15032024T083000+0123": ddMMyyyy'T'HHmmss+SSSS, Vietnam time (the default)
    EPOCH_MILLIS = "epoch_millis"  # "1710466200123"


class HashFileForm(StrEnum):
    """How ``hash-file`` is written: the SDK's zero-dropping form (the default), or canonical 64
    hex digits."""

    SDK = "sdk"
    CANONICAL = "canonical"


@dataclass(frozen=True, kw_only=True)
class VerifiedRequest:
    """What a verified request says: its system and its signed parameters (without the prefix,
    and without ``timestamp`` / ``systemid``)."""

    system_id: str
    timestamp: dt.datetime
    params: Mapping[str, str]


# ----------------------------------------------------------------------------------- timestamps


def format_timestamp(moment: dt.datetime, form: TimestampFormat = TimestampFormat.SDK) -> str:
    if moment.tzinfo is None:
        raise ValueError("a VXP timestamp needs an aware datetime")
    if form is TimestampFormat.EPOCH_MILLIS:
        return str(int(moment.timestamp() * 1000))
    local = moment.astimezone(VIETNAM)
    return local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"


def parse_timestamp(text: str) -> dt.datetime:
    """Either form; raises ValueError."""
    text = text.strip()
    if _EPOCH_MILLIS.fullmatch(text):
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
    match = _SDK_TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is neither epoch milliseconds nor ddMMyyyy'T'HHmmss+SSSS")
    day, month, year, hour, minute, second, millis = (int(g) for g in match.groups())
    return dt.datetime(
        year, month, day, hour, minute, second, millis * 1000, tzinfo=VIETNAM
    ).astimezone(dt.UTC)


# -------------------------------------------------------------------------------------- signing


def compact_json(values: Mapping[str, str]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def hmac_hex(secret: bytes, sign_header: str) -> str:
    return hmac.new(secret, sign_header.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(
    *,
    system_id: str,
    secret: bytes,
    timestamp: dt.datetime,
    params: Mapping[str, str],
    timestamp_format: TimestampFormat = TimestampFormat.SDK,
) -> dict[str, str]:
    """Every header of one signed VXP request.

    ``params`` are the call's own names → values, in the order they are to be signed (put
    ``Content-Type`` there; it is then sent both plain and as ``XroadVnpt-Content-Type``, as the
    SDK does). Raises ValueError for a name that is not an HTTP token or a value with a control
    character (it would split or corrupt the header block).
    """
    names = ["timestamp", "systemid", *params]
    if len(set(n.lower() for n in names)) != len(names):
        raise ValueError("a parameter name is repeated (or is timestamp/systemid)")
    values = {"timestamp": format_timestamp(timestamp, timestamp_format), "systemid": system_id}
    values.update(params)
    for name, value in values.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if _BAD_VALUE.search(value):
            raise ValueError(f"the value of {name!r} contains a control character")
    signed = {f"{PREFIX}{name}": values[name] for name in names}
    sign_header = compact_json(signed)
    headers = dict(signed)
    if "Content-Type" in params:
        headers["Content-Type"] = params["Content-Type"]
    headers[SIGN_HEADER_KEY] = ";".join(names)
    headers[SIGN_HEADER] = sign_header
    headers[HASH_HEADER] = hmac_hex(secret, sign_header)
    headers[VERSION_HEADER] = SDK_VERSION
    return headers


# --------------------------------------------------------------------------------- verification


def _lowered(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Case-insensitive view; a repeated ``XroadVnpt-*`` header is refused (which one counts?)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in lowered and key.startswith(PREFIX.lower()):
            raise VxpAuthError("header repeated", element=name)
        lowered[key] = value
    return lowered


def _signed_values(lowered: Mapping[str, str]) -> tuple[list[str], dict[str, str], str, str]:
    for header in (SIGN_HEADER, SIGN_HEADER_KEY, HASH_HEADER):
        if not lowered.get(header.lower()):
            raise VxpAuthError("authentication header missing", element=header)
    sign_header = lowered[SIGN_HEADER.lower()]
    names = lowered[SIGN_HEADER_KEY.lower()].split(";")
    try:
        signed = json.loads(sign_header)
    except ValueError as exc:
        raise VxpAuthError("not JSON", element=SIGN_HEADER) from exc
    if not isinstance(signed, dict) or not all(isinstance(v, str) for v in signed.values()):
        raise VxpAuthError("not a JSON object of strings", element=SIGN_HEADER)
    if len(set(names)) != len(names) or set(signed) != {f"{PREFIX}{n}" for n in names}:
        raise VxpAuthError("the signed names and the signed JSON disagree", element=SIGN_HEADER_KEY)
    values = {name: signed[f"{PREFIX}{name}"] for name in names}
    return names, values, sign_header, lowered[HASH_HEADER.lower()]


def verify_request(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    secret_for: Callable[[str], bytes | None],
    now: dt.datetime,
    max_skew: dt.timedelta | None = dt.timedelta(minutes=5),
) -> VerifiedRequest:
    """Check a request's authentication headers (see the module docstring); raise VxpAuthError.

    ``headers`` may be a plain dict or a multidict's ``items()`` (so repeats are seen).
    """
    lowered = _lowered(headers)
    names, values, sign_header, given_hash = _signed_values(lowered)
    for required in REQUIRED_NAMES:
        if required not in values:
            raise VxpAuthError(f"{required} is not signed", element=SIGN_HEADER_KEY)
    for name in names:
        header = f"{PREFIX}{name}"
        actual = lowered.get(header.lower())
        if actual is None:
            raise VxpAuthError("signed header missing", element=header)
        if not hmac.compare_digest(actual.encode("utf-8"), values[name].encode("utf-8")):
            raise VxpAuthError("header differs from its signed value", element=header)
    allowed = {f"{PREFIX}{n}".lower() for n in names} | _META | _UNSIGNED_ALLOWED
    for key in lowered:
        if key.startswith(_PREFIX_LOWER) and key not in allowed:
            raise VxpAuthError("unsigned parameter header", element=key)
    system_id = values["systemid"]
    secret = secret_for(system_id)
    if secret is None:
        raise VxpAuthError(f"unknown system {system_id!r}", element=f"{PREFIX}systemid")
    expected = hmac_hex(secret, sign_header)
    if not hmac.compare_digest(expected.encode("ascii"), given_hash.strip().lower().encode()):
        raise VxpAuthError("HMAC does not match", element=HASH_HEADER)
    try:
        timestamp = parse_timestamp(values["timestamp"])
    except ValueError as exc:
        raise VxpAuthError(str(exc), element=f"{PREFIX}timestamp") from exc
    if max_skew is not None and abs(now - timestamp) > max_skew:
        raise VxpAuthError(
            f"timestamp is {abs(now - timestamp)} away from now (at most {max_skew})",
            element=f"{PREFIX}timestamp",
        )
    params = {n: v for n, v in values.items() if n not in REQUIRED_NAMES}
    return VerifiedRequest(system_id=system_id, timestamp=timestamp, params=params)


def verify_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    secret_for: Callable[[str], bytes | None],
    now: dt.datetime,
    max_skew: dt.timedelta | None = dt.timedelta(minutes=5),
) -> str:
    """:func:`verify_request`, returning only the authenticated system id."""
    return verify_request(headers, secret_for, now, max_skew).system_id


# ------------------------------------------------------------------------------------ hash-file


def hash_file(data_or_stream: bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]) -> str:
    """SHA-256 of a package, canonical lower-case hex (64 digits). Streams are read in chunks."""
    digest = hashlib.sha256()
    if isinstance(data_or_stream, bytes | bytearray | memoryview):
        digest.update(data_or_stream)
    elif hasattr(data_or_stream, "read"):
        stream: IO[bytes] = data_or_stream  # type: ignore[assignment]
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    else:
        for chunk in data_or_stream:
            digest.update(chunk)
    return digest.hexdigest()


def sdk_hash_form(canonical_hex: str) -> str:
    """The SDK's rendering of a digest: each byte as ``"%x"`` (a leading zero dropped)."""
    return "".join(f"{byte:x}" for byte in bytes.fromhex(canonical_hex))


def render_hash(canonical_hex: str, form: HashFileForm = HashFileForm.SDK) -> str:
    return canonical_hex.lower() if form is HashFileForm.CANONICAL else sdk_hash_form(canonical_hex)


def hash_file_matches(expected: str, actual_hex: str) -> bool:
    """Does a received ``hash-file`` (either form, any case) name the digest ``actual_hex``?"""
    given = expected.strip().lower()
    if not given or not _HEX.fullmatch(given):
        return False
    actual = actual_hex.lower()
    return any(
        hmac.compare_digest(given.encode(), form.encode())
        for form in (actual, sdk_hash_form(actual))
    )

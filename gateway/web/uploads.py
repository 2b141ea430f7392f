"""A submission's multipart body: one ``metadata`` part (JSON, read into memory, at most
:data:`METADATA_LIMIT` bytes) and ``attachment`` parts, each spooled to a temporary file as it
arrives and counted against ``[api] max_upload_bytes``, so memory does not grow with the
attachment."""

from __future__ import annotations

import contextlib
import email.message
import email.utils

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from envelopes.attachments import AttachmentSource, check_name, checked_source
from envelopes.errors import AttachmentNameInvalid
from envelopes.xmltext import check_text, first_unsafe
from gateway.usecases.packages import opener, spool
from gateway.web.common import CHUNK, check_size, media_type, multipart_errors
from gateway.web.problems import BadRequest, PayloadTooLarge, UnsupportedMediaType

METADATA_LIMIT = 1 << 20
IDEMPOTENCY_KEY_MAX = 200


async def read_submission(
    request: web.Request, spools: contextlib.ExitStack, limit: int
) -> tuple[bytes, list[AttachmentSource]]:
    """The ``metadata`` part (bytes) and each ``attachment`` part spooled to a temporary file."""
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            "send multipart/form-data with a metadata part and attachment parts"
        )
    check_size(request, limit)
    metadata: bytes | None = None
    attachments: list[AttachmentSource] = []
    with multipart_errors():
        reader = await request.multipart()
    while (part := await _next_part(reader)) is not None:
        name, filename = _disposition(part)
        if name == "metadata":
            if metadata is not None:
                raise BadRequest("more than one metadata part", element="metadata")
            metadata = await _read_metadata_part(part, request, limit)
        elif name == "attachment":
            attachments.append(await _spool_attachment(part, filename, request, limit, spools))
        else:
            raise BadRequest(
                f"unexpected part {name!r}: send one metadata part and attachment parts",
                element=name,
            )
    if metadata is None:
        raise BadRequest("the metadata part is missing", element="metadata")
    return metadata, attachments


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    with multipart_errors():
        part = await reader.next()
    if part is not None and not isinstance(part, BodyPartReader):
        raise BadRequest("nested multipart parts are not accepted")
    if part is not None:
        encoding = part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING, "binary").lower()
        if encoding not in ("binary", "8bit", "7bit") or hdrs.CONTENT_ENCODING in part.headers:
            # The bytes are stored as sent; an encoded part would be stored encoded.
            raise BadRequest(
                "parts must be sent as they are, without an encoding", element=part.name
            )
    return part


async def _read_metadata_part(part: BodyPartReader, request: web.Request, limit: int) -> bytes:
    data = bytearray()
    with multipart_errors():
        while chunk := await part.read_chunk(CHUNK):
            check_size(request, limit)
            data += chunk
            if len(data) > METADATA_LIMIT:
                raise PayloadTooLarge(
                    f"the metadata part is over {METADATA_LIMIT} bytes", element="metadata"
                )
    return bytes(data)


def _disposition(part: BodyPartReader) -> tuple[str | None, str | None]:
    """A form-data part's (name, filename), RFC 2231 ``filename*`` included. (aiohttp's
    ``part.name`` and ``part.filename`` each parse the header with a function that rebuilds an
    escaped character class on every call: twice the CPU of the email package's parser.)"""
    raw = part.headers.get(hdrs.CONTENT_DISPOSITION, "")
    header = email.message.Message()
    header["Content-Disposition"] = raw
    name = header.get_param("name", header="content-disposition")
    filename = header.get_param("filename", header="content-disposition")
    decoded = None if name is None else email.utils.collapse_rfc2231_value(name)
    # Header bytes that are not UTF-8 arrive as lone surrogates, which the email package would
    # turn into U+FFFD: a name the sender never gave. Refused while they can still be seen.
    if first_unsafe(raw) is not None:
        if decoded == "attachment":
            raise AttachmentNameInvalid(
                "the file name is not UTF-8 text, or holds a control character",
                element="attachment",
            )
        raise BadRequest("the Content-Disposition header is not UTF-8 text", element=decoded)
    return decoded, None if filename is None else _rfc2231_filename(filename)


def _rfc2231_filename(value: str | tuple[str | None, str | None, str]) -> str:
    """A ``filename`` parameter as text. An RFC 2231 ``filename*`` whose bytes are not text in
    its charset is refused: the email package would turn them into U+FFFD, and the package
    would carry a name the sender never gave."""
    if isinstance(value, str):
        return email.utils.unquote(value)
    charset, _, encoded = value
    try:
        return bytes(encoded, "raw-unicode-escape").decode(charset or "us-ascii")
    except (LookupError, UnicodeDecodeError):
        raise AttachmentNameInvalid(
            f"the filename* bytes are not {charset or 'us-ascii'} text", element="attachment"
        ) from None


async def _spool_attachment(
    part: BodyPartReader,
    filename: str | None,
    request: web.Request,
    limit: int,
    spools: contextlib.ExitStack,
) -> AttachmentSource:
    if not (filename or "").strip():
        raise BadRequest("an attachment part needs a filename", element="attachment")
    # A path (browsers on Windows once sent one) is refused, not cut to its last segment; and
    # before the part's bytes are read.
    name = check_name(filename or "")
    content_type = part.headers.get(hdrs.CONTENT_TYPE)
    if content_type is not None:
        check_text(content_type, element="attachment")
    out = spools.enter_context(spool())
    with multipart_errors():
        while chunk := await part.read_chunk(CHUNK):
            check_size(request, limit)
            out.write(chunk)
    return checked_source(name, size=out.tell(), content_type=content_type, open=opener(out))


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        raise BadRequest(
            f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters", element="Idempotency-Key"
        )
    return check_text(key, element="Idempotency-Key")

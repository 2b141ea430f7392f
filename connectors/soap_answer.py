"""An answer that carries a package (the SOAP axis' GetDocument), read in bounded memory.

The package comes in one of the two forms SOAP platforms use (DOMAIN.md §5: "in the body or as
attachments"):

* **inline**, base64 text in the body (``text/xml``): the answer is fed as it arrives to the
  hardened streaming parser, which hands the package element's text to a base64 decoder writing
  to ``out``; the rest of the answer is a small tree;
* **as a MIME attachment** (``multipart/related``): MTOM/XOP (the element holds
  ``<xop:Include href="cid:…"/>``) or SOAP with Attachments (the element's ``href="cid:…"``, or
  its text ``cid:…`` as swaRef writes it). The answer goes to a temporary file as it arrives; the
  parts are found by scanning it for the boundary, the root part (the envelope: small) is parsed
  with the same parser, and the part it names is copied to ``out`` — raw for ``binary`` /
  ``8bit`` / ``7bit``, decoded for ``base64``. A root part that holds the package inline is read
  as the inline form is.

Either way ``out`` takes at most ``limit`` bytes of package, and the answer is read only while it
could still hold a package within the limit (:class:`~envelopes.errors.XmlRejected` beyond).
"""

from __future__ import annotations

import itertools
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import IO, cast

import requests
from lxml import etree

from envelopes.attachments import Base64Decoder
from envelopes.errors import GatewayError, XmlRejected
from envelopes.xmlsafe import Limits, TextSink, parse_stream

#: Bytes of an answer read at a time.
CHUNK = 1 << 20
#: Room for the envelope around the package's base64 text, which may be line-wrapped (76
#: characters and CRLF: 4/3 × 78/76 of the package, under 1.4×).
OVERHEAD = 1 << 20
#: A MIME part's headers are a few lines.
MAX_PART_HEADERS = 64 << 10
XOP_INCLUDE = "{http://www.w3.org/2004/08/xop/include}Include"


class _Capped:
    """The package's spool, refusing to grow past ``limit`` bytes."""

    def __init__(self, out: IO[bytes], limit: int, element: str) -> None:
        self.out, self.limit, self.element, self.size = out, limit, element, 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise XmlRejected(f"a package of more than {self.limit} bytes", element=self.element)
        return self.out.write(data)


@dataclass(frozen=True, kw_only=True)
class StreamedAnswer:
    """The answer's tree without the package (None when it could not be read, with ``error``),
    its HTTP status, its first bytes (for messages) and the size of the package written."""

    status: int
    root: etree._Element | None
    error: GatewayError | None
    head: bytes
    package_size: int = 0


@dataclass(frozen=True, kw_only=True)
class _Where:
    """Where the package is: the tags of its element and of that element's parent."""

    package: str
    parent: str

    @property
    def name(self) -> str:
        return f"{etree.QName(self.parent).localname}/{etree.QName(self.package).localname}"


def read_answer(
    response: requests.Response, out: IO[bytes], *, limit: int, package: str, parent: str
) -> StreamedAnswer:
    """Read ``response`` (``stream=True``); the package of element ``package`` (inside
    ``parent``; Clark tags) is written to ``out``."""
    where = _Where(package=package, parent=parent)
    head = bytearray()

    def chunks() -> Iterator[bytes]:
        for chunk in response.iter_content(CHUNK):
            if len(head) < 300:
                head.extend(chunk[: 300 - len(head)])
            yield chunk

    def answer(
        root: etree._Element | None, error: GatewayError | None, size: int = 0
    ) -> StreamedAnswer:
        return StreamedAnswer(
            status=response.status_code, root=root, error=error, head=bytes(head), package_size=size
        )

    mime, params = _content_type(response.headers.get("Content-Type", ""))
    most = limit * 3 // 2 + OVERHEAD
    try:
        if mime == "multipart/related" and params.get("boundary"):
            root, size = _read_multipart(chunks(), params, out, limit, most, where)
        else:
            root, size = _read_inline(chunks(), out, limit, most, where)
    except GatewayError as exc:
        return answer(None, exc)
    return answer(root, None, size)


def _read_inline(
    chunks: Iterator[bytes], out: IO[bytes], limit: int, most: int, where: _Where
) -> tuple[etree._Element, int]:
    decoders: list[Base64Decoder] = []

    def choose(tag: str, parent: str | None) -> TextSink | None:
        if tag != where.package or parent != where.parent:
            return None
        # A second package element is decoded nowhere, and refused below.
        sink = cast(IO[bytes], _Capped(out, limit, where.name)) if not decoders else None
        decoders.append(Base64Decoder(sink, element=where.name))
        return decoders[-1]

    root = parse_stream(chunks, limits=Limits(max_input_bytes=most), stream=choose).root
    if len(decoders) > 1:
        raise XmlRejected(f"more than one {etree.QName(where.package).localname}")
    return root, decoders[0].digest.size if decoders else 0


# ------------------------------------------------------------------------------- attachments


@dataclass(frozen=True, kw_only=True)
class _Part:
    headers: dict[str, str]
    #: The body's offsets in the answer's file.
    start: int
    end: int


def _read_multipart(
    chunks: Iterator[bytes],
    params: dict[str, str],
    out: IO[bytes],
    limit: int,
    most: int,
    where: _Where,
) -> tuple[etree._Element, int]:
    with tempfile.TemporaryFile() as answer:
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > most:
                raise XmlRejected(f"an answer of more than {most} bytes")
            answer.write(chunk)
        parts = _parts(answer, params["boundary"].encode("latin-1"))
        start = params.get("start", "").strip()
        roots = [p for p in parts if _content_id(p) == _cid(start)] if start else parts[:1]
        if not roots:
            raise XmlRejected("no root part in the multipart answer")
        # Not streamed: the package element holds a reference here (an element, for MTOM), or,
        # seldom, the base64 text, kept within the parser's limit on text.
        root = parse_stream(_range(answer, roots[0]), limits=Limits(max_input_bytes=most)).root
        elements = _package_elements(root, where)
        if len(elements) > 1:
            raise XmlRejected(f"more than one {etree.QName(where.package).localname}")
        if not elements:
            return root, 0
        element = elements[0]
        reference = _reference(element)
        if reference is None:
            decoder = Base64Decoder(
                cast(IO[bytes], _Capped(out, limit, where.name)), element=where.name
            )
            decoder.write(element.text or "")
            decoder.close()
            element.text = None
            return root, decoder.digest.size
        named = [p for p in parts if _content_id(p) == _cid(reference)]
        if len(named) != 1:
            raise XmlRejected(f"no attachment part {reference!r} in the answer")
        return root, _copy_part(answer, named[0], _Capped(out, limit, where.name), where)


def _package_elements(root: etree._Element, where: _Where) -> list[etree._Element]:
    return [
        element
        for element in root.iter(where.package)
        if (parent := element.getparent()) is not None and parent.tag == where.parent
    ]


def _reference(element: etree._Element) -> str | None:
    """The ``cid:`` URL naming the package's part: MTOM's xop:Include, SwA's href or swaRef
    text; None when the package is inline."""
    include = element.find(XOP_INCLUDE)
    if include is not None:
        return str(include.get("href") or "")
    href = element.get("href")
    if href:
        return str(href)
    text = (element.text or "").strip()
    return text if text.lower().startswith("cid:") else None


def _cid(value: str) -> str:
    """A Content-ID (``<id>``) or a ``cid:`` URL (percent-encoded, RFC 2392), as one id."""
    value = value.strip()
    if value.lower().startswith("cid:"):
        value = urllib.parse.unquote(value[4:])
    return value.removeprefix("<").removesuffix(">")


def _content_id(part: _Part) -> str:
    return _cid(part.headers.get("content-id", ""))


def _copy_part(answer: IO[bytes], part: _Part, out: _Capped, where: _Where) -> int:
    encoding = part.headers.get("content-transfer-encoding", "binary").strip().lower()
    write: Callable[[bytes], object]
    if encoding == "base64":
        decoder = Base64Decoder(cast(IO[bytes], out), element=where.name)

        def write(chunk: bytes) -> None:
            decoder.write(chunk.decode("ascii", "replace"))

    elif encoding in ("binary", "8bit", "7bit"):
        write = out.write
    else:
        raise XmlRejected(f"an attachment part in Content-Transfer-Encoding {encoding!r}")
    for chunk in _range(answer, part):
        write(chunk)
    if encoding == "base64":
        decoder.close()
    return out.size


def _range(answer: IO[bytes], part: _Part) -> Iterator[bytes]:
    answer.seek(part.start)
    left = part.end - part.start
    while left > 0:
        chunk = answer.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def _parts(answer: IO[bytes], boundary: bytes) -> list[_Part]:
    """The body parts between the boundary delimiters (RFC 2046 §5.1.1), found by one scan of
    the file with a bounded buffer."""
    delimiters = _delimiters(answer, b"--" + boundary)
    parts = []
    for (_, after), (next_start, _) in itertools.pairwise(delimiters):
        answer.seek(after)
        rest_of_line = answer.read(2)
        if rest_of_line == b"--":
            break  # the close delimiter
        line_end = _find(answer, b"\r\n", after, next_start)
        if line_end < 0:
            raise XmlRejected("a malformed multipart answer")
        start = line_end + 2
        headers, body_start = _headers(answer, start, next_start)
        parts.append(_Part(headers=headers, start=body_start, end=next_start))
    if not parts:
        raise XmlRejected("a multipart answer without parts")
    return parts


def _delimiters(answer: IO[bytes], delimiter: bytes) -> list[tuple[int, int]]:
    """(start, end) of each delimiter: at the very start, or after CRLF (which belongs to it)."""
    found = []
    answer.seek(0)
    if answer.read(len(delimiter)) == delimiter:
        found.append((0, len(delimiter)))
    needle = b"\r\n" + delimiter
    answer.seek(0)
    carry, offset = b"", 0
    while chunk := answer.read(CHUNK):
        data = carry + chunk
        base = offset - len(carry)
        at = data.find(needle)
        while at >= 0:
            found.append((base + at, base + at + len(needle)))
            at = data.find(needle, at + len(needle))
        carry = data[-(len(needle) - 1) :]
        offset += len(chunk)
    return found


def _find(answer: IO[bytes], what: bytes, start: int, end: int) -> int:
    answer.seek(start)
    data = answer.read(min(end - start, MAX_PART_HEADERS))
    at = data.find(what)
    return start + at if at >= 0 else -1


def _headers(answer: IO[bytes], start: int, end: int) -> tuple[dict[str, str], int]:
    if _find(answer, b"\r\n", start, end) == start:
        return {}, start + 2  # no headers
    blank = _find(answer, b"\r\n\r\n", start, end)
    if blank < 0:
        raise XmlRejected("a multipart answer part without the end of its headers")
    answer.seek(start)
    text = answer.read(blank - start).decode("latin-1")
    headers: dict[str, str] = {}
    name = ""
    for line in text.split("\r\n"):
        if line[:1] in (" ", "\t") and name:  # a folded header continues
            headers[name] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = value.strip()
    return headers, blank + 4


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and its parameters (names lower case, unquoted)."""
    header = Message()
    header["Content-Type"] = value
    params = {str(k).lower(): str(v) for k, v in (header.get_params() or [])[1:]}
    return header.get_content_type(), params

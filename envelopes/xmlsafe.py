"""The one hardened XML parser of docgw.

Every byte of XML that docgw reads goes through :func:`parse_stream`: no DTD (a DOCTYPE is
refused outright, which ends billion-laughs and external-entity attacks before they start), no
entity resolution, no network, and limits on depth, element count, attribute count, text size and
input size enforced while parsing, so hostile input fails fast and in bounded memory.

It is a streaming parser: input is fed in chunks to lxml with a parser *target*, which builds a
small tree (the "skeleton") and hands the text of chosen elements — the base64 attachments — to a
sink chunk by chunk instead of keeping it. That is what lets a 100 MB attachment pass through
without being held in memory several times over. Comments and processing instructions are dropped:
signed content is read from text nodes that a comment cannot split (the classic XML-DSig comment
attack).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from lxml import etree

from envelopes.errors import GatewayError, XmlMalformed, XmlParserUnsupported, XmlRejected

CHUNK_SIZE = 1 << 20
#: Bytes handed to libxml2 at a time, so that parse_stream sees progress at a fine grain.
FEED_SIZE = 64 << 10
#: Bytes handed to libxml2's own builder at a time while looking for the end of an ``until``
#: element (a package's header ends within the first few KB).
HEAD_FEED_SIZE = 8 << 10

#: The parser options; the target below refuses DOCTYPEs on top of these.
_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "remove_comments": True,
    "remove_pis": True,
    # No huge_tree: libxml2 keeps its own caps (names 50,000 chars, attribute values, comments and
    # PIs 10 MB). Attachment text is unaffected: it reaches the target in pieces.
    "huge_tree": False,
}


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on what one XML input may contain. The defaults fit edXML with generous room."""

    max_input_bytes: int = 4 << 30  # 4 GiB: attachments have no public size limit
    max_depth: int = 64  # edXML nests about 9 deep
    max_elements: int = 200_000
    max_attributes: int = 64  # per element
    max_kept_text: int = 32 << 20  # all text kept in the skeleton (attachments excluded)
    max_stray_prefix: int = 1024  # bytes tolerated before the XML declaration
    #: Bytes fed without the parser reporting anything: libxml2 buffers an unfinished tag, comment,
    #: PI or CDATA section whole, so this bounds the memory one such construct can take.
    max_stalled_bytes: int = 16 << 20


class TextSink(Protocol):
    """Receives the text of a streamed element, chunk by chunk."""

    def write(self, text: str) -> None: ...

    def close(self) -> None: ...


#: Decides, when an element starts, whether its text is streamed: given the element's tag and its
#: parent's tag (Clark notation), returns a sink, or None to keep the text in the skeleton.
StreamChooser = Callable[[str, str | None], TextSink | None]


@dataclass(kw_only=True)
class ParsedXml:
    root: etree._Element
    #: Bytes skipped before the first '<' (real packages sometimes carry a few).
    stray_prefix: bytes = b""
    #: Streamed elements, in document order, each with the sink that took its text.
    streamed: list[tuple[etree._Element, TextSink]] = field(default_factory=list)


class _SkeletonTarget:
    """lxml parser target: a TreeBuilder that enforces limits and diverts streamed text."""

    def __init__(
        self, limits: Limits, choose: StreamChooser | None, until: Sequence[str] | None = None
    ) -> None:
        self._builder = etree.TreeBuilder()
        self._limits = limits
        self._choose = choose
        self._until = list(until) if until else None
        self._stack: list[str] = []
        self._elements = 0
        self._kept_text = 0
        self._sink: TextSink | None = None
        self.streamed: list[tuple[etree._Element, TextSink]] = []
        self._error: GatewayError | None = None
        #: The ``until`` element, once its end tag was read.
        self.reached: etree._Element | None = None
        #: Callbacks so far; parse_stream watches it to see that the parser makes progress.
        self.events = 0

    def _refuse(self, error: GatewayError) -> GatewayError:
        # lxml calls close() after a callback raised; close() must then re-raise this error
        # rather than let TreeBuilder complain about the unfinished tree.
        self._error = error
        return error

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise self._refuse(XmlRejected("a DOCTYPE is not allowed (no DTDs, no entities)"))

    def start(
        self, tag: str, attrib: dict[str, str], nsmap: dict[str | None, str] | None = None
    ) -> None:
        # Called for every element: one combined check on the hot path, the precise error on
        # the slow one.
        self.events += 1
        self._elements += 1
        limits = self._limits
        depth = len(self._stack)
        # Names and attribute values stay in the skeleton too.
        self._kept_text += len(tag)
        if attrib:
            self._kept_text += sum(len(k) + len(v) for k, v in attrib.items())
        if (
            self._elements > limits.max_elements
            or depth >= limits.max_depth
            or len(attrib) + len(nsmap or ()) > limits.max_attributes
            or self._kept_text > limits.max_kept_text
            or self._sink is not None
        ):
            raise self._refuse(self._limit_error(tag, attrib, nsmap, depth))
        parent = self._stack[-1] if depth else None
        self._stack.append(tag)
        if nsmap:
            # lxml's target hands the default namespace as prefix "", TreeBuilder wants None.
            nsmap = {(prefix or None): uri for prefix, uri in nsmap.items()}
        element = self._builder.start(tag, attrib, nsmap)
        if self._choose is not None:
            self._sink = self._choose(tag, parent)
            if self._sink is not None:
                self.streamed.append((element, self._sink))

    def _limit_error(
        self, tag: str, attrib: dict[str, str], nsmap: dict[str | None, str] | None, depth: int
    ) -> XmlRejected:
        limits = self._limits
        if self._elements > limits.max_elements:
            return XmlRejected(f"more than {limits.max_elements} elements")
        if depth >= limits.max_depth:
            return XmlRejected(f"nesting deeper than {limits.max_depth}", element=tag)
        # Namespace declarations count: lxml's TreeBuilder takes quadratic time in their number.
        if len(attrib) + len(nsmap or ()) > limits.max_attributes:
            return XmlRejected(
                f"more than {limits.max_attributes} attributes and namespace declarations",
                element=tag,
            )
        if self._kept_text > limits.max_kept_text:
            return XmlRejected(f"more than {limits.max_kept_text} characters of text")
        return XmlRejected("an element inside a streamed text element", element=tag)

    def end(self, tag: str) -> None:
        self.events += 1
        reached = self._until is not None and self._stack == self._until
        self._stack.pop()
        if self._sink is not None:
            sink, self._sink = self._sink, None
            try:
                sink.close()
            except GatewayError as exc:
                raise self._refuse(exc) from None
        element = self._builder.end(tag)
        if reached:
            # Stops libxml2 where it is; close() (which lxml calls next) leaves the tree open.
            self.reached = element
            raise _Reached

    def data(self, text: str) -> None:
        self.events += 1
        if self._sink is not None:
            try:
                self._sink.write(text)
            except GatewayError as exc:
                raise self._refuse(exc) from None
            return
        self._kept_text += len(text)
        if self._kept_text > self._limits.max_kept_text:
            raise self._refuse(
                XmlRejected(f"more than {self._limits.max_kept_text} characters of text")
            )
        self._builder.data(text)

    def comment(self, text: str) -> None:
        """Dropped; see the module docstring."""
        self.events += 1

    def pi(self, target: str, data: str | None = None) -> None:
        """Dropped."""
        self.events += 1

    def close(self) -> etree._Element | None:
        if self._error is not None:
            raise self._error
        if self.reached is not None:
            return None
        return self._builder.close()


class _Reached(Exception):
    """Raised by the target at the end of the ``until`` element: nothing more is to be read."""


def check_parser() -> None:
    """Refuse to run on an lxml that hands parser targets no namespace declarations (lxml 6.2.0,
    LP#2178248; pyproject.toml excludes it, but an environment can still hold it): the streaming
    skeleton would lose its prefixes — a signed package over 1 MiB would then fail verification
    as SIGNATURE_INVALID, whoever sent it — and the limit on declarations would not hold. The
    ``docgw`` command checks this before any command runs."""
    if not _targets_see_namespaces(etree.XMLParser):
        raise XmlParserUnsupported(
            f"lxml {'.'.join(map(str, etree.LXML_VERSION[:3]))} hands parser targets no "
            "namespace declarations (lxml LP#2178248, in 6.2.0 only): install another release"
        )


def _targets_see_namespaces(parser_class: Callable[..., etree.XMLParser]) -> bool:
    target = _SkeletonTarget(Limits(), None)
    parser = parser_class(target=target, **_PARSER_OPTIONS)
    parser.feed(b'<a xmlns:p="urn:p"/>')
    root: etree._Element = parser.close()
    return bool(root.nsmap.get("p") == "urn:p")


def iter_chunks(source: bytes | IO[bytes], size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Bytes or a binary stream, as chunks."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    while chunk := source.read(size):
        yield chunk


#: Inputs up to this size are first parsed by libxml2's own tree builder — some 7 times faster
#: than the Python parser target on a 10 KB package — and the finished tree is checked against the
#: limits. Whatever is not plainly acceptable (a DOCTYPE anywhere, an encoding other than UTF-8, a
#: limit possibly reached, a syntax error) goes to the streaming target, which then decides: its
#: errors are the only ones, word for word, and no sink sees a byte before that decision.
FAST_PATH_MAX_BYTES = 1 << 20
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
_NAMESPACE_URIS = re.compile(rb"""xmlns(?::[^\s=]*)?\s*=\s*["']([^"']*)""")
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
_COUNT_ELEMENTS = etree.XPath("count(//*)")
_COUNT_ATTRIBUTES = etree.XPath("count(//@*)")
_ANY_WITH_MORE_ATTRIBUTES = etree.XPath("boolean(//*[count(@*) > $n])")


@functools.cache
def _deeper_than(depth: int) -> etree.XPath:
    return etree.XPath("boolean(/" + "/".join(["*"] * (depth + 1)) + ")")


def parse_stream(
    chunks: Iterable[bytes],
    *,
    limits: Limits | None = None,
    stream: StreamChooser | None = None,
    until: Sequence[str] | None = None,
) -> ParsedXml:
    """Parse XML fed as chunks into a skeleton tree; raises XmlRejected or XmlMalformed.

    ``until`` (Clark tags from the root down, e.g. edXML, edXMLEnvelope, edXMLHeader,
    MessageHeader) stops the parse at the end tag of the first element at that path: the tree
    then holds that element whole, its ancestors and what came before it, and the input after
    it is not read — neither parsed nor checked (a router that needs only a package's header
    skips the attachments). The same refusals and limits apply to what is read. Without such an
    element the whole input is parsed.
    """
    limits = limits or Limits()
    if until:
        return _parse_until(chunks, limits, stream, until)
    head: list[bytes] = []
    size = 0
    rest = iter(chunks)
    for chunk in rest:
        head.append(chunk)
        size += len(chunk)
        if size > FAST_PATH_MAX_BYTES:
            return _parse_streaming(itertools.chain(head, rest), limits, stream)
    data = b"".join(head)
    return _parse_small(data, limits, stream) or _parse_streaming([data], limits, stream)


def _parse_small(data: bytes, limits: Limits, choose: StreamChooser | None) -> ParsedXml | None:
    """The fast path for a small input, or None where the streaming parser must decide."""
    if len(data) > min(limits.max_input_bytes, limits.max_stalled_bytes):
        return None
    try:
        stray, body = _split_stray_prefix(data, limits)
    except XmlMalformed:
        return None
    text = body[3:] if body.startswith(_UTF8_BOM) else body
    if not _plainly_utf8_xml(text) or b"<!DOCTYPE" in text:
        return None
    try:
        root = etree.fromstring(body, etree.XMLParser(**_PARSER_OPTIONS))
    except (etree.XMLSyntaxError, ValueError):
        return None
    if not _within_limits(root, text, limits):
        return None
    return ParsedXml(root=root, stray_prefix=stray.strip(), streamed=_stream_texts(root, choose))


def _stream_texts(
    root: etree._Element, choose: StreamChooser | None
) -> list[tuple[etree._Element, TextSink]]:
    """A finished tree's chosen texts, handed to their sinks and taken out of the tree."""
    streamed: list[tuple[etree._Element, TextSink]] = []
    for element in root.iter(etree.Element) if choose is not None else ():
        parent = element.getparent()
        sink = choose(element.tag, None if parent is None else parent.tag)  # type: ignore[misc]
        if sink is None:
            continue
        streamed.append((element, sink))
        if element.text:
            sink.write(element.text)
            element.text = None
        if len(element):
            raise XmlRejected("an element inside a streamed text element", element=element[0].tag)
        sink.close()
    return streamed


def _parse_until(
    chunks: Iterable[bytes], limits: Limits, choose: StreamChooser | None, until: Sequence[str]
) -> ParsedXml:
    """parse_stream with ``until``: the head's fast path, else the streaming target from the
    start of the input, which then decides."""
    head: list[bytes] = []
    rest = iter(chunks)

    def remembered() -> Iterator[bytes]:
        for chunk in rest:
            head.append(chunk)
            yield chunk

    parsed = _parse_head(remembered(), limits, choose, until)
    if parsed is not None:
        return parsed
    return _parse_streaming(itertools.chain(head, rest), limits, choose, until)


def _parse_head(
    chunks: Iterable[bytes], limits: Limits, choose: StreamChooser | None, until: Sequence[str]
) -> ParsedXml | None:
    """libxml2's own tree builder fed a piece at a time until the ``until`` element ends (a
    header is a few KB of a package), under the fast path's conditions; None where the streaming
    target must decide."""
    parser = etree.XMLPullParser(events=("end",), tag=until[-1], **_PARSER_OPTIONS)
    fed = bytearray()
    most = min(FAST_PATH_MAX_BYTES, limits.max_input_bytes, limits.max_stalled_bytes)
    for chunk in chunks:
        for start in range(0, len(chunk), HEAD_FEED_SIZE):
            piece = chunk[start : start + HEAD_FEED_SIZE]
            if len(fed) + len(piece) > most or (not fed and not _plainly_utf8_xml(piece)):
                return None
            fed += piece
            # A DOCTYPE may straddle two pieces: the end of the last one is searched again.
            if b"<!DOCTYPE" in fed[-len(piece) - 8 :]:
                return None
            try:
                parser.feed(piece)
                reached = _first_at(parser.read_events(), until)
            except (etree.XMLSyntaxError, ValueError):
                return None
            if reached is not None:
                return _finish_head(reached, bytes(fed), limits, choose)
    return None  # the input ended first


def _plainly_utf8_xml(first: bytes) -> bool:
    """The fast path's conditions on the start of the input: markup first, UTF-8 — so that a
    DOCTYPE has the very bytes searched for (and not UTF-16/32 without a BOM)."""
    if first[:1] != b"<" or first[1:2] == b"\x00":
        return False
    if first.startswith(b"<?xml"):
        encoding = _ENCODING.search(first, 0, max(first.find(b"?>"), 0))
        if encoding is not None and encoding.group(1).lower() != b"utf-8":
            return False
    return True


def _first_at(
    events: Iterable[tuple[str, etree._Element]], path: Sequence[str]
) -> etree._Element | None:
    for _event, element in events:
        ancestors = [a.tag for a in element.iterancestors()]
        if len(ancestors) + 1 == len(path) and ancestors[::-1] == list(path[:-1]):
            return element
    return None


def _finish_head(
    reached: etree._Element, text: bytes, limits: Limits, choose: StreamChooser | None
) -> ParsedXml | None:
    """The tree up to ``reached``: what libxml2 read past it is dropped, then the fast path's
    checks; None where the streaming target must decide."""
    element: etree._Element | None = reached
    while element is not None:
        parent = element.getparent()
        if parent is not None:
            while (after := element.getnext()) is not None:
                parent.remove(after)
        element = parent
    root = reached.getroottree().getroot()
    if not _within_limits(root, text, limits):
        return None
    streamed = _stream_texts(root, choose)
    return ParsedXml(root=root, streamed=streamed)


def _within_limits(root: etree._Element, text: bytes, limits: Limits) -> bool:
    """The target's limits on a finished small tree, counted in C; where a count is a bound (an
    over-estimate), the streaming target decides the doubtful cases."""
    elements = int(_COUNT_ELEMENTS(root))
    if elements > limits.max_elements or _deeper_than(limits.max_depth)(root):
        return False
    attributes = int(_COUNT_ATTRIBUTES(root))
    room = limits.max_attributes - text.count(b"xmlns")  # every declaration counted everywhere
    if attributes > room and _ANY_WITH_MORE_ATTRIBUTES(root, n=room):
        return False
    # Kept text in characters is at most the input's bytes, plus the namespace URI that Clark
    # notation writes into each element and attribute name. No URI is longer than the input: when
    # even that bound fits, the scan for the actual URIs (a pass over the whole input) is skipped.
    names = elements + attributes
    if len(text) + names * (max(len(_XML_NAMESPACE), len(text)) + 2) <= limits.max_kept_text:
        return True
    uris = [len(uri) for uri in _NAMESPACE_URIS.findall(text)]
    longest = max([len(_XML_NAMESPACE), *uris]) + 2
    return len(text) + names * longest <= limits.max_kept_text


def _parse_streaming(
    chunks: Iterable[bytes],
    limits: Limits,
    stream: StreamChooser | None,
    until: Sequence[str] | None = None,
) -> ParsedXml:
    target = _SkeletonTarget(limits, stream, until)
    parser = etree.XMLParser(target=target, **_PARSER_OPTIONS)
    etree.clear_error_log()  # per thread: XMLSyntaxError then carries this parse's errors only
    try:
        stray = _feed(parser, target, chunks, limits)
        # Once the `until` element was read, lxml has closed the target already.
        root = parser.close() if target.reached is None else target.reached.getroottree().getroot()
    except etree.XMLSyntaxError as exc:
        # exc.msg is often lxml's "missing end tags"; libxml2's first error says what went wrong.
        errors = exc.error_log.filter_from_errors()
        detail = (
            f"{errors[0].message.strip()} (line {errors[0].line}, column {errors[0].column})"
            if errors
            else exc.msg
        )
        raise XmlMalformed(f"not well-formed XML: {detail}") from exc
    except GatewayError:
        raise
    except ValueError as exc:  # lxml reports some refused input (e.g. huge names) as ValueError
        raise XmlMalformed(f"not well-formed XML: {exc}") from exc
    return ParsedXml(root=root, stray_prefix=stray.strip(), streamed=target.streamed)


def _feed(
    parser: etree.XMLParser, target: _SkeletonTarget, chunks: Iterable[bytes], limits: Limits
) -> bytes:
    """Feed the chunks to the parser under the size and stall limits, until the input ends or the
    target has read its ``until`` element; returns the stray prefix."""
    total = 0
    events = stalled = 0
    stray = b""
    started = False
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > limits.max_input_bytes:
                raise XmlRejected(f"input larger than {limits.max_input_bytes} bytes")
            if not started:
                stray, chunk = _split_stray_prefix(stray + chunk, limits)
                started = bool(chunk)
                if not started:
                    continue
            for start in range(0, len(chunk), FEED_SIZE):
                parser.feed(chunk[start : start + FEED_SIZE])
                if target.events != events:
                    events, stalled = target.events, 0
                    continue
                stalled += min(FEED_SIZE, len(chunk) - start)
                if stalled > limits.max_stalled_bytes:
                    raise XmlRejected(
                        f"more than {limits.max_stalled_bytes} bytes in one tag, comment, "
                        "processing instruction or CDATA section"
                    )
    except _Reached:
        return stray
    if not started:
        raise XmlMalformed("no XML content")
    return stray


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"


def _split_stray_prefix(data: bytes, limits: Limits) -> tuple[bytes, bytes]:
    """Split off bytes before the first '<': tolerated up to a limit, reported by the caller."""
    # A byte order mark is not stray: libxml2 needs it to tell the encoding (in UTF-16 a '<' is
    # not the first byte of its character, so cutting at the first b"<" would break the text).
    if data.startswith(_UTF16_BOMS) or (data.startswith(_UTF8_BOM) and data[3:4] == b"<"):
        return b"", data
    lt = data.find(b"<")
    if lt == 0:
        return b"", data
    if lt < 0:
        if len(data) > limits.max_stray_prefix:
            raise XmlMalformed("no XML content in the first bytes")
        return data, b""
    if lt > limits.max_stray_prefix:
        raise XmlMalformed(f"{lt} bytes before the XML declaration")
    return data[:lt], data[lt:]


def parse_bytes(data: bytes, *, limits: Limits | None = None) -> etree._Element:
    """Parse a whole small document (status packages, SOAP bodies, schemas) with the same rules."""
    return parse_stream(iter_chunks(data), limits=limits).root

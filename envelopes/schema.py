"""XSD validation of the edXML packages docgw BUILDS (QCVN 102:2016, DOMAIN.md §3–4).

The schemas (``xsd/edxml_document.xsd``, ``xsd/edxml_status.xsd`` and the types they share in
``xsd/edxml_common.xsd``) are docgw's own, written from DOMAIN.md. They are strict on purpose: the
exact elements docgw's builder emits, in QCVN order, with the probable QCVN length limits.

Received packages are NOT validated against them. In the wild, element order and form vary (the
official SDK writes DocumentId right after To and OrganName before OrganizationInCharge, some
senders write ``TimeStamp``, prefixes come and go): the reader checks received packages itself,
leniently, and raises its own precise errors. These schemas only guard what docgw sends, so that a
builder bug fails here, with the element and the rule named, rather than at the receiving agency.

Each schema is loaded once, lazily, from package data (``importlib.resources``; works from a wheel
or a zip). The .xsd files are parsed with a hardened parser (no entities, no DTD, no network), and
the shared ``xs:include`` is inlined in memory before compiling, so libxml2 never opens a file or a
URL on its own. The XML-DSig ``Signature`` is accepted without validation
(``processContents="skip"``): the verifier checks it.

The validator normally sees a skeleton whose base64 attachment text was streamed away, so an empty
``ContentTransferEncoded`` is valid.

Every failure is a :class:`~envelopes.errors.SchemaError` (code ``SCHEMA_INVALID``) whose
``element`` is a readable path of local names (``/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/
Subject``; ``To[2]`` where a name repeats; ``/@Id`` for an attribute) and whose ``rule`` names the
rule that failed: ``"maxLength 500"``, ``"minLength 1"``, ``"maxInclusive 4"``, ``"pattern"``,
``"enumeration"``, ``"type xs:nonNegativeInteger"``, ``"unique xs:ID"`` (an Id used twice),
``"missing required element DocumentId"``, ``"unexpected element"``, ``"unexpected attribute"``,
``"missing required attribute version"``, ``"element-only content"``, ``"root element"``; and
libxml2's error type name where none of these fits.
The exception's ``errors`` attribute holds every error libxml2 reported, in document order, as
``"<path>: <message> [<rule>]"`` strings (the first one is the exception's own).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Final, NamedTuple, cast

from lxml import etree

from envelopes.errors import SchemaError

__all__ = [
    "DOCUMENT_SCHEMA",
    "STATUS_SCHEMA",
    "validate_document",
    "validate_document_bytes",
    "validate_status",
    "validate_status_bytes",
]

#: The package holding the .xsd files as package data.
SCHEMA_PACKAGE: Final = "xsd"
DOCUMENT_SCHEMA: Final = "edxml_document.xsd"
STATUS_SCHEMA: Final = "edxml_status.xsd"

_XS: Final = "http://www.w3.org/2001/XMLSchema"
_XS_INCLUDE: Final = f"{{{_XS}}}include"
_XS_ELEMENT: Final = f"{{{_XS}}}element"
_XS_COMPLEX_TYPE: Final = f"{{{_XS}}}complexType"
#: Schema composition docgw's schemas do not use; refused so that nothing is ever fetched.
_XS_FORBIDDEN: Final = frozenset(f"{{{_XS}}}{name}" for name in ("import", "redefine", "override"))
#: An include must name a sibling file of the package: no scheme, no directory, no "..".
_LOCAL_XSD: Final = re.compile(r"[A-Za-z0-9_-]+\.xsd")
#: Attributes of xs:schema that must agree between including and included schema.
_SCHEMA_DEFAULTS: Final = ("targetNamespace", "elementFormDefault", "attributeFormDefault")

#: One error string never exceeds this (messages can quote whole values, e.g. base64).
_MAX_MESSAGE: Final = 400


def _hardened_parser(*, huge_tree: bool = False) -> etree.XMLParser:
    """No entity expansion, no DTD, no network; comments dropped (they carry no schema)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge_tree,
        remove_comments=True,
        remove_pis=True,
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _read_schema(name: str, seen: frozenset[str] = frozenset()) -> etree._Element:
    """Parse ``name`` from package data and inline its ``xs:include``s (recursively).

    Raises ``RuntimeError`` on a packaging bug (a missing file, an include cycle, an include of
    anything but a sibling .xsd, an import): those are docgw defects, not validation failures.
    """
    if name in seen:
        raise RuntimeError(f"schema include cycle through {name}")
    data = files(SCHEMA_PACKAGE).joinpath(name).read_bytes()
    root = etree.fromstring(data, parser=_hardened_parser())
    if _has_doctype(root):
        raise RuntimeError(f"schema {name} has a DOCTYPE")
    for child in list(root):
        if child.tag in _XS_FORBIDDEN:
            raise RuntimeError(f"schema {name} uses {etree.QName(child).localname}: not supported")
        if child.tag != _XS_INCLUDE:
            continue
        location = child.get("schemaLocation", "")
        if not _LOCAL_XSD.fullmatch(location):
            raise RuntimeError(f"schema {name} includes {location!r}: only sibling .xsd files")
        included = _read_schema(location, seen | {name})
        for attribute in _SCHEMA_DEFAULTS:
            if included.get(attribute) != root.get(attribute):
                raise RuntimeError(f"schema {location} differs from {name} in {attribute}")
        if included.nsmap != root.nsmap:
            # QName values such as type="OrganIdType" resolve through the in-scope prefixes.
            raise RuntimeError(f"schema {location} declares other prefixes than {name}")
        position = root.index(child)
        root.remove(child)
        for offset, component in enumerate(list(included)):
            root.insert(position + offset, component)
    return root


@dataclass(frozen=True)
class _ContentModel:
    """Which children each element may have, and how many at least, read from the schema tree.

    Only what naming a missing element needs; it relies on docgw's schema style (global element
    ``edXML``, named complexTypes, local elements with ``type=``) and answers None elsewhere.
    """

    roots: dict[str, str]
    types: dict[str, dict[str, tuple[str, int]]]

    @classmethod
    def of(cls, schema: etree._Element) -> _ContentModel:
        roots = {
            e.get("name", ""): _local(e.get("type", "")) for e in schema.iterchildren(_XS_ELEMENT)
        }
        types = {
            t.get("name", ""): {
                e.get("name", ""): (_local(e.get("type", "")), int(e.get("minOccurs", "1")))
                for e in t.iter(_XS_ELEMENT)
            }
            for t in schema.iterchildren(_XS_COMPLEX_TYPE)
        }
        return cls(roots=roots, types=types)

    def min_occurs(self, names: list[str], child: str) -> int | None:
        """``minOccurs`` of ``child`` in the element at the local-name path ``names``."""
        type_name = self.roots.get(names[0]) if names else None
        for name in names[1:]:
            if type_name is None:
                return None
            type_name = self.types.get(type_name, {}).get(name, ("", 0))[0] or None
        if type_name is None or child not in self.types.get(type_name, {}):
            return None
        return self.types[type_name][child][1]


def _local(qname: str) -> str:
    return qname.rpartition(":")[2]


@dataclass
class _LoadedSchema:
    """One compiled schema. ``etree.XMLSchema`` keeps its error log on the instance, so a
    validation and the reading of its log happen under the lock."""

    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    _compiled: etree.XMLSchema | None = None
    _model: _ContentModel | None = None

    def validate(self, root: etree._Element) -> tuple[tuple[_Entry, ...], _ContentModel]:
        with self.lock:
            if self._compiled is None or self._model is None:
                tree = _read_schema(self.name)
                self._model = _ContentModel.of(tree)
                self._compiled = etree.XMLSchema(tree)
            if self._compiled.validate(root):
                return (), self._model
            log: Iterable[Any] = cast(Any, self._compiled.error_log)  # opaque in lxml-stubs
            entries = tuple(_Entry(e.path or "", e.type_name, e.message) for e in log)
            return entries, self._model


class _Entry(NamedTuple):
    """What docgw uses of an lxml ``_LogEntry``."""

    path: str  # libxml2's xmlGetNodePath, e.g. "/*/edXML:edXMLEnvelope/*[2]"
    type_name: str  # e.g. "SCHEMAV_ELEMENT_CONTENT"
    message: str


_SCHEMAS: Final = {name: _LoadedSchema(name) for name in (DOCUMENT_SCHEMA, STATUS_SCHEMA)}


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def validate_document(root: etree._Element) -> None:
    """Validate a document package docgw built (the ``edXML`` element; attachments may be
    streamed away). Raises :class:`SchemaError` naming the first offending element and rule."""
    _validate(root, DOCUMENT_SCHEMA)


def validate_status(root: etree._Element) -> None:
    """Validate a status package docgw built (the ``edXML`` element). Raises
    :class:`SchemaError` naming the first offending element and rule."""
    _validate(root, STATUS_SCHEMA)


def validate_document_bytes(data: bytes) -> None:
    """Parse (hardened) and validate a serialized document package.

    Not-well-formed XML and a DOCTYPE are reported as :class:`SchemaError` too (rules
    ``"well-formed XML"`` and ``"no DOCTYPE"``): this checks docgw's own output, not input.
    """
    validate_document(_parse(data))


def validate_status_bytes(data: bytes) -> None:
    """Parse (hardened) and validate a serialized status package; see
    :func:`validate_document_bytes`."""
    validate_status(_parse(data))


def _parse(data: bytes) -> etree._Element:
    # huge_tree: a full package's base64 text node can exceed libxml2's 10 MB default; the input
    # is docgw's own output, and entities are neither loaded nor expanded anyway.
    try:
        root = etree.fromstring(data, parser=_hardened_parser(huge_tree=True))
    except etree.XMLSyntaxError as exc:
        raise _schema_error(f"not well-formed XML: {exc}", None, "well-formed XML") from None
    if _has_doctype(root):
        raise _schema_error("a package must not carry a DOCTYPE", None, "no DOCTYPE")
    return root


def _validate(root: etree._Element, schema: str) -> None:
    entries, model = _SCHEMAS[schema].validate(root)
    if not entries:
        return
    described = [_describe(root, entry, model) for entry in entries]
    path, detail, rule = described[0]
    name = path.rpartition("/")[2] or path
    raise _schema_error(
        f"{name}: {detail}", path, rule, [f"{p}: {d} [{r}]" for p, d, r in described]
    )


def _schema_error(
    message: str, element: str | None, rule: str, errors: list[str] | None = None
) -> SchemaError:
    error = SchemaError(_clip(message), element=element, rule=rule)
    all_errors = tuple(_clip(e) for e in errors) if errors else (error.message,)
    # TODO(lead): declare ``errors: tuple[str, ...]`` on SchemaError (errors.py); drop the ignore.
    error.errors = all_errors
    return error


# --------------------------------------------------------------------------------------------
# libxml2 error log → (readable path, message, rule)
# --------------------------------------------------------------------------------------------

_CLARK: Final = re.compile(r"\{[^{}]*\}")
_SUBJECT: Final = re.compile(
    r"^Element '(?P<element>[^']*)'(?:, attribute '(?P<attribute>[^']*)')?: "
)
_FACET: Final = re.compile(r"\[facet '(?P<facet>[A-Za-z]+)'\]")
#: The limit is the last quoted value of a facet message ("... length of '500'.", "... ('4').").
_LIMIT: Final = re.compile(r"'(?P<limit>[^']*)'\)?\.?\s*$")
_ATOMIC_TYPE: Final = re.compile(
    r"is not a valid value of the (?:atomic|list|union) type '(?P<type>[^']*)'"
)
_VALUE: Final = re.compile(r"'(?P<value>[^']*)' is not a valid value")
_NCNAME: Final = re.compile(r"[^\W\d][\w.-]*")
_EXPECTED: Final = re.compile(r"Expected is (?:one of )?\( (?P<names>.*) \)")
#: One element step of such a path; text(), comment() and @attribute steps do not match.
_STEP: Final = re.compile(
    r"(?:(?P<prefix>[^\W\d][\w.-]*):)?(?P<name>\*|[^\W\d][\w.-]*)(?:\[(?P<index>\d+)\])?"
)
_REQUIRED_ATTRIBUTE: Final = re.compile(r"The attribute '(?P<name>[^']*)' is required but missing")


def _describe(root: etree._Element, entry: _Entry, model: _ContentModel) -> tuple[str, str, str]:
    """(readable path, message without the element prefix, rule) for one libxml2 error."""
    message = _CLARK.sub("", entry.message).strip()
    subject = _SUBJECT.match(message)
    detail = message[subject.end() :] if subject else message
    attribute = subject.group("attribute") if subject else None
    element = _resolve(root, entry.path)
    if element is None:
        name = subject.group("element") if subject else "?"
        return _readable_fallback(entry.path, name), detail, entry.type_name

    path = _readable_path(root, element)
    name = etree.QName(element).localname
    if attribute is not None:
        path, name = f"{path}/@{attribute}", f"@{attribute}"
    rule: str = _rule(root, element, detail, attribute is not None, model) or entry.type_name
    if rule.startswith("missing required element") and detail.startswith("This element"):
        # Reported on the element found where the missing one belongs: name the parent instead.
        parent = element.getparent()
        if parent is not None and element is not root:
            missing = rule.rpartition(" ")[2]
            detail = f"required element {missing} is missing ({name} found where it belongs)"
            path = _readable_path(root, parent)
    return path, detail, rule


def _rule(
    root: etree._Element,
    element: etree._Element,
    detail: str,
    on_attribute: bool,
    model: _ContentModel,
) -> str | None:
    if (facet := _FACET.search(detail)) is not None:
        rule = facet.group("facet")
        limit = _LIMIT.search(detail)
        if rule not in ("pattern", "enumeration") and limit:
            rule = f"{rule} {limit.group('limit')}"
        return rule
    if (atomic := _ATOMIC_TYPE.search(detail)) is not None:
        value = _VALUE.match(detail)
        if atomic.group("type") == "xs:ID" and value and _NCNAME.fullmatch(value.group("value")):
            # libxml2 words a repeated ID like a malformed one; a well-formed one is a duplicate.
            return "unique xs:ID"
        return f"type {atomic.group('type')}"
    if detail.startswith("Missing child element(s)"):
        expected = _expected_names(detail)
        # Content ended early; libxml2 lists optional candidates before the required one.
        first = _missing(root, element, expected, model) or (expected[-1] if expected else "")
        return f"missing required element {first}".rstrip()
    if detail.startswith("This element is not expected"):
        parent = element.getparent() if element is not root else None
        expected = _expected_names(detail)
        if parent is None or not expected:
            return "unexpected element"
        missing = _missing(root, parent, expected, model)
        return f"missing required element {missing}" if missing else "unexpected element"
    if on_attribute and "is not allowed" in detail:
        return "unexpected attribute"
    if (required := _REQUIRED_ATTRIBUTE.search(detail)) is not None:
        return f"missing required attribute {required.group('name')}"
    if "content type is 'element-only'" in detail:
        return "element-only content"
    if "No matching global declaration" in detail:
        return "root element"
    return None


def _missing(
    root: etree._Element, parent: etree._Element, expected: list[str], model: _ContentModel
) -> str | None:
    """The first expected child ``parent`` has fewer of than the schema's ``minOccurs``, if any.

    libxml2 only lists the names it would accept next; the content model tells which of them is
    required and absent (To missing) rather than merely optional (an element out of place).
    """
    names = [re.sub(r"\[\d+\]$", "", n) for n in _readable_path(root, parent).split("/")[1:]]
    counts: dict[str, int] = {}
    for child in parent:
        if _is_element(child):
            local = etree.QName(child).localname
            counts[local] = counts.get(local, 0) + 1
    for candidate in expected:
        minimum = model.min_occurs(names, candidate)
        if minimum is not None and counts.get(candidate, 0) < minimum:
            return candidate
    return None


def _expected_names(detail: str) -> list[str]:
    match = _EXPECTED.search(detail)
    if match is None:
        return []
    return [n.strip() for n in match.group("names").split(",") if n.strip()]


def _has_doctype(root: etree._Element) -> bool:
    return root.getroottree().docinfo.internalDTD is not None


def _is_element(node: etree._Element) -> bool:
    return isinstance(node.tag, str)


def _resolve(root: etree._Element, path: str) -> etree._Element | None:
    """Find the node libxml2's ``xmlGetNodePath`` path names, walking from ``root``.

    The path reads like ``/*/edXML:edXMLEnvelope/*[2]``: ``*[n]`` is the n-th element child (an
    element of the default namespace), ``p:name[n]`` the n-th child of that prefix and name.
    """
    steps = path.strip("/").split("/")
    if not steps or steps == [""]:
        return None
    node: etree._Element | None = None
    for step in steps:
        match = _STEP.fullmatch(step)
        if match is None:  # text(), comment(), @attr: stop at the element
            return node
        candidates = [root] if node is None else [c for c in node if _is_element(c)]
        if match.group("name") != "*":
            candidates = [
                c
                for c in candidates
                if etree.QName(c).localname == match.group("name")
                and c.prefix == match.group("prefix")
            ]
        index = int(match.group("index") or 1) - 1
        if index >= len(candidates):
            return None
        node = candidates[index]
    return node


def _readable_path(root: etree._Element, element: etree._Element) -> str:
    parts: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        part = etree.QName(node).localname
        parent = node.getparent() if node is not root else None
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                part += f"[{same.index(node) + 1}]"
        parts.append(part)
        node = parent
    return "/" + "/".join(reversed(parts))


def _readable_fallback(path: str, name: str) -> str:
    readable = re.sub(r"[^/\[\]:]+:", "", path)
    return readable if readable and "*" not in readable else f"//{name}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


# --------------------------------------------------------------------------------------------
# Explaining a failure: xmlschema's detailed report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One schema violation as xmlschema reports it: where, why, what the schema expects there
    and what the package has instead."""

    path: str
    reason: str
    expected: str | None
    found: str | None


_xmlschemas: dict[str, Any] = {}
_xmlschema_lock = threading.Lock()


def _xmlschema(name: str) -> Any:
    """The schema compiled by xmlschema, from the same in-memory tree lxml compiles (the include
    inlined): ``allow="none"`` lets it open no file and no URL, ``defuse="always"`` parses the
    schema text without entities."""
    import xmlschema  # only on a failure's explanation: not on docgw's hot paths

    with _xmlschema_lock:
        if name not in _xmlschemas:
            text = etree.tostring(_read_schema(name), encoding="unicode")
            _xmlschemas[name] = xmlschema.XMLSchema10(text, allow="none", defuse="always")
        return _xmlschemas[name]


def package_schema(root: etree._Element) -> str:
    """Which of docgw's schemas a package is judged by: a status package's header carries a
    StatusCode, a document's does not (as the reader tells them apart)."""
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "StatusCode":
            return STATUS_SCHEMA
    return DOCUMENT_SCHEMA


def validate_package_bytes(data: bytes) -> str:
    """Parse (hardened) and validate a serialized package of either kind; returns the schema's
    name. Raises :class:`SchemaError` as :func:`validate_document_bytes` does."""
    root = _parse(data)
    name = package_schema(root)
    _validate(root, name)
    return name


def explain_bytes(data: bytes) -> tuple[Finding, ...]:
    """Every violation xmlschema finds in a serialized package (lxml's validator stops at the
    first error of a sequence; xmlschema goes on, and says what it expected and found)."""
    root = _parse(data)
    compiled = _xmlschema(package_schema(root))
    return tuple(_finding(error) for error in compiled.iter_errors(root))


def _finding(error: Any) -> Finding:
    expected: str | None = None
    found: str | None = None
    if hasattr(error, "expected"):  # XMLSchemaChildrenValidationError
        names = [_local(str(getattr(e, "local_name", None) or e)) for e in error.expected or ()]
        expected = ", ".join(names) or "no more elements"
        child = error.invalid_child
        found = etree.QName(child).localname if child is not None else "the end of the content"
    else:
        validator = error.validator
        facet = type(validator).__name__
        if facet.startswith("Xsd") and facet.endswith("Facet"):
            rule = facet.removeprefix("Xsd").removesuffix("Facet")
            rule = rule[:1].lower() + rule[1:]
            value = getattr(validator, "value", None)
            expected = rule if value is None else f"{rule} {value}"
        elif validator is not None:
            expected = _clip(str(validator))
        value = error.obj
        found = None if value is None else _clip(str(value))
        if isinstance(value, etree._Element):
            found = _clip(f"<{etree.QName(value).localname}> {value.text or ''}".strip())
    return Finding(
        path=error.path or "/", reason=_clip(error.reason or error.message), expected=expected,
        found=found,
    )  # fmt: skip

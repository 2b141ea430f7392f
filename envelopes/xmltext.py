"""The one rule for text that goes into a package: the characters XML 1.0 cannot carry.

XML 1.0 (§2.2 Char) has no NUL, no C0 control other than tab, line feed and carriage return, no
lone surrogate and neither U+FFFE nor U+FFFF. lxml refuses them deep in the builder; a lone
surrogate also cannot be encoded as UTF-8 for the database. Every text docgw takes from a caller
and may write into XML or store (metadata fields, a status description, an attachment name, a
unit name, an Idempotency-Key) is checked here, at the boundary, naming its field.

A header or multipart filename holding bytes that are not UTF-8 reaches Python as lone surrogates
(aiohttp decodes them with ``surrogateescape``), so the same check refuses them.
"""

from __future__ import annotations

import re

from envelopes.errors import TextInvalid

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def first_unsafe(value: str) -> tuple[int, str] | None:
    """The position and character of the first character XML 1.0 cannot carry, or None."""
    found = _NOT_XML.search(value)
    return None if found is None else (found.start(), found.group())


def describe(character: str) -> str:
    """How a refused character is named in an error (U+0000, or U+DCFF for a non-UTF-8 byte)."""
    code = ord(character)
    what = "a byte that is not UTF-8 (or a lone surrogate)" if 0xD800 <= code <= 0xDFFF else ""
    return f"U+{code:04X}" + (f", {what}" if what else "")


def check_text(value: str, *, element: str) -> str:
    """``value`` when XML 1.0 can carry every character of it, else :class:`TextInvalid`."""
    found = first_unsafe(value)
    if found is not None:
        position, character = found
        raise TextInvalid(
            f"character {position + 1} ({describe(character)}) cannot be carried in XML",
            element=element,
        )
    return value

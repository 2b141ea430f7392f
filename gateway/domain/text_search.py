"""Text search that fits Vietnamese: ``lien thong``, ``LIÊN THÔNG`` and ``liên thông`` are the
same words to the people typing them, so search compares *folded* text: decomposed (NFD), the
combining marks (the tones and the hats and horns of â ê ô ơ ư ă) dropped, đ read as d, and
case folded. The store keeps a folded copy beside each searchable text (a unit's name, a
message's ``search_text``), so that both databases compare with a plain ``LIKE`` (SQLite has no
``unaccent``)."""

from __future__ import annotations

import re
import unicodedata

#: The combining diacritical marks block: every Vietnamese tone and vowel mark, decomposed.
_MARKS = re.compile("[\u0300-\u036f]+")


def _bare(letter: str) -> str:
    return _MARKS.sub("", unicodedata.normalize("NFD", letter))


#: Each precomposed Latin letter (Vietnamese's among them: U+00C0–U+024F, U+1E00–U+1EFF) to its
#: bare letter, so that folding is one ``str.translate`` pass (a directory sync folds 120,000
#: names). đ/Đ are letters of their own, not d with a mark: NFD leaves them, this maps them.
_BARE = str.maketrans(
    {
        chr(point): _bare(chr(point))
        for block in (range(0xC0, 0x250), range(0x1E00, 0x1F00))
        for point in block
        if _bare(chr(point)) != chr(point)
    }
    | {"đ": "d", "Đ": "D"}
)


def fold(text: str) -> str:
    """``text`` as search compares it: no diacritics, đ as d, case folded, spaces collapsed."""
    if not text.isascii():
        text = text.translate(_BARE)
        if not text.isascii():  # marks typed apart (decomposed input), or another script
            text = _bare(text)
    return " ".join(text.casefold().split())


def searchable(*parts: str | None) -> str | None:
    """The folded text a message is found by (its subject, DocumentId, số/ký hiệu), the parts
    kept apart by `` | `` so that a word never spans two of them."""
    return " | ".join(fold(part) for part in parts if part) or None


#: The escape character of the ``LIKE`` patterns below (pass it as ``escape=``).
LIKE_ESCAPE = "\\"


def _literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_patterns(text: str) -> list[str]:
    """``LIKE`` patterns, one per word of the folded ``text``: a folded column matching all of
    them holds every word, in any order (``noi vu dien bien`` finds ``Sở Nội vụ tỉnh Điện
    Biên``); wildcards typed are taken literally."""
    return [f"%{_literal(word)}%" for word in fold(text).split()]


def code_prefix_pattern(text: str) -> str:
    """An ``ILIKE`` pattern for codes that start with ``text``."""
    return f"{_literal(text.strip())}%"

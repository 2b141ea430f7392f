"""Text search that fits Vietnamese: ``lien thong``, ``LIÊN THÔNG`` and ``liên thông`` are the
same words to the people typing them, so search compares *folded* text: decomposed (NFD), the
combining marks (the tones and the hats and horns of â ê ô ơ ư ă) dropped, đ read as d, and
case folded. The store keeps a folded copy beside each searchable text, so that both databases
compare with a plain ``LIKE`` (SQLite has no ``unaccent``)."""

from __future__ import annotations

import unicodedata

#: đ/Đ are letters of their own, not d with a combining mark: NFD leaves them as they are.
_LETTERS = str.maketrans({"đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """``text`` as search compares it: no diacritics, đ as d, case folded, spaces collapsed."""
    decomposed = unicodedata.normalize("NFD", text.translate(_LETTERS))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


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

"""Vietnamese-friendly text search: ``lien thong`` finds ``Liên thông``, ``DUONG`` finds
``đường``. Both the stored text and the searched words are folded the same way: Unicode NFD,
combining marks stripped, đ/Đ → d, case folded. The fold is stored beside the message
(``messages.search_text``), so every database searches it with a plain LIKE."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

#: đ and Đ are letters of their own, not d with a combining mark: NFD leaves them.
_LETTERS = str.maketrans({"đ": "d", "Đ": "D"})


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.translate(_LETTERS))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def searchable(*parts: str | None) -> str | None:
    """The folded text a message is found by (its subject, DocumentId, số/ký hiệu)."""
    words = [fold(p) for p in _present(parts)]
    return " | ".join(words) or None


def _present(parts: Iterable[str | None]) -> Iterable[str]:
    return (p for p in parts if p)

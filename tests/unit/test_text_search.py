"""Vietnamese text is found without its accents, whatever the case (text_search.fold)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.text_search import fold, searchable


def test_accents_case_and_d_bar_do_not_matter() -> None:
    assert fold("Liên thông VĂN BẢN điện tử") == "lien thong van ban dien tu"
    assert fold("ĐƯỜNG Đồng") == "duong dong"
    assert fold("  nhiều   khoảng\ttrắng ") == "nhieu khoang trang"
    # Decomposed input (as some keyboards type it) folds the same as composed.
    assert fold("Vie\u0302\u0323t") == fold("Việt") == "viet"


def test_searchable_joins_what_a_message_is_found_by() -> None:
    assert searchable("Kế hoạch", "abc-DEF", None) == "ke hoach | abc-def"
    assert searchable(None, None) is None


@given(st.text())
def test_folding_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)

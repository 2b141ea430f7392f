"""Vietnamese text as search compares it: accents, đ and case aside, spaces collapsed; LIKE
wildcards typed by a person are taken literally."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.text_search import code_prefix_pattern, fold, like_patterns, searchable


@pytest.mark.parametrize(
    "text",
    ["liên thông", "LIÊN THÔNG", "lien thong", "Liên  Thông", "li\u00ea\u0300n th\u00f4ng"],
)
def test_one_folded_form(text: str) -> None:
    assert fold(text) == "lien thong"


def test_d_with_stroke_and_every_vowel_family() -> None:
    assert fold("Đắk Lắk – Điện Biên") == "dak lak – dien bien"
    assert fold("ăâêôơư ẠẶẬẸỆỊỌỘỢỤỰỴ") == "aaeoou aaaeeiooouuy"


def test_wildcards_are_literal() -> None:
    assert like_patterns("50%_Hà\\Nội  Sở") == ["%50\\%\\_ha\\\\noi%", "%so%"]
    assert code_prefix_pattern(" 000.00_ ") == "000.00\\_%"


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

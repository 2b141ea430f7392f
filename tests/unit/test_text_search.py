"""Vietnamese text as search compares it: accents, đ and case aside, spaces collapsed; LIKE
wildcards typed by a person are taken literally."""

from __future__ import annotations

import pytest

from gateway.domain.text_search import code_prefix_pattern, fold, like_patterns


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

from __future__ import annotations

import pytest

from envelopes.errors import UnitCodeError
from envelopes.unit_codes import UnitCodeForm, parse_lenient, parse_strict


@pytest.mark.parametrize(
    ("code", "level", "parent"),
    [
        ("000.00.00.G22", 1, None),
        ("000.00.24.H44", 2, "000.00.00.H44"),
        ("000.46.24.H44", 3, "000.00.24.H44"),
        ("123.46.24.H44", 4, "000.46.24.H44"),
    ],
)
def test_qcvn_102_levels_and_parents(code: str, level: int, parent: str | None) -> None:
    unit = parse_strict(code)
    assert unit.form is UnitCodeForm.QCVN_102
    assert unit.level == level
    assert unit.derived_parent == parent


def test_qd20_form_is_accepted_strictly_but_has_no_level() -> None:
    unit = parse_strict("H41.01.SNV")
    assert unit.form is UnitCodeForm.QD20
    assert unit.level is None and unit.derived_parent is None


def test_35_characters_is_the_qd20_maximum() -> None:
    assert parse_strict("A" * 35).form is UnitCodeForm.QD20
    with pytest.raises(UnitCodeError):
        parse_strict("A" * 36)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "vxp.saas.03",
        "000.00.00.g22",
        "000 00 00 G22",
        "Đ.01",
        "000.00.00.A0٠",
        "000.00.00.G22\n",
    ],
)
def test_strict_mode_rejects_nonconforming_codes_naming_the_field(bad: str) -> None:
    with pytest.raises(UnitCodeError) as caught:
        parse_strict(bad, field="to[0].organ_id")
    assert caught.value.code == "UNIT_CODE_INVALID"
    assert caught.value.element == "to[0].organ_id"


@pytest.mark.parametrize("seen", ["28.22.H17", "vxp.saas.03", " 000.00.00.G22 "])
def test_lenient_mode_keeps_real_world_codes_and_flags_the_odd_ones(seen: str) -> None:
    unit = parse_lenient(seen)
    assert unit.value == seen.strip()
    assert unit.is_conforming == (seen.strip() != "vxp.saas.03")

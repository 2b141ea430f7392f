"""Unit identifiers ("mã định danh").

Two forms exist side by side (DOMAIN.md §2):

* QCVN 102: 13 characters ``VVV.ZZ.YY.MXX``. The last group is level 1 (a letter and two digits),
  ``YY`` level 2, ``ZZ`` level 3, ``VVV`` level 4; unused levels are zeros.
* Decision 20/2020: up to 35 characters of ``A-Z``, ``0-9`` and ``.``.

Sending and registration are strict: a code must have one of the two forms. Receiving is lenient:
real directories and packages carry codes such as ``28.22.H17`` or ``vxp.saas.03``; they are kept as
they are and flagged, never rejected for their form alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from envelopes.errors import UnitCodeError

# ASCII classes and fullmatch on purpose: \d would accept other scripts' digits, $ a final newline.
QCVN_102_PATTERN = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
QD20_PATTERN = re.compile(r"[A-Z0-9.]{1,35}")


class UnitCodeForm(StrEnum):
    QCVN_102 = "qcvn_102"
    QD20 = "qd20"
    NONCONFORMING = "nonconforming"


@dataclass(frozen=True, kw_only=True)
class UnitCode:
    """A unit code as read or checked; ``form`` says which rule it meets."""

    value: str
    form: UnitCodeForm

    @property
    def is_conforming(self) -> bool:
        return self.form is not UnitCodeForm.NONCONFORMING

    @property
    def level(self) -> int | None:
        """1 for a level-1 unit (``000.00.00.G22``) up to 4; None outside the QCVN 102 form."""
        if self.form is not UnitCodeForm.QCVN_102:
            return None
        vvv, zz, yy, _ = self.value.split(".")
        if int(vvv):
            return 4
        if int(zz):
            return 3
        if int(yy):
            return 2
        return 1

    @property
    def derived_parent(self) -> str | None:
        """The usual parent: the leftmost non-zero group zeroed.

        ``000.46.24.H44`` → ``000.00.24.H44``.

        Real directories break this rule; an explicit parent from the directory always wins.
        None for level 1 and outside the QCVN 102 form.
        """
        if self.form is not UnitCodeForm.QCVN_102:
            return None
        groups = self.value.split(".")
        for i in range(3):
            if int(groups[i]):
                groups[i] = "0" * len(groups[i])
                return ".".join(groups)
        return None

    def __str__(self) -> str:
        return self.value


def classify(value: str) -> UnitCodeForm:
    if QCVN_102_PATTERN.fullmatch(value):
        return UnitCodeForm.QCVN_102
    if QD20_PATTERN.fullmatch(value):
        return UnitCodeForm.QD20
    return UnitCodeForm.NONCONFORMING


def parse_strict(value: str, *, field: str = "organ_id") -> UnitCode:
    """For sending and registration: the code must be a QCVN 102 or QĐ 20 code."""
    if not isinstance(value, str) or not value:
        raise UnitCodeError("a unit code is required", element=field)
    form = classify(value)
    if form is UnitCodeForm.NONCONFORMING:
        raise UnitCodeError(
            f"{value!r} is neither a QCVN 102 code (e.g. 000.00.00.G22) nor a QĐ 20 code "
            "(up to 35 of A-Z, 0-9 and '.')",
            element=field,
        )
    return UnitCode(value=value, form=form)


def parse_lenient(value: str) -> UnitCode:
    """For receiving: a code is kept as written; ``is_conforming`` flags the odd ones."""
    value = value.strip()
    return UnitCode(value=value, form=classify(value))

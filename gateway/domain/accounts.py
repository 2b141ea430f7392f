"""Who acts: the roles of API tokens and console accounts, and the console's languages."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    MEMBER = "member"  # a member organisation: bound to one unit code


class Language(StrEnum):
    """The console's languages, Vietnamese first."""

    VI = "vi"
    EN = "en"

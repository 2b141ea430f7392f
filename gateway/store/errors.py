"""The store's errors: what leaves ``gateway/store`` when the database fails. SQLAlchemy's and the
drivers' exceptions for an unreachable, lost, locked or unreadable database are translated here,
at the engine's boundary (``database.StoreEngine``: its connections and transactions), so the web
layer, the CLI and the scheduler's jobs each see one typed error with a stable code.

What is not translated: a constraint violation (``sa.exc.IntegrityError``) is a fact about the
data that a use case may expect (two submissions racing for one DocumentId) and catches inside its
transaction; anything else is a bug and stays an exception.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import sqlalchemy as sa

from envelopes.errors import GatewayError


class DatabaseUnavailable(GatewayError):
    """The database cannot be reached or used now (down, refused, lost mid-transaction, locked,
    unreadable). Nothing was committed; the same request later may succeed. ``detail``: the
    driver's words, for the log and the operator's console, never for an API client."""

    code = "DATABASE_UNAVAILABLE"

    def __init__(self, detail: str) -> None:
        super().__init__(
            "cơ sở dữ liệu không truy cập được, hãy thử lại sau — "
            "the database is unavailable; try again later"
        )
        self.detail = detail

    def __str__(self) -> str:
        return f"{super().__str__()} ({self.detail})"


#: Raised while a statement runs or a transaction ends: the database, not the data, failed.
_FAILED_IN_USE = (sa.exc.OperationalError, sa.exc.InterfaceError, sqlite3.OperationalError)
#: Raised while a connection is made: asyncpg raises a refusal or an unreachable host unwrapped
#: (OSError, TimeoutError) and a refused login or a missing database as a plain DBAPIError.
_FAILED_TO_CONNECT = (*_FAILED_IN_USE, sa.exc.DBAPIError, OSError, TimeoutError)


def unavailable(error: BaseException, *, connecting: bool = False) -> DatabaseUnavailable | None:
    """``error`` as :class:`DatabaseUnavailable` when it says the database failed, else None."""
    failures = _FAILED_TO_CONNECT if connecting else _FAILED_IN_USE
    lost = isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated
    if not (lost or isinstance(error, failures)):
        return None
    detail = getattr(error, "orig", None) or error
    return DatabaseUnavailable(str(detail).strip().splitlines()[0] if str(detail) else repr(detail))


@contextlib.contextmanager
def translated(*, connecting: bool = False) -> Iterator[None]:
    """Raise a database failure in the block as :class:`DatabaseUnavailable` (chained)."""
    try:
        yield
    except Exception as error:
        translation = unavailable(error, connecting=connecting)
        if translation is None:
            raise
        raise translation from error

"""Log lines that tell of a write, written when that write commits (and dropped if it rolls back),
so the log never says a recipient moved when the transaction that moved it failed.

The audit chain (every state change and operator action goes through ``audit_chain.append``)
hands its rows here; :func:`install` hooks the engine's commit and rollback.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("docgw.audit")

#: Moves into these states are failures or need a person: logged as warnings.
_WARN_STATES: Final = frozenset({"failed", "held", "unconfirmed"})
#: Pending rows by (synchronous) connection; a connection dropped without either event takes its
#: rows with it.
_pending: weakref.WeakKeyDictionary[Connection, list[Mapping[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def after_commit(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Log ``rows`` (audit rows) once ``conn``'s transaction commits."""
    if log.isEnabledFor(logging.WARNING):  # the level of a failure; info is checked per line
        _pending.setdefault(conn.sync_connection, []).extend(rows)  # type: ignore[arg-type]


def _committed(conn: Connection) -> None:
    for row in _pending.pop(conn, ()):
        to_state = row.get("to_state")
        fields = {
            "action": row.get("action"),
            "actor": row.get("actor"),
            "message_id": row.get("message_id"),
            "recipient_id": row.get("recipient_id"),
            "from_state": row.get("from_state"),
            "to_state": to_state,
            "detail": row.get("reason"),
        }
        level = logging.WARNING if to_state in _WARN_STATES else logging.INFO
        log.log(level, "state_changed" if to_state else "action_recorded", extra=fields)


def _rolled_back(conn: Connection) -> None:
    _pending.pop(conn, None)


def install(engine: Engine) -> None:
    event.listen(engine, "commit", _committed)
    event.listen(engine, "rollback", _rolled_back)

"""What of a message may be seen, and by whom — one definition each, for the SQL that filters and
the code that writes.

* **Who may see this message.** A member token acts for its one unit: it sees the messages its
  unit sent or is a recipient of, and no other (:func:`visible_to`). The message list filters with
  it and a single message is looked up through it
  (``message_queries.get_message(…, visible_to_unit=)``),
  so the API, the downloads and the replies answer "not found" alike for what is not the unit's.
* **No readable subject for a classified document.** A classified message keeps its subject (a
  status, its wording) only inside the sealed package, never in a column (:func:`readable_text`).
  ``queries.insert_message`` applies it to every message written, and the status events'
  ``description`` is written through it, so every reader — the API, the CLI, the feed and
  webhooks, reports — has NULL to show and none of them needs a rule of its own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from envelopes.model import Classification
from gateway.store.tables import messages, recipients


def visible_to(unit: str) -> sa.ColumnElement[bool]:
    """The condition on ``messages`` that a member token of ``unit`` may see the row: its unit
    sent it or is one of its recipients."""
    return sa.or_(
        messages.c.sender == unit,
        sa.exists().where(recipients.c.message_id == messages.c.id, recipients.c.unit_code == unit),
    )


def readable_text(classification: str, text: str | None) -> str | None:
    """What a column may hold of a message's readable text (a document's subject, a status's
    description): nothing for a classified message."""
    return None if Classification(classification).is_classified else text


def readable_columns(values: dict[str, Any]) -> dict[str, Any]:
    """A ``messages`` row as it may be stored: its subject through :func:`readable_text`."""
    if values.get("subject") is None:
        return values
    return {**values, "subject": readable_text(values["classification"], values["subject"])}

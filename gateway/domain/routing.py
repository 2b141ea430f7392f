"""The routing policy: which channel each recipient's copy goes through, or why it is held.

Pure: inputs are the document's classification, each recipient's registry entry and the
configured channels; the output explains itself. The rules (DOMAIN.md §6), which no configuration
can bend:

* ``thuong`` goes to the recipient's channel (the axis, a provincial axis, a peer).
* ``mat`` and ``toi_mat`` go ONLY to the recipient's registered secure endpoint, over a secure
  channel; ``tuyet_mat`` only where that route explicitly allows it.
* No such route → held, with the reason, never downgraded to another channel.
* A classified document never gets an axis channel; the axis connectors refuse it again.

An operator's re-route (:func:`route_through`) names the channel, but not the rules: a classified
re-route passes the same checks as the first routing, or it is refused.

A package that names a document (an update, replacement or revocation by its DocumentId, a reply's
ResponseFor, a status) carries that document's identity, so it travels under the stricter of its
own classification and that document's (:func:`strictest`): never downgraded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from envelopes.model import Classification

#: From least to most restricted (DOMAIN.md §1).
_RANK = {
    Classification.THUONG: 0,
    Classification.MAT: 1,
    Classification.TOI_MAT: 2,
    Classification.TUYET_MAT: 3,
}


def strictest(own: Classification, named: Iterable[Classification]) -> Classification:
    """The classification a package travels under: its own, or that of a document it names
    (update, replacement, revocation, reply, status) when that one is stricter."""
    return max((own, *named), key=_RANK.__getitem__)


@dataclass(frozen=True, kw_only=True)
class ChannelInfo:
    name: str
    is_axis: bool
    is_secure: bool


@dataclass(frozen=True, kw_only=True)
class RecipientEntry:
    """What the unit registry says of one recipient."""

    code: str
    active: bool
    channel: str | None
    #: The secure channel to the unit's registered secure endpoint; None when it has none.
    secure_channel: str | None = None
    allows_tuyet_mat: bool = False


@dataclass(frozen=True, kw_only=True)
class Route:
    recipient: str
    channel: str | None  # None = held
    reason: str

    @property
    def is_held(self) -> bool:
        return self.channel is None


def route_recipient(
    classification: Classification,
    entry: RecipientEntry,
    channels: Mapping[str, ChannelInfo],
) -> Route:
    def held(reason: str) -> Route:
        return Route(recipient=entry.code, channel=None, reason=reason)

    if not entry.active:
        return held(f"unit {entry.code} is not active in the registry")
    if classification is Classification.THUONG:
        channel = channels.get(entry.channel or "")
        if channel is None and not entry.channel:
            return held(f"unit {entry.code} has no channel in the registry")
        if channel is None:
            return held(f"unit {entry.code}'s channel {entry.channel} is not configured here")
        return Route(
            recipient=entry.code, channel=channel.name, reason=f"unclassified → {channel.name}"
        )
    secure = channels.get(entry.secure_channel or "")
    if secure is None and not any(c.is_secure and not c.is_axis for c in channels.values()):
        # The gateway's fact, not the unit's: registering an endpoint would not release it.
        return held(
            f"{classification.value} needs a secure channel; this gateway has none configured"
        )
    if secure is None:
        return held(
            f"{classification.value} needs a secure endpoint for {entry.code}; none is registered"
        )
    if not secure.is_secure or secure.is_axis:
        return held(
            f"{classification.value} may only take a secure channel; {secure.name} is not one"
        )
    if classification is Classification.TUYET_MAT and not entry.allows_tuyet_mat:
        return held(f"tuyet_mat is not explicitly allowed on the route to {entry.code}")
    return Route(
        recipient=entry.code,
        channel=secure.name,
        reason=f"{classification.value} → secure channel {secure.name} only",
    )


def route_through(
    classification: Classification,
    entry: RecipientEntry,
    channel: str,
    channels: Mapping[str, ChannelInfo],
) -> Route:
    """An operator's re-route of one recipient through ``channel`` (held = refused, with why).

    Unclassified: any configured channel. Classified: exactly :func:`route_recipient`'s rules with
    ``channel`` as the secure channel — so it must be secure and no axis, the recipient must still
    have a registered secure endpoint (``entry.secure_channel`` set) and be active, and tuyet_mat
    needs the recipient's explicit permission. Naming a channel never bends the policy.
    """
    target = channels.get(channel)
    if target is None:
        return Route(recipient=entry.code, channel=None, reason=f"no channel named {channel}")
    if classification is Classification.THUONG:
        return Route(recipient=entry.code, channel=target.name, reason=f"re-routed → {target.name}")
    if not target.is_secure or target.is_axis:
        return Route(
            recipient=entry.code,
            channel=None,
            reason=f"{classification.value} may only take a secure channel; {channel} is not one",
        )
    through = dataclasses.replace(
        entry, secure_channel=target.name if entry.secure_channel is not None else None
    )
    return route_recipient(classification, through, channels)

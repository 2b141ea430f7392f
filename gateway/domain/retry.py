"""The retry policy: a pure decision, persisted by the caller as the recipient's next attempt time.

Exponential backoff with full jitter, capped, with a limit on attempts per channel. Business errors
(the peer said no: unknown receiver, bad package) are never retried; transport errors and 5xx are,
until the limit; an unknown outcome (a timeout after the peer may have committed) is retried as
``unconfirmed`` with the same package, so the receiver can deduplicate.

"Outcome unknown, never refused" holds across attempts, not only inside one call. Once an attempt
ended with an unknown outcome (or its worker died mid-send), the recipient is ``unconfirmed`` and
the peer may hold that attempt's copy whatever the later attempts say; the next claim, made from
``unconfirmed``, passes ``earlier_outcome_unknown``:

* a later transport error keeps the recipient ``unconfirmed`` (not ``retry_scheduled``), so the
  attempt after it still knows that an earlier copy may be there;
* a later refusal (the axis' code 23 "receiver locked", 15 "bad credentials" …), or running out of
  attempts (also when the last attempt's own outcome is unknown), ends ``failed`` as before, but
  the reason starts with :data:`MAYBE_DELIVERED` and says that a copy may have been delivered.

Failed, not left ``unconfirmed``: nothing would settle such a recipient by itself. The axis names a
copy by the DocId its answer carries; an attempt whose answer was lost never learnt it, so the
getSentEdocList poll (which asks about ``sent`` recipients, by that DocId) cannot find the copy,
and an ``unconfirmed`` recipient with no next attempt would wait unseen. ``failed`` puts it before
an operator, whose check with the recipient decides: nothing more, or a resend (the same package,
which the receiver deduplicates).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"
    TRANSPORT_ERROR = "transport_error"  # retryable: connection refused, 5xx, busy
    OUTCOME_UNKNOWN = "outcome_unknown"  # timeout after the request may have been committed
    BUSINESS_ERROR = "business_error"  # final: the peer refused the package for good


#: The start of a failed recipient's reason when an earlier attempt's outcome was unknown: the
#: peer refused a later attempt, or the attempts ran out, but may hold the earlier copy.
MAYBE_DELIVERED = "MAYBE_DELIVERED"


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    UNCONFIRMED = "unconfirmed"
    FAIL = "fail"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_delay_seconds: float = 3600.0
    max_attempts: int = 12
    #: Fraction of the delay that is randomised (1.0 = "full jitter").
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.max_delay_seconds < self.base_seconds:
            raise ValueError("retry delays must satisfy 0 < base_seconds <= max_delay_seconds")
        if self.max_attempts < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("retry max_attempts must be >= 1 and jitter within 0..1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> dt.timedelta:
        """Delay before attempt ``attempt + 1`` (attempt counts from 1)."""
        ceiling = min(self.max_delay_seconds, self.base_seconds * 2 ** (attempt - 1))
        spread = ceiling * self.jitter
        seconds = ceiling - spread + (rng or random).random() * spread
        return dt.timedelta(seconds=seconds)


@dataclass(frozen=True, kw_only=True)
class RetryDecision:
    verdict: Verdict
    next_attempt_at: dt.datetime | None = None
    reason: str = ""


def decide(
    *,
    outcome: Outcome,
    attempt: int,
    now: dt.datetime,
    policy: RetryPolicy,
    detail: str = "",
    earlier_outcome_unknown: bool = False,
    rng: random.Random | None = None,
) -> RetryDecision:
    """What to do after attempt ``attempt`` ended with ``outcome``. ``earlier_outcome_unknown``:
    an earlier attempt of this recipient ended with an unknown outcome (claimed from
    ``unconfirmed``) — it stays unconfirmed through transport errors, and a refusal or the attempt
    limit fails it as :data:`MAYBE_DELIVERED` (see the module's docstring)."""
    if outcome is Outcome.SENT:
        return RetryDecision(verdict=Verdict.SENT)
    if outcome is Outcome.BUSINESS_ERROR:
        why = f"refused by the peer: {detail}"
        return RetryDecision(
            verdict=Verdict.FAIL, reason=maybe_delivered(why, earlier_outcome_unknown)
        )
    if attempt >= policy.max_attempts:
        why = f"gave up after {attempt} attempts; last error: {detail}"
        # This attempt's own unknown outcome counts too: no attempt follows to settle it.
        maybe = earlier_outcome_unknown or outcome is Outcome.OUTCOME_UNKNOWN
        return RetryDecision(verdict=Verdict.FAIL, reason=maybe_delivered(why, maybe))
    unknown = outcome is Outcome.OUTCOME_UNKNOWN or earlier_outcome_unknown
    verdict = Verdict.UNCONFIRMED if unknown else Verdict.RETRY
    return RetryDecision(
        verdict=verdict, next_attempt_at=now + policy.delay(attempt, rng), reason=detail
    )


def maybe_delivered(reason: str, delivered: bool) -> str:
    """``reason``, said as :data:`MAYBE_DELIVERED` when a copy may have reached the peer."""
    if not delivered:
        return reason
    return (
        f"{MAYBE_DELIVERED}: an attempt's outcome was unknown, so the peer may hold that copy "
        f"(check with the recipient before resending; a resend is deduplicated); {reason}"
    )

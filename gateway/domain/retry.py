"""The retry policy: a pure decision, persisted by the caller as the recipient's next attempt time.

Exponential backoff with full jitter, capped, with a limit on attempts per channel. Business errors
(the peer said no: unknown receiver, bad package) are never retried; transport errors and 5xx are,
until the limit; an unknown outcome (a timeout after the peer may have committed) is retried as
``unconfirmed`` with the same package, so the receiver can deduplicate.
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
    rng: random.Random | None = None,
) -> RetryDecision:
    if outcome is Outcome.SENT:
        return RetryDecision(verdict=Verdict.SENT)
    if outcome is Outcome.BUSINESS_ERROR:
        return RetryDecision(verdict=Verdict.FAIL, reason=f"refused by the peer: {detail}")
    if attempt >= policy.max_attempts:
        return RetryDecision(
            verdict=Verdict.FAIL,
            reason=f"gave up after {attempt} attempts; last error: {detail}",
        )
    verdict = Verdict.UNCONFIRMED if outcome is Outcome.OUTCOME_UNKNOWN else Verdict.RETRY
    return RetryDecision(
        verdict=verdict, next_attempt_at=now + policy.delay(attempt, rng), reason=detail
    )

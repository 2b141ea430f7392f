"""The retry decision remembers an earlier unknown outcome (the recipient was claimed from
``unconfirmed``): the peer may hold that copy, so a later refusal or the attempt limit fails it as
MAYBE_DELIVERED, and a later transport error keeps it unconfirmed."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.domain.retry import MAYBE_DELIVERED, Outcome, RetryPolicy, Verdict, decide

NOW = dt.datetime(2024, 3, 15, 8, 0, tzinfo=dt.UTC)
POLICY = RetryPolicy(base_seconds=1, max_delay_seconds=60, max_attempts=5)


def test_a_refusal_after_an_unknown_outcome_fails_as_maybe_delivered() -> None:
    decision = decide(
        outcome=Outcome.BUSINESS_ERROR, attempt=2, now=NOW, policy=POLICY,
        detail="axis code 23: receiver locked", earlier_outcome_unknown=True,
    )  # fmt: skip
    assert decision.verdict is Verdict.FAIL and decision.next_attempt_at is None
    assert decision.reason.startswith(f"{MAYBE_DELIVERED}: ")
    assert decision.reason.endswith("refused by the peer: axis code 23: receiver locked")


def test_a_refusal_with_no_unknown_outcome_before_it_is_plain() -> None:
    decision = decide(outcome=Outcome.BUSINESS_ERROR, attempt=2, now=NOW, policy=POLICY, detail="x")
    assert (decision.verdict, decision.reason) == (Verdict.FAIL, "refused by the peer: x")


@pytest.mark.parametrize(
    ("outcome", "earlier", "maybe"),
    [
        (Outcome.TRANSPORT_ERROR, True, True),
        (Outcome.OUTCOME_UNKNOWN, False, True),  # the last attempt's own outcome is unknown
        (Outcome.OUTCOME_UNKNOWN, True, True),
        (Outcome.TRANSPORT_ERROR, False, False),
    ],
)
def test_giving_up_says_whether_a_copy_may_have_been_delivered(
    outcome: Outcome, earlier: bool, maybe: bool
) -> None:
    decision = decide(
        outcome=outcome, attempt=5, now=NOW, policy=POLICY, detail="503",
        earlier_outcome_unknown=earlier,
    )  # fmt: skip
    assert decision.verdict is Verdict.FAIL
    assert decision.reason.startswith(MAYBE_DELIVERED) is maybe
    assert decision.reason.endswith("gave up after 5 attempts; last error: 503")


def test_a_transport_error_after_an_unknown_outcome_stays_unconfirmed() -> None:
    after_unknown = decide(
        outcome=Outcome.TRANSPORT_ERROR, attempt=2, now=NOW, policy=POLICY, detail="503",
        earlier_outcome_unknown=True,
    )  # fmt: skip
    assert after_unknown.verdict is Verdict.UNCONFIRMED
    assert after_unknown.next_attempt_at is not None and after_unknown.next_attempt_at > NOW
    plain = decide(outcome=Outcome.TRANSPORT_ERROR, attempt=2, now=NOW, policy=POLICY)
    assert plain.verdict is Verdict.RETRY

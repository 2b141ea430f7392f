"""The transport lifecycle: every allowed move, every forbidden one, and the message summary."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.lifecycle import (
    ALLOWED,
    CANCELLABLE,
    CLAIMABLE,
    RESENDABLE,
    IllegalTransition,
    TransportState,
    check_transition,
    summarize,
)

S = TransportState
PAIRS = list(itertools.product(TransportState, TransportState))


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_each_move_is_allowed_exactly_when_the_table_says(current: S, new: S) -> None:
    if new in ALLOWED[current]:
        check_transition(current, new)
    else:
        with pytest.raises(IllegalTransition) as caught:
            check_transition(current, new)
        assert caught.value.code == "ILLEGAL_TRANSITION"


def test_every_state_is_in_the_table() -> None:
    assert set(ALLOWED) == set(TransportState)


def test_cancelled_is_terminal_and_sent_only_reopens_by_resend() -> None:
    assert ALLOWED[S.CANCELLED] == frozenset()
    assert ALLOWED[S.SENT] == {S.QUEUED}


def test_a_lost_send_never_goes_back_to_queued_directly() -> None:
    # The peer may have the package: the outcome is unknown, not "not sent".
    assert S.QUEUED not in ALLOWED[S.SENDING]
    assert S.UNCONFIRMED in ALLOWED[S.SENDING]


def test_claimable_resendable_cancellable_are_consistent_with_the_table() -> None:
    for state in CLAIMABLE:
        assert S.SENDING in ALLOWED[state]
    for state in RESENDABLE:
        assert S.QUEUED in ALLOWED[state]
    for state in CANCELLABLE:
        assert S.CANCELLED in ALLOWED[state]
    assert S.SENDING not in CANCELLABLE  # a send in flight finishes first


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S.SENT, S.SENT], S.SENT),
        ([S.SENT, S.FAILED], S.FAILED),
        ([S.SENT, S.HELD, S.QUEUED], S.HELD),
        ([S.SENT, S.RETRY_SCHEDULED], S.RETRY_SCHEDULED),
        ([S.CANCELLED, S.SENT], S.SENT),
        ([S.CANCELLED], S.CANCELLED),
        ([S.UNCONFIRMED, S.QUEUED], S.UNCONFIRMED),
    ],
)
def test_message_state_is_its_least_advanced_recipient(states: list[S], expected: S) -> None:
    assert summarize(states) is expected

"""Pure rules: the retry decision, the routing policy, the business status progression."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envelopes.model import Classification, StatusCode
from gateway.domain import business
from gateway.domain.retry import Outcome, RetryPolicy, Verdict, decide
from gateway.domain.routing import ChannelInfo, RecipientEntry, route_recipient, route_through
from gateway.settings import SettingsError, load_settings

NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
POLICY = RetryPolicy(base_seconds=2, max_delay_seconds=60, max_attempts=5, jitter=0.5)


def test_sent_and_business_errors_are_final() -> None:
    assert decide(outcome=Outcome.SENT, attempt=1, now=NOW, policy=POLICY).verdict is Verdict.SENT
    refused = decide(outcome=Outcome.BUSINESS_ERROR, attempt=1, now=NOW, policy=POLICY, detail="18")
    assert refused.verdict is Verdict.FAIL and "18" in refused.reason


def test_transport_errors_retry_until_the_limit() -> None:
    for attempt in range(1, 5):
        decision = decide(outcome=Outcome.TRANSPORT_ERROR, attempt=attempt, now=NOW, policy=POLICY)
        assert decision.verdict is Verdict.RETRY
        assert decision.next_attempt_at is not None and decision.next_attempt_at > NOW
    last = decide(outcome=Outcome.TRANSPORT_ERROR, attempt=5, now=NOW, policy=POLICY, detail="503")
    assert last.verdict is Verdict.FAIL and "5 attempts" in last.reason


def test_unknown_outcome_is_unconfirmed_and_retried() -> None:
    decision = decide(outcome=Outcome.OUTCOME_UNKNOWN, attempt=1, now=NOW, policy=POLICY)
    assert decision.verdict is Verdict.UNCONFIRMED and decision.next_attempt_at is not None


@given(attempt=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_backoff_grows_exponentially_within_jitter_and_cap(attempt: int, seed: int) -> None:
    delay = POLICY.delay(attempt, random.Random(seed)).total_seconds()
    ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
    assert ceiling * 0.5 <= delay <= ceiling


@pytest.mark.parametrize("bad", [{"base_seconds": 0}, {"max_attempts": 0}, {"jitter": 1.5}])
def test_policy_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)  # type: ignore[arg-type]


CHANNELS = {
    "axis": ChannelInfo(name="axis", is_axis=True, is_secure=False),
    "secure": ChannelInfo(name="secure", is_axis=False, is_secure=True),
    "lan": ChannelInfo(name="lan", is_axis=False, is_secure=False),
}


def entry(**kwargs: object) -> RecipientEntry:
    values: dict[str, object] = {"code": "000.00.00.H41", "active": True, "channel": "axis"}
    values.update(kwargs)
    return RecipientEntry(**values)  # type: ignore[arg-type]


def test_unclassified_takes_the_recipients_channel() -> None:
    route = route_recipient(Classification.THUONG, entry(), CHANNELS)
    assert route.channel == "axis" and not route.is_held


@pytest.mark.parametrize(
    "level", [Classification.MAT, Classification.TOI_MAT, Classification.TUYET_MAT]
)
def test_classified_never_takes_the_axis_even_when_the_unit_says_axis(
    level: Classification,
) -> None:
    route = route_recipient(level, entry(channel="axis", secure_channel=None), CHANNELS)
    assert route.is_held and "secure endpoint" in route.reason


@pytest.mark.parametrize("level", [Classification.MAT, Classification.TOI_MAT])
def test_mat_and_toi_mat_take_only_the_secure_channel(level: Classification) -> None:
    assert route_recipient(level, entry(secure_channel="secure"), CHANNELS).channel == "secure"


def test_a_secure_channel_name_that_is_really_an_axis_or_plain_is_refused() -> None:
    for name in ("axis", "lan"):
        route = route_recipient(Classification.MAT, entry(secure_channel=name), CHANNELS)
        assert route.is_held


def test_tuyet_mat_needs_explicit_permission() -> None:
    held = route_recipient(Classification.TUYET_MAT, entry(secure_channel="secure"), CHANNELS)
    assert held.is_held and "explicitly" in held.reason
    allowed = route_recipient(
        Classification.TUYET_MAT, entry(secure_channel="secure", allows_tuyet_mat=True), CHANNELS
    )
    assert allowed.channel == "secure"


def test_inactive_or_unrouted_units_are_held() -> None:
    assert route_recipient(Classification.THUONG, entry(active=False), CHANNELS).is_held
    assert route_recipient(Classification.THUONG, entry(channel="nowhere"), CHANNELS).is_held


@pytest.mark.parametrize(
    "level", [Classification.MAT, Classification.TOI_MAT, Classification.TUYET_MAT]
)
def test_a_classified_reroute_passes_the_same_policy_as_the_first_routing(
    level: Classification,
) -> None:
    allowed = {"allows_tuyet_mat": True}
    for name in ("axis", "lan", "nowhere"):
        refused = route_through(level, entry(secure_channel="secure", **allowed), name, CHANNELS)
        assert refused.is_held, name
    # No registered secure endpoint: naming the secure channel does not make one.
    no_endpoint = route_through(level, entry(secure_channel=None, **allowed), "secure", CHANNELS)
    assert no_endpoint.is_held and "needs a secure endpoint" in no_endpoint.reason
    inactive = entry(secure_channel="secure", active=False, **allowed)
    assert route_through(level, inactive, "secure", CHANNELS).is_held
    ok = route_through(level, entry(secure_channel="secure", **allowed), "secure", CHANNELS)
    assert ok.channel == "secure"


def test_a_tuyet_mat_reroute_needs_the_explicit_permission() -> None:
    held = route_through(
        Classification.TUYET_MAT, entry(secure_channel="secure"), "secure", CHANNELS
    )
    assert held.is_held and "explicitly" in held.reason
    mat = route_through(Classification.MAT, entry(secure_channel="secure"), "secure", CHANNELS)
    assert mat.channel == "secure"


def test_an_unclassified_reroute_takes_any_configured_channel() -> None:
    for name in ("axis", "secure", "lan"):
        assert route_through(Classification.THUONG, entry(), name, CHANNELS).channel == name
    assert route_through(Classification.THUONG, entry(), "nowhere", CHANNELS).is_held


def _settings(tmp_path: Path, channel: str) -> Path:
    path = tmp_path / "docgw.toml"
    path.write_text(f"[channels.c]\n{channel}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "channel",
    [
        'kind = "http_push"\nendpoint = "http://127.0.0.1:9/api/v1/inbox"\nsecure = true',
        'kind = "fake"\nsecure = true',
        'kind = "drop_folder"\nroot = "handoff"\nsecure = true',
    ],
    ids=["http_push", "fake", "drop_folder"],
)
def test_secure_true_on_any_other_kind_than_secure_is_refused(tmp_path: Path, channel: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_settings(tmp_path, channel), {})
    assert refused.value.code == "CONFIG_INVALID"
    assert refused.value.element == "channels.c.secure"
    assert 'only for kind = "secure"' in refused.value.message


def test_only_the_secure_kind_is_eligible_for_classified_traffic(tmp_path: Path) -> None:
    for channel in ('kind = "secure"', 'kind = "secure"\nsecure = true'):
        [secure] = load_settings(_settings(tmp_path, channel), {}).channels
        assert secure.is_secure
    http_push = 'kind = "http_push"\nendpoint = "http://127.0.0.1:9/x"\ntoken = "t"'
    for channel in ('kind = "fake"', http_push):
        [other] = load_settings(_settings(tmp_path, channel), {}).channels
        assert not other.is_secure
    with pytest.raises(SettingsError, match="cannot also be an axis"):
        load_settings(_settings(tmp_path, 'kind = "secure"\naxis = true'), {})


def test_business_status_moves_forward_and_keeps_late_ones_out_of_order() -> None:
    applied = business.apply(None, StatusCode.ACCEPTED)
    assert applied.current is StatusCode.ACCEPTED and not applied.out_of_order
    late = business.apply(StatusCode.ACCEPTED, StatusCode.ARRIVED)
    assert late.current is StatusCode.ACCEPTED and late.out_of_order
    assert (
        business.apply(StatusCode.IN_PROGRESS, StatusCode.COMPLETED).current is StatusCode.COMPLETED
    )
    assert business.apply(StatusCode.ACCEPTED, StatusCode.REJECTED).current is StatusCode.REJECTED


def test_a_held_reason_names_the_fact_that_holds_it() -> None:
    """The gateway's missing secure channel is not the unit's missing endpoint, and a unit with
    no channel is not a unit whose channel is not configured here."""
    no_secure_channel = {n: c for n, c in CHANNELS.items() if not c.is_secure}
    held = route_recipient(Classification.MAT, entry(secure_channel=None), no_secure_channel)
    assert held.is_held and "this gateway has none configured" in held.reason
    held = route_recipient(Classification.MAT, entry(secure_channel=None), CHANNELS)
    assert held.is_held and "needs a secure endpoint" in held.reason
    held = route_recipient(Classification.THUONG, entry(channel=None), CHANNELS)
    assert "no channel in the registry" in held.reason
    held = route_recipient(Classification.THUONG, entry(channel="nowhere"), CHANNELS)
    assert "channel nowhere is not configured here" in held.reason

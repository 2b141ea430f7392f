"""The console's per-address sign-in throttle, the address it counts, and which attachments a
browser may be shown inline."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.settings import ConsoleSettings
from gateway.usecases.package_check import inline_type
from gateway.usecases.users import AddressThrottle, LoginThrottled, client_address

T0 = dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC)


def test_an_address_is_refused_within_its_window_and_free_after_it() -> None:
    limits = ConsoleSettings(ip_failures=3, ip_window_minutes=10)
    throttle = AddressThrottle()
    for minute in range(3):
        throttle.check("198.51.100.7", T0 + dt.timedelta(minutes=minute), limits)
        throttle.failed("198.51.100.7", T0 + dt.timedelta(minutes=minute), limits)
    with pytest.raises(LoginThrottled) as refused:
        throttle.check("198.51.100.7", T0 + dt.timedelta(minutes=5), limits)
    assert refused.value.element == "address"
    throttle.check("198.51.100.8", T0 + dt.timedelta(minutes=5), limits)  # another is not
    # Ten minutes after the first failure it has left the window: two remain, under the limit.
    throttle.check("198.51.100.7", T0 + dt.timedelta(minutes=10), limits)


def test_the_throttle_remembers_a_bounded_number_of_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(AddressThrottle, "ADDRESSES_MAX", 2)
    limits = ConsoleSettings(ip_failures=1)
    throttle = AddressThrottle()
    for address in ("a", "b", "c"):
        throttle.failed(address, T0, limits)
    throttle.check("a", T0, limits)  # forgotten, the oldest first
    with pytest.raises(LoginThrottled):
        throttle.check("c", T0, limits)


def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    settings = ConsoleSettings(trusted_proxies=("10.0.0.2",))
    forwarded = "203.0.113.9, 192.0.2.4"
    assert client_address("10.0.0.2", forwarded, settings) == "192.0.2.4"
    assert client_address("10.0.0.3", forwarded, settings) == "10.0.0.3"
    assert client_address("10.0.0.2", "not an address", settings) == "10.0.0.2"
    assert client_address("10.0.0.2", None, settings) == "10.0.0.2"


@pytest.mark.parametrize(
    ("label", "head", "shown"),
    [
        ("application/pdf", b"%PDF-1.7\n", "application/pdf"),
        ("Image/PNG; x=y", b"\x89PNG\r\n\x1a\n...", "image/png"),
        ("image/jpeg", b"\xff\xd8\xff\xe0", "image/jpeg"),
        ("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        ("image/webp", b"RIFF\x00\x00\x00\x00WAVE", None),
        ("application/pdf", b"<html><script>", None),  # the label lies: downloaded
        ("image/svg+xml", b"<svg onload=alert(1)>", None),  # can carry script: never shown
        ("text/html", b"<html>", None),
    ],
)
def test_only_a_pdf_or_an_image_whose_bytes_agree_is_shown(
    label: str, head: bytes, shown: str | None
) -> None:
    assert inline_type(label, head) == shown

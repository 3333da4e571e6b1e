"""The limits' arithmetic: provider scaling, spacing, warm-up ramp, paced provider slots."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from limits.policy import LimitPolicy, WarmUp, provider_slot
from limits.window import SendingWindow

EVERY_DAY = frozenset(range(1, 8))


def test_provider_limit_scales_with_ceil_of_mailboxes_over_150() -> None:
    p = LimitPolicy()
    assert p.provider_limit("gmail", 50) == 150
    assert p.provider_limit("gmail", 150) == 150
    assert p.provider_limit("gmail", 151) == 300
    assert p.provider_limit("gmail", 600) == 600
    assert p.provider_limit("outlook", 1) == 100
    assert p.provider_limit("yahoo", 1) == 50
    assert p.provider_limit("other", 1) == 30
    assert p.provider_limit("something-new", 1) == 30


def test_host_connections_by_provider() -> None:
    p = LimitPolicy()
    assert (p.connections("gmail"), p.connections("outlook"), p.connections("yahoo")) == (15, 10, 5)


def test_spacing_spreads_the_cap_over_the_window_with_random_gaps() -> None:
    window = SendingWindow(time(9), time(17), EVERY_DAY, "UTC")  # 8 hours
    p = LimitPolicy()
    mean = timedelta(hours=8) / 40
    assert p.spacing_gap(window, 40, 0.0) == mean * 0.5
    assert p.spacing_gap(window, 40, 0.5) == mean
    assert p.spacing_gap(window, 40, 0.999) < mean * 1.5
    assert LimitPolicy(spacing=0).spacing_gap(window, 40, 0.5) == timedelta(0)


def test_warm_up_starts_low_on_the_first_day_and_ramps_to_the_limit() -> None:
    began = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    ramp = WarmUp(start=5, increment=5, began=began)
    assert ramp.cap(40, began) == 5
    assert ramp.cap(40, began + timedelta(hours=23)) == 5
    assert ramp.cap(40, began + timedelta(days=1)) == 10
    assert ramp.cap(40, began + timedelta(days=30)) == 40


def test_provider_slots_are_paced_and_never_exceed_the_window() -> None:
    entries: list[float] = []
    now = 0.0
    for _ in range(10):
        entries.append(provider_slot(entries, now, limit=3, window=60.0))
    assert entries == [i * 20.0 for i in range(10)]
    assert all(entries[i + 3] - entries[i] >= 60.0 for i in range(len(entries) - 3))

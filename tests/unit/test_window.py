"""The sending window and calendar day, in the mailbox's time zone (DST included)."""

from __future__ import annotations

from datetime import UTC, datetime, time

from limits.window import SendingWindow

WEEKDAYS = frozenset({1, 2, 3, 4, 5})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_open_inside_hours_on_a_weekday() -> None:
    w = SendingWindow(time(9), time(17), WEEKDAYS, "Europe/Paris")
    # Friday 2026-11-27 10:00 Paris = 09:00 UTC
    assert w.is_open(utc(2026, 11, 27, 9, 0))
    assert w.next_open(utc(2026, 11, 27, 9, 0)) == utc(2026, 11, 27, 9, 0)


def test_after_hours_on_friday_waits_until_monday_morning_local_time() -> None:
    w = SendingWindow(time(9), time(17), WEEKDAYS, "Europe/Paris")
    # Friday 18:00 Paris -> Monday 09:00 Paris = 08:00 UTC
    assert w.next_open(utc(2026, 11, 27, 17, 0)) == utc(2026, 11, 30, 8, 0)


def test_window_opens_at_local_time_across_a_dst_change() -> None:
    w = SendingWindow(time(9), time(17), frozenset(range(1, 8)), "America/New_York")
    # 2026-03-08: US clocks go forward. Saturday 20:00 EST (01:00 UTC Sunday) ->
    # Sunday 09:00 EDT = 13:00 UTC (it would be 14:00 UTC without the change).
    assert w.next_open(utc(2026, 3, 8, 1, 0)) == utc(2026, 3, 8, 13, 0)


def test_day_bounds_follow_the_mailbox_time_zone_and_dst() -> None:
    w = SendingWindow(time.min, time.max, frozenset(range(1, 8)), "America/New_York")
    start, end = w.day_bounds(utc(2026, 3, 8, 12, 0))
    assert start == utc(2026, 3, 8, 5, 0)  # midnight EST
    assert end == utc(2026, 3, 9, 4, 0)  # midnight EDT: a 23-hour day

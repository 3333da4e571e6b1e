"""The on_reply block (issue 25, part 2): defaults, import errors naming the field, the
action for each message, and where a postponement moves the next step."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from inbox.intent import judge
from specs.loading import load_campaign_file
from specs.on_reply import (
    Action,
    OnReplySpec,
    ReplyPolicy,
    action_for,
    default_actions,
    parse_buffer,
    postpone_until,
)
from tests.unit.test_specs_campaigns import campaign, messages, write
from worktime.hours import WorkingHours
from worktime.schedule import RECIPIENT, WEEKDAYS, Recipient, Schedule, mailbox_hours, recipient_calendar


def test_without_the_block_replies_follow_stop_on_reply_and_out_of_office_postpones(tmp_path: Path) -> None:
    policy = load_campaign_file(write(tmp_path, campaign())).spec.reply_policy
    assert policy.actions["interested"] is Action.STOP and policy.actions["not_interested"] is Action.STOP
    assert policy.actions["unsubscribe"] is Action.SUPPRESS
    assert policy.actions["out_of_office"] is Action.POSTPONE
    assert (policy.buffer_business_days, policy.default_seconds, policy.max_postpones) == (1, 7 * 86400, 2)
    quiet = load_campaign_file(write(tmp_path, campaign(stop_on_reply=False, stop_on_auto_reply=True)))
    assert quiet.spec.reply_policy.actions["meeting"] is Action.IGNORE
    assert quiet.spec.reply_policy.actions["out_of_office"] is Action.STOP


def test_the_block_sets_actions_and_postponement(tmp_path: Path) -> None:
    block = {"not_interested": "stop_workspace", "referral": "stop", "out_of_office": "postpone",
             "postpone_buffer": "2 business days", "postpone_default": "3 days", "postpone_max": 1}
    policy = load_campaign_file(write(tmp_path, campaign(on_reply=block))).spec.reply_policy
    assert policy.actions["not_interested"] is Action.STOP_WORKSPACE
    assert (policy.buffer_business_days, policy.default_seconds, policy.max_postpones) == (2, 3 * 86400, 1)
    assert ReplyPolicy.from_stored(policy.stored(), "campaign", False) == policy


@pytest.mark.parametrize(("block", "expected"), [
    ({"out_of_office": "snooze"}, "on_reply.out_of_office: unknown action 'snooze'"),
    ({"unsubscribe": "ignore"},
     "on_reply.unsubscribe: 'ignore' is not allowed for unsubscribe (use suppress)"),
    ({"interested": "postpone"}, "on_reply.interested: 'postpone' is not allowed for interested"),
    ({"angry": "stop"}, "on_reply.angry"),
    ({"postpone_buffer": "soon"}, "on_reply.postpone_buffer: not a delay"),
])
def test_an_action_unknown_or_not_allowed_is_an_import_error_naming_the_field(
        tmp_path: Path, block: dict[str, Any], expected: str) -> None:
    found = messages(tmp_path, campaign(on_reply=block))
    assert any(expected in m for m in found), found


def test_the_action_for_each_message() -> None:
    policy = ReplyPolicy(actions={**default_actions("campaign", False), "not_interested": Action.SUPPRESS})
    assert action_for("reply", "not_interested", policy, False) is Action.SUPPRESS
    assert action_for("reply", "out_of_office", policy, False) is Action.POSTPONE
    assert action_for("reply", None, policy, False) is Action.STOP  # headers only: other
    assert action_for("auto_reply", "out_of_office", policy, False) is Action.POSTPONE
    assert action_for("auto_reply", "other", policy, False) is Action.IGNORE  # as before
    assert action_for("auto_reply", "other", policy, True) is Action.STOP
    assert action_for("unsubscribe", "unsubscribe", policy, False) is Action.SUPPRESS


def calendar(zone: str | None, schedule: Schedule | None = None, country: str | None = None,
             mailbox_zone: str = "UTC") -> WorkingHours:
    """A prospect's working days as a postponement reads them (store/inbound.py)."""
    mailbox = mailbox_hours(mailbox_zone, time(9), time(17), [1, 2, 3, 4, 5])
    return recipient_calendar(schedule, Recipient(zone, country, None, mailbox))


def test_without_a_schedule_business_days_are_monday_to_friday_without_holidays() -> None:
    week = calendar("Europe/Berlin", country="DE")
    friday = date(2026, 3, 6)
    assert week.working_days_after(friday, 1) == date(2026, 3, 9)
    assert week.working_days_after(date(2026, 3, 7), 1) == date(2026, 3, 9)  # Saturday + 1: Monday
    assert week.working_days_after(date(2026, 3, 7), 0) == date(2026, 3, 7)
    assert week.working_days_after(date(2026, 3, 2), 2) == date(2026, 3, 4)
    # Maundy Thursday 2027 + 1: Good Friday, a holiday no schedule asked to skip.
    assert week.working_days_after(date(2027, 3, 25), 1) == date(2027, 3, 26)


def test_the_buffer_reads_like_a_steps_business_day_delay() -> None:
    assert parse_buffer("1 business day", "postpone_buffer") == (1, 0)
    assert parse_buffer("3bd", "postpone_buffer") == (3, 0)
    assert parse_buffer("12h", "postpone_buffer") == (0, 12 * 3600)
    assert parse_buffer("0", "postpone_buffer") == (0, 0)
    with pytest.raises(ValueError, match="on_reply.postpone_buffer: '300 business days'"):
        parse_buffer("300 business days", "postpone_buffer")


NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def test_postponed_to_the_return_day_plus_a_business_day_in_the_zone() -> None:
    policy = OnReplySpec().policy("campaign", False)
    until, why = postpone_until(date(2026, 3, 13), NOW, calendar(None, mailbox_zone="Europe/Berlin"), policy)
    # Friday the 13th + 1 business day: Monday the 16th, midnight in Berlin (the
    # mailbox's zone: the prospect has none).
    assert until.astimezone(UTC) == datetime(2026, 3, 15, 23, 0, tzinfo=UTC)
    assert why == "return date 2026-03-13 (Europe/Berlin) + 1 business day(s)"


@pytest.mark.parametrize("back", [None, date(2026, 2, 27), date(2026, 6, 30)])
def test_no_date_a_past_date_or_one_over_90_days_ahead_postpone_by_the_default(back: date | None) -> None:
    until, _ = postpone_until(back, NOW, calendar(None), OnReplySpec().policy("campaign", False))
    assert until == datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


BACK_ON_MONDAY = "Thank you for your email. I am out of the office and back on Monday 14th."


def test_a_return_date_is_read_in_the_prospects_zone() -> None:
    policy = OnReplySpec().policy("campaign", False)
    received = datetime(2027, 6, 9, 16, 0, tzinfo=UTC)  # a Wednesday
    back = judge(BACK_ON_MONDAY, automatic=True, received_at=received).return_date
    assert back == date(2027, 6, 14)
    kolkata = calendar("Asia/Kolkata", mailbox_zone="Europe/Berlin")
    until, why = postpone_until(back, received, kolkata, policy)
    # Monday the 14th + 1 business day: Tuesday the 15th, midnight in Kolkata (UTC+5:30),
    # not in the mailbox's Berlin.
    assert until == datetime(2027, 6, 14, 18, 30, tzinfo=UTC)
    assert why == "return date 2027-06-14 (Asia/Kolkata) + 1 business day(s)"
    # "Today" is Kolkata's too: at 20:00 UTC on the 14th it is the 15th there, so "back
    # on the 14th" is past (the default applies), though not yet in London.
    late = datetime(2027, 6, 14, 20, 0, tzinfo=UTC)
    assert postpone_until(back, late, kolkata, policy)[1] == "return date 2027-06-14 out of range: 604800s"
    assert postpone_until(back, late, calendar("Europe/London"), policy)[0] == datetime(
        2027, 6, 14, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(("holidays", "back", "expected"), [
    # Maundy Thursday + 1 business day: Good Friday and Easter Monday are German
    # holidays and the weekend between is not worked either: Tuesday.
    (RECIPIENT, date(2027, 3, 25), date(2027, 3, 30)),
    (("DE",), date(2027, 3, 25), date(2027, 3, 30)),
    (RECIPIENT, date(2027, 5, 14), date(2027, 5, 18)),  # the Friday before Whit Monday
    (RECIPIENT, date(2028, 10, 2), date(2028, 10, 4)),  # German Unity Day 2028 is a Tuesday
    ((), date(2027, 3, 25), date(2027, 3, 26)),  # holidays: none
])
def test_the_buffer_skips_the_recipients_holidays_when_the_schedule_says_so(
        holidays: str | tuple[str, ...], back: date, expected: date) -> None:
    schedule = Schedule(RECIPIENT, WEEKDAYS, time(9), time(17), holidays)
    berlin = calendar("Europe/Berlin", schedule, country="DE", mailbox_zone="America/New_York")
    until, _ = postpone_until(back, datetime.combine(back, time(8), UTC), berlin,
                              OnReplySpec().policy("campaign", False))
    assert until == datetime.combine(expected, time(0), berlin.zone)


def test_the_buffer_counts_the_schedules_days_whatever_zone_its_window_is_in() -> None:
    # Monday to Thursday, the window read in New York's clock: the return day and its
    # buffer are still the recipient's, in Tokyo.
    schedule = Schedule("America/New_York", frozenset({1, 2, 3, 4}), time(9), time(17), ())
    tokyo = calendar("Asia/Tokyo", schedule)
    policy = OnReplySpec(postpone_buffer="2 business days").policy("campaign", False)
    until, _ = postpone_until(date(2027, 6, 16), datetime(2027, 6, 10, tzinfo=UTC), tokyo, policy)
    assert until == datetime(2027, 6, 21, 0, 0, tzinfo=tokyo.zone)  # Wednesday + Thursday, Monday


def test_a_buffer_in_hours_is_wall_clock_time_on_the_day_clocks_change() -> None:
    policy = OnReplySpec(postpone_buffer="12h").policy("campaign", False)
    berlin = calendar("Europe/Berlin")
    until, why = postpone_until(date(2027, 3, 28), datetime(2027, 3, 20, tzinfo=UTC), berlin, policy)
    assert until == datetime(2027, 3, 28, 10, 0, tzinfo=UTC)  # noon in summer time, 11 hours after midnight
    assert why == "return date 2027-03-28 (Europe/Berlin) + 43200s"

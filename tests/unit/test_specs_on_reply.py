"""The on_reply block (issue 25, part 2): defaults, import errors naming the field, the
action for each message, and where a postponement moves the next step."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from specs.loading import load_campaign_file
from specs.on_reply import (
    Action,
    OnReplySpec,
    ReplyPolicy,
    action_for,
    add_business_days,
    default_actions,
    postpone_until,
)
from tests.unit.test_specs_campaigns import campaign, messages, write


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


def test_business_days_skip_the_weekend() -> None:
    friday = date(2026, 3, 6)
    assert add_business_days(friday, 1) == date(2026, 3, 9)
    assert add_business_days(date(2026, 3, 7), 1) == date(2026, 3, 9)  # Saturday + 1: Monday
    assert add_business_days(date(2026, 3, 7), 0) == date(2026, 3, 7)
    assert add_business_days(date(2026, 3, 2), 2) == date(2026, 3, 4)


NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def test_postponed_to_the_return_day_plus_a_business_day_in_the_zone() -> None:
    policy = OnReplySpec().policy("campaign", False)
    until, why = postpone_until(date(2026, 3, 13), NOW, "Europe/Berlin", policy)
    # Friday the 13th + 1 business day: Monday the 16th, midnight in Berlin.
    assert until.astimezone(UTC) == datetime(2026, 3, 15, 23, 0, tzinfo=UTC)
    assert why == "return date 2026-03-13 + 1 business day(s)"


@pytest.mark.parametrize("back", [None, date(2026, 2, 27), date(2026, 6, 30)])
def test_no_date_a_past_date_or_one_over_90_days_ahead_postpone_by_the_default(back: date | None) -> None:
    until, _ = postpone_until(back, NOW, "UTC", OnReplySpec().policy("campaign", False))
    assert until == datetime(2026, 3, 9, 10, 0, tzinfo=UTC)

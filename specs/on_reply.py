"""What a campaign does about each kind of reply: the ``on_reply`` block.

```yaml
on_reply:
  out_of_office: postpone      # postpone | stop | ignore
  not_interested: stop_workspace
  unsubscribe: suppress        # only suppress: an opt-out in words is honoured like the link
  referral: stop               # and the referred address is recorded for export
  postpone_buffer: 1 business day
  postpone_default: 7d
  postpone_max: 2
```

Every class has a default, so a campaign without the block behaves as before: a
person's reply follows ``stop_on_reply`` (stop, stop_workspace or ignore), an opt-out
in words is suppressed, an out-of-office postpones (stops, with
``stop_on_auto_reply: true``). An action that is unknown, or not allowed for its
class, is an import error naming the field (docs/decisions/0053).

Pure: the stored form (a dict in ``campaigns.on_reply``), the choice of action for
one message, and the moment a postponement moves the next step to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from specs.durations import parse_delay
from specs.scalars import SpecModel
from specs.schedule import business_days
from worktime.hours import WorkingHours, wall_instant


class Action(StrEnum):
    STOP = "stop"  # this campaign's sequence for the prospect
    STOP_WORKSPACE = "stop_workspace"  # and the same address in the workspace's other campaigns
    SUPPRESS = "suppress"  # stop and list the address in the workspace (do-not-contact)
    POSTPONE = "postpone"  # move the next step to the return date (+ buffer)
    IGNORE = "ignore"  # record only


_REPLY = frozenset({Action.STOP, Action.STOP_WORKSPACE, Action.IGNORE})
# What each intent class (inbox/intent.py) may be told to do.
ALLOWED: dict[str, frozenset[Action]] = {
    "interested": _REPLY, "meeting": _REPLY, "question": _REPLY, "other": _REPLY,
    "wrong_person": _REPLY, "referral": _REPLY,
    "not_interested": _REPLY | {Action.SUPPRESS},
    "unsubscribe": frozenset({Action.SUPPRESS}),
    "out_of_office": frozenset({Action.POSTPONE, Action.STOP, Action.IGNORE}),
}
CLASSES = tuple(ALLOWED)
MAX_RETURN_AHEAD = timedelta(days=90)  # a return date further ahead postpones by the default


class OnReplySpec(SpecModel):
    """The block as written; ``policy()`` resolves it against ``stop_on_reply``."""

    model_config = ConfigDict(extra="forbid")

    interested: str | None = None
    meeting: str | None = None
    question: str | None = None
    other: str | None = None
    wrong_person: str | None = None
    referral: str | None = None
    not_interested: str | None = None
    unsubscribe: str | None = None
    out_of_office: str | None = None
    postpone_buffer: str = "1 business day"
    postpone_default: str = "7d"
    postpone_max: int = Field(default=2, ge=0, le=20)

    @model_validator(mode="after")
    def _actions_allowed(self) -> OnReplySpec:
        for name in CLASSES:
            value = getattr(self, name)
            if value is None:
                continue
            allowed = ", ".join(sorted(ALLOWED[name]))
            if value not in Action.__members__.values():
                raise ValueError(f"on_reply.{name}: unknown action {value!r} (for {name}: {allowed})")
            if Action(value) not in ALLOWED[name]:
                raise ValueError(f"on_reply.{name}: {value!r} is not allowed for {name} (use {allowed})")
        parse_buffer(self.postpone_buffer, "postpone_buffer")
        parse_span(self.postpone_default, "postpone_default")
        return self

    def policy(self, stop_on_reply: str, stop_on_auto_reply: bool) -> ReplyPolicy:
        days, seconds = parse_buffer(self.postpone_buffer, "postpone_buffer")
        given = {name: Action(v) for name in CLASSES if (v := getattr(self, name)) is not None}
        return ReplyPolicy(
            actions={**default_actions(stop_on_reply, stop_on_auto_reply), **given},
            buffer_business_days=days, buffer_seconds=seconds,
            default_seconds=parse_span(self.postpone_default, "postpone_default"),
            max_postpones=self.postpone_max,
        )


def default_actions(stop_on_reply: str, stop_on_auto_reply: bool) -> dict[str, Action]:
    """Each class's action when the block does not say: what ``stop_on_reply`` did
    before (campaign: stop, workspace: stop_workspace, none: ignore)."""
    reply = {"campaign": Action.STOP, "workspace": Action.STOP_WORKSPACE}.get(stop_on_reply, Action.IGNORE)
    found = {name: reply for name in CLASSES}
    found["unsubscribe"] = Action.SUPPRESS
    found["out_of_office"] = Action.STOP if stop_on_auto_reply else Action.POSTPONE
    return found


_DAYS = re.compile(r"^\s*(\d{1,3})\s+days?\s*$", re.I)


def parse_buffer(text: str, name: str) -> tuple[int, int]:
    """(business days, seconds): ``1 business day``, ``2 business days``, ``2bd`` (read
    as steps' business-day delays are, specs/schedule.py), or a delay as steps write it
    (``12h``, ``1d``, ``0``)."""
    try:
        days = business_days(text)
    except ValueError as exc:
        raise ValueError(f"on_reply.{name}: {exc}") from None
    if days is not None:
        return days, 0
    return 0, parse_span(text, name)


def parse_span(text: str, name: str) -> int:
    """Seconds: ``7d``, ``36h``, or ``7 days``."""
    match = _DAYS.match(text)
    if match:
        return int(match[1]) * 86400
    try:
        return parse_delay(text)
    except ValueError as exc:
        raise ValueError(f"on_reply.{name}: {exc}") from None


@dataclass(frozen=True)
class ReplyPolicy:
    """The resolved block, as stored in ``campaigns.on_reply``."""

    actions: dict[str, Action] = field(default_factory=lambda: default_actions("campaign", False))
    buffer_business_days: int = 1
    buffer_seconds: int = 0
    default_seconds: int = 7 * 86400
    max_postpones: int = 2

    def stored(self) -> dict[str, Any]:
        return {"actions": {k: v.value for k, v in self.actions.items()},
                "buffer_business_days": self.buffer_business_days, "buffer_seconds": self.buffer_seconds,
                "default_seconds": self.default_seconds, "max_postpones": self.max_postpones}

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None, stop_on_reply: str,
                    stop_on_auto_reply: bool) -> ReplyPolicy:
        """A campaign imported before migration 0016 stores ``{}``: every default."""
        stored = stored or {}
        actions = {**default_actions(stop_on_reply, stop_on_auto_reply),
                   **{k: Action(v) for k, v in stored.get("actions", {}).items() if k in ALLOWED}}
        base = cls()
        return cls(actions=actions,
                   buffer_business_days=int(stored.get("buffer_business_days", base.buffer_business_days)),
                   buffer_seconds=int(stored.get("buffer_seconds", base.buffer_seconds)),
                   default_seconds=int(stored.get("default_seconds", base.default_seconds)),
                   max_postpones=int(stored.get("max_postpones", base.max_postpones)))


def action_for(kind: str, intent: str | None, policy: ReplyPolicy, stop_on_auto_reply: bool) -> Action:
    """What one matched message does: ``kind`` its class (inbox/classify.py),
    ``intent`` what it means (inbox/intent.py), None when it has none."""
    if kind == "unsubscribe":
        return Action.SUPPRESS
    if kind == "auto_reply":
        if intent == "out_of_office":
            return policy.actions["out_of_office"]
        return Action.STOP if stop_on_auto_reply else Action.IGNORE
    if kind == "reply":
        return policy.actions.get(intent or "other", policy.actions["other"])
    return Action.IGNORE


def postpone_until(return_date: date | None, now: datetime, calendar: WorkingHours,
                   policy: ReplyPolicy) -> tuple[datetime, str]:
    """When the next step may go after an out-of-office reply, and why: the start of
    the return day in ``calendar``'s zone (the recipient's when known, else the
    mailbox's: worktime.schedule.recipient_calendar) plus the buffer, its business days
    counted on ``calendar``'s working days (the schedule's days and holidays; without a
    schedule Monday to Friday); a date missing, past, or more than 90 days ahead there:
    ``now`` plus ``postpone_default``. A recipient window, if any, is the claim's to
    keep: it moves the prospect from here to its next opening (store/open_work.py)."""
    today = now.astimezone(calendar.zone).date()
    if return_date is not None and today <= return_date <= today + MAX_RETURN_AHEAD:
        day = calendar.working_days_after(return_date, policy.buffer_business_days)
        # A buffer in hours is wall-clock time from the day's start, as before.
        start = wall_instant(day, time(0), calendar.zone).astimezone(calendar.zone)
        at = start + timedelta(seconds=policy.buffer_seconds)
        buffer = (f"{policy.buffer_business_days} business day(s)" if policy.buffer_business_days
                  else f"{policy.buffer_seconds}s")
        return at, f"return date {return_date.isoformat()} ({calendar.zone.key}) + {buffer}"
    why = "no return date" if return_date is None else f"return date {return_date.isoformat()} out of range"
    return now + timedelta(seconds=policy.default_seconds), f"{why}: {policy.default_seconds}s"

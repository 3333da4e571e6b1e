"""A campaign's recipient window (its ``schedule:``) and when a step may go to one
prospect under it: not before the step's delay (business days counted on the
recipient's working days), not before ``start_at``, and only while both the recipient's
window and the mailbox's are open."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from typing import Any

from worktime.hours import ALL_DAYS, NO_HOLIDAYS, WorkingHours, first_common_opening, wall_instant
from worktime.zones import Holidays, zone

RECIPIENT = "recipient"
WEEKDAYS = frozenset(range(1, 6))


@dataclass(frozen=True)
class Schedule:
    timezone: str | None  # None: the mailbox's zone; "recipient": the prospect's; or an IANA name
    days: frozenset[int] = WEEKDAYS
    start: time = time(0, 0)
    end: time = time.max
    holidays: str | tuple[str, ...] = ()  # "recipient", or countries (none: empty)
    start_at: datetime | None = None  # naive: a wall time in the schedule's zone

    def as_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone, "days": sorted(self.days), "from": self.start.isoformat(),
            "to": "24:00" if self.end == time.max else self.end.isoformat(),
            "holidays": self.holidays if isinstance(self.holidays, str) else list(self.holidays),
            "start_at": self.start_at.isoformat() if self.start_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        holidays = data["holidays"]
        return cls(
            data["timezone"], frozenset(data["days"]), time.fromisoformat(data["from"]),
            time.max if data["to"] == "24:00" else time.fromisoformat(data["to"]),
            holidays if isinstance(holidays, str) else tuple(holidays),
            datetime.fromisoformat(data["start_at"]) if data["start_at"] else None,
        )


# Business days of a campaign without a schedule: Monday to Friday in the mailbox's zone.
WORKING_WEEK = Schedule(None)


@dataclass(frozen=True)
class Recipient:
    """What the claim knows of a prospect and its mailbox."""

    timezone: str | None  # the prospect's zone (None: the mailbox's)
    country: str | None
    subdivision: str | None
    mailbox: WorkingHours  # the mailbox's sending window


def recipient_hours(schedule: Schedule, recipient: Recipient) -> WorkingHours:
    """The schedule read in the recipient's wall clock (or the zone it names)."""
    if schedule.timezone == RECIPIENT:
        name = recipient.timezone
    else:
        name = schedule.timezone
    tz = zone(name) if name else recipient.mailbox.zone
    return WorkingHours(tz, schedule.days, schedule.start, schedule.end, _holidays(schedule, recipient))


def recipient_calendar(schedule: Schedule | None, recipient: Recipient) -> WorkingHours:
    """The recipient's working days in the recipient's own zone (the mailbox's when the
    prospect has none), whatever zone the schedule's window is read in: the schedule's
    days and holidays, or without a schedule Monday to Friday and no holidays. What an
    out-of-office's return date is read in and its buffer counted on (decision 0053);
    its hours are the schedule's, though only its days are asked here."""
    return recipient_hours(replace(schedule or WORKING_WEEK, timezone=RECIPIENT), recipient)


def _holidays(schedule: Schedule, recipient: Recipient) -> Holidays | frozenset[Any]:
    if schedule.holidays == RECIPIENT:
        if recipient.country is None:
            return NO_HOLIDAYS
        return Holidays(((recipient.country, recipient.subdivision),))
    return Holidays(tuple((c, None) for c in schedule.holidays)) if schedule.holidays else NO_HOLIDAYS


@dataclass(frozen=True)
class Opening:
    at: datetime  # the send may go from here
    closes: datetime | None  # the recipient's window closes here (None: no recipient window)


def plan_send(
    schedule: Schedule | None, business_days: int | None, recipient: Recipient, due: datetime,
    previous_sent: datetime | None, as_of: datetime,
) -> Opening | None:
    """The first moment at or after ``as_of`` the step may go to ``recipient``; None when
    the windows never meet. ``due`` is the ledger's plain due time (the previous send
    plus a plain delay); with ``business_days`` the delay counts working days from
    ``previous_sent`` instead."""
    calendar = recipient_hours(schedule or WORKING_WEEK, recipient)
    earliest = max(due, as_of)
    if business_days and previous_sent is not None:
        earliest = max(earliest, calendar.add_working_days(previous_sent, business_days))
    if schedule is None:  # business days alone: the mailbox's window is the gate's to keep
        return Opening(earliest, None)
    if schedule.start_at is not None:
        earliest = max(earliest, _start(schedule.start_at, calendar))
    found = first_common_opening(earliest, [calendar, recipient.mailbox])
    if found is None:
        return None
    window = calendar.next_open(found[0])
    return Opening(found[0], window[1] if window else found[1])


def _start(start_at: datetime, calendar: WorkingHours) -> datetime:
    if start_at.tzinfo is not None:
        return start_at.astimezone(UTC)
    return wall_instant(start_at.date(), start_at.time(), calendar.zone)


def mailbox_hours(timezone: str, start: time, end: time, days: list[int]) -> WorkingHours:
    """A mailbox's sending window (limits/window.py keeps the same) as working hours."""
    return WorkingHours(zone(timezone), frozenset(days) or ALL_DAYS, start, end)

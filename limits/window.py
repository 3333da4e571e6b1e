"""A mailbox's sending window and calendar day, in the mailbox's own time zone.

Pure functions of an aware UTC instant; zoneinfo handles DST, so a day may be
23 or 25 hours long and the window still opens at the local wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

_SEARCH_DAYS = 8  # a window open on at least one weekday opens within a week


@dataclass(frozen=True)
class SendingWindow:
    start: time
    end: time  # time.max stands for "24:00", the end of the day
    days: frozenset[int]  # ISO weekdays, 1 = Monday
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        return local.isoweekday() in self.days and self.start <= local.time() < self.end

    def next_open(self, now: datetime) -> datetime:
        """``now`` if the window is open, else the next instant it opens (UTC)."""
        if self.is_open(now):
            return now
        local = now.astimezone(self.zone)
        for offset in range(_SEARCH_DAYS):
            day = local.date() + timedelta(days=offset)
            if day.isoweekday() not in self.days:
                continue
            opens = datetime.combine(day, self.start, tzinfo=self.zone)
            if opens > local:
                return opens.astimezone(UTC)
        raise ValueError("sending window has no open day")

    def open_length(self) -> timedelta:
        """How long the window is open on an open day."""
        start = datetime.combine(datetime.min, self.start)
        end = datetime.combine(datetime.min, self.end)
        return max(end - start, timedelta(minutes=1))

    def day_bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The local calendar day holding ``now``, as a half-open UTC interval."""
        local = now.astimezone(self.zone)
        start = datetime.combine(local.date(), time.min, tzinfo=self.zone)
        end = datetime.combine(local.date() + timedelta(days=1), time.min, tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

"""Working hours in one zone's wall clock: which days, from when to when, which dates
are holidays; when they next open, when they close, and n working days after an instant.

Wall-clock times are read in the zone on every day, the days clocks change included:
- a time that does not exist (in a spring-forward gap) stands for the first instant
  after the gap, so a 01:30-03:00 window on such a day is shorter, and one that lies
  wholly in the gap is empty that day (there is no such wall time to send at);
- a time that exists twice (fall-back) is its first occurrence, so a window opens once.
A window never crosses midnight (the campaign file refuses it), so each day has at
most one interval, inside that day.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A window open on at least one weekday opens within a week; holidays can close a few
# weeks more. Past this the windows are taken as never opening (both never overlap).
SEARCH_DAYS = 400
ALL_DAYS = frozenset(range(1, 8))
NO_HOLIDAYS: frozenset[date] = frozenset()


def wall_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``wall`` on ``day`` in ``zone`` (time.max: the next midnight)."""
    if wall == time.max:
        return wall_instant(day + timedelta(days=1), time(0), zone)
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first of two
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=1 reads it with the offset after the change, an instant before
    # the gap; ``first`` is one after. The gap ends on a whole second between them.
    low = int(naive.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp()) + 1
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True)
class WorkingHours:
    zone: ZoneInfo
    days: frozenset[int]  # ISO weekdays, 1 = Monday
    start: time
    end: time  # after start; time.max stands for 24:00
    holidays: Container[date] = NO_HOLIDAYS

    def is_working_day(self, day: date) -> bool:
        return day.isoweekday() in self.days and day not in self.holidays

    def interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's open interval [opens, closes) in UTC, or None (closed, or empty)."""
        if not self.is_working_day(day):
            return None
        opens, closes = wall_instant(day, self.start, self.zone), wall_instant(day, self.end, self.zone)
        return (opens, closes) if opens < closes else None

    def next_open(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The first open instant at or after ``at`` and when that opening closes;
        None if nothing opens within SEARCH_DAYS."""
        day = at.astimezone(self.zone).date()
        # The day before too: its interval may still be open in UTC terms after a
        # backward change of offset (it never crosses midnight in wall time).
        for offset in range(-1, SEARCH_DAYS):
            found = self.interval(day + timedelta(days=offset))
            if found and found[1] > at:
                return max(found[0], at), found[1]
        return None

    def add_working_days(self, at: datetime, n: int) -> datetime:
        """The same wall time ``n`` working days after ``at``'s local date."""
        local = at.astimezone(self.zone)
        return wall_instant(self.working_days_after(local.date(), n), local.time().replace(fold=0), self.zone)

    def working_days_after(self, day: date, n: int) -> date:
        """The ``n``-th working day after ``day`` (``day`` itself for 0; with Monday to
        Friday, Saturday + 1 is Monday)."""
        counted = 0
        for _ in range(n * 7 + SEARCH_DAYS):
            if counted == n:
                break
            day += timedelta(days=1)
            counted += self.is_working_day(day)
        return day


def first_common_opening(
    at: datetime, windows: list[WorkingHours]
) -> tuple[datetime, datetime] | None:
    """The first instant at or after ``at`` at which every window is open, and when the
    first of them closes again; None when they do not meet within SEARCH_DAYS."""
    horizon = at + timedelta(days=SEARCH_DAYS)
    while at < horizon:
        openings = [w.next_open(at) for w in windows]
        if any(o is None for o in openings):
            return None
        latest = max(o[0] for o in openings if o)
        if all(o[0] == latest for o in openings if o):
            return latest, min(o[1] for o in openings if o)
        at = latest
    return None

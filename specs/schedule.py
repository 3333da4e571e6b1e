"""The campaign file's ``schedule:`` (the recipient's window) and business-day delays
(issue 23, docs/decisions/0051). Each bad value is refused at import with its field."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from specs.mailboxes import DAYS, _clock, _iso_weekday
from specs.scalars import SpecModel
from worktime.schedule import RECIPIENT, Schedule
from worktime.zones import holiday_country, is_zone

_BUSINESS_DAYS = re.compile(r"(\d+)\s*(?:bd|business\s+days?)", re.IGNORECASE)
MAX_BUSINESS_DAYS = 260  # a working year
# What the ledger's plain due time holds for a business-day step: a lower bound of the
# real due (n working days at the same wall time are at least n days less a change of
# offset later), which the claim then makes exact (store/open_work.py).
_OFFSET_CHANGE_SECONDS = 3 * 3600


def business_days(text: str) -> int | None:
    """``2 business days``, ``1 business day`` or ``3bd`` -> the number; None otherwise."""
    match = _BUSINESS_DAYS.fullmatch(text.strip())
    if match is None:
        return None
    n = int(match[1])
    if not 1 <= n <= MAX_BUSINESS_DAYS:
        raise ValueError(f"{text!r}: business days go from 1 to {MAX_BUSINESS_DAYS}")
    return n


def business_days_floor(n: int) -> int:
    """Seconds the ledger waits at least before a step ``n`` business days later."""
    return n * 86400 - _OFFSET_CHANGE_SECONDS


def check_zone(value: str) -> str:
    if not is_zone(value):
        raise ValueError(f"{value!r} is not an IANA time zone name (e.g. Europe/Paris, Asia/Kolkata)")
    return value


class ScheduleSpec(SpecModel):
    """When recipients may receive mail, in their wall clock (``timezone: recipient``),
    a named zone's, or by default the mailbox's."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    timezone: str | None = None
    days: tuple[int, ...] = (1, 2, 3, 4, 5)
    start: time = Field(default=time(0, 0), alias="from")
    end: time = Field(default=time.max, alias="to")
    holidays: Literal["recipient", "none"] | list[str] = "none"
    start_at: datetime | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return value if value is None or value == RECIPIENT else check_zone(value)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list of days out of {', '.join(DAYS)}")
        if not value:
            raise ValueError("is empty: name at least one day (e.g. [mon, tue, wed, thu, fri])")
        return tuple(sorted({_iso_weekday(day) for day in value}))

    @field_validator("start", mode="before")
    @classmethod
    def _from(cls, value: Any) -> Any:
        return _clock(value, end=False)

    @field_validator("end", mode="before")
    @classmethod
    def _to(cls, value: Any) -> Any:
        return _clock(value, end=True)

    @field_validator("holidays")
    @classmethod
    def _countries(cls, value: str | list[str]) -> str | list[str]:
        return value if isinstance(value, str) else [holiday_country(c) for c in value]

    @field_validator("start_at", mode="before")
    @classmethod
    def _start_at(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(0))
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} needs a date and a time, e.g. 2027-01-11T09:00") from None
        return value

    @model_validator(mode="after")
    def _same_day(self) -> Self:
        if self.start >= self.end:
            raise ValueError(
                f"from {self.start:%H:%M} to {_clock_text(self.end)} crosses midnight or is empty:"
                " a window opens and closes on the same day (from must be before to)")
        return self

    def schedule(self) -> Schedule:
        holidays: str | tuple[str, ...] = (
            () if self.holidays == "none" else
            RECIPIENT if self.holidays == RECIPIENT else tuple(self.holidays))
        return Schedule(self.timezone, frozenset(self.days), self.start, self.end, holidays, self.start_at)


def _clock_text(value: time) -> str:
    return "24:00" if value == time.max else f"{value:%H:%M}"

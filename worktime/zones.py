"""IANA zone names and holiday calendars, from the libraries that keep them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

import holidays


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def is_zone(name: str) -> bool:
    """Whether ``name`` is an IANA zone name (``Asia/Kolkata``; not ``IST`` or ``+05:30``)."""
    return name in _zone_names()


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def holiday_country(code: str) -> str:
    """``code`` upper-cased if the holidays library knows the country; ValueError if not."""
    wanted = code.strip().upper()
    if wanted not in holidays.list_supported_countries():
        raise ValueError(f"{code!r} is not a country the holidays library knows")
    return wanted


@dataclass(frozen=True)
class Holidays:
    """The public holidays of one or more countries (subdivision where known)."""

    regions: tuple[tuple[str, str | None], ...]  # (country, subdivision)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and any(day in _calendar(c, s) for c, s in self.regions)


@lru_cache(maxsize=512)
def _calendar(country: str, subdivision: str | None) -> holidays.HolidayBase:
    try:
        return holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:  # a country (or subdivision) the library does not cover
        return holidays.HolidayBase()

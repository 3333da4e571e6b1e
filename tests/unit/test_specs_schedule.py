"""The campaign file's ``schedule:``, business-day delays and prospects' zones (issue 23):
what reads, and each bad input refused naming its file, row or field."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest

from specs.prospects import zone_summary
from tests.unit.test_specs_campaigns import campaign, messages, write
from worktime.schedule import RECIPIENT

SCHEDULE = {"timezone": "recipient", "days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:30",
            "to": "17:30", "holidays": "recipient", "start_at": "2027-01-11T09:00"}


def test_a_schedule_and_business_day_delays_read(tmp_path: Path) -> None:
    from specs.loading import load_campaign_file

    data = campaign(schedule=SCHEDULE, steps=[{"subject": "Hi", "body": "x"},
                                              {"delay": "2 business days", "body": "y"},
                                              {"delay": "3bd", "body": "z"}, {"delay": "2d", "body": "w"}])
    spec = load_campaign_file(write(tmp_path, data)).spec
    schedule = spec.schedule.schedule() if spec.schedule else None
    assert schedule is not None and schedule.timezone == RECIPIENT and schedule.holidays == RECIPIENT
    assert (schedule.start, schedule.end) == (time(8, 30), time(17, 30))
    assert sorted(schedule.days) == [1, 2, 3, 4, 5]
    assert schedule.start_at == datetime(2027, 1, 11, 9, 0)
    assert [s.delay_business_days for s in spec.steps] == [None, 2, 3, None]
    assert spec.steps[3].delay_seconds == 2 * 86400  # plain durations keep their meaning
    assert spec.steps[1].delay_seconds < 2 * 86400  # a lower bound of two working days


def test_a_campaign_without_a_schedule_reads_as_before(tmp_path: Path) -> None:
    from specs.loading import load_campaign_file

    spec = load_campaign_file(write(tmp_path, campaign())).spec
    assert spec.schedule is None and spec.default_timezone is None


@pytest.mark.parametrize(("change", "where", "says"), [
    ({"timezone": "Mars/Olympus"}, "schedule.timezone", "not an IANA time zone"),
    ({"from": "18:00", "to": "08:00"}, "schedule", "crosses midnight"),
    ({"days": []}, "schedule.days", "is empty"),
    ({"start_at": "09:00"}, "schedule.start_at", "needs a date and a time"),
    ({"holidays": ["US", "QQ"]}, "schedule.holidays", "'QQ' is not a country the holidays library knows"),
])
def test_a_bad_schedule_is_refused_naming_its_field(
    tmp_path: Path, change: dict[str, Any], where: str, says: str,
) -> None:
    found = messages(tmp_path, campaign(schedule={**SCHEDULE, **change}))
    assert any(m.startswith(f"{where}") and says in m for m in found), found


def test_a_bad_default_timezone_is_refused(tmp_path: Path) -> None:
    found = messages(tmp_path, campaign(default_timezone="CEST"))
    assert any(m.startswith("default_timezone") and "IANA" in m for m in found), found


@pytest.mark.parametrize(("cells", "column", "says"), [
    ("Europe/Atlantis,,", "timezone", "is not an IANA time zone name"),
    (",,ZZ", "country", "is not a country code or name we know"),
])
def test_a_bad_zone_or_country_is_an_import_error_naming_the_row(
    tmp_path: Path, cells: str, column: str, says: str,
) -> None:
    csv_text = ("email,first_name,company,timezone,phone,country\n"
                "ada@example.com,Ada,Acme,Asia/Kolkata,,\n"
                f"ben@example.com,Ben,Globex,{cells}\n")
    data = campaign(prospects=None, prospects_csv="people.csv")
    found = messages(tmp_path, data, csv_text)
    assert found == [f"people.csv line 3, column {column}: {found[0].split(': ', 1)[1]}"]
    assert says in found[0]


def test_zones_come_from_timezone_phone_country_region_city_in_that_order(tmp_path: Path) -> None:
    from specs.loading import load_campaign_file

    csv_text = ("email,first_name,company,timezone,phone,country,state,city\n"
                "a@example.com,A,X,Asia/Kathmandu,+14155550100,US,,\n"
                "b@example.com,B,X,,+14155550100,,,\n"
                "c@example.com,C,X,,,India,,\n"
                "d@example.com,D,X,,,US,NY,\n"
                "e@example.com,E,X,,,AU,,Perth\n"
                "f@example.com,F,X,,,US,,\n"
                "g@example.com,G,X,,not a number,,,\n")
    loaded = load_campaign_file(write(tmp_path, campaign(prospects=None, prospects_csv="people.csv"),
                                      csv_text))
    places = [(p.place.timezone, p.place.source, p.place.country) for p in loaded.prospects]
    assert places == [
        ("Asia/Kathmandu", "timezone", "US"), ("America/Los_Angeles", "phone", "US"),
        ("Asia/Kolkata", "country", "IN"), ("America/New_York", "country", "US"),
        ("Australia/Perth", "country", "AU"),
        (None, "default", "US"),  # the US spans several zones: no state or city, no guess
        (None, "default", None),
    ]
    assert zone_summary(loaded.prospects) == (
        "time zones: 1 from timezone, 1 from phone, 3 from country; 2 fell back to the default")


def test_a_prospect_built_in_python_is_located_from_its_fields_when_stored() -> None:
    from specs.prospects import Prospect

    prospect = Prospect("nina@example.com", {"phone": "+12125550100"}, "built in Python")
    assert prospect.place is None
    assert (prospect.located().timezone, prospect.located().source) == ("America/New_York", "phone")

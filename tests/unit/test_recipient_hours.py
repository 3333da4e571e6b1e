"""Recipients' working hours (worktime/, decision 0051): windows in each zone's wall
clock on every day, the days clocks change included, business days and holidays.
Property tests draw IANA zones, instants across both hemispheres' changes, windows
and delays; examples pin the edges the issue names."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from worktime.hours import ALL_DAYS, WorkingHours, wall_instant
from worktime.schedule import Recipient, Schedule, mailbox_hours, plan_send, recipient_hours
from worktime.zones import Holidays

ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
# Zones whose clocks change, in both hemispheres, and the odd offsets (+5:30, +5:45, +12:45).
CHANGING = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
            "America/Santiago", "Pacific/Auckland", "Pacific/Chatham", "Asia/Kolkata",
            "Asia/Kathmandu", "America/St_Johns", "Antarctica/Troll"]
COUNTRIES = [None, "US", "DE", "AU", "IN", "GB", "NZ", "CL"]

minutes = st.integers(min_value=0, max_value=24 * 60 - 1)
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC))


@st.composite
def windows(draw: st.DrawFn) -> tuple[time, time]:
    a, b = draw(minutes), draw(minutes)
    start, end = min(a, b), max(a, b) + 1
    return time(start // 60, start % 60), time.max if end == 24 * 60 else time(end // 60, end % 60)


days_drawn = st.frozensets(st.integers(min_value=1, max_value=7), min_size=1)


def wall_open(hours: WorkingHours, at: datetime) -> bool:
    """Open by the wall clock alone (the definition, not the code under test); the
    second pass of a fall-back hour is not open again."""
    local = at.astimezone(hours.zone)
    return (hours.is_working_day(local.date()) and hours.start <= local.time() < hours.end
            and local.fold == 0)


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(CHANGING) | st.sampled_from(ZONES), mailbox_zone=st.sampled_from(CHANGING),
       window=windows(), mailbox_window=windows(), days=days_drawn, mailbox_days=days_drawn,
       country=st.sampled_from(COUNTRIES), business_days=st.integers(min_value=0, max_value=5),
       previous=instants, wait=st.integers(min_value=0, max_value=10 * 86400),
       late=st.integers(min_value=0, max_value=3 * 86400))
def test_every_planned_send_is_inside_both_windows_on_a_working_day_after_its_delay(
    zone: str, mailbox_zone: str, window: tuple[time, time], mailbox_window: tuple[time, time],
    days: frozenset[int], mailbox_days: frozenset[int], country: str | None, business_days: int,
    previous: datetime, wait: int, late: int,
) -> None:
    schedule = Schedule("recipient", days, window[0], window[1], "recipient")
    mailbox = mailbox_hours(mailbox_zone, mailbox_window[0], mailbox_window[1], sorted(mailbox_days))
    recipient = Recipient(zone, country, None, mailbox)
    hours = recipient_hours(schedule, recipient)
    due = previous + timedelta(seconds=wait)
    as_of = due + timedelta(seconds=late)
    opening = plan_send(schedule, business_days or None, recipient, due, previous, as_of)
    if opening is None:
        return  # the two windows never meet: nothing is planned, nothing goes
    at = opening.at
    assert at >= as_of >= due
    assert wall_open(hours, at), f"{at} is outside the recipient's window in {zone}"
    assert wall_open(mailbox, at), f"{at} is outside the mailbox's window in {mailbox_zone}"
    assert opening.closes is not None and opening.closes > at
    assert all(wall_open(hours, t) for t in (at, opening.closes - timedelta(seconds=1)))
    if business_days:
        start, sent = previous.astimezone(hours.zone).date(), at.astimezone(hours.zone).date()
        span = range(1, (sent - start).days + 1)
        working = sum(hours.is_working_day(start + timedelta(days=d)) for d in span)
        assert working >= business_days
    else:
        # The earliest such moment: a second before it, one of the windows was closed.
        before = at - timedelta(seconds=1)
        if before >= as_of:
            assert not (wall_open(hours, before) and wall_open(mailbox, before))


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(CHANGING), day=st.dates(date(2026, 1, 1), date(2028, 12, 31)),
       window=windows())
def test_a_window_opens_once_a_day_and_never_longer_than_its_wall_time_plus_a_change(
    zone: str, day: date, window: tuple[time, time],
) -> None:
    hours = WorkingHours(ZoneInfo(zone), ALL_DAYS, window[0], window[1])
    interval = hours.interval(day)
    ends = (datetime.combine(date.min, window[1]) if window[1] != time.max
            else datetime.combine(date.min + timedelta(days=1), time(0)))
    wall = ends - datetime.combine(date.min, window[0])
    if interval is None:
        return  # wholly inside a spring-forward gap: no such wall time that day
    opens, closes = interval
    assert opens.astimezone(hours.zone).date() == day
    assert timedelta(0) < closes - opens <= wall + timedelta(hours=2)


BERLIN = ZoneInfo("Europe/Berlin")


def test_a_window_across_the_spring_forward_gap_is_shorter_not_skipped() -> None:
    hours = WorkingHours(BERLIN, ALL_DAYS, time(1, 30), time(3, 0))
    opens, closes = hours.interval(date(2027, 3, 28)) or (None, None)
    assert opens == datetime(2027, 3, 28, 0, 30, tzinfo=UTC)  # 01:30 CET
    assert closes == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 03:00 CEST: half an hour


def test_a_window_on_the_fall_back_day_opens_once() -> None:
    hours = WorkingHours(BERLIN, ALL_DAYS, time(2, 15), time(2, 45))
    opens, closes = hours.interval(date(2027, 10, 31)) or (None, None)
    assert opens == datetime(2027, 10, 31, 0, 15, tzinfo=UTC)
    assert closes == datetime(2027, 10, 31, 0, 45, tzinfo=UTC)
    # In the second 02:15-02:45 (an hour later in UTC) it is closed until the next day.
    second = datetime(2027, 10, 31, 1, 20, tzinfo=UTC)
    nxt = hours.next_open(second)
    assert nxt is not None and nxt[0] == datetime(2027, 11, 1, 1, 15, tzinfo=UTC)


def test_a_time_in_the_gap_stands_for_the_end_of_the_gap() -> None:
    assert wall_instant(date(2027, 3, 28), time(2, 30), BERLIN) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # clocks move 30 minutes
    gap_end = datetime(2026, 10, 3, 15, 30, tzinfo=UTC)
    assert wall_instant(date(2026, 10, 4), time(2, 15), lord_howe) == gap_end


def test_zones_with_half_and_three_quarter_hour_offsets_open_at_their_wall_time() -> None:
    mailbox = mailbox_hours("UTC", time(0), time.max, [1, 2, 3, 4, 5, 6, 7])
    schedule = Schedule("recipient", frozenset(range(1, 6)), time(9), time(17))
    as_of = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)  # Sunday, or early Monday in Chatham
    expected = {"Asia/Kolkata": datetime(2027, 1, 11, 3, 30, tzinfo=UTC),  # +05:30
                "Asia/Kathmandu": datetime(2027, 1, 11, 3, 15, tzinfo=UTC),  # +05:45
                "Pacific/Chatham": datetime(2027, 1, 10, 19, 15, tzinfo=UTC)}  # +13:45 in summer
    for zone, opens in expected.items():
        opening = plan_send(schedule, None, Recipient(zone, None, None, mailbox), as_of, None, as_of)
        assert opening is not None and opening.at == opens, zone


def test_business_days_skip_the_weekend_and_the_recipients_holiday() -> None:
    mailbox = mailbox_hours("UTC", time(0), time.max, [1, 2, 3, 4, 5, 6, 7])
    schedule = Schedule("recipient", frozenset(range(1, 6)), time(9), time(17), "recipient")
    sent = datetime(2027, 7, 1, 14, 0, tzinfo=UTC)  # Thursday 10:00 in New York
    recipient = Recipient("America/New_York", "US", None, mailbox)
    opening = plan_send(schedule, 2, recipient, sent, sent, sent)
    # Friday 2 July counts; the weekend does not; Monday 5 July is Independence Day
    # (observed): the second working day is Tuesday 6 July, at 10:00 New York time.
    assert opening is not None and opening.at == datetime(2027, 7, 6, 14, 0, tzinfo=UTC)
    german = recipient_hours(schedule, Recipient("Europe/Berlin", "DE", None, mailbox))
    assert not german.is_working_day(date(2027, 10, 3)) and date(2027, 10, 4) not in Holidays((("DE", None),))


def test_start_at_holds_every_send_until_it_in_the_schedules_zone() -> None:
    mailbox = mailbox_hours("UTC", time(0), time.max, [1, 2, 3, 4, 5, 6, 7])
    schedule = Schedule("Europe/Berlin", frozenset(range(1, 8)), time(0), time.max,
                        start_at=datetime(2027, 1, 11, 9, 0))
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    opening = plan_send(schedule, None, Recipient("Asia/Tokyo", None, None, mailbox), as_of, None, as_of)
    assert opening is not None and opening.at == datetime(2027, 1, 11, 8, 0, tzinfo=UTC)


def test_windows_that_never_meet_plan_nothing() -> None:
    mailbox = mailbox_hours("Europe/Berlin", time(9), time(12), [1, 2, 3, 4, 5])
    schedule = Schedule("recipient", frozenset(range(1, 6)), time(9), time(12))
    as_of = datetime(2027, 1, 11, tzinfo=UTC)
    assert plan_send(schedule, None, Recipient("America/Los_Angeles", None, None, mailbox),
                     as_of, None, as_of) is None

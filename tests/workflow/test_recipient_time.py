"""A campaign to five zones sent in each recipient's working hours, on the time-skipping
server with the real activities over PostgreSQL, Redis and an SMTP inbox (issue 23,
decision 0051). It starts on Maundy Thursday (``start_at``; 25 March 2027 as this is
written), across Good Friday and Easter Monday (holidays in Germany and Australia, not
in the US or Nepal) and, in 2027, Europe's change to summer time on the 28th, with a
follow-up one business day later. The mailbox sends all day (UTC), 3 a day, its sends
spread over the day, so the recipients' windows decide, and the cap must still bind.
A second campaign waits over a weekend (and Lord Howe's half-hour change back in
2027) on one timer.

Each send's instant is its activity's start in server time (the skipped clock the
workflows and the gate decide in); the SMTP inbox's own receive times are real time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import holidays
import pytest
import redis.asyncio as aioredis
import yaml
from dateutil.easter import easter
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import SendInput, SendResult
from client.api import OutreachClient
from config.names import DUE_SENDS, SEND_EMAIL, campaign_workflow_id, send_task_queue, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from specs.campaigns import CampaignSpec, resolve_campaign
from specs.schedule import business_days_floor
from store.importer import create_campaign
from tests.conftest import REDIS_URL
from tests.factories import add_mailbox
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, StepTuning

CAP = 3
PEOPLE = [
    {"email": "asha@example.in", "timezone": "Asia/Kolkata", "country": "IN"},
    {"email": "bina@example.np", "timezone": "Asia/Kathmandu", "country": "NP"},
    {"email": "liam@example.au", "timezone": "Australia/Lord_Howe", "country": "AU", "state": "NSW"},
    {"email": "nina@example.com", "phone": "+12125550100"},  # New York, from the number
    {"email": "karl@example.de", "country": "Germany"},  # Berlin, the country's one zone
]
ZONES = {"asha@example.in": "Asia/Kolkata", "bina@example.np": "Asia/Kathmandu",
         "liam@example.au": "Australia/Lord_Howe", "nina@example.com": "America/New_York",
         "karl@example.de": "Europe/Berlin"}


def easter_start(today: date) -> datetime:
    """Maundy Thursday 09:00 of the first Easter at least a week ahead: 25 March 2027,
    three days before Easter and Europe's change to summer time, as this is written."""
    year = today.year
    while easter(year) - timedelta(days=10) < today:
        year += 1
    return datetime.combine(easter(year) - timedelta(days=3), time(9))


START = easter_start(date.today())


@pytest.fixture
def settings(database_url: str, key_prefix: str) -> Settings:
    # Sends spread over the mailbox's day (spacing on): a slot can fall past a
    # recipient's window, which the gate must then refuse.
    return Settings(database_url=database_url, redis_url=REDIS_URL, task_queue=key_prefix,
                    mailbox_spacing=1.0, limit_other_per_minute=100_000, limit_other_connections=100)


class SendClock:
    """The real send activity, noting each send's instant in server time. The ledger
    writes ``sent_at`` by PostgreSQL's clock, months behind the skipped one here; in
    production both are the same clock, so the sent send is dated by the server's, and
    its follow-up due from it, as the trigger of migration 0009 would have."""

    def __init__(self, real: object, db: asyncpg.Pool) -> None:
        self.real, self.db = real, db
        self.at: dict[tuple[int, int], datetime] = {}

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, inp: SendInput) -> SendResult:
        at = activity.info().started_time
        result: SendResult = await self.real.send_email(inp)  # type: ignore[attr-defined]
        k = inp.key
        if await self.db.fetchval("UPDATE sends SET sent_at = $4 WHERE campaign_id = $1 AND step = $2"
                                  " AND prospect_id = $3 AND state = 'sent' RETURNING true",
                                  k.campaign_id, k.step, k.prospect_id, at):
            self.at[(k.step, k.prospect_id)] = at
            await self.db.execute("UPDATE prospects SET next_due_at = step_due_at(campaign_id, next_step, $2)"
                                  " WHERE id = $1 AND next_step = $3", k.prospect_id, at, k.step + 1)
        return result


async def ended_steps(env: WorkflowEnvironment, prefix: str, campaign_id: str, steps: int) -> None:
    """Wait for the steps' runs to close (they outlive the campaign's, decision 0048):
    one left with a task and no worker would hold the test server's clock."""
    for k in range(1, steps + 1):
        await env.client.get_workflow_handle(step_workflow_id(prefix, campaign_id, k)).result()


def working(zone: str, country: str | None, subdivision: str | None, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(zone))
    holiday = country is not None and local.date() in holidays.country_holidays(country, subdiv=subdivision)
    return local.isoweekday() <= 5 and not holiday and time(9) <= local.time() < time(17)


def working_days_between(zone: str, country: str | None, subdivision: str | None, a: datetime,
                         b: datetime) -> int:
    first, last = a.astimezone(ZoneInfo(zone)).date(), b.astimezone(ZoneInfo(zone)).date()
    days = [first + timedelta(days=n) for n in range(1, (last - first).days + 1)]
    calendar = holidays.country_holidays(country, subdiv=subdivision) if country else {}
    return sum(d.isoweekday() <= 5 and d not in calendar for d in days)


async def test_five_zones_get_every_send_in_their_working_hours_and_the_cap_binds(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, inbox: LocalSmtpServer,
    settings: Settings,
) -> None:
    await add_mailbox(db, "mb-w", inbox.port, daily_limit=CAP)
    spec = CampaignSpec.model_validate({
        "name": "Around the world", "workspace": "ws", "mailboxes": ["mb-w"], "prospects": PEOPLE,
        "schedule": {"timezone": "recipient", "days": ["mon", "tue", "wed", "thu", "fri"],
                     "from": "09:00", "to": "17:00", "holidays": "recipient",
                     "start_at": START.isoformat()},
        "steps": [{"subject": "Hi", "body": "One"}, {"delay": "1 business day", "body": "Two"}],
    })
    created = await create_campaign(db, resolve_campaign(spec))
    places = {r["id"]: r for r in await db.fetch(
        "SELECT id, email, timezone, country, subdivision FROM prospects WHERE campaign_id = $1", created.id)}
    assert {r["email"]: r["timezone"] for r in places.values()} == ZONES

    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, activities = take_activity(build_activities(settings, db, redis_client, transport), SEND_EMAIL)
    clock = SendClock(real, db)
    prefix = settings.task_queue
    # Nothing waits before start_at: skip to the eve of it at once (one jump of the
    # server's clock) rather than run the idle months through the step timers.
    await env.sleep(START.replace(tzinfo=UTC) - timedelta(hours=21) - await env.get_current_time())
    async with Worker(env.client, task_queue=send_task_queue(prefix), workflows=list(WORKFLOWS),
                      activities=[*activities, clock.send_email]):
        campaign = await env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(id_prefix=prefix, campaign_id=created.id,
                          delays=[timedelta(0), timedelta(seconds=business_days_floor(1))],
                          tuning=StepTuning(search_attributes=False)),
            id=campaign_workflow_id(prefix, created.id), task_queue=send_task_queue(prefix),
        )
        await campaign.result()
        await ended_steps(env, prefix, created.id, 2)
    await transport.close()

    assert Counter(r for m in inbox.messages for r in m.rcpt_tos) == Counter({e: 2 for e in ZONES})
    assert len(clock.at) == 10
    for (step, prospect), at in sorted(clock.at.items(), key=lambda kv: kv[1]):
        p = places[prospect]
        local = at.astimezone(ZoneInfo(p["timezone"]))
        print(f"step {step} {p['email']:<18} {local:%a %Y-%m-%d %H:%M %Z} ({at:%Y-%m-%d %H:%M} UTC)")
        assert working(p["timezone"], p["country"], p["subdivision"], at), (step, p["email"], local)
        assert local.replace(tzinfo=None) >= START
        if step == 2:
            first = clock.at[(1, prospect)]
            assert working_days_between(p["timezone"], p["country"], p["subdivision"], first, at) >= 1
    per_day = Counter(at.date() for at in clock.at.values())
    assert max(per_day.values()) <= CAP, per_day  # the mailbox's day is UTC
    assert min(clock.at.values()).date() >= START.date() - timedelta(days=1)


async def test_a_step_whose_prospects_are_all_outside_their_windows_sleeps_on_one_timer(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, inbox: LocalSmtpServer,
    settings: Settings,
) -> None:
    await add_mailbox(db, "mb-t", inbox.port)
    people = [p for p in PEOPLE if p["email"] in ("asha@example.in", "liam@example.au", "nina@example.com")]
    spec = CampaignSpec.model_validate({
        "name": "Weekend", "workspace": "ws", "mailboxes": ["mb-t"], "prospects": people,
        "schedule": {"timezone": "recipient", "days": ["mon", "tue", "wed", "thu", "fri"],
                     "from": "09:00", "to": "17:00"},
        "steps": [{"subject": "Hi", "body": "One"}],
    })
    created = await create_campaign(db, resolve_campaign(spec))
    # The next Saturday noon UTC (3 April 2027 when this runs alone): closed everywhere
    # until Monday. The first to open is Lord Howe, Monday 09:00 local (on 5 April at
    # +10:30: its clocks go back on Sunday the 4th).
    now = await env.get_current_time()
    saturday = datetime.combine(now.date() + timedelta(days=(5 - now.weekday()) % 7 or 7), time(12),
                                tzinfo=UTC)
    monday = saturday.date() + timedelta(days=2)
    first_opening = min(datetime.combine(monday, time(9), tzinfo=ZoneInfo(ZONES[p["email"]]))
                        for p in people).astimezone(UTC)
    await env.sleep(saturday - now)
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, activities = take_activity(build_activities(settings, db, redis_client, transport), SEND_EMAIL)
    clock = SendClock(real, db)
    prefix = settings.task_queue
    async with Worker(env.client, task_queue=send_task_queue(prefix), workflows=list(WORKFLOWS),
                      activities=[*activities, clock.send_email]):
        campaign = await env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(id_prefix=prefix, campaign_id=created.id, delays=[timedelta(0)],
                          tuning=StepTuning(search_attributes=False)),
            id=campaign_workflow_id(prefix, created.id), task_queue=send_task_queue(prefix),
        )
        await campaign.result()
        await ended_steps(env, prefix, created.id, 1)
    await transport.close()
    step = env.client.get_workflow_handle(step_workflow_id(prefix, created.id, 1))
    events = [e async for e in step.fetch_history_events()]
    timers = [e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
              for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    claims_before = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                     and e.activity_task_scheduled_event_attributes.activity_type.name == DUE_SENDS
                     and e.event_time.ToDatetime(tzinfo=UTC) < first_opening]
    # One claim on Saturday, then one timer to Lord Howe's Monday 09:00: no polling.
    assert len(claims_before) == 1
    assert abs(timers[0] - (first_opening - saturday)) < timedelta(seconds=5), timers
    assert min(clock.at.values()) >= first_opening
    assert len(clock.at) == 3


async def test_a_new_schedule_reaches_a_sleeping_step_at_once(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, inbox: LocalSmtpServer,
    settings: Settings, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-u", inbox.port)
    file = {"name": "Weekdays", "workspace": "ws", "mailboxes": ["mb-u"],
            "schedule": {"timezone": "recipient", "days": ["mon", "tue", "wed", "thu", "fri"],
                         "from": "09:00", "to": "17:00"},
            "steps": [{"subject": "Hi", "body": "One"}]}
    asha = [p for p in PEOPLE if p["email"] == "asha@example.in"]
    spec = CampaignSpec.model_validate({**file, "prospects": asha})
    created = await create_campaign(db, resolve_campaign(spec))
    now = await env.get_current_time()
    saturday = datetime.combine(now.date() + timedelta(days=(5 - now.weekday()) % 7 or 7), time(12),
                                tzinfo=UTC)
    await env.sleep(saturday - now)
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, activities = take_activity(build_activities(settings, db, redis_client, transport), SEND_EMAIL)
    clock = SendClock(real, db)
    prefix = settings.task_queue
    client = OutreachClient(settings, env.client, db)
    async with Worker(env.client, task_queue=send_task_queue(prefix), workflows=list(WORKFLOWS),
                      activities=[*activities, clock.send_email]):
        campaign = await env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(id_prefix=prefix, campaign_id=created.id, delays=[timedelta(0)],
                          tuning=StepTuning(search_attributes=False)),
            id=campaign_workflow_id(prefix, created.id), task_queue=send_task_queue(prefix),
        )
        step = env.client.get_workflow_handle(step_workflow_id(prefix, created.id, 1))
        await asleep_until_monday(step)
        # Weekends too, all day: the step hears of it now, not on Monday.
        (tmp_path / "campaign.yaml").write_text(yaml.safe_dump(
            {**file, "prospects_csv": "unused.csv",
             "schedule": {"timezone": "recipient", "from": "00:00", "to": "24:00",
                          "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}))
        updated = await client.update_campaign(created.id, tmp_path / "campaign.yaml")
        assert updated.schedule_changed and updated.changed == []
        await campaign.result()
        await ended_steps(env, prefix, created.id, 1)
    await transport.close()
    [sent_at] = clock.at.values()
    assert saturday <= sent_at < saturday + timedelta(minutes=1)


async def asleep_until_monday(step: WorkflowHandle[Any, Any]) -> None:
    """Until the step has claimed and started its timer (real time, without letting the
    test server skip to the timer)."""
    for _ in range(200):
        try:
            events = [e async for e in step.fetch_history_events()]
        except RPCError:
            events = []
        if any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the step never went to sleep")

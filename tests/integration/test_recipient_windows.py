"""The claim follows each recipient's clock (issue 23, decision 0051) on the real
PostgreSQL: a prospect outside its window is not claimed but moved to its next opening,
which the next-due probe then gives the step; business days skip weekends and holidays;
a new schedule re-plans the waiting prospects; the import counts zones by source."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import redis.asyncio as aioredis
import yaml

from activities.gate import GateActivities
from activities.models import GateInput, GateResult, GateVerdict, SendKey
from config.settings import Settings
from limits.policy import policy_from
from limits.redis_store import RedisLimitStore
from specs.campaign_update import load_campaign_update
from specs.campaigns import CampaignSpec, resolve_campaign
from store.campaign_update import update_steps
from store.campaigns import waiting
from store.importer import create_campaign
from store.open_work import reschedule_step
from store.trace import trace
from tests.factories import add_mailbox
from tests.integration.test_cli import outreach
from tests.integration.test_open_work import claim, open_step, send

WINDOW = {"timezone": "recipient", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
          "from": "09:00", "to": "17:00"}
PEOPLE = [{"email": "asha@example.in", "timezone": "Asia/Kolkata"},
          {"email": "nina@example.com", "phone": "+12125550100"},  # New York
          {"email": "liam@example.au", "timezone": "Australia/Lord_Howe"}]


def spec(**overrides: Any) -> dict[str, Any]:
    return {"name": "Abroad", "workspace": "ws", "mailboxes": ["mb"],
            "steps": [{"subject": "Hi", "body": "x"}, {"delay": "2 business days", "body": "y"}],
            "prospects": PEOPLE, "schedule": WINDOW, **overrides}


async def created(db: asyncpg.Pool, **overrides: Any) -> tuple[str, list[int]]:
    await add_mailbox(db, "mb", 2525)
    made = await create_campaign(db, resolve_campaign(CampaignSpec.model_validate(spec(**overrides))))
    ids = [r["id"] for r in await db.fetch(
        "SELECT id FROM prospects WHERE campaign_id = $1 ORDER BY id", made.id)]
    return made.id, ids


async def test_the_import_stores_each_zone_and_makes_step_1_due_at_its_first_opening(
    db: asyncpg.Pool,
) -> None:
    campaign_id, ids = await created(db)
    rows = await db.fetch("SELECT timezone, timezone_source, country, next_due_at FROM prospects"
                          " WHERE campaign_id = $1 ORDER BY id", campaign_id)
    assert [(r["timezone"], r["timezone_source"], r["country"]) for r in rows] == [
        ("Asia/Kolkata", "timezone", None), ("America/New_York", "phone", "US"),
        ("Australia/Lord_Howe", "timezone", None)]
    for r in rows:
        local = r["next_due_at"].astimezone(ZoneInfo(r["timezone"]))
        assert time(9) <= local.time() < time(17), r


async def test_only_prospects_inside_their_window_are_claimed_the_others_wait_for_theirs(
    db: asyncpg.Pool,
) -> None:
    campaign_id, (india, new_york, lord_howe) = await created(db)
    await db.execute("UPDATE prospects SET next_due_at = '-infinity' WHERE campaign_id = $1", campaign_id)
    as_of = datetime(2027, 1, 11, 6, 0, tzinfo=UTC)  # 11:30 in Kolkata, 01:00 New York, 17:00 Lord Howe
    batch = await claim(db, campaign_id, as_of=as_of)
    assert [(c.prospect_id, c.closes_at) for c in batch.sends] == [
        (india, datetime(2027, 1, 11, 11, 30, tzinfo=UTC))]  # 17:00 in Kolkata
    # Each of the others is due at its own next opening; the step sleeps until the first.
    assert await open_step(db, new_york) == (1, datetime(2027, 1, 11, 14, 0, tzinfo=UTC))
    assert await open_step(db, lord_howe) == (1, datetime(2027, 1, 11, 22, 0, tzinfo=UTC))
    assert batch.next_due_at == datetime(2027, 1, 11, 14, 0, tzinfo=UTC)
    assert batch.pending == 3
    later = await claim(db, campaign_id, as_of=datetime(2027, 1, 11, 14, 0, tzinfo=UTC))
    assert [c.prospect_id for c in later.sends] == [new_york]


async def test_a_business_day_follow_up_skips_the_weekend_and_the_recipients_holiday(
    db: asyncpg.Pool,
) -> None:
    schedule = {**WINDOW, "days": ["mon", "tue", "wed", "thu", "fri"], "holidays": "recipient"}
    campaign_id, (_, new_york, _) = await created(db, schedule=schedule)
    await db.execute("UPDATE prospects SET status = 'stopped' WHERE campaign_id = $1 AND id <> $2",
                     campaign_id, new_york)
    await db.execute("UPDATE prospects SET next_due_at = '-infinity' WHERE id = $1", new_york)
    thursday = datetime(2027, 7, 1, 14, 0, tzinfo=UTC)
    assert [c.prospect_id for c in (await claim(db, campaign_id, as_of=thursday)).sends] == [new_york]
    await send(db, campaign_id, 1, new_york)
    # Step 1 went on Thursday 1 July 2027, 10:00 in New York.
    await db.execute("UPDATE sends SET sent_at = $3 WHERE campaign_id = $1 AND step = 1 AND prospect_id = $2",
                     campaign_id, new_york, thursday)
    await reschedule_step(db, campaign_id, 2)
    saturday = datetime(2027, 7, 3, 15, 0, tzinfo=UTC)
    assert (await claim(db, campaign_id, step=2, as_of=saturday)).sends == []
    # Friday counts, the weekend does not, Monday 5 July is Independence Day (observed).
    due = datetime(2027, 7, 6, 14, 0, tzinfo=UTC)
    assert await open_step(db, new_york) == (2, due)
    assert (await claim(db, campaign_id, step=2, as_of=due - timedelta(minutes=1))).sends == []
    assert [c.prospect_id for c in (await claim(db, campaign_id, step=2, as_of=due)).sends] == [new_york]


async def test_a_new_schedule_plans_every_waiting_prospect_anew(
    db: asyncpg.Pool, tmp_path: Path,
) -> None:
    campaign_id, ids = await created(db)
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)
    await claim(db, campaign_id, as_of=datetime(2027, 1, 11, 6, 0, tzinfo=UTC))
    assert len(await waiting(db, campaign_id, 2)) == 2
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in spec().items() if k not in ("prospects", "schedule")}))
    updated = await update_steps(db, campaign_id, load_campaign_update(path))
    assert updated.schedule_changed and updated.changed == []
    assert await db.fetchval("SELECT schedule FROM campaigns WHERE id = $1", campaign_id) is None
    # Every prospect still waiting for step 1 is due at once again: no window holds it now.
    for pid in ids[1:]:
        assert await open_step(db, pid) == (1, datetime.min)  # '-infinity', as asyncpg reads it
    # The first (its send queued, not in flight here) and both others, windows or not.
    batch = await claim(db, campaign_id, as_of=datetime(2027, 1, 11, 6, 0, tzinfo=UTC))
    assert sorted(c.prospect_id for c in batch.sends) == sorted(ids)


async def test_trace_shows_the_recipients_zone_and_local_send_time(db: asyncpg.Pool) -> None:
    campaign_id, (india, _, _) = await created(db)
    await db.execute("UPDATE prospects SET next_due_at = '-infinity' WHERE id = $1", india)
    await claim(db, campaign_id, as_of=datetime(2027, 1, 11, 6, 0, tzinfo=UTC))
    await send(db, campaign_id, 1, india)
    [traced] = await trace(db, str(india))
    [sent] = traced.sends
    assert sent.recipient_timezone == "Asia/Kolkata"
    assert sent.local_sent_at is not None and sent.local_sent_at.utcoffset() == timedelta(hours=5, minutes=30)


async def test_the_gate_gives_no_slot_at_or_after_the_recipients_window_closes(
    db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
) -> None:
    # One send a minute for the provider: the second send's slot is a minute later.
    paced = settings.model_copy(update={"limit_other_per_minute": 1})
    gate = GateActivities(db, RedisLimitStore(redis_client, paced.task_queue), policy_from(paced),
                          paused_recheck=10.0, send_timeout=120.0)
    await add_mailbox(db, "mb-g", 2525)
    now = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)

    async def ask(prospect: int, closes_at: datetime) -> GateResult:
        key = SendKey(campaign_id="cmp-g", step=1, prospect_id=prospect)
        return await gate.gate_send(GateInput(key=key, mailbox_id="mb-g", now=now, closes_at=closes_at))

    first = await ask(1, now + timedelta(seconds=30))
    assert (first.verdict, first.until) == (GateVerdict.GO, now)
    # The next slot (a minute on) is past this recipient's close: not granted, nothing held.
    held_back = await ask(2, now + timedelta(seconds=30))
    assert held_back.verdict is GateVerdict.WAIT and held_back.reservation == ""
    assert held_back.until is not None and held_back.until >= now + timedelta(minutes=1)
    later = await ask(3, now + timedelta(minutes=5))
    assert later.verdict is GateVerdict.GO and later.until == held_back.until  # the slot 2 did not take
    closed = await ask(4, now)
    assert (closed.verdict, closed.until) == (GateVerdict.WAIT, now)
    assert closed.reason == "recipient's window closed"


async def test_the_cli_counts_zones_by_source_and_status_shows_who_waits_and_when_it_opens(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path,
) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    text = (examples / "campaign-working-hours.yaml").read_text()
    csv = "prospects-working-hours.csv"
    text = text.replace("2027-01-11T09:00", "2099-01-12T09:00").replace(
        f"prospects_csv: {csv}", f"prospects_csv: {examples / csv}")
    (tmp_path / "campaign.yaml").write_text(text)
    assert (await outreach(settings, "mailboxes", "import", "examples/mailboxes.yaml")).returncode == 0
    created = await outreach(settings, "campaigns", "create", str(tmp_path / "campaign.yaml"))
    assert created.returncode == 0, created.stderr
    assert ("time zones: 1 from timezone, 1 from phone, 3 from country; 1 fell back to the default"
            " (Europe/London)") in created.stdout
    campaign_id = created.stdout.strip().splitlines()[-1]
    status = await outreach(settings, "campaigns", "status", campaign_id)
    # Nothing goes before start_at: all six wait; Sydney's Monday 09:00 comes first.
    assert "6 wait for their window or delay; the next opens 2099-01-11T22:00:00+00:00" in status.stdout


async def test_windows_that_never_meet_leave_the_prospect_waiting_for_ever_without_a_timer(
    db: asyncpg.Pool,
) -> None:
    people = [{"email": "rosa@example.com", "timezone": "America/Los_Angeles"}]
    campaign_id, [rosa] = await created(db, prospects=people, schedule={**WINDOW, "to": "12:00"})
    await db.execute("UPDATE mailboxes SET timezone = 'Europe/Berlin', window_start = '09:00',"
                     " window_end = '12:00' WHERE id = 'mb'")
    await db.execute("UPDATE prospects SET next_due_at = '-infinity' WHERE id = $1", rosa)
    batch = await claim(db, campaign_id, as_of=datetime(2027, 1, 11, 6, 0, tzinfo=UTC))
    assert batch.sends == [] and batch.next_due_at is None and batch.pending == 1
    assert await open_step(db, rosa) == (1, datetime.max)  # 'infinity', as asyncpg reads it
    assert (await waiting(db, campaign_id, 2))[0] == {"step": 1, "prospects": 1, "next_opening": None}

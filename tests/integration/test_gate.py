"""The gate (activities/gate.py) over real PostgreSQL and Redis: a mailbox's daily cap
rebuilt from the ledger after Redis lost it, and sending windows and days in the
mailbox's own time zone.

Every call passes its instant (as the workflow does), so the calendar is fixed:
Monday 9 March 2026 is the first weekday of daylight saving time in Los Angeles
(UTC-7 from Sunday 8 March, UTC-8 before).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from activities.gate import GateActivities
from activities.models import GateInput, GateResult, GateVerdict, SendKey
from config.settings import Settings
from limits.policy import policy_from
from limits.redis_store import RedisLimitStore
from store.ledger import mailbox_sends_since, release_day
from tests.factories import add_campaign, add_mailbox

MONDAY_NOON = datetime(2026, 3, 9, 19, 0, tzinfo=UTC)  # 12:00 in Los Angeles, 04:00 Tuesday in Tokyo


@pytest.fixture
def gate(db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings) -> GateActivities:
    return GateActivities(db, RedisLimitStore(redis_client, settings.task_queue), policy_from(settings),
                          paused_recheck=10.0, send_timeout=120.0)


async def local_mailbox(
    db: asyncpg.Pool, mailbox_id: str, zone: str, *, cap: int = 10_000,
    window: tuple[time, time] = (time.min, time.max), days: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7),
) -> None:
    await add_mailbox(db, mailbox_id, 2525, daily_limit=cap)
    await db.execute(
        "UPDATE mailboxes SET timezone = $2, window_start = $3, window_end = $4, window_days = $5"
        " WHERE id = $1", mailbox_id, zone, window[0], window[1], list(days),
    )


async def ask(
    gate: GateActivities, mailbox_id: str, prospect: int, now: datetime, campaign_id: str = "cmp"
) -> GateResult:
    key = SendKey(campaign_id=campaign_id, step=1, prospect_id=prospect)
    return await gate.gate_send(GateInput(key=key, mailbox_id=mailbox_id, now=now))


async def attempted(db: asyncpg.Pool, campaign_id: str, prospect_id: int, mailbox_id: str,
                    at: datetime | None) -> str:
    """A ledger row whose first attempt began at ``at`` (None: never attempted); its key."""
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, state, attempts, message_id,"
        " first_attempt_at) VALUES ($1, 1, $2, $3, $4, $5, $6, $7)",
        campaign_id, prospect_id, mailbox_id, "queued" if at is None else "sent",
        0 if at is None else 1, f"<{prospect_id}@sender.example>", at,
    )
    return f"{campaign_id}:1:{prospect_id}"


async def lose_redis(redis_client: aioredis.Redis, settings: Settings) -> None:
    """Everything the engine kept in Redis is gone (a restart without persistence, a
    failover to a replica that missed it, FLUSHALL), as far as this test's keys go."""
    keys = [k async for k in redis_client.scan_iter(f"{settings.task_queue}*")]
    assert keys, "the gate kept nothing in Redis"
    await redis_client.delete(*keys)


# -- the ledger's view of a mailbox's used budget --------------------------------------


async def test_mailbox_sends_since_lists_the_mailboxs_attempted_sends_from_the_instant_on(
    db: asyncpg.Pool,
) -> None:
    await add_mailbox(db, "mb", 2525)
    await add_mailbox(db, "other", 2525)
    campaign_id, p = await add_campaign(db, ["mb"], [f"s{i}@example.com" for i in range(6)],
                                        [("Hi", "Body", 0)])
    since = MONDAY_NOON - timedelta(hours=48)
    at_since = await attempted(db, campaign_id, p[0], "mb", since)
    recent = await attempted(db, campaign_id, p[1], "mb", MONDAY_NOON - timedelta(minutes=5))
    await attempted(db, campaign_id, p[2], "mb", since - timedelta(microseconds=1))  # before
    await attempted(db, campaign_id, p[3], "mb", None)  # queued, never attempted
    await attempted(db, campaign_id, p[4], "other", MONDAY_NOON)  # another mailbox's
    # First tried yesterday, tried again today: it counts on today (its latest attempt).
    again = await attempted(db, campaign_id, p[5], "mb", MONDAY_NOON - timedelta(hours=20))
    await db.executemany(
        "INSERT INTO send_attempts (campaign_id, step, prospect_id, attempt, started_at)"
        " VALUES ($1, 1, $2, $3, $4)",
        [(campaign_id, p[5], 1, MONDAY_NOON - timedelta(hours=20)),
         (campaign_id, p[5], 2, MONDAY_NOON - timedelta(minutes=1))])

    used = await mailbox_sends_since(db, "mb", since)

    assert sorted(used) == sorted([(at_since, since), (recent, MONDAY_NOON - timedelta(minutes=5)),
                                   (again, MONDAY_NOON - timedelta(minutes=1))])
    assert await mailbox_sends_since(db, "mb", MONDAY_NOON) == []
    assert await mailbox_sends_since(db, "nobody", since) == []


# -- the daily cap after Redis lost it -------------------------------------------------


async def test_a_cap_reached_before_redis_lost_its_data_still_binds_after(
    db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings, gate: GateActivities,
) -> None:
    await local_mailbox(db, "mb", "UTC", cap=3)
    campaign_id, p = await add_campaign(db, ["mb"], [f"c{i}@example.com" for i in range(5)],
                                        [("Hi", "Body", 0)])
    for n in range(3):  # three sends go, and the ledger records their attempts
        assert (await ask(gate, "mb", p[n], MONDAY_NOON, campaign_id)).verdict is GateVerdict.GO
        await attempted(db, campaign_id, p[n], "mb", MONDAY_NOON)
    full = await ask(gate, "mb", p[3], MONDAY_NOON, campaign_id)
    assert (full.verdict, full.reason) == (GateVerdict.WAIT, "daily cap reached")

    await lose_redis(redis_client, settings)
    after = await ask(gate, "mb", p[3], MONDAY_NOON + timedelta(minutes=1), campaign_id)

    assert (after.verdict, after.reason) == (GateVerdict.WAIT, "daily cap reached")
    assert after.until == datetime(2026, 3, 10, tzinfo=UTC)  # the mailbox's next day
    # A send the ledger shows it started keeps its place: its retry is not a new send.
    again = await ask(gate, "mb", p[0], MONDAY_NOON + timedelta(minutes=1), campaign_id)
    assert again.verdict is GateVerdict.GO


async def test_a_place_given_back_by_a_send_that_went_unsent_goes_to_the_next_send(
    db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings, gate: GateActivities,
) -> None:
    """A full day with a send still in flight: when that send goes back to the queue
    unsent (throttled, busy), its place is given back and the mailbox sends its cap."""
    await local_mailbox(db, "mb", "UTC", cap=2)
    campaign_id, p = await add_campaign(db, ["mb"], [f"g{i}@example.com" for i in range(3)],
                                        [("Hi", "Body", 0)])
    for n in range(2):
        assert (await ask(gate, "mb", p[n], MONDAY_NOON, campaign_id)).verdict is GateVerdict.GO
        await attempted(db, campaign_id, p[n], "mb", MONDAY_NOON)
    await db.execute("UPDATE sends SET state = 'sending' WHERE prospect_id = $1", p[1])
    full = await ask(gate, "mb", p[2], MONDAY_NOON, campaign_id)
    # A place is held by a send still open: looked at again once it has ended (the send
    # timeout, 120 s, and 30 s), not at the mailbox's next day.
    assert (full.verdict, full.until) == (GateVerdict.WAIT, MONDAY_NOON + timedelta(seconds=150))

    await db.execute("UPDATE sends SET state = 'queued' WHERE prospect_id = $1", p[1])
    await release_day(db, campaign_id, 1, p[1])
    await RedisLimitStore(redis_client, settings.task_queue).release_day("mb", f"{campaign_id}:1:{p[1]}")

    assert (await ask(gate, "mb", p[2], MONDAY_NOON, campaign_id)).verdict is GateVerdict.GO
    await attempted(db, campaign_id, p[2], "mb", MONDAY_NOON)
    # The ledger agrees: a rebuild after a loss counts the two that hold places.
    await lose_redis(redis_client, settings)
    assert (await ask(gate, "mb", p[1], MONDAY_NOON, campaign_id)).verdict is GateVerdict.WAIT


async def test_a_rebuilt_cap_counts_yesterdays_sends_within_24_hours(
    db: asyncpg.Pool, gate: GateActivities,
) -> None:
    # Redis never saw these sends (it lost them); only the ledger knows them.
    await local_mailbox(db, "mb", "UTC", cap=2)
    campaign_id, p = await add_campaign(db, ["mb"], [f"y{i}@example.com" for i in range(4)],
                                        [("Hi", "Body", 0)])
    late_sunday = datetime(2026, 3, 8, 23, 0, tzinfo=UTC)
    await attempted(db, campaign_id, p[0], "mb", late_sunday)
    await attempted(db, campaign_id, p[1], "mb", late_sunday + timedelta(minutes=30))

    monday = await ask(gate, "mb", p[2], datetime(2026, 3, 9, 1, 0, tzinfo=UTC), campaign_id)

    assert (monday.verdict, monday.reason) == (GateVerdict.WAIT, "rolling 24 h cap reached")
    assert monday.until == late_sunday + timedelta(hours=24)  # when the older one leaves the 24 h
    later = await ask(gate, "mb", p[2], late_sunday + timedelta(hours=24, minutes=1), campaign_id)
    assert later.verdict is GateVerdict.GO


# -- time zones --------------------------------------------------------------------


async def test_a_los_angeles_window_opens_at_local_nine_across_the_dst_change(
    gate: GateActivities, db: asyncpg.Pool,
) -> None:
    await local_mailbox(db, "mb-la", "America/Los_Angeles", window=(time(9), time(17)),
                        days=(1, 2, 3, 4, 5))
    # Friday 17:30 PST is Saturday 01:30 UTC: closed until Monday 09:00 PDT (16:00 UTC,
    # not 17:00: the clocks moved on Sunday).
    friday_evening = await ask(gate, "mb-la", 1, datetime(2026, 3, 7, 1, 30, tzinfo=UTC))
    assert (friday_evening.verdict, friday_evening.reason) == (GateVerdict.WAIT,
                                                               "outside sending window")
    assert friday_evening.until == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)

    early = await ask(gate, "mb-la", 1, datetime(2026, 3, 9, 15, 59, tzinfo=UTC))  # 08:59 PDT
    assert (early.verdict, early.until) == (GateVerdict.WAIT, datetime(2026, 3, 9, 16, 0, tzinfo=UTC))

    nine = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
    opened = await ask(gate, "mb-la", 1, nine)
    assert (opened.verdict, opened.until) == (GateVerdict.GO, nine)

    # 17:00 PDT is 00:00 UTC Tuesday: closed until Tuesday 09:00 PDT.
    closed = await ask(gate, "mb-la", 2, datetime(2026, 3, 10, 0, 0, tzinfo=UTC))
    assert (closed.verdict, closed.until) == (GateVerdict.WAIT, datetime(2026, 3, 10, 16, 0, tzinfo=UTC))


async def test_a_tokyo_mailboxs_daily_cap_ends_at_tokyo_midnight(
    gate: GateActivities, db: asyncpg.Pool,
) -> None:
    await local_mailbox(db, "mb-tokyo", "Asia/Tokyo", cap=2)
    monday_morning = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
    for prospect in (1, 2):
        assert (await ask(gate, "mb-tokyo", prospect, monday_morning)).verdict is GateVerdict.GO

    evening = await ask(gate, "mb-tokyo", 3, datetime(2026, 3, 9, 11, 0, tzinfo=UTC))  # 20:00 JST

    assert (evening.verdict, evening.reason) == (GateVerdict.WAIT, "daily cap reached")
    assert evening.until == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)  # Tuesday 00:00 in Tokyo


# -- the provider window, host connections and push-backs after Redis lost its data -----


async def test_after_redis_lost_its_data_the_ledgers_recent_attempts_still_bind_provider_and_host(
    db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
) -> None:
    """Two sends of an "other" mailbox went out 10 s ago (2 a minute allowed), and one
    connection may still be open (finished 9 s ago, idle for up to 30 s). After the loss,
    the next send waits for the window; the host's one connection slot is held; and
    the host is held back a while, its breaker and push-back being unknown."""
    settings = settings.model_copy(update={"limit_other_per_minute": 2, "limit_other_connections": 1,
                                           "limit_restore_hold_seconds": 5.0})
    store = RedisLimitStore(redis_client, settings.task_queue)
    gate = GateActivities(db, store, policy_from(settings), paused_recheck=10.0, send_timeout=120.0)
    await add_mailbox(db, "mb", 2525)
    campaign_id, p = await add_campaign(db, ["mb"], [f"w{i}@example.com" for i in range(3)],
                                        [("Hi", "Body", 0)])
    db_now: datetime = await db.fetchval("SELECT now()")
    for n in range(2):
        await attempted(db, campaign_id, p[n], "mb", db_now - timedelta(seconds=10))
        await db.execute(
            "INSERT INTO send_attempts (campaign_id, step, prospect_id, attempt, started_at, finished_at,"
            " outcome) VALUES ($1, 1, $2, 1, $3, $4, 'sent')",
            campaign_id, p[n], db_now - timedelta(seconds=10), db_now - timedelta(seconds=9))
    assert (await ask(gate, "mb", p[2], db_now, campaign_id)).verdict is GateVerdict.GO  # keys exist

    await lose_redis(redis_client, settings)
    after = await ask(gate, "mb", p[2], db_now, campaign_id)

    window = timedelta(seconds=settings.limit_provider_window_seconds)
    assert after.verdict is GateVerdict.GO
    ms = timedelta(milliseconds=1)  # the store keeps instants in milliseconds
    assert after.until is not None and after.until >= db_now - timedelta(seconds=10) + window - ms
    host, lease = "host:127.0.0.1", timedelta(minutes=3)
    assert not await store.acquire_lease(host, "new-connection", 1, db_now, lease)
    assert await store.acquire_lease(host, "new-connection", 1, db_now + timedelta(seconds=22), lease)
    pushed_back = await redis_client.get(f"{settings.task_queue}:host:127.0.0.1:push-back")
    held_until = int((db_now + timedelta(seconds=5)).timestamp() * 1000)
    assert pushed_back is not None and int(pushed_back) == held_until

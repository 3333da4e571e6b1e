"""The mailbox budget in real Redis: daily cap, rolling 24 h, pause, rebuild after loss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from limits.mailbox_budget import MailboxBudget, Verdict

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DAY = (datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))


async def ready_budget(redis_client: aioredis.Redis, prefix: str) -> MailboxBudget:
    budget = MailboxBudget(redis_client, prefix)
    await budget.rebuild("mb", paused=False, reason="", sends=[])
    return budget


async def test_missing_state_asks_for_a_rebuild_before_any_send(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    budget = MailboxBudget(redis_client, key_prefix)
    assert (await budget.reserve("mb", "c:1:1", NOW, DAY, 5)).verdict is Verdict.REBUILD


async def test_daily_cap_holds_and_frees_at_local_midnight(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    budget = await ready_budget(redis_client, key_prefix)
    verdicts = [(await budget.reserve("mb", f"c:1:{i}", NOW, DAY, 3)).verdict for i in range(4)]
    assert verdicts == [Verdict.GO, Verdict.GO, Verdict.GO, Verdict.DAY_FULL]
    full = await budget.reserve("mb", "c:1:9", NOW, DAY, 3)
    assert full.free_at == DAY[1]


async def test_the_same_send_reserves_only_once(redis_client: aioredis.Redis, key_prefix: str) -> None:
    budget = await ready_budget(redis_client, key_prefix)
    for _ in range(5):
        assert (await budget.reserve("mb", "c:1:1", NOW, DAY, 1)).verdict is Verdict.GO
    assert (await budget.reserve("mb", "c:1:2", NOW, DAY, 1)).verdict is Verdict.DAY_FULL


async def test_rolling_24_hours_never_exceed_the_cap_across_midnight(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    budget = await ready_budget(redis_client, key_prefix)
    late = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    for i in range(2):
        assert (await budget.reserve("mb", f"c:1:{i}", late, DAY, 2)).verdict is Verdict.GO
    next_day = (DAY[1], DAY[1] + timedelta(days=1))
    early = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    result = await budget.reserve("mb", "c:1:5", early, next_day, 2)
    assert result.verdict is Verdict.ROLLING_FULL
    assert result.free_at == late + timedelta(days=1)


async def test_pause_flag_stops_every_reservation(redis_client: aioredis.Redis, key_prefix: str) -> None:
    budget = await ready_budget(redis_client, key_prefix)
    await budget.set_paused("mb", True, "operator")
    assert (await budget.reserve("mb", "c:1:1", NOW, DAY, 5)).verdict is Verdict.PAUSED
    await budget.set_paused("mb", False, "")
    assert (await budget.reserve("mb", "c:1:1", NOW, DAY, 5)).verdict is Verdict.GO


async def test_rebuild_counts_the_ledgers_sends_and_keeps_a_newer_pause(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    budget = MailboxBudget(redis_client, key_prefix)
    await budget.set_paused("mb", True, "newer than the ledger read")
    await budget.rebuild("mb", paused=False, reason="", sends=[("c:1:1", NOW), ("c:1:2", NOW)])
    assert (await budget.reserve("mb", "c:1:3", NOW, DAY, 3)).verdict is Verdict.PAUSED
    await budget.set_paused("mb", False, "")
    assert (await budget.reserve("mb", "c:1:3", NOW, DAY, 3)).verdict is Verdict.GO
    assert (await budget.reserve("mb", "c:1:4", NOW, DAY, 3)).verdict is Verdict.DAY_FULL

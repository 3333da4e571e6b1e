"""Retention cleanup over real PostgreSQL: exactly the expired rows of finished campaigns go."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from bench.cleanup import cleanup_pass, seed
from store.retention import purge, retention_rules
from tests.factories import add_campaign, add_mailbox

RULES = retention_rules(sent=timedelta(days=7), failed=timedelta(days=30))


async def _rows(db: asyncpg.Pool, campaign_id: str, rows: list[tuple[int, str, int]]) -> None:
    """Ledger rows (prospect, state, finished days ago) for step 1 of a campaign."""
    await db.executemany(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, state, message_id,"
        " sent_at, finished_at)"
        " SELECT $1, 1, $2::bigint, 'mb', $3::text, 'm' || $2::text,"
        " CASE WHEN $3 = 'sent' THEN now() - make_interval(days => $4::int) END,"
        " CASE WHEN $3 NOT IN ('queued', 'sending') THEN now() - make_interval(days => $4::int) END",
        [(campaign_id, p, state, days) for p, state, days in rows],
    )


async def _campaign(db: asyncpg.Pool, state: str, rows: list[tuple[str, int]]) -> str:
    cid, prospects = await add_campaign(db, ["mb"], [f"p{i}@x.example" for i in range(len(rows))],
                                        [("s", "b", 0)])
    await db.execute("UPDATE campaigns SET state = $2 WHERE id = $1", cid, state)
    await _rows(db, cid, [(p, s, d) for p, (s, d) in zip(prospects, rows, strict=True)])
    return cid


async def _states(db: asyncpg.Pool, cid: str) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT state, extract(day FROM now() - finished_at)::int AS days FROM sends"
        " WHERE campaign_id = $1 ORDER BY prospect_id", cid,
    )
    return [(r["state"], r["days"]) for r in rows]


async def test_cleanup_deletes_expired_rows_of_finished_campaigns_only(db: asyncpg.Pool) -> None:
    await add_mailbox(db, "mb", 25)
    done = await _campaign(db, "completed", [("sent", 8), ("sent", 6), ("failed", 31), ("failed", 29),
                                             ("hard_bounced", 40), ("unknown", 3)])
    cancelled = await _campaign(db, "cancelled", [("skipped", 0), ("sent", 2), ("sent", 9)])
    running = await _campaign(db, "running", [("sent", 60), ("failed", 60), ("queued", 0)])

    result = await purge(db, RULES, batch_size=1, budget_seconds=60)

    assert result.complete and result.deleted == {"cancelled": 1, "sent": 2, "failed": 2}
    assert await _states(db, done) == [("sent", 6), ("failed", 29), ("unknown", 3)]
    assert await _states(db, cancelled) == [("sent", 2)]
    # The step scheduler reads a running campaign's sent rows: none may go.
    assert [s for s, _ in await _states(db, running)] == ["sent", "failed", "queued"]


async def test_cleanup_stops_at_its_time_budget_and_the_next_run_goes_on(db: asyncpg.Pool) -> None:
    await add_mailbox(db, "mb", 25)
    cid = await _campaign(db, "completed", [("sent", 10)] * 5)

    first = await purge(db, RULES, batch_size=2, budget_seconds=0)
    assert not first.complete and first.batches == 0
    second = await purge(db, RULES, batch_size=2, budget_seconds=60)
    assert second.complete and second.deleted["sent"] == 5
    assert await _states(db, cid) == []


async def test_benchmark_seed_cleanup_deletes_exactly_the_expired_rows(
    db: asyncpg.Pool, database_url: str
) -> None:
    async with db.acquire() as conn:
        await seed(conn, 20_000)
    report = await cleanup_pass(database_url, batch_size=500)
    assert report.exact, report.kept_changed
    assert sum(report.deleted.values()) > 0

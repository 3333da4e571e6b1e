"""The claim from the index of open work (docs/decisions/0037) on the real PostgreSQL:
who is never claimed, prospects added later, follow-ups due exactly after their delay,
the bookkeeping the trigger keeps, and rows read per claim that do not grow with the
campaign (counted from EXPLAIN ANALYZE, not timed)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mail.outcomes import LedgerState
from store import ledger, open_work
from store.ledger import Reply
from tests.factories import add_campaign, add_mailbox

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def message_id(prospect_id: int, domain: str) -> str:
    return f"<{prospect_id}.{secrets.token_hex(4)}@{domain}>"


async def claim(pool: asyncpg.Pool, campaign_id: str, step: int = 1, as_of: datetime | None = None,
                limit: int = 100, per_mailbox: int = 1_000) -> open_work.DueBatch:
    return await open_work.claim_due(pool, campaign_id, step, as_of or datetime.now(UTC), limit,
                                     per_mailbox, [], [], message_id)


async def send(
    pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int, state: str = "sent",
) -> None:
    """One attempt through the ledger's own functions, ending in ``state``."""
    attempt = await ledger.begin_attempt(pool, campaign_id, step, prospect_id)
    assert await ledger.mark_data_started(pool, campaign_id, step, prospect_id) is ledger.DataStart.GO
    await ledger.finish_attempt(pool, campaign_id, step, prospect_id, attempt, LedgerState(state),
                                state, Reply(250 if state == "sent" else 550, None, state))


async def open_step(pool: asyncpg.Pool, prospect_id: int) -> tuple[int | None, datetime | None]:
    row = await pool.fetchrow("SELECT next_step, next_due_at FROM prospects WHERE id = $1", prospect_id)
    assert row is not None
    return row["next_step"], row["next_due_at"]


@pytest.mark.parametrize("status", ["suppressed", "stopped", "replied", "unsubscribed", "hard_bounced"])
async def test_a_prospect_not_active_is_never_claimed(db: asyncpg.Pool, status: str) -> None:
    await add_mailbox(db, "mb", 2525)
    campaign_id, ids = await add_campaign(db, ["mb"], ["a@example.com", "b@example.com"], [("Hi", "x", 0)])
    await db.execute("UPDATE prospects SET status = $2 WHERE id = $1", ids[0], status)
    batch = await claim(db, campaign_id)
    assert [c.prospect_id for c in batch.sends] == [ids[1]]
    # Nor later, when the step comes back for what is left.
    await send(db, campaign_id, 1, ids[1])
    again = await claim(db, campaign_id)
    assert again.sends == [] and again.pending == 0


async def test_a_listed_prospect_mid_sequence_is_settled_when_its_follow_up_falls_due(
    db: asyncpg.Pool,
) -> None:
    await add_mailbox(db, "mb", 2525)
    campaign_id, ids = await add_campaign(
        db, ["mb"], ["a@example.com", "b@rival.io"], [("Hi", "x", 0), ("Again", "y", 0)])
    assert len((await claim(db, campaign_id)).sends) == 2
    for pid in ids:
        await send(db, campaign_id, 1, pid)
    await db.execute(
        "INSERT INTO suppressions (workspace_id, entry, source) VALUES (NULL, '@rival.io', 'manual')")
    batch = await claim(db, campaign_id, step=2)
    assert [c.prospect_id for c in batch.sends] == [ids[0]]
    assert batch.settled_listed == 1
    assert await db.fetchval("SELECT status FROM prospects WHERE id = $1", ids[1]) == "suppressed"
    # Out of the index of open work: the next claim does not read it again.
    listed_open = await db.fetchval(
        "SELECT count(*) FROM prospects WHERE id = $1 AND status = 'active' AND next_step IS NOT NULL",
        ids[1])
    assert listed_open == 0


async def test_a_prospect_added_after_the_start_is_claimed_for_every_step(db: asyncpg.Pool) -> None:
    await add_mailbox(db, "mb", 2525)
    campaign_id, ids = await add_campaign(db, ["mb"], ["a@example.com"], [("Hi", "x", 0), ("Again", "y", 0)])
    await claim(db, campaign_id)
    await send(db, campaign_id, 1, ids[0])
    assert (await claim(db, campaign_id)).pending == 0  # step 1 has nothing left
    # Added later, as any importer writes a prospect: no scheduling columns given.
    late = await db.fetchval(
        "INSERT INTO prospects (campaign_id, email, fields, mailbox_id)"
        " VALUES ($1, 'late@example.com', '{}', 'mb') RETURNING id", campaign_id)
    batch = await claim(db, campaign_id)
    assert [c.prospect_id for c in batch.sends] == [late]
    await send(db, campaign_id, 1, late)
    follow_ups = await claim(db, campaign_id, step=2)
    assert sorted(c.prospect_id for c in follow_ups.sends) == sorted([ids[0], late])


async def test_a_follow_up_falls_due_exactly_its_delay_after_the_step_before_was_sent(
    db: asyncpg.Pool,
) -> None:
    await add_mailbox(db, "mb", 2525)
    delay = 3 * 24 * 3600
    campaign_id, ids = await add_campaign(
        db, ["mb"], ["a@example.com"], [("Hi", "x", 0), ("Again", "y", delay)])
    await claim(db, campaign_id)
    await send(db, campaign_id, 1, ids[0])
    sent_at = await db.fetchval(
        "SELECT sent_at FROM sends WHERE campaign_id = $1 AND step = 1 AND prospect_id = $2",
        campaign_id, ids[0])
    due = sent_at + timedelta(seconds=delay)
    assert await open_step(db, ids[0]) == (2, due)

    early = await claim(db, campaign_id, step=2, as_of=due - timedelta(microseconds=1))
    assert early.sends == [] and early.next_due_at == due and early.pending == 1
    on_time = await claim(db, campaign_id, step=2, as_of=due)
    assert [c.prospect_id for c in on_time.sends] == [ids[0]]


async def test_the_sequence_ends_with_the_last_step_or_a_send_that_was_not_sent(db: asyncpg.Pool) -> None:
    await add_mailbox(db, "mb", 2525)
    campaign_id, ids = await add_campaign(
        db, ["mb"], ["a@example.com", "b@example.com"], [("Hi", "x", 0), ("Again", "y", 0)])
    await claim(db, campaign_id)
    await send(db, campaign_id, 1, ids[0], state="failed")
    await send(db, campaign_id, 1, ids[1])
    assert await open_step(db, ids[0]) == (None, None)
    assert (await open_step(db, ids[1]))[0] == 2
    await claim(db, campaign_id, step=2)
    await send(db, campaign_id, 2, ids[1])
    assert await open_step(db, ids[1]) == (None, None)
    assert (await claim(db, campaign_id, step=2)).pending == 0


async def test_a_final_send_opened_again_makes_its_step_due_again(db: asyncpg.Pool) -> None:
    # An operator's retry of a failed send writes only the send's state back.
    await add_mailbox(db, "mb", 2525)
    campaign_id, ids = await add_campaign(db, ["mb"], ["a@example.com"], [("Hi", "x", 0)])
    await claim(db, campaign_id)
    await send(db, campaign_id, 1, ids[0], state="failed")
    assert (await claim(db, campaign_id)).pending == 0
    await db.execute(
        "UPDATE sends SET state = 'queued', finished_at = NULL WHERE campaign_id = $1", campaign_id)
    assert [c.prospect_id for c in (await claim(db, campaign_id)).sends] == [ids[0]]


async def test_a_changed_delay_moves_the_prospects_waiting_for_the_step(db: asyncpg.Pool) -> None:
    await add_mailbox(db, "mb", 2525)
    campaign_id, ids = await add_campaign(
        db, ["mb"], ["a@example.com"], [("Hi", "x", 0), ("Again", "y", 3600)])
    await claim(db, campaign_id)
    await send(db, campaign_id, 1, ids[0])
    sent_at = await db.fetchval("SELECT sent_at FROM sends WHERE prospect_id = $1", ids[0])
    # Whoever changes the delay (the campaign update control): the steps trigger moves it.
    await db.execute("UPDATE steps SET delay_seconds = 60 WHERE campaign_id = $1 AND step = 2", campaign_id)
    assert await open_step(db, ids[0]) == (2, sent_at + timedelta(seconds=60))
    assert await open_work.reschedule_step(db, campaign_id, 2) == 1  # the same, asked for
    assert await open_step(db, ids[0]) == (2, sent_at + timedelta(seconds=60))


# -- rows read per claim ----------------------------------------------------------


async def seed_campaign(pool: asyncpg.Pool, prospects: int, mailboxes: list[str]) -> str:
    """A two-step campaign: the first 90 % of its prospects finished both steps, the
    next 5 % wait for step 2 (due), the last 5 % for step 1. Bulk SQL."""
    campaign_id, _ = await add_campaign(pool, mailboxes, [], [("Hi", "x", 0), ("Again", "y", 0)])
    finished, waiting = prospects * 90 // 100, prospects * 95 // 100
    await pool.execute(
        "INSERT INTO prospects (campaign_id, email, fields, mailbox_id, next_step, next_due_at)"
        " SELECT $1, 'p' || g || '@example.com', '{}', ($3::text[])[1 + g % cardinality($3::text[])],"
        "  CASE WHEN g < $4 THEN NULL WHEN g < $5 THEN 2 ELSE 1 END,"
        "  CASE WHEN g < $4 THEN NULL WHEN g < $5 THEN now() - interval '1 day' ELSE '-infinity' END"
        " FROM generate_series(0, $2 - 1) g",
        campaign_id, prospects, mailboxes, finished, waiting,
    )
    # Their ledger rows, written as the sends themselves would have left them.
    await pool.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, sent_at,"
        " finished_at)"
        " SELECT p.campaign_id, k, p.id, p.mailbox_id, '<' || p.id || '.' || k || '@x>', 'sent',"
        "  now() - interval '2 days', now() - interval '2 days'"
        " FROM prospects p CROSS JOIN generate_series(1, 2) k"
        " WHERE p.campaign_id = $1 AND (p.next_step IS NULL OR (p.next_step = 2 AND k = 1))",
        campaign_id,
    )
    return campaign_id


def rows_read(plan: Any) -> int:
    """Rows every scan node of the plan read: returned plus filtered out, times its loops."""
    total = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal total
        if "Relation Name" in node:
            loops = node.get("Actual Loops", 1)
            total += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                      + node.get("Rows Removed by Index Recheck", 0)) * loops
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return total


async def claim_rows(pool: asyncpg.Pool, campaign_id: str, step: int) -> int:
    plan = await pool.fetchval(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {open_work.CLAIM}",
        campaign_id, step, datetime.now(UTC), [], [], 3,
    )
    return rows_read(json.loads(plan) if isinstance(plan, str) else plan)


@pytest.mark.parametrize("analyze", [False, True], ids=["no statistics", "analyzed"])
async def test_rows_read_per_claim_do_not_grow_with_the_campaign(db: asyncpg.Pool, analyze: bool) -> None:
    mailboxes = [f"mb{i}" for i in range(5)]
    for m in mailboxes:
        await add_mailbox(db, m, 2525)
    small = await seed_campaign(db, 1_000, mailboxes)
    large = await seed_campaign(db, 10_000, mailboxes)
    if analyze:
        await db.execute("ANALYZE prospects; ANALYZE sends; ANALYZE campaign_mailboxes")
    for step in (1, 2):
        at_1k, at_10k = await claim_rows(db, small, step), await claim_rows(db, large, step)
        # 5 mailboxes x 3 per mailbox from the index, plus the campaign's mailboxes and
        # steps: the same at both sizes (a scan of the campaign would read 10x more).
        assert at_1k <= 60, at_1k
        assert abs(at_10k - at_1k) <= 0.2 * at_1k, (step, at_1k, at_10k)

"""Retention cleanup: delete finished ledger rows of finished campaigns, in small batches.

Only rows of ``completed`` or ``cancelled`` campaigns are deleted: a running
campaign's step scheduler reads its ``sent`` rows (step k is due from step
k-1's ``sent_at``) and treats a missing row as "not sent yet", so deleting one
would send again (docs/decisions/0010). Each batch is its own short
transaction that locks only the rows it deletes (``SKIP LOCKED``), walking the
``sends_retention`` index of one campaign, so sends are never blocked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

FINISHED_CAMPAIGNS = ("completed", "cancelled")


@dataclass(frozen=True)
class RetentionRule:
    name: str
    states: tuple[str, ...]
    older_than: timedelta  # since the row's finished_at
    campaign_states: tuple[str, ...] = FINISHED_CAMPAIGNS


def retention_rules(sent: timedelta, failed: timedelta) -> list[RetentionRule]:
    return [
        # Sends that will not happen because their campaign was cancelled: at once.
        RetentionRule("cancelled", ("skipped",), timedelta(0), ("cancelled",)),
        RetentionRule("sent", ("sent", "skipped"), sent),
        RetentionRule("failed", ("failed", "hard_bounced", "unknown"), failed),
    ]


_DELETE_BATCH = """
DELETE FROM sends WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM sends
    WHERE campaign_id = $1 AND state = ANY($2::text[]) AND finished_at < now() - $3::interval
    LIMIT $4 FOR UPDATE SKIP LOCKED))
"""


async def delete_batch(pool: asyncpg.Pool, campaign_id: str, rule: RetentionRule, limit: int) -> int:
    status = await pool.execute(_DELETE_BATCH, campaign_id, list(rule.states), rule.older_than, limit)
    return int(status.rsplit(" ", 1)[1])


async def finished_campaigns(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    """(id, state) of finished campaigns that still have ledger rows, oldest first."""
    rows = await pool.fetch(
        "SELECT c.id, c.state FROM campaigns c WHERE c.state = ANY($1::text[])"
        " AND EXISTS (SELECT 1 FROM sends s WHERE s.campaign_id = c.id)"
        " ORDER BY c.finished_at NULLS FIRST, c.id",
        list(FINISHED_CAMPAIGNS),
    )
    return [(r["id"], r["state"]) for r in rows]


@dataclass
class PurgeResult:
    deleted: dict[str, int]
    batches: int = 0
    complete: bool = True  # False: the time budget ran out; the next run goes on


async def purge(
    pool: asyncpg.Pool,
    rules: list[RetentionRule],
    batch_size: int,
    budget_seconds: float,
    on_batch: Callable[[int], None] | None = None,
) -> PurgeResult:
    """Delete every row the rules expire, batch by batch, until done or out of time."""
    result = PurgeResult(deleted={rule.name: 0 for rule in rules})
    deadline = time.monotonic() + budget_seconds
    for campaign_id, state in await finished_campaigns(pool):
        for rule in (r for r in rules if state in r.campaign_states):
            while True:
                if time.monotonic() > deadline:
                    result.complete = False
                    return result
                n = await delete_batch(pool, campaign_id, rule, batch_size)
                result.deleted[rule.name] += n
                result.batches += 1
                if on_batch is not None:
                    on_batch(n)  # e.g. the activity's heartbeat
                if n < batch_size:
                    break
    return result

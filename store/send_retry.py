"""Sending again what the engine refused to guess about (docs/decisions/0040):
an operator's explicit decision to put ``unknown`` or ``failed`` sends back in the
queue. ``unknown`` may already have been delivered; the send keeps its Message-ID,
so a copy that did arrive is the same message to threading mail clients."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from store import StoreError, UnknownRecord

RETRYABLE = ("unknown", "failed")

# Only sends of prospects still active: a stopped, bounced or replied prospect gets nothing.
_WHICH = """
FROM sends s JOIN prospects p ON p.id = s.prospect_id
WHERE s.campaign_id = $1 AND s.state = $2 AND ($3::int IS NULL OR s.step = $3) AND p.status = 'active'
"""


@dataclass(frozen=True)
class SendsRetried:
    campaign_id: str
    state: str  # what they were
    count: int
    campaign_state: str  # the campaign's before: a completed campaign runs again


def _check(state: str) -> None:
    if state not in RETRYABLE:
        raise StoreError(f"only {' or '.join(RETRYABLE)} sends can be retried, not {state!r}")


async def count_retryable(pool: asyncpg.Pool, campaign_id: str, state: str, step: int | None = None) -> int:
    """How many sends ``retry`` would queue again now."""
    _check(state)
    if not await pool.fetchval("SELECT true FROM campaigns WHERE id = $1", campaign_id):
        raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
    count: int = await pool.fetchval(f"SELECT count(*) {_WHICH}", campaign_id, state, step)
    return count


async def retry(pool: asyncpg.Pool, campaign_id: str, state: str, step: int | None = None) -> SendsRetried:
    """Queue the campaign's ``state`` sends (of ``step``) again, in one transaction;
    a completed campaign becomes running again (its workflow must then be started).

    The campaign row is locked, so the completion check (store.campaign_controls.finish)
    sees these sends open, or this sees the campaign completed and reopens it.
    """
    _check(state)
    async with pool.acquire() as conn, conn.transaction():
        campaign_state = await conn.fetchval(
            "SELECT state FROM campaigns WHERE id = $1 FOR UPDATE", campaign_id
        )
        if campaign_state is None:
            raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
        if campaign_state == "cancelled":
            raise StoreError(f"campaign {campaign_id} is cancelled: its sends cannot be retried")
        status = await conn.execute(
            "UPDATE sends SET state = 'queued', data_started_at = NULL, finished_at = NULL,"
            " updated_at = now(), last_reply = 'retried by operator (was ' || state || '): '"
            " || coalesce(last_reply, '')"
            " WHERE (campaign_id, step, prospect_id) IN"
            f" (SELECT s.campaign_id, s.step, s.prospect_id {_WHICH})",
            campaign_id, state, step,
        )
        count = int(status.rsplit(" ", 1)[1])
        if count and campaign_state == "completed":
            await conn.execute(
                "UPDATE campaigns SET state = 'running', finished_at = NULL WHERE id = $1", campaign_id
            )
    return SendsRetried(campaign_id, state, count, campaign_state)

"""Reconciliation queries: open sends per campaign, and ending the stuck ones.

A send is open while ``queued``, ``sending`` or ``soft_bounced``. Open sends of
a campaign whose step workflows run are not stuck: those workflows re-claim
them (docs/decisions/0011). The rest are given a final state with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from store.ledger import OPEN_STATES


@dataclass(frozen=True)
class OpenSends:
    campaign_id: str
    campaign_state: str
    count: int
    oldest_update: datetime


async def open_sends_by_campaign(pool: asyncpg.Pool) -> list[OpenSends]:
    rows = await pool.fetch(
        "SELECT s.campaign_id, c.state, count(*) AS n, min(s.updated_at) AS oldest"
        " FROM sends s JOIN campaigns c ON c.id = s.campaign_id"
        " WHERE s.state IN ('queued', 'sending', 'soft_bounced')"
        " GROUP BY s.campaign_id, c.state ORDER BY s.campaign_id",
    )
    return [OpenSends(r["campaign_id"], r["state"], r["n"], r["oldest"]) for r in rows]


async def end_open_sends(pool: asyncpg.Pool, campaign_id: str, state: str, reason: str) -> dict[str, int]:
    """Give every open send of a campaign ``state`` (``unknown`` if DATA started); count by result.

    A send whose DATA began may have been delivered: it is never resent.
    """
    rows = await pool.fetch(
        "UPDATE sends SET state = CASE WHEN data_started_at IS NOT NULL THEN 'unknown' ELSE $2 END,"
        " last_reply = $3, data_started_at = NULL, updated_at = now(), finished_at = now()"
        " WHERE campaign_id = $1 AND state = ANY($4::text[]) RETURNING state",
        campaign_id, state, reason, list(OPEN_STATES),
    )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return counts

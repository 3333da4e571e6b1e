"""Acting on an unsubscribe: the prospect stops, its address joins the workspace's
do-not-contact list, and its open sends end, in one transaction (docs/decisions/0030).

Everything comes from the token's send key, not from the ledger row, which retention
may have deleted: the prospect row (kept with its campaign) holds the address.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from mail.unsubscribe import SendKey


@dataclass(frozen=True)
class Unsubscribed:
    found: bool  # the prospect exists in that campaign and workspace
    newly_listed: bool  # its address was not on the workspace's list yet
    sends_ended: int  # open sends of the prospect that will now not go


async def unsubscribe(pool: asyncpg.Pool, send: SendKey, *, via: str = "one-click") -> Unsubscribed:
    """Idempotent: a second call finds the prospect unsubscribed and the address listed.

    A prospect that replied or bounced keeps that state (it says more), but its
    address is listed all the same. Sends whose DATA began are left to their
    transaction; every other open send of the prospect in the campaign ends ``skipped``,
    and the check right before DATA (store/ledger.py) stops any that raced it."""
    async with pool.acquire() as conn, conn.transaction():
        email = await conn.fetchval(
            "SELECT p.email FROM prospects p JOIN campaigns c ON c.id = p.campaign_id"
            " WHERE p.id = $1 AND p.campaign_id = $2 AND c.workspace_id = $3 FOR UPDATE OF p",
            send.prospect_id, send.campaign_id, send.workspace_id,
        )
        if email is None:
            return Unsubscribed(False, False, 0)
        await conn.execute(
            "UPDATE prospects SET status = 'unsubscribed' WHERE id = $1"
            " AND status IN ('active', 'suppressed')",
            send.prospect_id,
        )
        listed = await conn.execute(
            "INSERT INTO suppressions (workspace_id, entry, source, reason)"
            " VALUES ($1, lower($2), 'unsubscribe', $3) ON CONFLICT (workspace_id, entry) DO NOTHING",
            send.workspace_id, email, f"{via} unsubscribe: campaign {send.campaign_id} step {send.step}",
        )
        ended = await conn.execute(
            "UPDATE sends SET state = 'skipped', last_reply = 'unsubscribed', updated_at = now(),"
            " finished_at = now() WHERE campaign_id = $1 AND prospect_id = $2"
            " AND state IN ('queued', 'soft_bounced') AND data_started_at IS NULL",
            send.campaign_id, send.prospect_id,
        )
    return Unsubscribed(True, listed.endswith(" 1"), int(ended.rsplit(" ", 1)[1]))

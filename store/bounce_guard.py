"""The deliverability guard's view of the ledger (docs/decisions/0033): how many of a
mailbox's last sends hard-bounced, counting only sends begun since an operator last
resumed a pause of the guard's."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from mail.outcomes import LedgerState, PauseReason


@dataclass(frozen=True)
class RecentSends:
    sends: int  # settled sends counted, at most the window
    bounced: int  # of them, hard bounces
    blocked: int = 0  # of them, refused later by the recipient's server (a DSN's 5.7.x)

    def over(self, window: int, rate: float) -> bool:
        """More hard bounces than ``rate`` of a full window. The window, not the sends
        counted, is the denominator: a new mailbox's 1 bounce in 2 sends is not 50 %."""
        return self.bounced > rate * window

    def blocked_over(self, window: int, rate: float) -> bool:
        """More blocks than ``rate`` of a full window: the address is fine, the sender
        is not trusted (spam, policy, a block list), and sending on makes it worse."""
        return self.blocked > rate * window


# Settled sends only: an open send has no result yet, and 'unknown', 'failed' and
# 'skipped' say nothing about the recipient addresses.
_COUNTED = [LedgerState.SENT.value, LedgerState.HARD_BOUNCED.value]


async def recent_sends(pool: asyncpg.Pool, mailbox_id: str, window: int) -> RecentSends:
    """The mailbox's last ``window`` settled sends (by first attempt, newest first: a
    backward scan of ``sends_mailbox_day``) begun after ``bounce_guard_since``."""
    row = await pool.fetchrow(
        "SELECT count(*) AS sends, count(*) FILTER (WHERE state = $4) AS bounced,"
        " count(*) FILTER (WHERE EXISTS (SELECT 1 FROM inbound_messages i"
        "   WHERE i.mailbox_id = $1 AND i.class = 'bounce' AND i.verdict = 'blocked' AND i.proven"
        "   AND (i.campaign_id, i.step, i.prospect_id) = (recent.campaign_id, recent.step,"
        "        recent.prospect_id))) AS blocked FROM ("
        " SELECT s.state, s.campaign_id, s.step, s.prospect_id FROM sends s"
        " WHERE s.mailbox_id = $1 AND s.state = ANY($3::text[])"
        " AND s.first_attempt_at > coalesce("
        "   (SELECT m.bounce_guard_since FROM mailboxes m WHERE m.id = $1), '-infinity')"
        " ORDER BY s.first_attempt_at DESC LIMIT $2) recent",
        mailbox_id, window, _COUNTED, LedgerState.HARD_BOUNCED.value,
    )
    assert row is not None  # an aggregate always returns a row
    return RecentSends(sends=row["sends"], bounced=row["bounced"], blocked=row["blocked"])


async def restart_window(pool: asyncpg.Pool, mailbox_id: str) -> bool:
    """On a resume: if the guard's pause is the one being lifted, its window starts
    again now, so the bounces that paused the mailbox do not pause it again at once.
    Returns whether it did."""
    status = await pool.execute(
        "UPDATE mailboxes SET bounce_guard_since = now() WHERE id = $1 AND paused"
        " AND pause_reason LIKE $2",
        mailbox_id, f"{PauseReason.BOUNCE_RATE.value}:%",
    )
    return status.endswith(" 1")

"""`outreach campaigns status`: per-step progress, the recent rate and an estimate of completion."""

from __future__ import annotations

import asyncpg

from store.campaigns import campaign_progress, campaign_status
from tests.factories import add_campaign, add_mailbox


async def test_progress_counts_finished_sends_and_estimates_completion_from_the_recent_rate(
    db: asyncpg.Pool,
) -> None:
    await add_mailbox(db, "mb-progress", 2525)
    emails = [f"p{i}@example.com" for i in range(4)]
    campaign_id, prospects = await add_campaign(db, ["mb-progress"], emails, [("Hi", "B", 0)])
    await db.executemany(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, finished_at)"
        " VALUES ($1, 1, $2, 'mb-progress', $3, 'sent', now())",
        [(campaign_id, p, f"m{p}") for p in prospects[:2]],
    )
    status = await campaign_status(db, campaign_id)

    progress = await campaign_progress(db, campaign_id, status["steps"])

    assert progress["steps"] == [{"step": 1, "done": 2, "total": 4}]
    assert progress["remaining"] == 2
    assert progress["rate_per_minute"] == 0.2  # 2 sends in the last 10 minutes
    assert progress["limit_per_minute"] > 0.2  # 10,000 a day over a whole-day window
    assert progress["eta_seconds"] == 600
    assert set(status["steps"][0]) == {"step", "queued", "sending", "soft_bounced", "sent",
                                       "hard_bounced", "failed", "unknown", "skipped"}

"""Campaign state and progress, as the ledger tells it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from store import StoreError, UnknownRecord
from store.inbound import intents_by_step, replies_by_step
from store.ledger import ALL_STATES, FINAL_STATES
from store.variant_stats import step_winners

# What a prospect is: 'active' until it replies, bounces hard, unsubscribes, is found
# on the do-not-contact list (docs/decisions/0026) or is stopped; only 'active' is sent to.
PROSPECT_STATES = ("active", "replied", "hard_bounced", "unsubscribed", "suppressed", "stopped")


@dataclass(frozen=True)
class CampaignInfo:
    id: str
    name: str
    workspace_id: str
    state: str
    steps: int
    prospects: int
    mailbox_ids: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


async def campaign_info(pool: asyncpg.Pool, campaign_id: str) -> CampaignInfo:
    row = await pool.fetchrow(
        """
        SELECT c.*, (SELECT count(*) FROM steps s WHERE s.campaign_id = c.id) AS steps,
               (SELECT count(*) FROM prospects p WHERE p.campaign_id = c.id) AS prospects,
               (SELECT array_agg(mailbox_id ORDER BY mailbox_id) FROM campaign_mailboxes cm
                 WHERE cm.campaign_id = c.id) AS mailbox_ids
        FROM campaigns c WHERE c.id = $1
        """,
        campaign_id,
    )
    if row is None:
        raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
    return CampaignInfo(
        id=row["id"], name=row["name"], workspace_id=row["workspace_id"], state=row["state"],
        steps=row["steps"], prospects=row["prospects"], mailbox_ids=list(row["mailbox_ids"] or []),
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
    )


async def running_campaigns_using(pool: asyncpg.Pool, mailbox_id: str) -> list[str]:
    """The running or paused campaigns that send from ``mailbox_id``."""
    rows = await pool.fetch(
        "SELECT c.id FROM campaigns c JOIN campaign_mailboxes cm ON cm.campaign_id = c.id"
        " WHERE cm.mailbox_id = $1 AND c.state IN ('running', 'paused') ORDER BY c.id", mailbox_id)
    return [r["id"] for r in rows]


async def set_paused(pool: asyncpg.Pool, campaign_id: str, paused: bool) -> None:
    """The operator's pause or resume, in force for the check before DATA once this
    returns (docs/decisions/0044). Only a running or paused campaign takes it."""
    done = await pool.fetchval(
        "UPDATE campaigns SET paused = $2, state = CASE WHEN $2 THEN 'paused' ELSE 'running' END"
        " WHERE id = $1 AND state IN ('running', 'paused') RETURNING true",
        campaign_id, paused,
    )
    if not done:
        state = await pool.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
        if state is None:
            raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
        raise StoreError(f"campaign {campaign_id} is {state}: only a running or paused campaign"
                         f" can be {'paused' if paused else 'resumed'}")


async def set_state(pool: asyncpg.Pool, campaign_id: str, state: str) -> None:
    """Move a campaign to ``state``; a finished campaign (completed, cancelled) stays finished.
    Running or paused, it follows the operator's last command (``paused``), whichever of
    the workflow's handlers reports last (docs/decisions/0044)."""
    status = await pool.execute(
        """
        UPDATE campaigns SET state = CASE WHEN $2 IN ('running', 'paused')
                                          THEN CASE WHEN paused THEN 'paused' ELSE 'running' END
                                          ELSE $2 END,
            started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
            finished_at = CASE WHEN $2 IN ('completed', 'cancelled') THEN now() ELSE finished_at END
        WHERE id = $1 AND state NOT IN ('completed', 'cancelled')
        """,
        campaign_id, state,
    )
    if status.endswith(" 0") and not await pool.fetchval(
        "SELECT true FROM campaigns WHERE id = $1", campaign_id
    ):
        raise UnknownRecord(f"campaign {campaign_id!r} does not exist")


async def step_counts(pool: asyncpg.Pool, campaign_id: str, steps: int) -> list[dict[str, Any]]:
    """Per step (1-based), the number of sends in each ledger state, every state named."""
    rows = await pool.fetch(
        "SELECT step, state, count(*) AS n FROM sends WHERE campaign_id = $1 GROUP BY step, state",
        campaign_id,
    )
    counts: list[dict[str, Any]] = [
        {"step": k, **{state: 0 for state in ALL_STATES}} for k in range(1, steps + 1)
    ]
    for r in rows:
        counts[r["step"] - 1][r["state"]] = r["n"]
    return counts


async def prospect_counts(pool: asyncpg.Pool, campaign_id: str) -> dict[str, int]:
    """The campaign's prospects by state, every state named."""
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM prospects WHERE campaign_id = $1 GROUP BY status",
        campaign_id,
    )
    counts = dict.fromkeys(PROSPECT_STATES, 0)
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


async def campaign_status(pool: asyncpg.Pool, campaign_id: str) -> dict[str, Any]:
    """What ``outreach campaigns status --json`` prints: state, prospects by state and
    per-step ledger counts."""
    info = await campaign_info(pool, campaign_id)
    return {
        "id": info.id, "name": info.name, "workspace": info.workspace_id, "state": info.state,
        "prospects": await prospect_counts(pool, campaign_id), "mailboxes": info.mailbox_ids,
        "created_at": info.created_at.isoformat(),
        "started_at": info.started_at.isoformat() if info.started_at else None,
        "finished_at": info.finished_at.isoformat() if info.finished_at else None,
        "steps": await step_counts(pool, campaign_id, info.steps),
        "replies": await _replies(pool, campaign_id, info.steps),
        "winners": await step_winners(pool, campaign_id),
        "waiting": await waiting(pool, campaign_id, info.steps),
        # Per step, the replies it drew by intent class (inbox/intent.py); steps without any left out.
        "reply_classes": [{"step": k, "classes": v}
                          for k, v in (await intents_by_step(pool, campaign_id)).items()],
    }


async def waiting(pool: asyncpg.Pool, campaign_id: str, steps: int) -> list[dict[str, Any]]:
    """Per step, the prospects not yet due (outside their window, or their delay not
    over) and when the first of them may go: the index of open work holds the first
    moment each may be sent (decision 0051). ``next_opening`` None: none waits."""
    rows = await pool.fetch(
        "SELECT next_step, count(*) AS n, min(next_due_at) FILTER (WHERE next_due_at < 'infinity') AS nxt"
        " FROM prospects WHERE campaign_id = $1 AND status = 'active' AND next_step IS NOT NULL"
        " AND next_due_at > now() GROUP BY next_step", campaign_id)
    found = {r["next_step"]: r for r in rows}
    return [
        {"step": k, "prospects": found[k]["n"] if k in found else 0,
         "next_opening": found[k]["nxt"].isoformat() if k in found and found[k]["nxt"] else None}
        for k in range(1, steps + 1)
    ]


async def _replies(pool: asyncpg.Pool, campaign_id: str, steps: int) -> list[dict[str, Any]]:
    """Per step, replies read from the inboxes and their rate over that step's sent mail."""
    replies = await replies_by_step(pool, campaign_id)
    rows = await pool.fetch(
        "SELECT step, count(*) AS n FROM sent_messages WHERE campaign_id = $1 GROUP BY step", campaign_id)
    sent: dict[int, int] = {r["step"]: r["n"] for r in rows}
    return [
        {"step": k, "replies": replies.get(k, 0),
         "reply_rate": round(replies.get(k, 0) / sent[k], 4) if sent.get(k) else 0.0}
        for k in range(1, steps + 1)
    ]


async def campaign_progress(
    pool: asyncpg.Pool, campaign_id: str, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per step, how many sends are done of how many; the recent rate, the rate the
    mailboxes' daily caps allow over their windows, and an estimate of completion.

    A step's total is the campaign's prospects (those stopped early end as
    skipped); the rate is sends finished in the last 10 minutes, per minute.
    """
    row = await pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM prospects WHERE campaign_id = $1) AS prospects,
               (SELECT count(*) FROM sends WHERE campaign_id = $1
                  AND finished_at > now() - interval '10 minutes') AS recent,
               (SELECT sum(m.daily_limit / greatest(extract(epoch FROM
                         CASE WHEN m.window_end > m.window_start THEN m.window_end - m.window_start
                              ELSE interval '24 hours' END) / 60, 1))
                  FROM campaign_mailboxes cm JOIN mailboxes m ON m.id = cm.mailbox_id
                 WHERE cm.campaign_id = $1 AND NOT m.paused AND m.retired_at IS NULL) AS limit_rate
        """,
        campaign_id,
    )
    assert row is not None  # an aggregate always returns a row
    total = row["prospects"]
    per_step = [{"step": s["step"], "done": sum(s[k] for k in FINAL_STATES), "total": total} for s in steps]
    remaining = sum(max(p["total"] - p["done"], 0) for p in per_step)
    rate = row["recent"] / 10.0
    limit_rate = float(row["limit_rate"] or 0.0)
    pace = min(rate, limit_rate) if rate and limit_rate else (rate or 0.0)
    return {
        "steps": per_step, "remaining": remaining, "rate_per_minute": rate,
        "limit_per_minute": round(limit_rate, 2),
        "eta_seconds": round(remaining / pace * 60) if remaining and pace else (0 if not remaining else None),
    }

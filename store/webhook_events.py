"""Events a CRM follows (issue 25): ``sent``, ``hard_bounced``, ``replied`` (with the
reply's intent), ``unsubscribed``, ``complained``, ``postponed``.

The database writes each into ``webhook_events`` where the fact itself is written
(triggers of migration 0016), so every path that records a send, a bounce or an
unsubscribe is covered and a fact written twice is one event (its id is the fact's
key: ``sent:<campaign>:<step>:<prospect>``, ``replied:inbound:<id>``, ...). The
webhook sends them in ``seq`` order, which is the order they were written, so a
prospect's events arrive in the order they happened; `outreach webhook replay`
sends a window again from the same rows, under the same ids.

Ids only, unless the operator opts in (``OUTREACH_WEBHOOK_INCLUDE_ADDRESS=true``):
then the prospect's address is read at delivery, so an erased one is never sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

_COLUMNS = ("SELECT e.seq, e.id, e.type, e.occurred_at, e.campaign_id, e.step, e.prospect_id, e.mailbox_id,"
            " e.intent, e.due_at, e.proven, p.email FROM webhook_events e"
            " LEFT JOIN prospects p ON p.id = e.prospect_id")


def payload(row: asyncpg.Record, include_address: bool) -> dict[str, object]:
    event: dict[str, object] = {
        "id": row["id"], "type": row["type"], "occurred_at": row["occurred_at"].isoformat(),
        "campaign_id": row["campaign_id"], "step": row["step"], "prospect_id": row["prospect_id"],
        "mailbox_id": row["mailbox_id"], "proven": row["proven"],
    }
    if row["type"] == "replied":
        event["class"] = row["intent"] or "other"
    if row["type"] == "postponed":
        event["due_at"] = row["due_at"].isoformat() if row["due_at"] else None
    if include_address:
        event["email"] = row["email"]
    return event


async def undelivered(pool: asyncpg.Pool, limit: int, include_address: bool) -> list[dict[str, object]]:
    """The oldest events the webhook has not had accepted, in the order they were written."""
    rows = await pool.fetch(f"{_COLUMNS} WHERE e.delivered_at IS NULL ORDER BY e.seq LIMIT $1", limit)
    return [payload(r, include_address) for r in rows]


async def mark_delivered(pool: asyncpg.Pool, ids: list[str]) -> None:
    await pool.execute("UPDATE webhook_events SET delivered_at = now() WHERE id = any($1::text[])"
                       " AND delivered_at IS NULL", ids)


async def window(pool: asyncpg.Pool, since: datetime, until: datetime | None, after_seq: int, limit: int,
                 include_address: bool) -> tuple[list[dict[str, object]], int]:
    """Events that occurred in [since, until), after ``after_seq``, in seq order; and the
    last seq read (for the next page)."""
    rows = await pool.fetch(
        f"{_COLUMNS} WHERE e.occurred_at >= $1 AND ($2::timestamptz IS NULL OR e.occurred_at < $2)"
        " AND e.seq > $3 ORDER BY e.seq LIMIT $4",
        since, until, after_seq, limit,
    )
    return [payload(r, include_address) for r in rows], (rows[-1]["seq"] if rows else after_seq)


async def forget_old(pool: asyncpg.Pool, older_than: timedelta, batch: int = 5000) -> int:
    """Events past the replay window (OUTREACH_REPLY_MATCH_DAYS) go, delivered or not:
    without a webhook nothing is ever delivered, and the table must not grow with every
    send for ever; a receiver down longer than the window misses what is older."""
    status = await pool.execute(
        "DELETE FROM webhook_events WHERE seq IN (SELECT seq FROM webhook_events"
        " WHERE occurred_at < now() - $1::interval ORDER BY seq LIMIT $2)", older_than, batch)
    return int(status.rsplit(" ", 1)[1])

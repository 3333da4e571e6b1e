"""The ledger's view of a prospect's sends, for ``outreach trace``.

A trace starts from a prospect id, an email address (which may be a prospect
of several campaigns) or a send key ``campaign:step:prospect``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from store import UnknownRecord


@dataclass(frozen=True)
class TracedSend:
    campaign_id: str
    step: int
    prospect_id: int
    mailbox_id: str
    state: str
    attempts: int
    last_code: int | None
    last_enhanced: str | None
    last_reply: str | None
    sent_at: datetime | None
    updated_at: datetime
    variant: str = ""  # the step variant it was given ('': the step has none; decision 0052)
    recipient_timezone: str = "UTC"  # the prospect's zone (its mailbox's when it has none)

    @property
    def local_sent_at(self) -> datetime | None:
        """When it went out, in the recipient's wall clock."""
        return self.sent_at.astimezone(ZoneInfo(self.recipient_timezone)) if self.sent_at else None

    @property
    def key(self) -> str:
        return f"{self.campaign_id}:{self.step}:{self.prospect_id}"


@dataclass(frozen=True)
class TracedProspect:
    id: int
    campaign_id: str
    status: str
    sends: list[TracedSend]


# By (campaign, prospect): the ledger's primary key starts with the campaign.
_SENDS = """
SELECT s.campaign_id, s.step, s.prospect_id, s.mailbox_id, s.state, s.attempts, s.last_code,
       s.last_enhanced, s.last_reply, s.sent_at, s.updated_at, s.variant,
       coalesce(p.timezone, m.timezone) AS recipient_timezone
FROM unnest($1::text[], $2::bigint[]) AS t(campaign_id, prospect_id)
JOIN sends s ON s.campaign_id = t.campaign_id AND s.prospect_id = t.prospect_id
JOIN prospects p ON p.id = s.prospect_id
JOIN mailboxes m ON m.id = s.mailbox_id
WHERE $3::int IS NULL OR s.step = $3
ORDER BY s.prospect_id, s.step
"""


def parse_send_key(text: str) -> tuple[str, int, int] | None:
    """``cmp-x:2:17`` -> (campaign, step, prospect); None when ``text`` is not a send key."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


async def trace(pool: asyncpg.Pool, target: str) -> list[TracedProspect]:
    """The prospects ``target`` names, each with its sends (or the one send a key names)."""
    step: int | None = None
    key = parse_send_key(target)
    if key is not None:
        campaign_id, step, prospect_id = key
        rows = await pool.fetch(
            "SELECT id, campaign_id, status FROM prospects WHERE id = $1 AND campaign_id = $2",
            prospect_id, campaign_id,
        )
    elif target.isdigit():
        rows = await pool.fetch("SELECT id, campaign_id, status FROM prospects WHERE id = $1", int(target))
    elif "@" in target:
        rows = await pool.fetch(
            "SELECT id, campaign_id, status FROM prospects WHERE lower(email) = lower($1) ORDER BY id",
            target.strip(),
        )
    else:
        raise UnknownRecord(f"{target!r} is not a prospect id, an email address or a send key")
    if not rows:
        raise UnknownRecord(f"no prospect matches {target!r}")
    found = await pool.fetch(_SENDS, [r["campaign_id"] for r in rows], [r["id"] for r in rows], step)
    sends = [TracedSend(**dict(r)) for r in found]
    return [
        TracedProspect(r["id"], r["campaign_id"], r["status"],
                       [s for s in sends if s.prospect_id == r["id"]])
        for r in rows
    ]

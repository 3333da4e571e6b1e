"""Retiring a mailbox (docs/decisions/0040): it sends nothing more. Its prospects in
unfinished campaigns that have not been sent step 1 may move to the campaign's other
mailboxes; the rest keep their thread and end: prospect 'stopped' and open sends
'skipped', both with reason ``mailbox_retired``. Then nothing of the mailbox is left
for a step to wait on, and the campaigns complete."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import asyncpg

from mail.message import message_id_for
from store import StoreError, UnknownRecord
from store.importer import Conn

REASON = "mailbox_retired"
_LIVE = "('created', 'running', 'paused')"


@dataclass(frozen=True)
class MailboxRetired:
    mailbox_id: str
    moved: int  # prospects now on another mailbox of their campaign
    stopped: int  # prospects whose sequence ended (reason mailbox_retired)
    skipped: int  # their open sends, now skipped
    campaigns: list[str] = field(default_factory=list)  # unfinished campaigns it was part of
    running: list[str] = field(default_factory=list)  # of those, running or paused


class LastMailbox(StoreError):
    """Retiring the campaign's last usable mailbox would skip the rest (``force``)."""


async def retire(
    pool: asyncpg.Pool, mailbox_id: str, *, reassign: bool = False, force: bool = False
) -> MailboxRetired:
    """Retire a mailbox, all in one transaction (refused: nothing changes).

    With ``reassign``, prospects not yet sent step 1 (no attempt at it) move to the
    campaign's other mailboxes, each to the one with the most room left today.
    Refused with LastMailbox when the mailbox is an unfinished campaign's last one,
    unless ``force``: then that campaign's prospects of it all end.
    """
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(
            "SELECT retired_at IS NOT NULL FROM mailboxes WHERE id = $1 FOR UPDATE", mailbox_id
        )
        if found is None:
            raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
        if found:
            raise StoreError(f"mailbox {mailbox_id} is already retired")
        campaigns = await conn.fetch(
            f"SELECT c.id, c.state FROM campaign_mailboxes cm JOIN campaigns c ON c.id = cm.campaign_id"
            f" WHERE cm.mailbox_id = $1 AND c.state IN {_LIVE} ORDER BY c.id FOR UPDATE OF c",
            mailbox_id,
        )
        others = {c["id"]: await _room(conn, c["id"], mailbox_id) for c in campaigns}
        last = [c for c, room in others.items() if not room]
        if last and not force:
            raise LastMailbox(
                f"mailbox {mailbox_id} is the last one of campaign(s) {', '.join(last)}: retiring it"
                " would skip their remaining prospects (use --force to do so)"
            )
        await conn.execute("UPDATE mailboxes SET retired_at = now(), updated_at = now() WHERE id = $1",
                           mailbox_id)
        moved = 0
        if reassign:
            for campaign_id, room in others.items():
                if room:
                    moved += await _move_unstarted(conn, campaign_id, mailbox_id, room)
        stopped, skipped = await _end_the_rest(conn, mailbox_id)
    return MailboxRetired(
        mailbox_id, moved, stopped, skipped, [c["id"] for c in campaigns],
        [c["id"] for c in campaigns if c["state"] in ("running", "paused")],
    )


async def _room(conn: Conn, campaign_id: str, retiring: str) -> list[tuple[int, str, str]]:
    """The campaign's other usable mailboxes: (minus room left today, id, domain)."""
    rows = await conn.fetch(
        """
        SELECT m.id, split_part(m.email, '@', 2) AS domain,
               m.daily_limit - (SELECT count(*) FROM sends s WHERE s.mailbox_id = m.id
                                  AND s.first_attempt_at >= date_trunc('day', now() AT TIME ZONE m.timezone)
                                                             AT TIME ZONE m.timezone) AS room
        FROM campaign_mailboxes cm JOIN mailboxes m ON m.id = cm.mailbox_id
        WHERE cm.campaign_id = $1 AND m.id <> $2 AND m.retired_at IS NULL
        """,
        campaign_id, retiring,
    )
    return [(-max(r["room"], 0), r["id"], r["domain"]) for r in rows]


async def _move_unstarted(
    conn: Conn, campaign_id: str, mailbox_id: str, room: list[tuple[int, str, str]]
) -> int:
    """Move the mailbox's active prospects that no attempt at step 1 has reached;
    a step 1 send already claimed (queued, no attempt) moves with its prospect and
    gets the new mailbox's Message-ID."""
    prospects = await conn.fetch(
        "SELECT p.id FROM prospects p LEFT JOIN sends s ON s.campaign_id = p.campaign_id"
        " AND s.step = 1 AND s.prospect_id = p.id"
        " WHERE p.campaign_id = $1 AND p.mailbox_id = $2 AND p.status = 'active'"
        " AND (s.state IS NULL OR (s.state = 'queued' AND s.attempts = 0)) ORDER BY p.id FOR UPDATE OF p",
        campaign_id, mailbox_id,
    )
    heap = list(room)
    heapq.heapify(heap)
    moves = []
    for p in prospects:
        free, target, domain = heapq.heappop(heap)  # the most room left
        moves.append((p["id"], target, message_id_for(campaign_id, 1, p["id"], domain)))
        heapq.heappush(heap, (free + 1, target, domain))
    await conn.executemany("UPDATE prospects SET mailbox_id = $2 WHERE id = $1", [m[:2] for m in moves])
    await conn.executemany(
        "UPDATE sends SET mailbox_id = $2, message_id = $3, updated_at = now()"
        " WHERE campaign_id = $4 AND step = 1 AND prospect_id = $1 AND state = 'queued' AND attempts = 0",
        [(*m, campaign_id) for m in moves],
    )
    return len(moves)


async def _end_the_rest(conn: Conn, mailbox_id: str) -> tuple[int, int]:
    """End the sequence of the mailbox's prospects still active in unfinished campaigns."""
    ended = await conn.fetch(
        f"UPDATE prospects p SET status = 'stopped', stop_reason = '{REASON}' FROM campaigns c"
        f" WHERE c.id = p.campaign_id AND c.state IN {_LIVE} AND p.mailbox_id = $1"
        f" AND p.status = 'active' RETURNING p.id",
        mailbox_id,
    )
    status = await conn.execute(
        f"UPDATE sends SET state = 'skipped', last_reply = '{REASON}', updated_at = now(),"
        " finished_at = now()"
        " WHERE prospect_id = any($1::bigint[]) AND state IN ('queued', 'soft_bounced')"
        " AND data_started_at IS NULL",
        [r["id"] for r in ended],
    )
    return len(ended), int(status.rsplit(" ", 1)[1])

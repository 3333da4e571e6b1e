"""The step scheduler's claim: which prospects are due for a step, read from an index of
open work (docs/decisions/0037).

Each prospect carries the step it waits for and when that step falls due
(``prospects.next_step``, ``next_due_at``; migration 0009). New prospects are due
for step 1 by the columns' defaults; a trigger on ``sends`` moves a prospect on
when a send ends. A claim reads, per mailbox of the campaign, at most
``per_mailbox`` due prospects (plus those in flight it skips) from the partial
index ``prospects_open_work``, so its cost follows the page, not the campaign.

A paused or retired mailbox's prospects are not claimed (decision 0046): its sends
would only come back from the gate, and a step whose every mailbox is paused would
claim them again and again for as long as the pause lasts. The step sleeps instead,
and a resume tells it (activities/mailbox.py).

A campaign with a recipient window (``schedule:``) or a step delayed by business days
(issue 23, decision 0051): each prospect read is planned (worktime/schedule.py) in its
own zone. One whose window is closed, or whose business days have not passed, is not
claimed; its ``next_due_at`` moves to its next opening, so the index holds the first
moment each may be sent, the next-due probe finds the earliest opening anywhere, and
the step sleeps on one timer until it. Each prospect moves once per step (again only
after a schedule change), so a claim's reads still follow its page.

The do-not-contact list (decision 0026) is checked on each prospect read: a listed
one is never claimed; it becomes ``suppressed`` at once (and its open send that
has not begun DATA ends ``skipped``), which also takes it out of the index, so
the next claim does not read it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from store import suppressions, variants
from worktime.schedule import Recipient, Schedule, mailbox_hours, plan_send

log = structlog.get_logger(__name__)

# A claim that met listed prospects claims again at once (they are settled now):
# each round settles up to a page of them. After this many rounds the step
# workflow is told to come back in a moment instead.
_SETTLE_ROUNDS = 10

# The mailbox of ``cm`` may send: neither paused nor retired. Inside each mailbox's
# LATERAL range, where it refers only to ``cm``, it is one primary-key probe per mailbox
# (a one-time filter); on the join itself the planner, lacking statistics of a small
# mailboxes table, started from a scan of every mailbox instead (decision 0046).
SENDING = ("(SELECT NOT mb.paused AND mb.retired_at IS NULL FROM mailboxes mb"
           " WHERE mb.id = cm.mailbox_id)")

# $1 campaign, $2 step, $3 as of, $4 prospects in flight, $5 blocked mailboxes,
# $6 per mailbox. One index range per mailbox, in due order.
DUE = f"""
SELECT p.id AS prospect_id, p.mailbox_id, m.email AS mailbox_email, p.email, p.next_due_at AS due_at,
       p.timezone, p.country, p.subdivision, m.timezone AS mailbox_timezone, m.window_start,
       m.window_end, m.window_days,
       -- Business days count from the previous send: one primary-key probe, only then.
       CASE WHEN $2 > 1 AND (SELECT st.delay_business_days FROM steps st
                             WHERE st.campaign_id = $1 AND st.step = $2) IS NOT NULL
            THEN (SELECT s.sent_at FROM sends s WHERE s.campaign_id = $1 AND s.step = $2 - 1
                    AND s.prospect_id = p.id) END AS previous_sent_at
FROM campaign_mailboxes cm
JOIN mailboxes m ON m.id = cm.mailbox_id
CROSS JOIN LATERAL (
    SELECT p.id, p.mailbox_id, p.email, p.next_due_at, p.timezone, p.country, p.subdivision
    FROM prospects p
    WHERE p.campaign_id = $1 AND p.next_step = $2 AND p.mailbox_id = cm.mailbox_id
      AND p.status = 'active' AND p.next_due_at <= $3 AND p.id <> ALL($4::bigint[])
      AND {SENDING}
    ORDER BY p.next_due_at, p.id LIMIT $6) p
WHERE cm.campaign_id = $1 AND cm.mailbox_id <> ALL($5::text[])
"""

# The earliest due time after $3 of the step's open work: one index probe per mailbox.
NEXT_DUE = f"""
SELECT min(n.next_due_at) FROM campaign_mailboxes cm CROSS JOIN LATERAL (
    SELECT p.next_due_at FROM prospects p
    WHERE p.campaign_id = $1 AND p.next_step = $2 AND p.mailbox_id = cm.mailbox_id
      AND p.status = 'active' AND p.next_due_at > $3 AND p.next_due_at < 'infinity' AND {SENDING}
    ORDER BY p.next_due_at LIMIT 1) n
WHERE cm.campaign_id = $1
"""

# Whether any mailbox of the campaign may send at all (neither paused nor retired): if
# none may, the step before sends nothing either, and a follow-up step need not look
# for what it would have sent until a resume tells it.
SENDABLE = """
SELECT EXISTS (SELECT 1 FROM campaign_mailboxes cm JOIN mailboxes m ON m.id = cm.mailbox_id
               WHERE cm.campaign_id = $1 AND NOT m.paused AND m.retired_at IS NULL)
"""

# How many prospects still wait for the step (due or not, in flight or not), counted
# up to $3: what ends the step is "none", so the count need not read past a page.
OPEN_COUNT = """
SELECT count(*) FROM (SELECT 1 FROM prospects p WHERE p.campaign_id = $1 AND p.next_step = $2
                      AND p.status = 'active' LIMIT $3) open
"""

CLAIM = f"""
WITH due AS ({DUE}),
flagged AS (
    -- One probe of suppressions_entry per prospect read (the address and its domain);
    -- a LATERAL with LIMIT is never hashed, which would read the scope's whole list.
    SELECT d.*, l.hit IS NOT NULL AS listed FROM due d
    LEFT JOIN LATERAL (
        SELECT true AS hit FROM suppressions s
        WHERE s.entry = ANY(ARRAY[lower(d.email), '@' || split_part(lower(d.email), '@', 2)])
          AND {suppressions.IN_CAMPAIGN_SCOPE} LIMIT 1) l ON true
)
SELECT f.*, (SELECT c.schedule FROM campaigns c WHERE c.id = $1) AS schedule,
       (SELECT st.delay_business_days FROM steps st WHERE st.campaign_id = $1 AND st.step = $2)
           AS business_days
FROM flagged f ORDER BY due_at, prospect_id
"""

# Due when a prospect's windows never meet: PostgreSQL's 'infinity', as asyncpg writes it.
NEVER = datetime.max

# Prospects planned later than the claim's instant: each due at its next opening
# ('infinity' when its windows never meet). Guarded by the step, like the trigger.
MOVE_DUE = """
UPDATE prospects p SET next_due_at = m.due
FROM unnest($2::bigint[], $3::timestamptz[]) AS m (id, due)
WHERE p.id = m.id AND p.next_step = $1
"""

# The listed prospects a claim met ($3): 'suppressed', and their open send of this
# step (a prospect waiting for step $2 has no other: earlier steps ended) 'skipped'
# unless DATA began. Its own statement, run only when there are some: as a CTE of
# the claim, the planner could read every send of the step to find none.
SETTLE_LISTED = """
WITH marked AS (
    UPDATE prospects SET status = 'suppressed' WHERE id = ANY($3::bigint[]) AND status = 'active' RETURNING id
)
UPDATE sends SET state = 'skipped', last_reply = 'suppressed', updated_at = now(), finished_at = now()
WHERE campaign_id = $1 AND step = $2 AND prospect_id = ANY(ARRAY(SELECT id FROM marked))
  AND state IN ('queued', 'soft_bounced') AND data_started_at IS NULL
"""


# The new sends' rows, and the variant of every picked send: a new row's from the
# insert, an existing row's (claimed again) from the table; the statement's snapshot
# does not see its own inserts, so each send is read once.
INSERT_SENDS = """
WITH new AS (
    INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, variant)
    SELECT $1, $2, c.prospect_id, c.mailbox_id, c.message_id, c.variant
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[]) AS c (prospect_id, mailbox_id,
         message_id, variant)
    ON CONFLICT DO NOTHING RETURNING prospect_id, variant)
SELECT prospect_id, variant FROM new
UNION ALL
SELECT prospect_id, variant FROM sends
WHERE campaign_id = $1 AND step = $2 AND prospect_id = ANY($3::bigint[])
"""


@dataclass(frozen=True)
class Claimed:
    prospect_id: int
    mailbox_id: str
    variant: str = ""  # as recorded on the send (docs/decisions/0052)
    closes_at: datetime | None = None  # the recipient's window closes (None: it has none)


@dataclass(frozen=True)
class DueBatch:
    sends: list[Claimed]
    next_due_at: datetime | None
    # Prospects still waiting for the step, counted up to the page plus those in
    # flight; only asked when the page is short, since "none" is what ends the step.
    pending: int | None
    settled_listed: int = 0  # listed prospects met and marked 'suppressed' by this claim
    # False when every mailbox of the campaign is paused or retired (asked with pending).
    sendable: bool = True


async def claim_due(
    pool: asyncpg.Pool,
    campaign_id: str,
    step: int,
    as_of: datetime,
    limit: int,
    per_mailbox: int,
    exclude_prospects: list[int],
    blocked_mailboxes: list[str],
    message_id: Callable[[int, str], str],
    variant_key: bytes | None = None,
) -> DueBatch:
    """Up to ``limit`` sends due at ``as_of`` (at most ``per_mailbox`` of one mailbox),
    their ledger rows created as ``queued``.

    ``message_id(prospect_id, mailbox_domain)`` gives each new row its
    Message-ID, fixed here once so every attempt sends the same one; so is its
    variant, chosen under ``variant_key`` (store/variants.py; without a key: '').
    A send claimed again (it went back to the queue) keeps what its row holds.
    """
    settled = 0
    async with pool.acquire() as conn:
        for _ in range(_SETTLE_ROUNDS):
            rows = await conn.fetch(CLAIM, campaign_id, step, as_of, exclude_prospects,
                                    blocked_mailboxes, per_mailbox)
            listed = [r["prospect_id"] for r in rows if r["listed"]]
            ready, later = _in_their_windows([r for r in rows if not r["listed"]], as_of)
            if listed:
                await conn.execute(SETTLE_LISTED, campaign_id, step, listed)
                settled += len(listed)
            if later:
                await conn.execute(MOVE_DUE, step, list(later), list(later.values()))
            if not (listed or later) or len(ready) >= limit:
                break
        picked = ready[:limit]
        rows = [r for r, _ in picked]
        recorded: dict[int, str] = {}
        if picked:
            ids = [r["prospect_id"] for r in rows]
            choice = await variants.step_choice(conn, campaign_id, step)
            recorded = {r["prospect_id"]: r["variant"] for r in await conn.fetch(
                INSERT_SENDS, campaign_id, step, ids, [r["mailbox_id"] for r in rows],
                [message_id(r["prospect_id"], r["mailbox_email"].rsplit("@", 1)[1]) for r in rows],
                [choice.choose(variant_key, campaign_id, step, p) if variant_key else "" for p in ids],
            )}
        if listed or later:
            # Still meeting listed or closed prospects: more may be due behind them; ask again soon.
            next_due: datetime | None = as_of
        else:
            next_due = await conn.fetchval(NEXT_DUE, campaign_id, step, as_of)
        pending, sendable = None, True
        if len(picked) < limit:
            pending = await conn.fetchval(OPEN_COUNT, campaign_id, step,
                                          limit + len(exclude_prospects) + 1)
            sendable = picked != [] or await conn.fetchval(SENDABLE, campaign_id)
    claimed = [Claimed(r["prospect_id"], r["mailbox_id"], recorded.get(r["prospect_id"], ""), closes)
               for r, closes in picked]
    return DueBatch(claimed, next_due, pending, settled, sendable)


async def first_openings(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, schedule: dict[str, object] | None,
    prospects: Sequence[tuple[str | None, str | None, str | None, str]],
) -> list[datetime | None]:
    """When step 1 may first go to each (zone, country, subdivision, mailbox) under
    ``schedule``, from now; None each without a schedule (due at once, as before)."""
    if schedule is None:
        return [None] * len(prospects)
    windows = {r["id"]: mailbox_hours(r["timezone"], r["window_start"], r["window_end"], r["window_days"])
               for r in await conn.fetch("SELECT id, timezone, window_start, window_end, window_days"
                                         " FROM mailboxes WHERE id = any($1::text[])",
                                         sorted({p[3] for p in prospects}))}
    plan, now = Schedule.from_json(schedule), datetime.now(UTC)
    openings = [plan_send(plan, None, Recipient(z, c, s, windows[m]), now, None, now)
                for z, c, s, m in prospects]
    return [o.at if o else NEVER for o in openings]


Ready = list[tuple[asyncpg.Record, datetime | None]]  # a row and when its recipient's window closes


def _in_their_windows(rows: Sequence[asyncpg.Record], as_of: datetime) -> tuple[Ready, dict[int, datetime]]:
    """The rows that may go at ``as_of`` (with when their window closes), and the due
    time of the others: their next opening. Without a schedule or business days, all."""
    if not rows or (rows[0]["schedule"] is None and rows[0]["business_days"] is None):
        return [(r, None) for r in rows], {}
    schedule = Schedule.from_json(rows[0]["schedule"]) if rows[0]["schedule"] else None
    ready: Ready = []
    later: dict[int, datetime] = {}
    for r in rows:
        recipient = Recipient(r["timezone"], r["country"], r["subdivision"], mailbox_hours(
            r["mailbox_timezone"], r["window_start"], r["window_end"], r["window_days"]))
        # asyncpg reads '-infinity' (step 1, due at once) as a naive datetime.min.
        due = r["due_at"] if r["due_at"].tzinfo is not None else as_of
        opening = plan_send(schedule, r["business_days"], recipient, due, r["previous_sent_at"], as_of)
        if opening is None:
            log.warning("recipient_window_never_opens", prospect_id=r["prospect_id"],
                        mailbox_id=r["mailbox_id"], timezone=r["timezone"])
            later[r["prospect_id"]] = NEVER
        elif opening.at > as_of:
            later[r["prospect_id"]] = opening.at
        else:
            ready.append((r, opening.closes))
    return ready, later


async def reschedule_step(conn: asyncpg.Pool | asyncpg.Connection, campaign_id: str, step: int) -> int:
    """After a step's delay changed: the due time of every prospect waiting for it, from
    its previous step's ``sent_at`` and the new delay, no earlier than a postponement of
    the step (the trigger of migration 0017 does the same); return how many moved."""
    status = await conn.execute(
        "UPDATE prospects p SET next_due_at = greatest(step_due_at(p.campaign_id, p.next_step, s.sent_at),"
        " (SELECT max(pp.due_after) FROM postponements pp WHERE pp.prospect_id = p.id"
        "  AND pp.step = p.next_step AND pp.due_after < 'infinity'))"
        " FROM sends s WHERE p.campaign_id = $1 AND p.next_step = $2 AND $2 > 1"
        " AND s.campaign_id = p.campaign_id AND s.step = $2 - 1 AND s.prospect_id = p.id",
        campaign_id, step,
    )
    return int(status.rsplit(" ", 1)[1])

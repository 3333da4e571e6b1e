"""The send ledger: one row per (campaign, step, prospect), and every attempt at it.

States (mail.outcomes.LedgerState): ``queued`` -> ``sending`` -> ``sent`` |
``soft_bounced`` (retrying) | ``hard_bounced`` | ``failed`` | ``unknown``;
``skipped`` when the send will not happen. ``data_started_at`` is set just
before SMTP DATA and cleared with the reply: found set by a later attempt, it
means DATA's outcome is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from mail import outcomes
from mail.outcomes import LedgerState
from store import UnknownRecord, suppressions
from store.accounts import SendingMailbox, sending_mailbox
from store.db import outlasting_restarts
from store.open_work import Claimed as Claimed
from store.open_work import DueBatch as DueBatch
from store.open_work import claim_due as claim_due  # the claim lives there (decision 0037)
from store.sender_identity import SenderIdentity

# How long the outcome of an SMTP transaction waits for PostgreSQL to come back
# (well inside the send activity's start-to-close, 120 s by default).
RECORD_PATIENCE_SECONDS = 45.0

# As plain strings: they go into SQL and into the counts `outreach` prints.
OPEN_STATES = tuple(s.value for s in outcomes.OPEN_STATES)
FINAL_STATES = tuple(s.value for s in outcomes.FINAL_STATES)
ALL_STATES = OPEN_STATES + FINAL_STATES
_OPEN = "(" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"  # ('queued', 'sending', 'soft_bounced')

@dataclass(frozen=True)
class SendContext:
    state: str
    attempts: int
    data_started: bool
    message_id: str
    mailbox_id: str
    prospect_email: str
    prospect_status: str
    fields: dict[str, Any]
    subject: str | None  # None: a follow-up that threads on ``first_subject``
    body: str
    workspace_id: str
    earlier_message_ids: list[str]  # this prospect's sent steps before this one, in order
    mailbox: SendingMailbox  # read in the same query: one round trip per attempt (decision 0038)
    identity: SenderIdentity  # who the message says it is from (decision 0031), same query
    campaign_paused: bool = False  # the operator paused the campaign (decision 0044)
    # The send's step variant (decision 0052); ``spun``: its texts hold spintax (a campaign
    # from before variants has none, and its texts are sent as they were).
    variant: str = ""
    spun: bool = False
    # A threading follow-up's subject: step 1's, in the variant this prospect got.
    first_variant: str = ""
    first_subject: str | None = None


async def send_context(pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int) -> SendContext:
    # The earlier steps by their whole key (one probe of the primary key each, which
    # the planner takes even with no statistics), not a range over the campaign's
    # earlier steps filtered by prospect: that would read the whole campaign.
    row = await pool.fetchrow(
        """
        SELECT s.state, s.attempts, s.data_started_at IS NOT NULL AS data_started, s.message_id,
               s.mailbox_id, p.email, p.status, p.fields, c.workspace_id,
               CASE WHEN v.name IS NULL THEN st.subject ELSE v.subject END AS subject,
               coalesce(v.body, st.body) AS body, v.name IS NOT NULL AS spun, s.variant,
               first.variant AS first_variant, coalesce(first.subject, st.subject) AS first_subject,
               coalesce((SELECT array_agg(e.message_id ORDER BY e.step)
                         FROM generate_series(1, $2 - 1) k
                         JOIN sends e ON e.campaign_id = $1 AND e.step = k AND e.prospect_id = $3
                         WHERE e.state = 'sent'), '{}') AS earlier,
               m AS mailbox, coalesce(c.from_name, m.from_name) AS from_name, m.reply_to,
               coalesce(m.unsubscribe_mailto, m.email) AS unsubscribe_mailto, c.unsubscribe,
               c.paused AS campaign_paused
        FROM sends s
        JOIN campaigns c ON c.id = s.campaign_id
        JOIN prospects p ON p.id = s.prospect_id
        JOIN steps st ON st.campaign_id = s.campaign_id AND st.step = s.step
        JOIN mailboxes m ON m.id = s.mailbox_id
        LEFT JOIN step_variants v ON v.campaign_id = s.campaign_id AND v.step = s.step AND v.name = s.variant
        LEFT JOIN LATERAL (
            SELECT e.variant, fv.subject FROM sends e
            JOIN step_variants fv ON fv.campaign_id = e.campaign_id AND fv.step = 1 AND fv.name = e.variant
            WHERE e.campaign_id = $1 AND e.step = 1 AND e.prospect_id = $3 AND $2 > 1) first ON true
        WHERE s.campaign_id = $1 AND s.step = $2 AND s.prospect_id = $3
        """,
        campaign_id, step, prospect_id,
    )
    if row is None:
        raise UnknownRecord(f"send {campaign_id}:{step}:{prospect_id} is not in the ledger")
    return SendContext(
        state=row["state"], attempts=row["attempts"], data_started=row["data_started"],
        message_id=row["message_id"], mailbox_id=row["mailbox_id"], prospect_email=row["email"],
        prospect_status=row["status"], fields=dict(row["fields"]), subject=row["subject"],
        body=row["body"], workspace_id=row["workspace_id"], earlier_message_ids=list(row["earlier"]),
        mailbox=sending_mailbox(row["mailbox"]),
        identity=SenderIdentity(row["from_name"], row["reply_to"], row["unsubscribe_mailto"],
                                row["unsubscribe"] == "header_and_footer"),
        campaign_paused=row["campaign_paused"], variant=row["variant"], spun=row["spun"],
        first_variant=row["first_variant"] or "", first_subject=row["first_subject"],
    )


_KEY = "campaign_id = $1 AND step = $2 AND prospect_id = $3"


async def begin_attempt(
    pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int, place_at: datetime | None = None,
) -> int:
    """Record that an SMTP transaction is starting, with the instant of its place in the
    limits (decision 0042); return the attempt's id.

    One statement (the send's new state and its attempt row commit together), one
    round trip."""
    attempt_id: int | None = await pool.fetchval(
        f"WITH s AS (UPDATE sends SET state = 'sending', attempts = attempts + 1, updated_at = now(),"
        f" first_attempt_at = coalesce(first_attempt_at, now()) WHERE {_KEY}"
        f" RETURNING campaign_id, step, prospect_id, attempts)"
        " INSERT INTO send_attempts (campaign_id, step, prospect_id, attempt, place_at)"
        " SELECT campaign_id, step, prospect_id, attempts, $4 FROM s RETURNING id",
        campaign_id, step, prospect_id, place_at,
    )
    if attempt_id is None:
        raise UnknownRecord(f"send {campaign_id}:{step}:{prospect_id} is not in the ledger")
    return attempt_id


async def move_place(pool: asyncpg.Pool, attempt_id: int, place_at: datetime | None) -> None:
    """An attempt late for its place took another just before DATA (decision 0042)."""
    await pool.execute("UPDATE send_attempts SET place_at = $2 WHERE id = $1", attempt_id, place_at)


_DATA_START_TRIES = 3


class DataStart(StrEnum):
    """What the check right before DATA found."""

    GO = "go"
    PAUSED = "paused"  # the mailbox was paused meanwhile: the send goes later
    CAMPAIGN_PAUSED = "campaign paused"  # likewise its campaign (decision 0044)
    SUPPRESSED = "suppressed"  # the address (or its domain) was listed meanwhile
    PROSPECT_STOPPED = "prospect stopped"  # it replied, bounced, unsubscribed, was stopped
    SEND_ENDED = "send ended"  # the send itself was ended meanwhile (a cancelled campaign)


async def mark_data_started(
    pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int, erased: Sequence[str] = ()
) -> DataStart:
    """Mark DATA as about to start, unless something that says "stop" was committed
    meanwhile: a mailbox or campaign pause, a suppression entry, the prospect's state,
    or the send's own end. The last moment a stop can still win.

    One statement: whatever was committed before it is seen, so after a pause is
    acknowledged no message of that mailbox reaches DATA. Only when it finds a
    reason to stop does a second query say which. ``erased``: the prospect's address
    hashed under each key of the ring, matched against erasure entries
    (docs/decisions/0032).
    """
    # A pause lifted between the two statements leaves no reason to stop by the time
    # the second looks: ask again rather than guess (a guess of "prospect stopped"
    # once skipped a send for good under a quick pause and resume).
    for _ in range(_DATA_START_TRIES):
        started = await pool.fetchval(
            f"UPDATE sends SET data_started_at = now(), updated_at = now() WHERE {_KEY}"
            " AND state = 'sending'"
            " AND NOT EXISTS (SELECT 1 FROM mailboxes m WHERE m.id = sends.mailbox_id AND m.paused)"
            " AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = sends.campaign_id AND c.paused)"
            " AND EXISTS (SELECT 1 FROM prospects p WHERE p.id = sends.prospect_id AND p.status = 'active'"
            f" {suppressions.UNLISTED} {suppressions.NOT_ERASED})"
            " RETURNING true",
            campaign_id, step, prospect_id, list(erased),
        )
        if started:
            return DataStart.GO
        why = await pool.fetchrow(
            "SELECT s.state, m.paused, c.paused AS campaign_paused, p.status,"
            f" NOT EXISTS (SELECT 1 WHERE true {suppressions.UNLISTED} {suppressions.NOT_ERASED}) AS listed"
            " FROM sends s JOIN mailboxes m ON m.id = s.mailbox_id"
            " JOIN prospects p ON p.id = s.prospect_id JOIN campaigns c ON c.id = s.campaign_id"
            " WHERE s.campaign_id = $1 AND s.step = $2 AND s.prospect_id = $3",
            campaign_id, step, prospect_id, list(erased),
        )
        if why is None or why["state"] != "sending":
            return DataStart.SEND_ENDED
        if why["paused"]:
            return DataStart.PAUSED
        if why["campaign_paused"]:
            return DataStart.CAMPAIGN_PAUSED
        if why["listed"]:
            return DataStart.SUPPRESSED
        if why["status"] != "active":
            return DataStart.PROSPECT_STOPPED
    # Pauses flapping on and off faster than two statements: the send goes back to the
    # queue unsent, as it would for a pause, and is claimed again.
    return DataStart.CAMPAIGN_PAUSED


@dataclass(frozen=True)
class Reply:
    code: int | None
    enhanced: str | None
    text: str


async def finish_attempt(
    pool: asyncpg.Pool,
    campaign_id: str,
    step: int,
    prospect_id: int,
    attempt_id: int,
    state: LedgerState,
    outcome: str,
    reply: Reply,
) -> None:
    """Record an attempt's outcome and the send's new state, in one transaction.

    This is the one write that cannot be redone by asking again: after DATA,
    a send whose reply is not recorded ends ``unknown``. So it outlasts a
    PostgreSQL restart (repeating it writes the same values).
    """
    await outlasting_restarts(
        lambda: _record_outcome(pool, campaign_id, step, prospect_id, attempt_id, state, outcome, reply),
        patience=RECORD_PATIENCE_SECONDS, what="send outcome",
    )


async def _record_outcome(
    pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int, attempt_id: int,
    state: LedgerState, outcome: str, reply: Reply,
) -> None:
    final = state in FINAL_STATES
    # The send and its attempt in one statement (one round trip); a send that ends
    # 'sent' moves its prospect on to the next step (the trigger of migration 0009).
    args = (campaign_id, step, prospect_id, state, reply.code, reply.enhanced, reply.text, final,
            attempt_id, outcome)
    if state != LedgerState.HARD_BOUNCED:
        await pool.execute(_RECORD_OUTCOME, *args)
        return
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_RECORD_OUTCOME, *args)
        await suppressions.record_hard_bounce(conn, campaign_id, prospect_id, reply.enhanced, reply.text)


_RECORD_OUTCOME = (
    f"WITH send AS (UPDATE sends SET state = $4, last_code = $5, last_enhanced = $6, last_reply = $7,"
    f" data_started_at = NULL, updated_at = now(),"
    f" sent_at = CASE WHEN $4 = 'sent' THEN now() ELSE sent_at END,"
    f" finished_at = CASE WHEN $8 THEN now() END WHERE {_KEY} RETURNING 1)"
    " UPDATE send_attempts SET finished_at = now(), outcome = $10, code = $5, enhanced = $6,"
    " reply = $7 WHERE id = $9"
)


async def any_open(pool: asyncpg.Pool, send_keys: list[str]) -> bool:
    """Whether any of these sends (``campaign:step:prospect``) is still open: one that may
    yet go back to the queue unsent and give its place in the day back."""
    parts = [k.split(":") for k in send_keys]
    rows = [(c, int(s), int(p)) for c, s, p in (x for x in parts if len(x) == 3 and x[1].isdigit()
                                                 and x[2].isdigit())]
    if not rows:
        return False
    return bool(await pool.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM sends s JOIN unnest($1::text[], $2::int[], $3::bigint[])"
        f" AS k(campaign_id, step, prospect_id) USING (campaign_id, step, prospect_id)"
        f" WHERE s.state IN {_OPEN})",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
    ))


async def release_day(pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int) -> None:
    """The ledger's side of giving back a send's place in its mailbox's day (nothing was
    sent, the send went back to the queue or ended unsent): a rebuild of the day's budget
    (``mailbox_sends_since``) counts it again only once it is attempted again."""
    await pool.execute(
        f"UPDATE sends SET first_attempt_at = NULL WHERE {_KEY} AND data_started_at IS NULL"
        f" AND state IN ('queued', 'skipped')", campaign_id, step, prospect_id,
    )


async def settle_open(
    pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int, state: LedgerState, reason: str
) -> str:
    """Give a send that is still open a final state; return the state it ends in.

    A send whose DATA started but whose reply was never recorded becomes
    ``unknown`` whatever was asked: it may have been delivered.
    """
    new_state: str | None = await pool.fetchval(
        f"UPDATE sends SET state = CASE WHEN data_started_at IS NOT NULL THEN 'unknown' ELSE $4 END,"
        f" last_reply = coalesce($5, last_reply), data_started_at = NULL,"
        f" updated_at = now(), finished_at = now()"
        f" WHERE {_KEY} AND state IN {_OPEN} RETURNING state",
        campaign_id, step, prospect_id, state, reason or None,
    )
    if new_state is None:
        current: str | None = await pool.fetchval(
            f"SELECT state FROM sends WHERE {_KEY}", campaign_id, step, prospect_id
        )
        if current is None:
            raise UnknownRecord(f"send {campaign_id}:{step}:{prospect_id} is not in the ledger")
        return current
    return new_state


async def suppress_prospect(pool: asyncpg.Pool, prospect_id: int, status: str) -> None:
    await pool.execute(
        "UPDATE prospects SET status = $2 WHERE id = $1 AND status = 'active'", prospect_id, status
    )


async def skip_open_sends(pool: asyncpg.Pool, campaign_id: str, reason: str) -> int:
    """End every open send of a campaign (cancelled): skipped, or unknown if DATA started."""
    status = await pool.execute(
        "UPDATE sends SET state = CASE WHEN data_started_at IS NOT NULL THEN 'unknown'"
        " ELSE 'skipped' END, last_reply = coalesce(last_reply, $2), data_started_at = NULL,"
        " updated_at = now(), finished_at = now()"
        f" WHERE campaign_id = $1 AND state IN {_OPEN}",
        campaign_id, reason,
    )
    return int(status.rsplit(" ", 1)[1])


async def mailbox_sends_since(
    pool: asyncpg.Pool, mailbox_id: str, since: datetime
) -> list[tuple[str, datetime]]:
    """(send key, latest attempt) of a mailbox's sends since ``since``: its used budget.
    The latest attempt, since a send that went again on a later day counts on that day
    (limits/lua/admit.lua); a mailbox's day has few sends, so the lookups are few."""
    rows = await pool.fetch(
        "SELECT s.campaign_id || ':' || s.step || ':' || s.prospect_id AS key,"
        " greatest(s.first_attempt_at, (SELECT max(a.started_at) FROM send_attempts a"
        "   WHERE (a.campaign_id, a.step, a.prospect_id) = (s.campaign_id, s.step, s.prospect_id)))"
        "   AS reserved_at"
        " FROM sends s WHERE s.mailbox_id = $1 AND s.first_attempt_at >= $2",
        mailbox_id, since,
    )
    return [(r["key"], r["reserved_at"]) for r in rows]

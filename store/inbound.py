"""What the inbox reader keeps: the cursor per mailbox and folder, each inbound
message with its class, the sends it answers, and what it changed.

One message is recorded, matched, acted on and the cursor moved past it in one
transaction: a crash before the commit reads it again, after it never does, and
the unique keys (folder+UIDVALIDITY+UID, mailbox+Message-ID) make a second reading
of the same message a no-op (docs/decisions/0035).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from mail.unsubscribe import SendKey
from specs.on_reply import Action, ReplyPolicy, action_for, postpone_until
from store import suppressions
from worktime.schedule import Recipient, Schedule, mailbox_hours, recipient_calendar

Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True)
class Cursor:
    uidvalidity: int | None
    last_uid: int
    read_at: datetime | None


async def cursor(conn: Conn | asyncpg.Pool, mailbox_id: str, folder: str) -> Cursor | None:
    row = await conn.fetchrow(
        "SELECT uidvalidity, last_uid, read_at FROM inbox_cursors WHERE mailbox_id = $1 AND folder = $2",
        mailbox_id, folder,
    )
    return Cursor(row["uidvalidity"], row["last_uid"], row["read_at"]) if row else None


async def reset_cursor(conn: Conn | asyncpg.Pool, mailbox_id: str, folder: str, uidvalidity: int) -> None:
    """Start a folder over under a new UIDVALIDITY (its messages are read again by date)."""
    await conn.execute(
        "INSERT INTO inbox_cursors (mailbox_id, folder, uidvalidity, last_uid) VALUES ($1, $2, $3, 0)"
        " ON CONFLICT (mailbox_id, folder) DO UPDATE SET uidvalidity = $3, last_uid = 0",
        mailbox_id, folder, uidvalidity,
    )


async def finish_pass(pool: asyncpg.Pool, mailbox_id: str, folder: str) -> None:
    await pool.execute(
        "UPDATE inbox_cursors SET read_at = now(), error = NULL, error_at = NULL"
        " WHERE mailbox_id = $1 AND folder = $2",
        mailbox_id, folder,
    )


async def record_error(pool: asyncpg.Pool, mailbox_id: str, folders: list[str], error: str) -> None:
    """Why reading failed, on each folder's cursor (shown by `mailboxes status`)."""
    await pool.executemany(
        "INSERT INTO inbox_cursors (mailbox_id, folder, error, error_at) VALUES ($1, $2, $3, now())"
        " ON CONFLICT (mailbox_id, folder) DO UPDATE SET error = $3, error_at = now()",
        [(mailbox_id, f, error[:500]) for f in folders],
    )


async def first_sent_at(pool: asyncpg.Pool, mailbox_id: str) -> datetime | None:
    found: datetime | None = await pool.fetchval(
        "SELECT min(sent_at) FROM sent_messages WHERE mailbox_id = $1", mailbox_id
    )
    return found


# -- matching ------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    campaign_id: str
    step: int
    prospect_id: int
    recipient: str
    how: str  # thread | from | recipient


_SENT = "SELECT campaign_id, step, prospect_id, recipient FROM sent_messages"


def _match(row: asyncpg.Record | None, how: str) -> Match | None:
    if row is None:
        return None
    return Match(row["campaign_id"], row["step"], row["prospect_id"], row["recipient"], how)


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


async def match_thread(conn: Conn, mailbox_id: str, ids: list[str], sender: str | None) -> Match | None:
    """The latest of our sends from this mailbox that ``ids`` name. A message from
    another domain than the send's recipient does not count: naming a Message-ID
    (unforgeable, but seen by whoever got it forwarded) is not enough to stop a
    prospect's sequence from outside their organisation. ``sender`` None: a report
    from a mail server, whose own address says nothing (the caller decides)."""
    if not ids:
        return None
    rows = await conn.fetch(
        f"{_SENT} WHERE message_id = any($2::text[]) AND mailbox_id = $1 ORDER BY sent_at DESC, step DESC",
        mailbox_id, ids,
    )
    for row in rows:
        if sender is None or _domain(sender) == _domain(row["recipient"]):
            return _match(row, "thread")
    return None


async def match_sender(conn: Conn, mailbox_id: str, sender: str | None, since: datetime) -> Match | None:
    """The fallback: the latest send from this mailbox to ``sender`` in a campaign that
    is still running or paused."""
    if sender is None:
        return None
    row = await conn.fetchrow(
        f"{_SENT} sm WHERE sm.mailbox_id = $1 AND lower(sm.recipient) = lower($2) AND sm.sent_at >= $3"
        " AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = sm.campaign_id"
        "             AND c.state IN ('created', 'running', 'paused'))"
        " ORDER BY sm.sent_at DESC, sm.step DESC LIMIT 1",
        mailbox_id, sender, since,
    )
    return _match(row, "from")


async def match_recipient(conn: Conn, mailbox_id: str, recipient: str, since: datetime) -> Match | None:
    """A bounce naming only the original recipient: our latest send to it."""
    row = await conn.fetchrow(
        f"{_SENT} WHERE mailbox_id = $1 AND lower(recipient) = lower($2) AND sent_at >= $3"
        " ORDER BY sent_at DESC, step DESC LIMIT 1",
        mailbox_id, recipient, since,
    )
    return _match(row, "recipient")


async def match_token(conn: Conn, send: SendKey) -> Match | None:
    """The send a verified unsubscribe token names, if its prospect is still there."""
    email = await conn.fetchval(
        "SELECT p.email FROM prospects p JOIN campaigns c ON c.id = p.campaign_id"
        " WHERE p.id = $1 AND p.campaign_id = $2 AND c.workspace_id = $3",
        send.prospect_id, send.campaign_id, send.workspace_id,
    )
    return Match(send.campaign_id, send.step, send.prospect_id, email, "token") if email else None


# -- recording and acting ------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    mailbox_id: str
    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None
    kind: str
    verdict: str | None
    match: Match | None
    detail: str
    received_at: datetime | None
    # Proof enough to act in full (inbox/evidence.py, decision 0050); when not, only the
    # one sequence a message names may stop, and the message counts in no rate.
    proven: bool = True
    # A person's message: what it means (inbox/intent.py); never its text.
    intent: str | None = None
    intent_confidence: float | None = None
    intent_reason: str | None = None
    return_date: date | None = None
    referred: str | None = None  # a referral's address, kept only in `referrals`


async def record(conn: Conn, found: Inbound) -> int | None:
    """The new row's id, or None if this message was recorded before (same UID, or the
    same Message-ID after a renumbering)."""
    m = found.match
    row_id: int | None = await conn.fetchval(
        "INSERT INTO inbound_messages (mailbox_id, folder, uidvalidity, uid, message_id, class, verdict,"
        " campaign_id, step, prospect_id, matched_by, detail, received_at, proven, intent,"
        " intent_confidence, intent_reason, return_date)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        " ON CONFLICT DO NOTHING RETURNING id",
        found.mailbox_id, found.folder, found.uidvalidity, found.uid, found.message_id, found.kind,
        found.verdict, m.campaign_id if m else None, m.step if m else None,
        m.prospect_id if m else None, m.how if m else None, found.detail[:500] or None, found.received_at,
        found.proven, found.intent, found.intent_confidence,
        found.intent_reason[:200] if found.intent_reason else None, found.return_date,
    )
    return row_id


async def advance(conn: Conn, mailbox_id: str, folder: str, uidvalidity: int, uid: int) -> None:
    await conn.execute(
        "INSERT INTO inbox_cursors (mailbox_id, folder, uidvalidity, last_uid) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (mailbox_id, folder) DO UPDATE SET uidvalidity = $3,"
        " last_uid = greatest(inbox_cursors.last_uid, $4)",
        mailbox_id, folder, uidvalidity, uid,
    )


_OPEN_NOT_STARTED = "state IN ('queued', 'soft_bounced') AND data_started_at IS NULL"


async def stop_prospects(conn: Conn, prospect_ids: list[int], status: str, reason: str) -> list[int]:
    """Mark active prospects ``status`` and end their sends that have not reached DATA
    ``skipped``; return the ids that changed. A send already past the gate is stopped by
    the check right before DATA (store/ledger.py mark_data_started), which sees the state."""
    changed = [r["id"] for r in await conn.fetch(
        "UPDATE prospects SET status = $2 WHERE id = any($1::bigint[]) AND status = 'active' RETURNING id",
        prospect_ids, status,
    )]
    if changed:
        await conn.execute(
            "UPDATE sends SET state = 'skipped', last_reply = $2, updated_at = now(), finished_at = now()"
            f" WHERE prospect_id = any($1::bigint[]) AND {_OPEN_NOT_STARTED}",
            changed, reason,
        )
    return changed


@dataclass(frozen=True)
class Acted:
    """What one recorded message changed."""

    stopped: list[int]
    action: str | None = None  # on_reply's action (specs/on_reply.py), None: nothing to decide
    postponed_to: datetime | None = None


async def act(conn: Conn, row_id: int, found: Inbound) -> list[int]:
    """Apply one recorded message; return the prospects it stopped."""
    return (await act_on(conn, row_id, found)).stopped


async def act_on(conn: Conn, row_id: int, found: Inbound, as_of: datetime | None = None) -> Acted:
    """Apply one recorded message: a bounce or complaint as before, a person's message
    by the campaign's on_reply action for its intent (docs/decisions/0053). ``as_of``:
    the instant a postponement counts from (default: the transaction's ``now()``)."""
    m = found.match
    if m is None:
        return Acted([])
    options = await conn.fetchrow(
        "SELECT workspace_id, stop_on_reply, stop_on_auto_reply, on_reply FROM campaigns WHERE id = $1",
        m.campaign_id,
    )
    if options is None:
        return Acted([])
    if found.kind in ("bounce", "complaint"):
        acted = Acted(await _act_on_report(conn, found, m, options["workspace_id"]))
    else:
        acted = await _act_on_person(conn, row_id, found, m, options, as_of)
    if acted.stopped or acted.postponed_to is not None:
        await conn.execute("UPDATE inbound_messages SET acted = true WHERE id = $1", row_id)
    if acted.action is not None:
        await conn.execute("UPDATE inbound_messages SET action = $2 WHERE id = $1", row_id, acted.action)
    return acted


async def _act_on_report(conn: Conn, found: Inbound, m: Match, workspace_id: str) -> list[int]:
    if not found.proven:
        return []  # a report without proof changes nothing (decision 0050)
    if found.kind == "complaint":
        stopped = await stop_prospects(conn, [m.prospect_id], "suppressed", "prospect complaint")
        await _suppress(conn, workspace_id, m.recipient, "complaint", f"inbox of {found.mailbox_id}")
        return stopped
    if found.verdict != "hard":
        return []
    stopped = await stop_prospects(conn, [m.prospect_id], "hard_bounced", "hard bounce (DSN)")
    await _suppress(conn, workspace_id, m.recipient, "hard_bounce", found.detail)
    # The send bounced after all: its ledger row says so (while retention keeps it),
    # which is what the deliverability guard counts (decision 0033).
    await conn.execute(
        "UPDATE sends SET state = 'hard_bounced', last_reply = $4, updated_at = now()"
        " WHERE campaign_id = $1 AND step = $2 AND prospect_id = $3 AND state = 'sent'",
        m.campaign_id, m.step, m.prospect_id, f"DSN: {found.detail}"[:500],
    )
    return stopped


async def _act_on_person(conn: Conn, row_id: int, found: Inbound, m: Match, options: asyncpg.Record,
                         as_of: datetime | None) -> Acted:
    stored = options["on_reply"]
    policy = ReplyPolicy.from_stored(json.loads(stored) if isinstance(stored, str) else stored,
                                     options["stop_on_reply"], options["stop_on_auto_reply"])
    action = action_for(found.kind, found.intent, policy, options["stop_on_auto_reply"])
    if found.intent == "referral" and found.proven:
        await _record_referral(conn, row_id, found, m, options["workspace_id"])
    if not found.proven:
        # Short of proof, a message may stop the one sequence it names and nothing more.
        kind = "unsubscribe" if action is Action.SUPPRESS else "reply"
        stops = action in (Action.STOP, Action.STOP_WORKSPACE, Action.SUPPRESS)
        return Acted(await _stop_unproven(conn, m, kind, "campaign" if stops else "none"), action.value)
    if action is Action.POSTPONE:
        return await _postpone(conn, row_id, found, m, policy, as_of)
    if action is Action.SUPPRESS:
        opt_out = found.kind == "unsubscribe" or found.intent == "unsubscribe"
        status, source = ("unsubscribed", "unsubscribe") if opt_out else ("replied", "reply")
        why = f"prospect {found.intent or found.kind}"
        stopped = await stop_prospects(conn, [m.prospect_id], status, why)
        await _suppress(conn, options["workspace_id"], m.recipient, source, f"inbox of {found.mailbox_id}")
        return Acted(stopped, action.value)
    if action in (Action.STOP, Action.STOP_WORKSPACE):
        return Acted(await _stop_replied(conn, m, options["workspace_id"], action is Action.STOP_WORKSPACE),
                     action.value)
    return Acted([], action.value)


async def _stop_replied(conn: Conn, m: Match, workspace_id: str, workspace: bool) -> list[int]:
    stopped = await stop_prospects(conn, [m.prospect_id], "replied", "prospect replied")
    if workspace:
        others = [r["id"] for r in await conn.fetch(
            "SELECT p.id FROM prospects p JOIN campaigns c ON c.id = p.campaign_id"
            " WHERE c.workspace_id = $1 AND lower(p.email) = lower($2) AND p.id <> $3",
            workspace_id, m.recipient, m.prospect_id,
        )]
        stopped += await stop_prospects(conn, others, "stopped", "prospect replied in another campaign")
    return stopped


async def _postpone(conn: Conn, row_id: int, found: Inbound, m: Match, policy: ReplyPolicy,
                    as_of: datetime | None) -> Acted:
    """Move the prospect's next step to the return date plus the buffer (or by
    postpone_default), at most ``max_postpones`` times; past that the reply is ignored."""
    row = await conn.fetchrow(
        "SELECT p.next_step, p.next_due_at, p.status, p.timezone, p.country, p.subdivision, c.schedule,"
        " mb.timezone AS mailbox_timezone, mb.window_start, mb.window_end, mb.window_days, now() AS now,"
        " (SELECT count(*) FROM postponements pp WHERE pp.prospect_id = p.id) AS done"
        " FROM prospects p JOIN mailboxes mb ON mb.id = p.mailbox_id JOIN campaigns c ON c.id = p.campaign_id"
        " WHERE p.id = $1 FOR UPDATE OF p",
        m.prospect_id,
    )
    if row is None or row["status"] != "active" or row["next_step"] is None:
        return Acted([], "postpone")  # nothing left to move: the sequence ended
    if row["done"] >= policy.max_postpones:
        await _note(conn, row_id, f"postpone_max ({policy.max_postpones}) reached: ignored")
        return Acted([], Action.IGNORE.value)
    # The return date is the recipient's: read in their zone, the buffer counted on their
    # working days (issue 23's calendar). A recipient window is kept by the claim, which
    # moves a prospect due outside it to its next opening (store/open_work.py).
    schedule = Schedule.from_json(row["schedule"]) if row["schedule"] else None
    recipient = Recipient(row["timezone"], row["country"], row["subdivision"], mailbox_hours(
        row["mailbox_timezone"], row["window_start"], row["window_end"], row["window_days"]))
    calendar = recipient_calendar(schedule, recipient)
    until, why = postpone_until(found.return_date, as_of or row["now"], calendar, policy)
    due_before: datetime = row["next_due_at"]
    if due_before.tzinfo is None:
        # asyncpg reads 'infinity' (windows that never meet, decision 0051) and
        # '-infinity' (step 1, due at once) as naive datetime.max and min.
        due_after = due_before if due_before == datetime.max else until
    else:
        due_after = max(due_before, until)
    await conn.execute("UPDATE prospects SET next_due_at = $2 WHERE id = $1", m.prospect_id, due_after)
    await conn.execute(
        "INSERT INTO postponements"
        " (inbound_id, campaign_id, prospect_id, step, due_before, due_after, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        row_id, m.campaign_id, m.prospect_id, row["next_step"], due_before, due_after, why,
    )
    return Acted([], Action.POSTPONE.value, due_after)


async def _note(conn: Conn, row_id: int, note: str) -> None:
    await conn.execute(
        "UPDATE inbound_messages SET detail = left(concat_ws('; ', detail, $2::text), 500) WHERE id = $1",
        row_id, note,
    )


async def _record_referral(conn: Conn, row_id: int, found: Inbound, m: Match, workspace_id: str) -> None:
    await conn.execute(
        "INSERT INTO referrals (inbound_id, workspace_id, campaign_id, prospect_id, referred_email)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (inbound_id) DO NOTHING",
        row_id, workspace_id, m.campaign_id, m.prospect_id, found.referred,
    )


async def _stop_unproven(conn: Conn, m: Match, kind: str, stop_on_reply: str) -> list[int]:
    """A reply or unsubscribe matched by an address its provider did not vouch for
    stops the one sequence it names (stopping is the safe direction for the recipient)
    and nothing else: no list, no other campaign, and `stopped`, not `replied` or
    `unsubscribed`, so no rate counts it. A report without proof changes nothing."""
    if m.how != "from":
        return []
    if kind == "reply" and stop_on_reply != "none":
        return await stop_prospects(conn, [m.prospect_id], "stopped", "reply from an unauthenticated sender")
    if kind == "unsubscribe":
        return await stop_prospects(conn, [m.prospect_id], "stopped",
                                    "unsubscribe request from an unauthenticated sender")
    return []


async def _suppress(conn: Conn, workspace_id: str, address: str, source: str, reason: str) -> None:
    """The workspace's do-not-contact list (decision 0026), in its canonical form."""
    await conn.execute(
        "INSERT INTO suppressions (workspace_id, entry, source, reason) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (workspace_id, entry) DO NOTHING",
        workspace_id, suppressions.entry_of(address), source, reason[:500] or None,
    )


async def forget_old_sent(pool: asyncpg.Pool, older_than: timedelta, batch: int = 5000) -> int:
    """Drop sent Message-IDs past the reply-matching window (OUTREACH_REPLY_MATCH_DAYS)."""
    status = await pool.execute(
        "DELETE FROM sent_messages WHERE message_id IN (SELECT message_id FROM sent_messages"
        " WHERE sent_at < now() - $1::interval LIMIT $2)",
        older_than, batch,
    )
    return int(status.rsplit(" ", 1)[1])


async def complaint_rate(pool: asyncpg.Pool, mailbox_id: str) -> float:
    """Complaints over sends of the mailbox in the last 24 hours (0 without sends)."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM inbound_messages WHERE mailbox_id = $1 AND class = 'complaint'"
        "        AND proven AND recorded_at > now() - interval '1 day') AS complaints,"
        " (SELECT count(*) FROM sent_messages WHERE mailbox_id = $1"
        "        AND sent_at > now() - interval '1 day') AS sends",
        mailbox_id,
    )
    return row["complaints"] / row["sends"] if row and row["sends"] else 0.0


async def replies_by_step(pool: asyncpg.Pool, campaign_id: str) -> dict[int, int]:
    """Replies recorded per step (the step whose send they answered)."""
    rows = await pool.fetch(
        "SELECT step, count(*) AS n FROM inbound_messages WHERE campaign_id = $1 AND class = 'reply'"
        " AND proven GROUP BY step",
        campaign_id,
    )
    return {r["step"]: r["n"] for r in rows}


async def inbound_of(pool: asyncpg.Pool, prospect_ids: list[int]) -> list[asyncpg.Record]:
    """The inbound messages matched to these prospects, oldest first (for `outreach trace`)."""
    return list(await pool.fetch(
        "SELECT prospect_id, recorded_at, received_at, class, verdict, mailbox_id, folder, uid,"
        " campaign_id, step, matched_by, detail, proven, intent, intent_confidence, intent_reason,"
        " return_date, action FROM inbound_messages"
        " WHERE prospect_id = any($1::bigint[]) ORDER BY recorded_at, id",
        prospect_ids,
    ))


EVENT_CLASSES = ("reply", "bounce", "unsubscribe", "complaint")


async def events_since(pool: asyncpg.Pool, since: datetime) -> list[dict[str, object]]:
    """The inbound messages other systems follow (replies, bounces, unsubscribes,
    complaints) recorded since ``since``: ids, class and time, never content."""
    rows = await pool.fetch(
        "SELECT id, recorded_at, received_at, class, verdict, mailbox_id, campaign_id, step, prospect_id,"
        " matched_by, proven, detail FROM inbound_messages WHERE recorded_at >= $1"
        " AND class = any($2::text[])"
        " ORDER BY recorded_at, id",
        since, list(EVENT_CLASSES),
    )
    return [
        {**dict(r), "send_key": f"{r['campaign_id']}:{r['step']}:{r['prospect_id']}"
         if r["campaign_id"] else None}
        for r in rows
    ]


# -- what operators look at (issue 25) ------------------------------------------------


async def list_inbound(
    pool: asyncpg.Pool, *, intent: str | None = None, campaign_id: str | None = None,
    since: datetime | None = None, limit: int = 500,
) -> list[dict[str, object]]:
    """Newest first: time, mailbox, prospect, class, intent, confidence, campaign, step,
    what on_reply did. No text: the reason names a rule, never words of the message."""
    rows = await pool.fetch(
        "SELECT id, recorded_at, mailbox_id, prospect_id, class, intent, intent_confidence, campaign_id,"
        " step, action, return_date, proven FROM inbound_messages"
        " WHERE ($1::text IS NULL OR intent = $1) AND ($2::text IS NULL OR campaign_id = $2)"
        " AND ($3::timestamptz IS NULL OR recorded_at >= $3) ORDER BY recorded_at DESC, id DESC LIMIT $4",
        intent, campaign_id, since, limit,
    )
    return [{**dict(r), "intent_confidence": round(r["intent_confidence"], 2)
             if r["intent_confidence"] is not None else None} for r in rows]


async def referrals(pool: asyncpg.Pool, campaign_id: str | None = None,
                    workspace_id: str | None = None) -> list[dict[str, object]]:
    """The people replies named instead (for export): who named them, where, when."""
    rows = await pool.fetch(
        "SELECT r.created_at, r.workspace_id, r.campaign_id, r.prospect_id, r.referred_email,"
        " i.mailbox_id, i.step FROM referrals r LEFT JOIN inbound_messages i ON i.id = r.inbound_id"
        " WHERE ($1::text IS NULL OR r.campaign_id = $1) AND ($2::text IS NULL OR r.workspace_id = $2)"
        " ORDER BY r.created_at, r.inbound_id",
        campaign_id, workspace_id,
    )
    return [dict(r) for r in rows]


async def intents_by_step(pool: asyncpg.Pool, campaign_id: str) -> dict[int, dict[str, int]]:
    """Per step, how many matched replies of each intent class it drew."""
    rows = await pool.fetch(
        "SELECT step, intent, count(*) AS n FROM inbound_messages WHERE campaign_id = $1"
        " AND intent IS NOT NULL AND step IS NOT NULL GROUP BY step, intent ORDER BY step, intent",
        campaign_id,
    )
    found: dict[int, dict[str, int]] = {}
    for r in rows:
        found.setdefault(r["step"], {})[r["intent"]] = r["n"]
    return found


async def postponements_of(pool: asyncpg.Pool, prospect_ids: list[int]) -> list[asyncpg.Record]:
    """Each move of these prospects' next step by an out-of-office reply (for `trace`)."""
    return list(await pool.fetch(
        "SELECT prospect_id, created_at, step, due_before, due_after, reason FROM postponements"
        " WHERE prospect_id = any($1::bigint[]) ORDER BY created_at, id",
        prospect_ids,
    ))

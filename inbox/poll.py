"""One pass over a mailbox's inbox: read what is new, classify it, act on it.

Per folder: EXAMINE gives the UIDVALIDITY. Under the cursor's UIDVALIDITY only
UIDs above its last one are read; on a first read, or when the UIDVALIDITY
changed (the server renumbered the folder), the folder is read again by date
from the last good pass (a day's slack) and the Message-ID unique key drops what
was already recorded (docs/decisions/0035). Each message is recorded, matched,
acted on and passed by the cursor in one transaction (store/inbound.py).

What a message may change is weighed by inbox/evidence.py (docs/decisions/0050).
Classifying runs in a thread: a stranger's message costs a bounded amount of CPU
(inbox/headers.py), and that CPU is never spent on the event loop the send worker
shares.

A failing pass (refused login, dropped connection, timeout) is recorded on the
mailbox's cursors and ends that mailbox's pass only; sending is not affected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from config.secrets import KeyRing
from inbox.classify import Classified, InboundClass, classify
from inbox.evidence import Evidence, weigh
from inbox.imap import ImapError, ImapReader
from mail.oauth import TokenRefreshFailed
from store import StoreError, inbound, webhook_events
from store.inbound import Inbound
from store.inbox_settings import ImapAccount, imap_account, imap_mailboxes
from telemetry import metrics

log = structlog.get_logger(__name__)

RESCAN_SLACK = timedelta(days=1)  # IMAP SINCE has a day's resolution, in the server's zone


@dataclass(frozen=True)
class PollLimits:
    max_message_bytes: int = 2 * 2**20
    match_window: timedelta = timedelta(days=90)
    timeout: float = 30.0


@dataclass(frozen=True)
class Found:
    """One new inbound message, as `outreach inbox poll` prints it."""

    mailbox_id: str
    folder: str
    uid: int
    kind: str
    verdict: str | None
    send_key: str | None  # campaign:step:prospect of the send it answers
    prospect_id: int | None
    stopped: list[int]
    detail: str
    stop_latency: float | None = None  # seconds from arrival in the inbox to the stop
    proven: bool = True  # proof enough to act in full (inbox/evidence.py)
    intent: str | None = None  # a person's message: what it means (inbox/intent.py)
    action: str | None = None  # what the campaign's on_reply did about it
    postponed_to: str | None = None  # an out-of-office: when the prospect's next step now goes

    def line(self) -> str:
        what = self.kind + (f" ({self.verdict})" if self.verdict else "") + (
            f" [{self.intent}]" if self.intent else "")
        matched = self.send_key or "unmatched"
        stopped = f" stopped {','.join(map(str, self.stopped))}" if self.stopped else ""
        short = "" if self.proven or self.send_key is None or self.verdict == "unproven" else " unproven"
        later = f" postponed to {self.postponed_to}" if self.postponed_to else ""
        return f"{self.mailbox_id} {self.folder} uid {self.uid} {what} {matched}{short}{stopped}{later}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class PassResult:
    mailbox_id: str
    found: list[Found] = field(default_factory=list)
    error: str | None = None


Reader = Callable[[ImapAccount, float], ImapReader]
# A mailbox's current OAuth2 access token (refreshed when close to expiry), for XOAUTH2.
TokenSource = Callable[[str], Awaitable[str]]


def _reader(account: ImapAccount, timeout: float) -> ImapReader:
    return ImapReader(account, timeout=timeout)


async def poll_all(
    pool: asyncpg.Pool, ring: KeyRing, limits: PollLimits, mailbox_id: str | None = None,
    concurrency: int = 10, tokens: TokenSource | None = None,
) -> list[PassResult]:
    """One pass over every mailbox with IMAP settings (or the one named)."""
    ids = await imap_mailboxes(pool, mailbox_id)
    gate = asyncio.Semaphore(concurrency)

    async def one(mid: str) -> PassResult:
        async with gate:
            return await poll_mailbox(pool, mid, ring=ring, limits=limits, tokens=tokens)

    results = list(await asyncio.gather(*(one(mid) for mid in ids)))
    await inbound.forget_old_sent(pool, limits.match_window)
    await webhook_events.forget_old(pool, limits.match_window)
    return results


async def poll_mailbox(
    pool: asyncpg.Pool, mailbox_id: str, *, ring: KeyRing, limits: PollLimits, reader: Reader = _reader,
    tokens: TokenSource | None = None,
) -> PassResult:
    result = PassResult(mailbox_id)
    try:
        account = await imap_account(pool, mailbox_id, ring=ring)
        if account.oauth:
            if tokens is None:
                raise StoreError(f"mailbox {mailbox_id!r} logs in with OAuth2 and no token source was given")
            account = replace(account, password=await tokens(mailbox_id))
    except (StoreError, TokenRefreshFailed) as exc:
        result.error = str(exc)
        await inbound.record_error(pool, mailbox_id, ["INBOX"], result.error)
        return result
    try:
        async with reader(account, limits.timeout) as imap:
            for folder in account.folders:
                await _read_folder(pool, imap, account, folder, limits, result, ring)
                await inbound.finish_pass(pool, mailbox_id, folder)
    except ImapError as exc:
        result.error = str(exc)
        await inbound.record_error(pool, mailbox_id, list(account.folders), result.error)
        log.warning("inbox_read_failed", mailbox_id=mailbox_id, error=result.error)
    except (asyncpg.PostgresError, OSError):
        raise  # the database itself: the whole pass fails and is retried
    except Exception as exc:  # noqa: BLE001 - a server answer the client library chokes on
        # One mailbox's odd server must not end every mailbox's pass; what was committed stays.
        result.error = f"unexpected {type(exc).__name__}: {exc}"
        log.exception("inbox_read_failed", mailbox_id=mailbox_id)
        await inbound.record_error(pool, mailbox_id, list(account.folders), result.error)
    return result


async def _read_folder(
    pool: asyncpg.Pool, imap: ImapReader, account: ImapAccount, folder: str, limits: PollLimits,
    result: PassResult, ring: KeyRing,
) -> None:
    mailbox_id = account.mailbox_id
    uidvalidity = await imap.examine(folder)
    cursor = await inbound.cursor(pool, mailbox_id, folder)
    if cursor is not None and cursor.uidvalidity == uidvalidity:
        uids = await imap.uids_after(cursor.last_uid)
    else:
        start = await _rescan_from(pool, mailbox_id, cursor, limits)
        if cursor is not None and cursor.uidvalidity is not None:
            log.warning("inbox_uidvalidity_changed", mailbox_id=mailbox_id, folder=folder,
                        was=cursor.uidvalidity, now=uidvalidity, rescan_from=start.isoformat())
        await inbound.reset_cursor(pool, mailbox_id, folder, uidvalidity)
        uids = await imap.uids_since(start.date())
    since = datetime.now(UTC) - limits.match_window
    for uid in uids:
        fetched = await imap.fetch(uid, limits.max_message_bytes)
        classified = await asyncio.to_thread(
            classify, fetched.raw, headers_only=fetched.headers_only, authserv_id=account.authserv_id)
        found = await _apply(pool, mailbox_id, folder, uidvalidity, uid, classified, since,
                             fetched.arrived_at, ring)
        if found is not None:
            result.found.append(found)
            log.info("inbound_message", mailbox_id=mailbox_id, folder=folder, uid=uid, kind=found.kind,
                     verdict=found.verdict, send_key=found.send_key, stopped=found.stopped)


async def _rescan_from(
    pool: asyncpg.Pool, mailbox_id: str, cursor: inbound.Cursor | None, limits: PollLimits
) -> datetime:
    now = datetime.now(UTC)
    if cursor is not None and cursor.read_at is not None:
        start = cursor.read_at
    else:  # a first read: from the mailbox's first recorded send (today if none)
        start = await inbound.first_sent_at(pool, mailbox_id) or now
    return max(start, now - limits.match_window) - RESCAN_SLACK


async def _apply(
    pool: asyncpg.Pool, mailbox_id: str, folder: str, uidvalidity: int, uid: int, c: Classified,
    since: datetime, arrived_at: datetime | None, ring: KeyRing,
) -> Found | None:
    async with pool.acquire() as conn, conn.transaction():
        evidence = await weigh(conn, mailbox_id, c, since, ring)
        match = evidence.match
        kind = c.kind
        if kind is InboundClass.REPLY and match is None:
            kind = InboundClass.OTHER  # a person wrote, but not in answer to one of our sends
        verdict = evidence.verdict.value if evidence.verdict else None
        detail = "; ".join(filter(None, [evidence.reason(), c.detail]))
        intent = c.intent
        found = Inbound(mailbox_id, folder, uidvalidity, uid, c.message_id, kind.value, verdict, match,
                        detail, c.received_at, proven=evidence.proven,
                        intent=intent.kind.value if intent else None,
                        intent_confidence=intent.confidence if intent else None,
                        intent_reason=intent.reason if intent else None,
                        return_date=intent.return_date if intent else None,
                        referred=intent.referred if intent else None)
        row_id = await inbound.record(conn, found)
        acted = await inbound.act_on(conn, row_id, found) if row_id is not None else inbound.Acted([])
        stopped = acted.stopped
        await inbound.advance(conn, mailbox_id, folder, uidvalidity, uid)
    if row_id is None:
        return None
    _count_unproven(mailbox_id, kind, evidence)
    key = f"{match.campaign_id}:{match.step}:{match.prospect_id}" if match else None
    latency = None
    if stopped and arrived_at is not None:
        latency = max(0.0, (datetime.now(UTC) - arrived_at).total_seconds())
    # A bounce short of proof shows as such, so nothing that follows verdicts (the
    # deliverability guard's trigger, outreach_inbound_bounces) takes its claim.
    shown = verdict if evidence.proven else ("unproven" if kind is InboundClass.BOUNCE else None)
    return Found(mailbox_id, folder, uid, kind.value, shown, key, match.prospect_id if match else None,
                 stopped, detail, latency, proven=evidence.proven, intent=found.intent, action=acted.action,
                 postponed_to=acted.postponed_to.isoformat() if acted.postponed_to else None)


def _count_unproven(mailbox_id: str, kind: InboundClass, evidence: Evidence) -> None:
    if evidence.short is not None:
        metrics.INBOUND_UNPROVEN.labels(mailbox_id, kind.value, evidence.short.value).inc()

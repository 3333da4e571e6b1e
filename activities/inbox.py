"""The inbox poll activity: one pass over every mailbox with IMAP settings (inbox/poll.py).

A mailbox that cannot be read is recorded and counted, not raised: one broken
inbox must not fail (and retry) the pass of all the others.
"""

from __future__ import annotations

import time
from collections import Counter

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bounce_guard import BounceGuard
from activities.inbox_models import InboxPollInput, InboxPollResult, WebhookInput, WebhookResult
from activities.oauth_tokens import access_token
from config.names import DELIVER_WEBHOOK, POLL_INBOXES
from config.secrets import KeyRing
from inbox.poll import PassResult, PollLimits, TokenSource, poll_all
from inbox.webhook import WebhookMisconfigured, check_config, post_events
from mail.oauth import HttpTokenEndpoint, TokenEndpoint
from store import StoreError, accounts, webhook_events
from store.inbound import complaint_rate
from telemetry import metrics

log = structlog.get_logger(__name__)


def oauth_token_source(pool: asyncpg.Pool, tokens: TokenEndpoint, ring: KeyRing) -> TokenSource:
    """XOAUTH2 for IMAP uses the mailbox's SMTP token (activities/oauth_tokens.py)."""

    async def token(mailbox_id: str) -> str:
        grant = await accounts.oauth_grant(pool, mailbox_id, ring=ring)
        if grant is None:
            raise StoreError(f"mailbox {mailbox_id!r} has no OAuth2 grant")
        return await access_token(pool, tokens, mailbox_id, grant, ring=ring)

    return token


class InboxActivities:
    def __init__(self, pool: asyncpg.Pool, ring: KeyRing, webhook_url: str = "",
                 webhook_secret: str = "", tokens: TokenEndpoint | None = None,
                 guard: BounceGuard | None = None, webhook_include_address: bool = False) -> None:
        self._pool = pool
        self._ring = ring
        self._guard = guard  # hard DSNs count toward the mailbox's bounce rate
        self.tokens = oauth_token_source(pool, tokens or HttpTokenEndpoint(), ring)
        # From the worker's own settings: a URL may hold a token, and neither belongs in
        # a workflow's input or history.
        self._webhook = (webhook_url, webhook_secret)
        self._include_address = webhook_include_address

    @activity.defn(name=DELIVER_WEBHOOK)
    async def deliver_webhook(self, inp: WebhookInput) -> WebhookResult:
        """POST every undelivered event, a batch at a time; a refusal raises (Temporal
        retries with backoff) and keeps the rest for the next attempt."""
        url, secret = self._webhook
        if not url:
            return WebhookResult(delivered=0)
        try:
            check_config(url, secret)
        except WebhookMisconfigured as exc:
            # This worker's own settings: every retry would fail the same way.
            raise ApplicationError(str(exc), type="WebhookMisconfigured", non_retryable=True) from None
        delivered = 0
        while events := await webhook_events.undelivered(self._pool, inp.batch_size, self._include_address):
            await post_events(url, secret, events)
            await webhook_events.mark_delivered(self._pool, [str(e["id"]) for e in events])
            delivered += len(events)
            activity.heartbeat(delivered)
        return WebhookResult(delivered=delivered)

    @activity.defn(name=POLL_INBOXES)
    async def poll_inboxes(self, inp: InboxPollInput) -> InboxPollResult:
        limits = PollLimits(max_message_bytes=inp.max_message_bytes, match_window=inp.match_window,
                            timeout=inp.imap_timeout_seconds)
        results = await poll_all(self._pool, self._ring, limits, concurrency=inp.concurrency,
                                 tokens=self.tokens)
        for r in results:
            await self.after_pass(r)
        found = Counter(f.kind for r in results for f in r.found)
        result = InboxPollResult(
            mailboxes=len(results), found=dict(found),
            stopped=sum(len(f.stopped) for r in results for f in r.found),
            failed=[r.mailbox_id for r in results if r.error],
        )
        log.info("inbox_poll", **result.model_dump())
        return result

    async def after_pass(self, r: PassResult) -> None:
        """What follows one mailbox's pass, from the schedule or from IDLE (inbox/listen.py):
        metrics, and the deliverability guard's judgement."""
        await self._export(r)
        # A hard bounce (recorded and acted on) or a block (counted only) may take
        # the mailbox over the guard's rates.
        if self._guard is not None and any(
                f.kind == "bounce" and ((f.verdict == "hard" and f.stopped) or f.verdict == "blocked")
                for f in r.found):
            await self._guard.after_bounce(r.mailbox_id)

    async def _export(self, r: PassResult) -> None:
        if r.error:
            metrics.IMAP_ERRORS.labels(r.mailbox_id).inc()
        else:
            metrics.INBOX_LAST_READ.labels(r.mailbox_id).set(time.time())
        for f in r.found:
            metrics.INBOUND.labels(r.mailbox_id, f.kind).inc()
            if f.kind == "bounce":
                metrics.INBOUND_BOUNCES.labels(r.mailbox_id, f.verdict or "unread").inc()
            if f.stop_latency is not None:
                metrics.REPLY_TO_STOP.observe(f.stop_latency)
            if f.intent is not None and f.send_key is not None:
                metrics.REPLY_INTENTS.labels(r.mailbox_id, f.intent, f.action or "none").inc()
            if f.postponed_to is not None:
                metrics.POSTPONEMENTS.labels(r.mailbox_id).inc()
        metrics.COMPLAINT_RATE.labels(r.mailbox_id).set(await complaint_rate(self._pool, r.mailbox_id))

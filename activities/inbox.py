"""The inbox poll activity: one pass over every mailbox with IMAP settings (inbox/poll.py).

A mailbox that cannot be read is recorded and counted, not raised: one broken
inbox must not fail (and retry) the pass of all the others.
"""

from __future__ import annotations

from collections import Counter

import asyncpg
import structlog
from temporalio import activity

from activities.inbox_models import InboxPollInput, InboxPollResult
from config.names import POLL_INBOXES
from config.secrets import KeyRing
from inbox.poll import PollLimits, poll_all

log = structlog.get_logger(__name__)


class InboxActivities:
    def __init__(self, pool: asyncpg.Pool, ring: KeyRing) -> None:
        self._pool = pool
        self._ring = ring

    @activity.defn(name=POLL_INBOXES)
    async def poll_inboxes(self, inp: InboxPollInput) -> InboxPollResult:
        limits = PollLimits(max_message_bytes=inp.max_message_bytes, match_window=inp.match_window,
                            timeout=inp.imap_timeout_seconds)
        results = await poll_all(self._pool, self._ring, limits, concurrency=inp.concurrency)
        found = Counter(f.kind for r in results for f in r.found)
        result = InboxPollResult(
            mailboxes=len(results), found=dict(found),
            stopped=sum(len(f.stopped) for r in results for f in r.found),
            failed=[r.mailbox_id for r in results if r.error],
        )
        log.info("inbox_poll", **result.model_dump())
        return result

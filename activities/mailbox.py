"""Mailbox activities: make a pause or resume take effect everywhere sends look."""

from __future__ import annotations

import asyncpg
import structlog
from temporalio import activity

from activities.models import MailboxStateInput
from config.names import APPLY_MAILBOX_STATE
from limits.store import LimitStore
from store import accounts, bounce_guard

log = structlog.get_logger(__name__)


class MailboxActivities:
    def __init__(self, pool: asyncpg.Pool, store: LimitStore) -> None:
        self._pool = pool
        self._store = store

    @activity.defn(name=APPLY_MAILBOX_STATE)
    async def apply_mailbox_state(self, inp: MailboxStateInput) -> None:
        # PostgreSQL first: it is what the send activity checks just before
        # DATA, so once this commits no new message of the mailbox is sent.
        # Redis follows so the gate stops handing out slots.
        if not inp.paused and await bounce_guard.restart_window(self._pool, inp.mailbox_id):
            # Lifting the bounce guard's pause: its count starts again (docs/decisions/0033).
            log.info("bounce_guard_window_restarted", mailbox_id=inp.mailbox_id)
        await accounts.set_paused(self._pool, inp.mailbox_id, inp.paused, inp.reason, inp.paused_by)
        await self._store.set_paused(inp.mailbox_id, inp.paused, inp.reason)
        log.info("mailbox_state_applied", mailbox_id=inp.mailbox_id, paused=inp.paused,
                 reason=inp.reason)

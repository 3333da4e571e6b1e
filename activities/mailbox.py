"""Mailbox activities: make a pause or resume take effect everywhere sends look."""

from __future__ import annotations

import asyncpg
import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from activities.models import MailboxStateInput
from config.names import APPLY_MAILBOX_STATE, CAMPAIGN_CLAIM_AGAIN_SIGNAL, campaign_workflow_id
from limits.store import LimitStore
from store import accounts, bounce_guard
from store.campaigns import running_campaigns_using

log = structlog.get_logger(__name__)


class MailboxActivities:
    def __init__(
        self, pool: asyncpg.Pool, store: LimitStore, temporal: Client | None = None, id_prefix: str = "",
    ) -> None:
        self._pool = pool
        self._store = store
        # Tells a resumed mailbox's campaigns to claim again (None: nobody is told, and a
        # step finds the mailbox at its next claim).
        self._temporal = temporal
        self._id_prefix = id_prefix

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
        if not inp.paused:
            await self._tell_campaigns(inp.mailbox_id)

    async def _tell_campaigns(self, mailbox_id: str) -> None:
        """A paused mailbox's prospects are not claimed, and a step with nothing else to do
        sleeps without a timer (decision 0046): once the resume is in force, tell the
        campaigns that use the mailbox to claim again, as retiring one does."""
        if self._temporal is None:
            return
        for campaign_id in await running_campaigns_using(self._pool, mailbox_id):
            handle = self._temporal.get_workflow_handle(campaign_workflow_id(self._id_prefix, campaign_id))
            try:
                await handle.signal(CAMPAIGN_CLAIM_AGAIN_SIGNAL)
            except RPCError as exc:  # it ended meanwhile: nothing of it is left to claim
                log.info("campaign_not_told_of_resume", campaign_id=campaign_id, error=str(exc))

"""Ledger activities: claim due sends, settle the ones that end without an SMTP outcome,
move campaigns between states."""

from __future__ import annotations

import asyncpg
import structlog
from temporalio import activity

from activities.models import (
    CampaignStateInput,
    DueSend,
    DueSendsInput,
    DueSendsResult,
    SettleFailedInput,
)
from config.names import DUE_SENDS, FINISH_CAMPAIGN, SET_CAMPAIGN_STATE, SETTLE_SEND
from config.secrets import KeyRing
from mail.message import message_id_for
from mail.outcomes import LedgerState
from store import campaign_controls, campaigns, ledger
from variants.choice import KEY_PURPOSE

log = structlog.get_logger(__name__)


class LedgerActivities:
    def __init__(self, pool: asyncpg.Pool, ring: KeyRing | None = None) -> None:
        self._pool = pool
        # Keyed Message-IDs (decision 0036); without a ring (older callers) the plain digest.
        self._id_key = ring.derived_key("message-id") if ring is not None else None
        # Which variant a new send gets (docs/decisions/0052); without a ring, the implicit one.
        self._variant_key = ring.derived_key(KEY_PURPOSE) if ring is not None else None

    @activity.defn(name=DUE_SENDS)
    async def due_sends(self, inp: DueSendsInput) -> DueSendsResult:
        def message_id(prospect_id: int, domain: str) -> str:
            return message_id_for(inp.campaign_id, inp.step, prospect_id, domain, self._id_key)

        batch = await ledger.claim_due(
            self._pool, inp.campaign_id, inp.step, inp.as_of, inp.limit, inp.per_mailbox,
            inp.exclude_prospects, inp.blocked_mailboxes, message_id, self._variant_key,
        )
        return DueSendsResult(
            # The variant in the result puts it in the step's Event History.
            sends=[DueSend(prospect_id=c.prospect_id, mailbox_id=c.mailbox_id, variant=c.variant,
                           closes_at=c.closes_at)
                   for c in batch.sends],
            next_due_at=batch.next_due_at,
            pending=batch.pending,
            sendable=batch.sendable,
        )

    @activity.defn(name=SETTLE_SEND)
    async def settle_send(self, inp: SettleFailedInput) -> str:
        k = inp.key
        state = await ledger.settle_open(
            self._pool, k.campaign_id, k.step, k.prospect_id, LedgerState.FAILED, inp.reason
        )
        log.warning("send_settled", campaign_id=k.campaign_id, step=k.step,
                    prospect_id=k.prospect_id, state=state, reason=inp.reason)
        return state

    @activity.defn(name=FINISH_CAMPAIGN)
    async def finish_campaign(self, campaign_id: str) -> bool:
        """Completed, unless prospects added meanwhile still have steps to go."""
        return await campaign_controls.finish(self._pool, campaign_id)

    @activity.defn(name=SET_CAMPAIGN_STATE)
    async def set_campaign_state(self, inp: CampaignStateInput) -> None:
        await campaigns.set_state(self._pool, inp.campaign_id, inp.state)
        if inp.state == "cancelled":
            skipped = await ledger.skip_open_sends(self._pool, inp.campaign_id, "campaign cancelled")
            log.info("campaign_cancelled", campaign_id=inp.campaign_id, open_sends_ended=skipped)

"""The deliverability guard (docs/decisions/0033): a mailbox whose hard-bounce rate
over its last sends is too high is paused, as an operator would pause it.

Evaluated after a send settles ``hard_bounced`` (never for a delivered one: the
hot path stays as it was), by the send activity; the inbox reader calls
``BounceGuard.after_bounce`` the same way once it has recorded a DSN's hard bounce
in the ledger. The pause goes through the MailboxWorkflow's operator ``pause``
signal, reached by name (an activity never imports a workflow), so only an
operator's ``mailboxes resume`` lifts it.
"""

from __future__ import annotations

import asyncpg
import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.models import MailboxInput
from config.names import MAILBOX_WORKFLOW, PAUSE_SIGNAL, mailbox_workflow_id, send_task_queue
from mail.outcomes import PauseReason
from store import accounts, bounce_guard
from telemetry.metrics import BOUNCE_GUARD_PAUSES

log = structlog.get_logger(__name__)


class BounceGuard:
    def __init__(
        self, pool: asyncpg.Pool, id_prefix: str, window: int, rate: float,
        temporal: Client | None = None, block_rate: float | None = None,
    ) -> None:
        self._pool = pool
        self._prefix = id_prefix
        self._window = window
        self._rate = rate
        self._block_rate = rate if block_rate is None else block_rate
        # Inside an activity, the worker's own client is used when none is given.
        self._temporal = temporal

    async def after_bounce(self, mailbox_id: str) -> bool:
        """Judge the mailbox's recent sends after a hard bounce was recorded; pause it if
        they are over the limit. Returns whether it asked for the pause."""
        recent = await bounce_guard.recent_sends(self._pool, mailbox_id, self._window)
        if recent.over(self._window, self._rate):
            why = (f"{recent.bounced} hard bounces in the last {recent.sends} sends"
                   f" (more than {self._rate:g} of {self._window})")
        elif recent.blocked_over(self._window, self._block_rate):
            why = (f"{recent.blocked} sends blocked by the recipients' servers (5.7.x) in the"
                   f" last {recent.sends} sends (more than {self._block_rate:g} of {self._window})")
        else:
            return False
        record = await accounts.mailbox_record(self._pool, mailbox_id)
        if record.paused:  # already paused, by the guard or anyone else: that pause stands
            return False
        reason = PauseReason.BOUNCE_RATE.text(why)
        temporal = self._temporal or activity.client()
        await temporal.start_workflow(
            MAILBOX_WORKFLOW,
            MailboxInput(mailbox_id=mailbox_id, paused=False, reason="",
                         paused_by=await accounts.pause_source(self._pool, mailbox_id) or ""),
            id=mailbox_workflow_id(self._prefix, mailbox_id),
            task_queue=send_task_queue(self._prefix),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=PAUSE_SIGNAL,
            start_signal_args=[reason],
        )
        BOUNCE_GUARD_PAUSES.labels(provider=record.provider).inc()
        log.warning("mailbox_paused_for_bounce_rate", mailbox_id=mailbox_id,
                    bounced=recent.bounced, blocked=recent.blocked, sends=recent.sends)
        return True

"""The inbox poll, started by its Temporal schedule every OUTREACH_INBOX_POLL_SECONDS:
one bounded activity run over every mailbox with IMAP settings (docs/decisions/0034)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.inbox_models import InboxPollInput, InboxPollResult
    from config.names import POLL_INBOXES
    from workflows.maintenance import run_bounded


@workflow.defn
class InboxPollWorkflow:
    @workflow.run
    async def run(self, inp: InboxPollInput) -> InboxPollResult:
        return await run_bounded(POLL_INBOXES, inp, InboxPollResult)

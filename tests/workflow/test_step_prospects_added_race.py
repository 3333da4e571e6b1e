"""A step told of added prospects while a claim is reading the ledger.

The claim read the ledger before the prospects were written: it finds nothing left
(pending 0). If the step took that stale answer for "done", it would end and the
campaign would have to start it again for the new prospect; it claims again instead.
Here the claim is held until the signal has reached the step.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import DueSendsInput, DueSendsResult
from config.names import DUE_SENDS, campaign_workflow_id, send_task_queue, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from specs.prospects import Prospect
from store import campaign_controls
from tests.factories import add_campaign, add_mailbox
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, StepTuning


class ProspectsAddedDuringAnEmptyClaim:
    """The real `due_sends`, except that the first claim to find nothing left adds a
    prospect and tells the campaign, and answers only once step 1 has been told."""

    def __init__(self, ledger: object, client: Client, pool: asyncpg.Pool, campaign_id: str,
                 settings: Settings) -> None:
        self.ledger, self.client, self.pool = ledger, client, pool
        self.campaign_id = campaign_id
        self.campaign_workflow_id = campaign_workflow_id(settings.task_queue, campaign_id)
        self.step1_id = step_workflow_id(settings.task_queue, campaign_id, 1)
        self.held = 0

    @activity.defn(name=DUE_SENDS)
    async def due_sends(self, inp: DueSendsInput) -> DueSendsResult:
        result: DueSendsResult = await self.ledger.due_sends(inp)  # type: ignore[attr-defined]
        if not result.sends and result.pending == 0 and not self.held:
            self.held += 1
            late = Prospect("late@example.com", {}, "test")
            await campaign_controls.add_prospects(self.pool, self.campaign_id, [late])
            campaign = self.client.get_workflow_handle(self.campaign_workflow_id)
            await campaign.signal(CampaignWorkflow.prospects_added)
            await self._told()
        return result

    async def _told(self) -> None:
        handle = self.client.get_workflow_handle(self.step1_id)
        while True:
            history = await handle.fetch_history()
            if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                   and e.workflow_execution_signaled_event_attributes.signal_name == "prospects_added"
                   for e in history.events):
                return
            await asyncio.sleep(0.1)


async def test_a_step_told_of_prospects_during_an_empty_claim_claims_again_instead_of_ending(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
) -> None:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    ledger, others = take_activity(build_activities(settings, db, redis_client, transport), DUE_SENDS)
    async with LocalSmtpServer() as inbox:
        await add_mailbox(db, "mb-added", inbox.port)
        campaign_id, _ = await add_campaign(db, ["mb-added"], ["first@example.com"], [("Hi", "Body", 0)])
        double = ProspectsAddedDuringAnEmptyClaim(ledger, env.client, db, campaign_id, settings)
        async with Worker(
            env.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
            activities=[*others, double.due_sends],
        ):
            handle = await env.client.start_workflow(
                CampaignWorkflow.run,
                CampaignInput(id_prefix=settings.task_queue, campaign_id=campaign_id,
                              delays=[timedelta(0)], tuning=StepTuning(search_attributes=False)),
                id=double.campaign_workflow_id, task_queue=send_task_queue(settings.task_queue),
            )
            await asyncio.wait_for(handle.result(), timeout=60)
            history = await handle.fetch_history()
    await transport.close()
    assert double.held == 1, "the race was not staged: no claim found the ledger empty"
    assert sorted(m.rcpt_tos[0] for m in inbox.messages) == ["first@example.com", "late@example.com"]
    started = [e for e in history.events
               if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]
    assert len(started) == 1, "step 1 ended on the stale claim and was started again"

"""Found by the chaos suite (tests/chaos): a step workflow that claims while its last send is in
flight, and sees that send end before the claim's answer, never wakes again.

The claim counts the in-flight send as pending (its row is open), so the step does
not end; by the time the workflow sleeps nothing is in flight, so it waits for a
signal with no timer: the campaign stays `running` with every send final. Here
the claim is held until the last send has ended, which the chaos run hit by chance.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import DueSendsInput, DueSendsResult, SendInput, SendResult
from config.names import DUE_SENDS, SEND_EMAIL, campaign_workflow_id, send_task_queue
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, StepTuning


class LastSendEndsDuringClaim:
    """The real `send_email` and `due_sends`, except that the send to `last` waits
    for a claim to begin, and that claim answers only after the send has ended."""

    def __init__(self, sends: object, ledger: object) -> None:
        self.sends, self.ledger = sends, ledger
        self.last = -1
        self.claim_began, self.last_ended = asyncio.Event(), asyncio.Event()

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, inp: SendInput) -> SendResult:
        if inp.key.prospect_id == self.last:
            await self.claim_began.wait()
        try:
            return await self.sends.send_email(inp)  # type: ignore[attr-defined, no-any-return]
        finally:
            if inp.key.prospect_id == self.last:
                self.last_ended.set()

    @activity.defn(name=DUE_SENDS)
    async def due_sends(self, inp: DueSendsInput) -> DueSendsResult:
        result: DueSendsResult = await self.ledger.due_sends(inp)  # type: ignore[attr-defined]
        if self.last in inp.exclude_prospects and not self.last_ended.is_set():
            self.claim_began.set()
            await self.last_ended.wait()
            await asyncio.sleep(1.0)  # the send's completion reaches the server first
        return result


async def test_a_step_whose_last_send_ends_during_a_claim_still_completes(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
) -> None:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    sends, activities = take_activity(build_activities(settings, db, redis_client, transport),
                                      SEND_EMAIL)
    ledger, others = take_activity(activities, DUE_SENDS)
    doubles = LastSendEndsDuringClaim(sends, ledger)
    async with LocalSmtpServer() as inbox, Worker(
        env.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=[*others, doubles.send_email, doubles.due_sends],
    ):
        await add_mailbox(db, "mb-wake", inbox.port)
        emails = ["a@example.com", "b@example.com", "c@example.com"]
        campaign_id, ids = await add_campaign(db, ["mb-wake"], emails, [("Hi", "Body", 0)])
        doubles.last = ids[-1]
        handle = await env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(id_prefix=settings.task_queue, campaign_id=campaign_id, delays=[timedelta(0)],
                          tuning=StepTuning(per_mailbox=3, search_attributes=False)),
            id=campaign_workflow_id(settings.task_queue, campaign_id),
            task_queue=send_task_queue(settings.task_queue),
        )
        # Real seconds: a stuck workflow has no timer for the server to skip to.
        await asyncio.wait_for(handle.result(), timeout=20)
    await transport.close()
    assert len(inbox.messages) == 3

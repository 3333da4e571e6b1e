"""A step whose claim is answered together with the news that the step before has ended.

The claim read the ledger while the step before still had a send in flight: it found
nothing left (pending 0). Delivered after that read, the `previous_step_done` signal
made the old loop take the stale answer for "nothing left, and nothing will come" and
end, so the prospects the step before reached last never got this step. Here the claim is
held until the signal has reached the step, which a worker kill or a slow worker can
do by chance.
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

from activities.models import DueSendsInput, DueSendsResult, SendInput, SendResult
from config.names import DUE_SENDS, SEND_EMAIL, campaign_workflow_id, send_task_queue, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, StepTuning


class StaleClaimMeetsPreviousDone:
    """The real `send_email` and `due_sends`, except that step 1's send to `last` waits
    until step 2 has read an empty ledger, and that read is answered only once step 2
    has received `previous_step_done`."""

    def __init__(self, sends: object, ledger: object, client: Client, step2_id: str) -> None:
        self.sends, self.ledger = sends, ledger
        self.client, self.step2_id = client, step2_id
        self.last = -1
        self.stale_read = asyncio.Event()
        self.held = 0

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, inp: SendInput) -> SendResult:
        if inp.key.step == 1 and inp.key.prospect_id == self.last:
            await self.stale_read.wait()
        return await self.sends.send_email(inp)  # type: ignore[attr-defined, no-any-return]

    @activity.defn(name=DUE_SENDS)
    async def due_sends(self, inp: DueSendsInput) -> DueSendsResult:
        result: DueSendsResult = await self.ledger.due_sends(inp)  # type: ignore[attr-defined]
        if inp.step == 2 and result.pending == 0 and not self.stale_read.is_set():
            self.held += 1
            self.stale_read.set()  # step 1 may now send its last message and end
            await self._signalled()
        return result

    async def _signalled(self) -> None:
        handle = self.client.get_workflow_handle(self.step2_id)
        while True:
            history = await handle.fetch_history()
            if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                   and e.workflow_execution_signaled_event_attributes.signal_name == "previous_step_done"
                   for e in history.events):
                return
            await asyncio.sleep(0.1)


async def test_a_step_told_the_step_before_ended_during_a_claim_claims_again(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
) -> None:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    sends, activities = take_activity(build_activities(settings, db, redis_client, transport),
                                      SEND_EMAIL)
    ledger, others = take_activity(activities, DUE_SENDS)
    async with LocalSmtpServer() as inbox:
        await add_mailbox(db, "mb-race", inbox.port)
        emails = ["a@example.com", "b@example.com", "last@example.com"]
        campaign_id, ids = await add_campaign(db, ["mb-race"], emails, [("Hi", "Body", 0), ("Re", "More", 0)])
        doubles = StaleClaimMeetsPreviousDone(
            sends, ledger, env.client, step_workflow_id(settings.task_queue, campaign_id, 2))
        doubles.last = ids[-1]
        async with Worker(
            env.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
            activities=[*others, doubles.send_email, doubles.due_sends],
        ):
            handle = await env.client.start_workflow(
                CampaignWorkflow.run,
                CampaignInput(id_prefix=settings.task_queue, campaign_id=campaign_id,
                              delays=[timedelta(0), timedelta(0)],
                              tuning=StepTuning(per_mailbox=3, search_attributes=False)),
                id=campaign_workflow_id(settings.task_queue, campaign_id),
                task_queue=send_task_queue(settings.task_queue),
            )
            await asyncio.wait_for(handle.result(), timeout=60)
    await transport.close()
    assert doubles.held == 1, "the race was not staged: step 2 never read an empty ledger first"
    steps = sorted((m.rcpt_tos[0], len(m.references) + 1) for m in inbox.messages)
    assert len(inbox.messages) == 6, steps
    rows = await db.fetch("SELECT step, state FROM sends WHERE campaign_id = $1", campaign_id)
    assert sorted((r["step"], r["state"]) for r in rows) == [(1, "sent")] * 3 + [(2, "sent")] * 3

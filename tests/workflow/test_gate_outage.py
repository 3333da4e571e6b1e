"""The gate fails for 30 minutes (Redis down), on the time-skipping server: each gate
call gives up within its bound and the mailbox waits on a durable timer with a growing
backoff, so the step's history grows by a few events per wait instead of a workflow
task heartbeat every few seconds; afterwards every prospect gets its email once
(docs/decisions/0043). On the code before, the gate retried inside the workflow task
for ever and this test runs into its timeout."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.api.history.v1 import HistoryEvent
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.gate import GateActivities
from activities.models import GateInput, GateResult
from config.names import GATE_SEND, campaign_workflow_id, send_task_queue, step_workflow_id
from config.settings import Settings
from limits import LimitStoreUnavailable
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox
from tests.workflow.conftest import take_activity
from tests.workflow.test_send_retries import run_campaign
from workers.registry import WORKFLOWS, build_activities

OUTAGE = timedelta(minutes=30)
EVENT_BUDGET = 100  # the step's history during the outage; before, ~1,350 events an hour


class FailingGate:
    """The real gate under its real name, failing as it does while Redis is down until
    the workflow time of the call (GateInput.now) reaches ``back_at``."""

    def __init__(self, real: GateActivities, back_at: datetime) -> None:
        self.real = real
        self.back_at = back_at
        self.failed = 0
        self.last_failed = 0.0  # time.monotonic() of the last failed attempt

    @activity.defn(name=GATE_SEND)
    async def gate_send(self, inp: GateInput) -> GateResult:
        if inp.now is not None and inp.now < self.back_at:
            self.failed += 1
            self.last_failed = time.monotonic()
            raise LimitStoreUnavailable("redis: Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return await self.real.gate_send(inp)


@pytest.fixture
async def outage_worker(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
) -> AsyncIterator[FailingGate]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, activities = take_activity(build_activities(settings, db, redis_client, transport), GATE_SEND)
    gate = FailingGate(real, await env.get_current_time() + OUTAGE)
    async with Worker(
        env.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=[*activities, gate.gate_send],
    ):
        yield gate
        # The SDK leaves each failed attempt's start-to-close timer running; one that
        # fires after the worker has shut down panics in a Rust thread (noise, not a
        # failure). Outlive them: the gate's start-to-close is 10 s.
        await asyncio.sleep(max(0.0, gate.last_failed + 11 - time.monotonic()))
    await transport.close()


async def step_history(env: WorkflowEnvironment, settings: Settings, campaign_id: str) -> list[HistoryEvent]:
    """Every event of every run of the campaign's step 1, following continue-as-new."""
    campaign = env.client.get_workflow_handle(campaign_workflow_id(settings.task_queue, campaign_id))
    (run_id,) = [e.child_workflow_execution_started_event_attributes.workflow_execution.run_id
                 async for e in campaign.fetch_history_events()
                 if e.HasField("child_workflow_execution_started_event_attributes")]
    workflow_id = step_workflow_id(settings.task_queue, campaign_id, 1)
    events: list[HistoryEvent] = []
    while run_id:
        history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events += history.events
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.HasField("workflow_execution_continued_as_new_event_attributes") else "")
    return events


@pytest.mark.timeout(180)  # the code before retried the gate for ever in real time
async def test_a_30_minute_gate_outage_adds_few_events_and_every_prospect_gets_one_email(
    env: WorkflowEnvironment, db: asyncpg.Pool, inbox: LocalSmtpServer, settings: Settings,
    outage_worker: FailingGate,
) -> None:
    await add_mailbox(db, "mb-1", inbox.port)
    await add_mailbox(db, "mb-2", inbox.port)
    emails = [f"out{i}@example.com" for i in range(4)]
    campaign_id, _ = await add_campaign(db, ["mb-1", "mb-2"], emails, [("Hi", "Hello", 0)])

    await run_campaign(env, settings, campaign_id)

    events = await step_history(env, settings, campaign_id)
    during = [e for e in events if e.event_time.ToDatetime(UTC) < outage_worker.back_at]
    print(f"\nstep history: {len(during)} events during the {OUTAGE} outage"
          f" ({outage_worker.failed} failed gate attempts), {len(events)} in all")
    assert outage_worker.failed > 0
    assert len(during) < EVENT_BUDGET
    assert Counter(r for m in inbox.messages for r in m.rcpt_tos) == Counter(emails)
    states = await db.fetch("SELECT state FROM sends WHERE campaign_id = $1", campaign_id)
    assert [r["state"] for r in states] == ["sent"] * len(emails)

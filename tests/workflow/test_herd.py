"""Herd freedom: 2,000 sends queued behind 25 mailboxes capped at 40 a day, on the
time-skipping server across two simulated days. Each mailbox sends exactly its cap
on each day, and the cost per delivered email (gate calls, durable timers) stays a
small constant: capped mailboxes are skipped until their next day instead of every
queued send waking up to ask again."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import GateInput, GateResult, GateVerdict
from config.names import GATE_SEND, campaign_workflow_id, send_task_queue
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, StepTuning

MAILBOXES, CAP, SENDS = 25, 40, 2000


class CountedGate:
    """The real gate, counting its calls and noting, for each send, the mailbox and the
    (workflow-time, UTC) day of the first "go": the day its reservation counts against."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.calls = 0
        self.reserved: dict[str, tuple[str, date]] = {}

    @activity.defn(name=GATE_SEND)
    async def gate_send(self, inp: GateInput) -> GateResult:
        self.calls += 1
        result: GateResult = await self.real.gate_send(inp)  # type: ignore[attr-defined]
        if result.verdict is GateVerdict.GO and inp.now is not None:
            self.reserved.setdefault(str(inp.key), (inp.mailbox_id, inp.now.astimezone(UTC).date()))
        return result


@pytest.fixture
async def counted_worker(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings
) -> AsyncIterator[CountedGate]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, activities = take_activity(build_activities(settings, db, redis_client, transport), GATE_SEND)
    gate = CountedGate(real)
    async with Worker(
        env.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=[*activities, gate.gate_send],
        max_concurrent_activities=50,
    ):
        yield gate
    await transport.close()


async def step_timers(client: Client, campaign_workflow: str) -> int:
    """TimerStarted events over every run of the campaign's step workflows."""
    parent = await client.get_workflow_handle(campaign_workflow).fetch_history()
    runs = [(e.child_workflow_execution_started_event_attributes.workflow_execution)
            for e in parent.events
            if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED]
    timers = 0
    for execution in runs:
        run_id: str | None = execution.run_id
        while run_id:
            history = await client.get_workflow_handle(execution.workflow_id, run_id=run_id).fetch_history()
            timers += sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED)
            last = history.events[-1]
            run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                      if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
                      else None)
    return timers


@pytest.mark.timeout(600)
async def test_queued_sends_behind_daily_caps_cost_a_constant_per_email(
    env: WorkflowEnvironment, db: asyncpg.Pool, settings: Settings, counted_worker: CountedGate,
) -> None:
    async with LocalSmtpServer() as inbox:
        mailboxes = [f"mb-{i:02d}" for i in range(MAILBOXES)]
        for m in mailboxes:
            await add_mailbox(db, m, inbox.port, daily_limit=CAP)
        emails = [f"h{i}@example.com" for i in range(SENDS)]
        campaign_id, _ = await add_campaign(db, mailboxes, emails, [("Hi", "Body", 0)])
        workflow_id = campaign_workflow_id(settings.task_queue, campaign_id)
        # Start just after a UTC midnight (the mailboxes' time zone), so that a day's
        # sends never straddle two calendar days whatever the wall clock says.
        now = await env.get_current_time()
        await env.sleep(datetime.combine(now.date() + timedelta(days=1), time(0, 1), UTC) - now)
        started = await env.get_current_time()
        await env.client.execute_workflow(
            CampaignWorkflow.run,
            CampaignInput(id_prefix=settings.task_queue, campaign_id=campaign_id,
                          delays=[timedelta(0)], tuning=StepTuning(per_mailbox=3, search_attributes=False)),
            id=workflow_id, task_queue=send_task_queue(settings.task_queue),
        )
        simulated = await env.get_current_time() - started
        delivered = len(inbox.messages)
        timers = await step_timers(env.client, workflow_id)

    per_day = MAILBOXES * CAP
    assert delivered == SENDS
    assert len({m.message_id for m in inbox.messages}) == SENDS
    # The caps held, and bound: every mailbox sent exactly its cap on each of the two days.
    first_day = started.astimezone(UTC).date()
    days = [first_day + timedelta(days=n) for n in range(SENDS // per_day)]
    per_mailbox_day = Counter(counted_worker.reserved.values())
    assert len(counted_worker.reserved) == SENDS
    assert per_mailbox_day == Counter({(m, d): CAP for m in mailboxes for d in days})
    assert simulated >= timedelta(days=SENDS // per_day - 1)
    gate_per_email = counted_worker.calls / delivered
    timers_per_email = timers / delivered
    print(f"\nherd: {delivered} delivered over {simulated}; {gate_per_email:.2f} gate calls and"
          f" {timers_per_email:.3f} timers per delivered email")
    # A herd would cost a gate call per queued send per wake: thousands per email.
    assert gate_per_email < 1.5
    assert timers_per_email < 0.1

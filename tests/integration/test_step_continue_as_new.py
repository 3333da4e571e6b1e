"""A step workflow that continues as new every few sends (workflows/campaign_step.py, with
`OUTREACH_STEP_SENDS_PER_RUN` lowered) keeps what it knew: that the step before it
ended (`previous_done`), that the campaign is paused, and which mailboxes it skips
until their limit frees up. On the Temporal dev server with the real activities."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import DueSendsInput, DueSendsResult, GateInput, GateResult, GateVerdict
from client.api import OutreachClient
from config.names import DUE_SENDS, GATE_SEND, campaign_workflow_id, send_task_queue, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_controls import idle, until
from tests.integration.test_campaign_e2e import wait_for_state
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow


@pytest.fixture
async def small_runs(e2e_settings: Settings, db: asyncpg.Pool) -> AsyncIterator[OutreachClient]:
    """A client whose campaigns' step runs continue as new after every 2 sends, and
    claim one send per mailbox at a time (each mailbox has one SMTP connection)."""
    client = await OutreachClient.connect(
        e2e_settings.model_copy(update={"step_sends_per_run": 2, "step_per_mailbox": 1}))
    yield client
    await client.close()


async def runs_of(client: Client, workflow_id: str) -> list[list[Any]]:
    """The events of each run of a workflow, first run first, following continue-as-new."""
    runs: list[list[Any]] = []
    description = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = description.raw_description.workflow_execution_info.first_run_id
    while run_id:
        events = [e async for e in client.get_workflow_handle(workflow_id, run_id=run_id)
                  .fetch_history_events()]
        runs.append(events)
        last = events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
                  else None)
    return runs


def signalled(events: list[Any], name: str) -> bool:
    return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
               and e.workflow_execution_signaled_event_attributes.signal_name == name for e in events)


async def test_a_step_told_the_previous_one_ended_still_ends_after_continuing_as_new(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, small_runs: OutreachClient,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb", inbox.port)
    emails = [f"n{i}@example.com" for i in range(6)]
    # Step 2 falls due 5 s after step 1 reached a prospect: step 1 ends (and step 2 is
    # told) while step 2 still has sends ahead, and so runs left to start.
    campaign_id, _ = await add_campaign(db, ["mb"], emails, [("Hi", "One", 0), ("Re: Hi", "Two", 5)])

    await small_runs.start_campaign(campaign_id)
    status = await wait_for_state(small_runs, campaign_id, "completed", timeout=120)

    assert [s["sent"] for s in status["steps"]] == [6, 6]
    runs = await runs_of(small_runs.temporal, step_workflow_id(e2e_settings.task_queue, campaign_id, 2))
    told = [n for n, events in enumerate(runs) if signalled(events, "previous_step_done")]
    assert len(told) == 1 and told[0] < len(runs) - 1, (
        f"step 2 was told in run {told} of {len(runs)}: no later run had to remember it")
    assert len(inbox.messages) == 12


async def test_a_pause_that_lands_while_a_run_drains_holds_in_the_next_run(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, small_runs: OutreachClient,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb-1", inbox.port)
    await add_mailbox(db, "mb-2", inbox.port)
    emails = [f"z{i}@example.com" for i in range(4)]
    campaign_id, _ = await add_campaign(db, ["mb-1", "mb-2"], emails, [("Hi", "Body", 0)])
    campaign = small_runs.temporal.get_workflow_handle(
        campaign_workflow_id(e2e_settings.task_queue, campaign_id))
    step = small_runs.temporal.get_workflow_handle(step_workflow_id(e2e_settings.task_queue, campaign_id, 1))
    inbox.hold("mail")

    await small_runs.start_campaign(campaign_id)
    # The first run has started its 2 sends and waits for them to end before continuing as new.
    await inbox.wait_for(lambda: inbox.held.get("mail") == 2, timeout=60)
    first_run = (await step.describe()).run_id
    await small_runs.pause_campaign(campaign_id)
    await idle(step, activities=2, after_signal="pause")  # the run has taken the pause in
    inbox.release("mail")

    async def continued() -> bool:
        return (await step.describe()).run_id != first_run

    await until(continued, "the step's next run")
    await idle(step)
    next_run = [e async for e in step.fetch_history_events()]
    assert not any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in next_run), \
        "the next run claimed sends while the campaign was paused"
    assert inbox.messages == []  # the two in flight stopped before DATA (decision 0044)
    assert await campaign.query(CampaignWorkflow.paused) is True

    await small_runs.resume_campaign(campaign_id)
    await wait_for_state(small_runs, campaign_id, "completed", timeout=60)
    assert sorted(m.rcpt_tos[0] for m in inbox.messages) == sorted(emails)


class Recorded:
    """The real claim and gate, noting each claim's run and skipped mailboxes, and each
    gate answer per mailbox."""

    def __init__(self, ledger: object, gate: object) -> None:
        self.ledger, self.gate = ledger, gate
        self.claims: list[tuple[str, list[str]]] = []
        self.answers: dict[str, list[GateResult]] = {}

    @activity.defn(name=DUE_SENDS)
    async def due_sends(self, inp: DueSendsInput) -> DueSendsResult:
        self.claims.append((activity.info().workflow_run_id, list(inp.blocked_mailboxes)))
        return await self.ledger.due_sends(inp)  # type: ignore[attr-defined, no-any-return]

    @activity.defn(name=GATE_SEND)
    async def gate_send(self, inp: GateInput) -> GateResult:
        result: GateResult = await self.gate.gate_send(inp)  # type: ignore[attr-defined]
        self.answers.setdefault(inp.mailbox_id, []).append(result)
        return result


@pytest.fixture
async def recorded_worker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis,
    e2e_settings: Settings,
) -> AsyncIterator[Recorded]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    ledger, activities = take_activity(build_activities(e2e_settings, db, redis_client, transport),
                                       DUE_SENDS)
    gate, others = take_activity(activities, GATE_SEND)
    recorded = Recorded(ledger, gate)
    async with Worker(
        dev_server.client, task_queue=send_task_queue(e2e_settings.task_queue),
        workflows=list(WORKFLOWS), activities=[*others, recorded.due_sends, recorded.gate_send],
    ):
        yield recorded
    await transport.close()


async def test_a_mailbox_skipped_until_tomorrow_stays_skipped_in_the_next_runs(
    db: asyncpg.Pool, inbox: LocalSmtpServer, recorded_worker: Recorded, small_runs: OutreachClient,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb-cap", inbox.port, daily_limit=1)
    await add_mailbox(db, "mb-free", inbox.port)
    emails = [f"b{i}@example.com" for i in range(12)]  # round-robin: 6 each
    campaign_id, _ = await add_campaign(db, ["mb-cap", "mb-free"], emails, [("Hi", "Body", 0)])
    step: WorkflowHandle[Any, Any] = small_runs.temporal.get_workflow_handle(
        step_workflow_id(e2e_settings.task_queue, campaign_id, 1))

    await small_runs.start_campaign(campaign_id)
    await inbox.wait_for(
        lambda: sum(1 for m in inbox.messages if m.mail_from.startswith("mb-free")) == 6, timeout=60)
    await idle(step, timers=1)  # only the timer to tomorrow, when mb-cap's day begins
    try:
        capped = recorded_worker.answers["mb-cap"]
        assert [a.verdict for a in capped] == [GateVerdict.GO, GateVerdict.WAIT], capped
        assert capped[1].reason == "daily cap reached"
        # The run that met the cap continued as new; every later claim skipped mb-cap.
        runs = [run for run, _ in recorded_worker.claims]
        blocked_in = runs.index(next(run for run, blocked in recorded_worker.claims
                                     if "mb-cap" in blocked))
        later = [blocked for run, blocked in recorded_worker.claims[blocked_in:]]
        assert all("mb-cap" in blocked for blocked in later)
        assert len(set(runs[blocked_in:])) >= 2, "no later run had to remember the skipped mailbox"
        assert sum(1 for m in inbox.messages if m.mail_from.startswith("mb-cap")) == 1
    finally:
        await small_runs.temporal.get_workflow_handle(
            campaign_workflow_id(e2e_settings.task_queue, campaign_id)).terminate("test over")


async def test_a_campaign_whose_steps_continued_as_new_can_be_cancelled(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, small_runs: OutreachClient,
    e2e_settings: Settings,
) -> None:
    """A cancel aimed at a step's first run would reach a closed run and be lost: the
    campaign then waits for that step forever (the chaos suite's capped mailbox did)."""
    await add_mailbox(db, "mb", inbox.port, daily_limit=5)
    emails = [f"k{i}@example.com" for i in range(8)]
    campaign_id, _ = await add_campaign(db, ["mb"], emails, [("Hi", "One", 0), ("Re: Hi", "Two", 1)])

    await small_runs.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) == 5, timeout=60)
    for k in (1, 2):
        step = step_workflow_id(e2e_settings.task_queue, campaign_id, k)
        runs = await runs_of(small_runs.temporal, step)
        await idle(small_runs.temporal.get_workflow_handle(step), timers=1)
    assert len(runs) > 1 or len(await runs_of(small_runs.temporal, step_workflow_id(
        e2e_settings.task_queue, campaign_id, 1))) > 1, "no step continued as new"

    assert await small_runs.cancel_campaign(campaign_id, wait=30.0) == "cancelled"
    rows = await db.fetch("SELECT state FROM sends WHERE campaign_id = $1", campaign_id)
    assert {r["state"] for r in rows} <= {"sent", "skipped"} and len(inbox.messages) == 5

"""Campaign pause, resume and cancel (client/api.py, workflows/campaign.py) and a mailbox
pause that lands between the gate and DATA, end to end on the Temporal dev server with
a worker, real PostgreSQL, Redis and an in-process SMTP server.

Nothing here waits for time to pass: the SMTP server holds a client at a stage until
the test lets it go, and "nothing more happens" is a workflow with no workflow task,
activity, timer or outgoing signal outstanding.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import CampaignStateInput
from client import InvalidState
from client.api import OutreachClient
from config.names import SET_CAMPAIGN_STATE, campaign_workflow_id, send_task_queue, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox, send_row
from tests.integration.test_campaign_e2e import wait_for_state
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow

_DONE = {EventType.EVENT_TYPE_TIMER_FIRED, EventType.EVENT_TYPE_TIMER_CANCELED}


async def idle(
    handle: WorkflowHandle[Any, Any], activities: int = 0, after_signal: str = "", timers: int = 0
) -> None:
    """Wait until the workflow can do nothing more on its own: no workflow task pending,
    exactly ``activities`` activities and ``timers`` timers outstanding, every external signal
    it sent delivered (and, if given, the signal ``after_signal`` received: with no
    workflow task pending, the workflow has handled it)."""
    deadline = time.monotonic() + 60.0
    while True:
        description = (await handle.describe()).raw_description
        events = [e async for e in handle.fetch_history_events()]
        kinds = Counter(e.event_type for e in events)
        signalled = [i for i, e in enumerate(events)
                     if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                     and e.workflow_execution_signaled_event_attributes.signal_name == after_signal]
        # A run just started may not show its first workflow task yet: it must have had one.
        if (kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED] > 0
                and not description.HasField("pending_workflow_task")
                and len(description.pending_activities) == activities
                and kinds[EventType.EVENT_TYPE_TIMER_STARTED] - sum(kinds[k] for k in _DONE) == timers
                and kinds[EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED]
                == kinds[EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED]
                + kinds[EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED]
                and (not after_signal or signalled)):
            return
        assert time.monotonic() < deadline, (
            f"{handle.id} still busy: {[EventType.Name(e.event_type) for e in events[-12:]]},"
            f" {len(description.pending_activities)} activities,"
            f" workflow task pending: {description.HasField('pending_workflow_task')}")
        await asyncio.sleep(0.1)


async def until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 60.0
    while not await predicate():
        assert time.monotonic() < deadline, f"not within 60 s: {what}"
        await asyncio.sleep(0.05)


async def claimed(db: asyncpg.Pool, campaign_id: str) -> list[asyncpg.Record]:
    return list(await db.fetch("SELECT prospect_id, state FROM sends WHERE campaign_id = $1", campaign_id))


# -- pause, resume, cancel -----------------------------------------------------------


async def test_a_paused_campaign_claims_nothing_more_and_resume_finishes_it(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb", inbox.port)
    emails = [f"r{i}@example.com" for i in range(20)]
    campaign_id, _ = await add_campaign(db, ["mb"], emails, [("Hi", "Body", 0)])
    campaign = client.temporal.get_workflow_handle(campaign_workflow_id(e2e_settings.task_queue, campaign_id))
    step = client.temporal.get_workflow_handle(step_workflow_id(e2e_settings.task_queue, campaign_id, 1))
    inbox.hold("mail")  # the first sends wait at MAIL FROM

    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: inbox.held.get("mail", 0) >= 1, timeout=60)
    await client.pause_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "paused", timeout=30)
    assert await campaign.query(CampaignWorkflow.paused) is True
    inbox.release("mail")

    # What was claimed before the pause stops at the check before DATA and goes back to
    # the queue unsent (decision 0044); then the step waits with nothing to do.
    async def claimed_all_queued() -> bool:
        rows = await claimed(db, campaign_id)
        return bool(rows) and all(r["state"] == "queued" for r in rows)

    await until(claimed_all_queued, "the sends claimed before the pause, back in the queue")
    await idle(step)
    claimed_before_resume = len(await claimed(db, campaign_id))
    assert inbox.messages == []
    assert 1 <= claimed_before_resume < len(emails)  # nothing more claimed while paused
    assert (await client.campaign_status(campaign_id))["state"] == "paused"

    await client.resume_campaign(campaign_id)
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert Counter(m.rcpt_tos[0] for m in inbox.messages) == Counter(emails)
    assert status["steps"][0]["sent"] == len(emails)
    assert await campaign.query(CampaignWorkflow.paused) is False


async def test_cancel_ends_the_steps_and_every_open_send_and_the_campaign_cannot_restart(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb-free", inbox.port)
    await add_mailbox(db, "mb-held", inbox.port)
    await client.pause_mailbox("mb-held", "until the campaign is cancelled")
    emails = [f"x{i}@example.com" for i in range(6)]
    campaign_id, prospects = await add_campaign(db, ["mb-free", "mb-held"], emails,
                                                [("Hi", "Body", 0), ("Again", "Body", 3600)])
    held = prospects[1::2]  # round-robin: every second prospect is mb-held's

    await client.start_campaign(campaign_id)

    async def free_sent() -> bool:
        return len(inbox.messages) == 3

    await until(free_sent, "mb-free's sends sent")
    # A paused mailbox's prospects are not claimed (decision 0046): no send of mb-held's
    # exists, and none is created by the cancel.
    assert {r["prospect_id"] for r in await claimed(db, campaign_id)}.isdisjoint(held)
    assert await client.cancel_campaign(campaign_id) == "cancelled"
    assert {r["prospect_id"] for r in await claimed(db, campaign_id)}.isdisjoint(held)
    # The stored state is written just before the workflow closes: wait for it to.
    campaign = client.temporal.get_workflow_handle(campaign_workflow_id(e2e_settings.task_queue, campaign_id))
    steps = [client.temporal.get_workflow_handle(step_workflow_id(e2e_settings.task_queue, campaign_id, k))
             for k in (1, 2)]
    for handle in (campaign, *steps):
        async def closed(handle: WorkflowHandle[Any, Any] = handle) -> bool:
            return (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING

        await until(closed, f"{handle.id} closed")
        assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
    with pytest.raises(InvalidState, match="cancelled"):
        await client.start_campaign(campaign_id)
    with pytest.raises(InvalidState):
        await client.resume_campaign(campaign_id)
    assert len(inbox.messages) == 3  # nothing of a cancelled campaign is sent


async def test_cancel_ends_a_campaign_whose_mailbox_waits_for_tomorrows_cap(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    e2e_settings: Settings,
) -> None:
    """The chaos suite's capped mailbox: its steps sleep until the next day's budget,
    and a cancel must still end them (and their queued sends) at once."""
    await add_mailbox(db, "mb", inbox.port, daily_limit=2)
    emails = [f"c{i}@example.com" for i in range(4)]
    campaign_id, _ = await add_campaign(db, ["mb"], emails, [("Hi", "Body", 0), ("Again", "Body", 1)])
    await client.start_campaign(campaign_id)

    async def capped() -> bool:
        rows = await claimed(db, campaign_id)
        return len(inbox.messages) == 2 and sum(r["state"] == "queued" for r in rows) >= 1

    await until(capped, "the cap reached and the rest queued")
    for k in (1, 2):
        await idle(client.temporal.get_workflow_handle(
            step_workflow_id(e2e_settings.task_queue, campaign_id, k)), timers=1)
    assert await client.cancel_campaign(campaign_id, wait=30.0) == "cancelled"
    assert {r["state"] for r in await claimed(db, campaign_id)} <= {"sent", "skipped"}
    assert len(inbox.messages) == 2


# -- a mailbox pause between the gate and DATA ------------------------------------------


async def test_a_mailbox_pause_after_the_gate_stops_the_send_before_data(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb", inbox.port)
    campaign_id, [prospect] = await add_campaign(db, ["mb"], ["d@example.com"], [("Hi", "Body", 0)])
    inbox.hold("rcpt")  # the gate said go, MAIL FROM was accepted: RCPT TO waits

    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: inbox.held.get("rcpt") == 1, timeout=60)
    await client.pause_mailbox("mb", "operator, mid-transaction")  # in force when it returns
    inbox.release("rcpt")

    async def attempt_ended() -> bool:
        outcome = await db.fetchval(
            "SELECT outcome FROM send_attempts WHERE campaign_id = $1 AND finished_at IS NOT NULL",
            campaign_id)
        return outcome is not None

    await until(attempt_ended, "the attempt recorded")
    assert await db.fetchval("SELECT outcome FROM send_attempts WHERE campaign_id = $1",
                             campaign_id) == "mailbox_paused"
    row = await send_row(db, campaign_id, 1, prospect)
    assert (row["state"], row["data_started_at"]) == ("queued", None)  # kept for the resume
    assert "DATA" not in inbox.commands and inbox.messages == []

    await client.resume_mailbox("mb")
    await wait_for_state(client, campaign_id, "completed", timeout=60)
    assert [m.rcpt_tos for m in inbox.messages] == [("d@example.com",)]


# -- a pause and a resume close together (the campaign workflow's handlers) -------------


class HeldPause:
    """The real `set_campaign_state`, except that writing "paused" waits for the test."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.began, self.release = asyncio.Event(), asyncio.Event()

    @activity.defn(name=SET_CAMPAIGN_STATE)
    async def set_campaign_state(self, inp: CampaignStateInput) -> None:
        if inp.state == "paused":
            self.began.set()
            await self.release.wait()
        await self.real.set_campaign_state(inp)  # type: ignore[attr-defined]


@pytest.fixture
async def held_pause_worker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis,
    e2e_settings: Settings,
) -> AsyncIterator[HeldPause]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, others = take_activity(build_activities(e2e_settings, db, redis_client, transport),
                                 SET_CAMPAIGN_STATE)
    held = HeldPause(real)
    async with Worker(
        dev_server.client, task_queue=send_task_queue(e2e_settings.task_queue),
        workflows=list(WORKFLOWS), activities=[*others, held.set_campaign_state],
    ):
        yield held
    held.release.set()
    await transport.close()


async def test_a_resume_right_after_a_pause_leaves_the_campaign_running_where_it_is_stored(
    db: asyncpg.Pool, inbox: LocalSmtpServer, held_pause_worker: HeldPause, client: OutreachClient,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb", inbox.port)
    await client.pause_mailbox("mb")  # keeps the step alive and sending nothing
    campaign_id, _ = await add_campaign(db, ["mb"], ["s@example.com"], [("Hi", "Body", 0)])
    campaign = client.temporal.get_workflow_handle(campaign_workflow_id(e2e_settings.task_queue, campaign_id))
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "running", timeout=30)

    await client.pause_campaign(campaign_id)
    await asyncio.wait_for(held_pause_worker.began.wait(), timeout=30)  # "paused" being written
    await client.resume_campaign(campaign_id)
    # The workflow has handled the resume as far as it will while "paused" is being written.
    # (Its one timer: the look at its steps, should one end without a report; decision 0048.)
    await idle(campaign, activities=1, after_signal="resume", timers=1)
    held_pause_worker.release.set()

    await idle(campaign, after_signal="resume", timers=1)
    assert await campaign.query(CampaignWorkflow.paused) is False
    assert (await client.campaign_status(campaign_id))["state"] == "running"

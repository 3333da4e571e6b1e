"""A soft bounce never holds a step (docs/decisions/0049): the send waits for its next
attempt in a retry workflow of its own, while the step's runs go on sending and continue
as new; the step ends, and the next step sends that prospect, only once it is settled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import SendInput, SendOutcome, SendResult
from activities.smtp import SendActivities
from config.converter import data_converter
from config.names import SEND_EMAIL, campaign_workflow_id, send_task_queue, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox, send_row
from tests.workflow.conftest import BIN, take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow
from workflows.campaign_step import CampaignStepWorkflow
from workflows.models import CampaignInput, CampaignResult, StepTuning

# Two sends a run: a step continues as new again and again. (The time-skipping test
# server has no custom search attributes.)
TUNING = StepTuning(search_attributes=False, sends_per_run=2)
SCHEDULE = [timedelta(0), timedelta(minutes=5), timedelta(minutes=35), timedelta(hours=2, minutes=35)]
# How long a step run may take to continue as new once it wants to.
PROMPT = timedelta(minutes=2)


class KeyedAttempts:
    """The real send activity under its real name, noting when each attempt of each
    (step, prospect) started, in the server's (skipped) time.

    An execution that ends PLACE_LATER sent nothing: not an attempt."""

    def __init__(self, real: SendActivities) -> None:
        self.real = real
        self.started: dict[tuple[int, int], list[datetime]] = {}

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, inp: SendInput) -> SendResult:
        started, attempted = activity.info().started_time, True
        try:
            result = await self.real.send_email(inp)
            attempted = result.outcome is not SendOutcome.PLACE_LATER
            return result
        finally:  # a soft bounce that is raised (runs from before decision 0049) is an attempt
            if attempted:
                self.started.setdefault((inp.key.step, inp.key.prospect_id), []).append(started)


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server of each test's own, its clock starting at the wall clock's: a retry
    asks the limits for its place in wall-clock time, the gate in the workflow's, so a
    clock hours ahead from an earlier test would put every retry's place hours away."""
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"), data_converter=data_converter(),
    ) as environment:
        yield environment


@pytest.fixture
async def attempts(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings
) -> AsyncIterator[KeyedAttempts]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, activities = take_activity(build_activities(settings, db, redis_client, transport), SEND_EMAIL)
    log = KeyedAttempts(real)
    async with Worker(env.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
                      activities=[*activities, log.send_email]):
        yield log
    await transport.close()


async def start_campaign(env: WorkflowEnvironment, settings: Settings, campaign_id: str,
                         delays: tuple[timedelta, ...] = (timedelta(0),),
                         ) -> WorkflowHandle[CampaignWorkflow, CampaignResult]:
    return await env.client.start_workflow(
        CampaignWorkflow.run,
        CampaignInput(id_prefix=settings.task_queue, campaign_id=campaign_id, delays=list(delays),
                      tuning=TUNING),
        id=campaign_workflow_id(settings.task_queue, campaign_id),
        task_queue=send_task_queue(settings.task_queue),
    )


class Run(NamedTuple):
    last_send: datetime | None  # when it scheduled its last send: from then on it wants to go on as new
    closed: datetime
    continued_as_new: bool


async def step_runs(env: WorkflowEnvironment, workflow_id: str) -> list[Run]:
    """Every run of a step workflow, oldest first."""
    runs, run_id = [], ""
    while True:
        history = await env.client.get_workflow_handle(workflow_id, run_id=run_id or None).fetch_history()
        first, last = history.events[0], history.events[-1]
        sends = [e.event_time.ToDatetime(tzinfo=UTC) for e in history.events
                 if e.activity_task_scheduled_event_attributes.activity_type.name == SEND_EMAIL]
        runs.append(Run(max(sends, default=None), last.event_time.ToDatetime(tzinfo=UTC),
                        last.HasField("workflow_execution_continued_as_new_event_attributes")))
        run_id = first.workflow_execution_started_event_attributes.continued_execution_run_id
        if not run_id:
            return runs[::-1]


async def campaign_with_soft_bounce(db: asyncpg.Pool, inbox: LocalSmtpServer, others: list[str],
                                   steps: list[tuple[str, str, int]]) -> tuple[str, int, list[int]]:
    """soft@example.com on a mailbox and provider of its own, the others on another. (A
    retry asks the limits for its place in wall-clock time, while the gate gave the other
    sends places in skipped time: sharing their provider, it would find its place hours
    away, and ask again and again.)"""
    await add_mailbox(db, "mb-soft", inbox.port, provider="gmail")
    await add_mailbox(db, "mb-1", inbox.port)
    campaign_id, (soft, *rest) = await add_campaign(db, ["mb-soft", "mb-1"], ["soft@example.com", *others],
                                                    steps)
    await db.execute("UPDATE prospects SET mailbox_id = 'mb-1' WHERE id <> $1", soft)
    return campaign_id, soft, rest


def on_schedule(times: list[datetime], count: int = len(SCHEDULE)) -> bool:
    """The attempts came at +0, +5 min, +35 min, +2 h 35 min (the first ``count`` of them)."""
    offsets = [t - times[0] for t in times]
    return len(offsets) == count and all(
        abs(got - want) < timedelta(seconds=5) for got, want in zip(offsets, SCHEDULE, strict=False))


async def test_a_soft_bounce_waiting_for_its_second_retry_does_not_delay_the_steps_continue_as_new(
    env: WorkflowEnvironment, db: asyncpg.Pool, inbox: LocalSmtpServer, settings: Settings,
    attempts: KeyedAttempts,
) -> None:
    inbox.script("soft@example.com", replies=[(450, "4.2.1 Mailbox busy, try later")] * 10)
    campaign_id, soft, others = await campaign_with_soft_bounce(
        db, inbox, [f"p{i}@example.com" for i in range(5)], [("Hi", "Hello", 0)])
    handle = await start_campaign(env, settings, campaign_id)
    step_id = step_workflow_id(settings.task_queue, campaign_id, 1)

    # Ten minutes in, the send waits for its second retry (+35 min); prospects arrive.
    await env.sleep(timedelta(minutes=10))
    added_at = await env.get_current_time()
    added = [await db.fetchval(
        "INSERT INTO prospects (campaign_id, email, fields, mailbox_id) VALUES ($1, $2, '{}', 'mb-1')"
        " RETURNING id", campaign_id, f"late{i}@example.com") for i in range(5)]
    await env.client.get_workflow_handle(step_id).signal(CampaignStepWorkflow.prospects_added)
    result = await handle.result()

    soft_times = attempts.started[(1, soft)]
    assert on_schedule(soft_times), [t - soft_times[0] for t in soft_times]
    # The other prospects went meanwhile, the late ones within moments of their arrival.
    assert all(attempts.started[(1, p)][0] < soft_times[1] for p in others)
    assert all(attempts.started[(1, p)][0] - added_at < PROMPT for p in added)
    runs = await step_runs(env, step_id)
    assert len(runs) >= 6  # 11 sends, 2 a run
    # Each run that reached its sends continued as new at once: none waited for the retries.
    continued = [run for run in runs if run.continued_as_new]
    assert all(run.last_send and run.closed - run.last_send < PROMPT for run in continued), [
        str(run.closed - run.last_send) if run.last_send else None for run in continued]
    # Settled once, as failed after its fourth attempt; the step ended only then.
    row = await send_row(db, campaign_id, 1, soft)
    assert (row["state"], row["attempts"]) == ("failed", 4)
    assert await db.fetchval("SELECT count(*) FROM send_attempts WHERE prospect_id = $1", soft) == 4
    assert runs[-1].closed >= soft_times[-1]
    assert result.steps[0].outcomes == {"sent": 10, "failed": 1}
    assert len(inbox.messages) == 10


async def test_the_step_and_the_next_step_wait_for_a_handed_off_send_to_be_settled(
    env: WorkflowEnvironment, db: asyncpg.Pool, inbox: LocalSmtpServer, settings: Settings,
    attempts: KeyedAttempts,
) -> None:
    # Soft-bounced twice, accepted at the third attempt (+35 min).
    inbox.script("soft@example.com", replies=[(450, "4.2.1 Mailbox busy, try later")] * 2)
    # Step 2 twenty minutes after step 1: the other prospect's falls due while the
    # soft-bounced send waits for its second retry.
    campaign_id, soft, (other,) = await campaign_with_soft_bounce(
        db, inbox, ["ok@example.com"], [("Hi", "Hello", 0), ("Re", "Again", 1200)])
    handle = await start_campaign(env, settings, campaign_id, delays=(timedelta(0), timedelta(minutes=20)))
    result = await handle.result()

    first_step = attempts.started[(1, soft)]
    assert on_schedule(first_step, count=3), [t - first_step[0] for t in first_step]
    settled_at = first_step[2]
    step_1_runs = await step_runs(env, step_workflow_id(settings.task_queue, campaign_id, 1))
    assert step_1_runs[-1].closed >= settled_at  # step 1 ended only once the send was settled
    assert attempts.started[(2, soft)][0] >= settled_at  # and step 2 sent it only then
    assert attempts.started[(2, other)][0] < first_step[2]  # the other prospect did not wait
    assert [r["state"] for r in await db.fetch(
        "SELECT state FROM sends WHERE prospect_id = $1 ORDER BY step", soft)] == ["sent", "sent"]
    assert len(inbox.messages_to("soft@example.com")) == 2
    assert result.steps[0].outcomes == {"sent": 2}

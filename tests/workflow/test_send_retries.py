"""Soft bounces retry at +5 min, +35 min, +2 h 35 min then fail; hard bounces stop at once;
throttling backs off without using up the recipient's attempts."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from config.names import campaign_workflow_id, send_task_queue
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox, send_row
from tests.workflow.conftest import AttemptLog
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, CampaignResult, StepTuning

# The time-skipping test server has no custom search attributes.
NO_SEARCH_ATTRIBUTES = StepTuning(search_attributes=False)


async def run_campaign(
    env: WorkflowEnvironment, settings: Settings, campaign_id: str, steps: int = 1
) -> CampaignResult:
    return await env.client.execute_workflow(
        CampaignWorkflow.run,
        CampaignInput(id_prefix=settings.task_queue, campaign_id=campaign_id,
                      delays=[timedelta(0)] * steps, tuning=NO_SEARCH_ATTRIBUTES),
        id=campaign_workflow_id(settings.task_queue, campaign_id),
        task_queue=send_task_queue(settings.task_queue),
    )


async def one_prospect_campaign(db: asyncpg.Pool, inbox: LocalSmtpServer, email: str) -> tuple[str, int]:
    await add_mailbox(db, "mb-1", inbox.port)
    campaign_id, (prospect,) = await add_campaign(db, ["mb-1"], [email], [("Hi", "Hello", 0)])
    return campaign_id, prospect


def gaps(times: list) -> list[timedelta]:  # type: ignore[type-arg]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


async def test_soft_bounce_is_attempted_four_times_on_schedule_then_failed(
    env: WorkflowEnvironment, db: asyncpg.Pool, inbox: LocalSmtpServer, settings: Settings,
    running_worker: AttemptLog,
) -> None:
    inbox.script("soft@example.com", replies=[(450, "4.2.1 Mailbox busy, try later")] * 10)
    campaign_id, prospect = await one_prospect_campaign(db, inbox, "soft@example.com")

    await run_campaign(env, settings, campaign_id)

    times = running_worker.scheduled[prospect]
    assert len(times) == 4
    offsets = [t - times[0] for t in times]
    expected = [timedelta(0), timedelta(minutes=5), timedelta(minutes=35), timedelta(hours=2, minutes=35)]
    for got, want in zip(offsets, expected, strict=True):
        assert abs(got - want) < timedelta(seconds=5), (offsets, expected)
    row = await send_row(db, campaign_id, 1, prospect)
    assert row["state"] == "failed"
    assert row["attempts"] == 4
    assert row["last_code"] == 450
    assert inbox.messages == []


async def test_hard_bounce_is_attempted_once_and_suppresses_the_prospect(
    env: WorkflowEnvironment, db: asyncpg.Pool, inbox: LocalSmtpServer, settings: Settings,
    running_worker: AttemptLog,
) -> None:
    inbox.script("gone@example.com", replies=[(550, "5.1.1 The email account does not exist")])
    campaign_id, prospect = await one_prospect_campaign(db, inbox, "gone@example.com")

    await run_campaign(env, settings, campaign_id)

    assert len(running_worker.scheduled[prospect]) == 1
    row = await send_row(db, campaign_id, 1, prospect)
    assert row["state"] == "hard_bounced"
    assert row["last_enhanced"] == "5.1.1"
    status = await db.fetchval("SELECT status FROM prospects WHERE id = $1", prospect)
    assert status == "hard_bounced"


async def test_throttling_does_not_consume_the_recipients_attempts(
    env: WorkflowEnvironment, db: asyncpg.Pool, inbox: LocalSmtpServer, settings: Settings,
    running_worker: AttemptLog,
) -> None:
    # More throttles than the retry policy has attempts: if they counted, the send would fail.
    inbox.script("busy@example.com", replies=[(421, "4.7.0 Try again later, closing connection")] * 6)
    campaign_id, prospect = await one_prospect_campaign(db, inbox, "busy@example.com")

    result = await run_campaign(env, settings, campaign_id)

    row = await send_row(db, campaign_id, 1, prospect)
    assert row["state"] == "sent"
    assert len(inbox.messages) == 1
    assert result.steps[0].outcomes.get("throttled") == 6
    # Each throttle was a fresh activity, so every SMTP attempt was the first of its policy.
    assert len(running_worker.scheduled[prospect]) == 7

"""Every mailbox of a running campaign paused for 10 minutes, on the time-skipping
server (issue 21; decisions 0046, 0048): the campaign's workflows make no claim and
add no event while the pause lasts, and once the mailboxes resume (the campaign is told,
as the mailbox activity tells it) every prospect gets each step once.

The steps' stall check (a claim after ``stall_check`` with nothing else to wake a
step, decision 0028: a safety net for a lost wake-up) is set beyond the window here;
at its default of 10 minutes it would be the one claim per step in those 10 minutes.
Before decision 0046 the steps claimed the paused mailboxes' prospects every 10 s.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from config.names import (
    CAMPAIGN_CLAIM_AGAIN_SIGNAL,
    DUE_SENDS,
    campaign_workflow_id,
    send_task_queue,
    step_workflow_id,
)
from config.settings import Settings
from limits.redis_store import RedisLimitStore
from localsmtp.server import LocalSmtpServer
from store import accounts
from tests.factories import add_campaign, add_mailbox
from tests.workflow.conftest import AttemptLog
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, StepTuning

MAILBOXES = ["mb-p1", "mb-p2"]
EMAILS = [f"p{i}@example.com" for i in range(6)]
PAUSE = timedelta(minutes=10)


async def history(handles: list[WorkflowHandle[Any, Any]]) -> tuple[int, int]:
    """Events in the latest run of each workflow, and the claims among them."""
    events = claims = 0
    for handle in handles:
        try:
            fetched = [e async for e in handle.fetch_history_events()]
        except RPCError:  # not started yet
            return -1, -1
        for event in fetched:
            events += 1
            if (event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                    and event.activity_task_scheduled_event_attributes.activity_type.name == DUE_SENDS):
                claims += 1
    return events, claims


async def quiet(handles: list[WorkflowHandle[Any, Any]]) -> tuple[int, int]:
    """The counts once they stop changing for 2 s of real time."""
    last, same = await history(handles), 0
    for _ in range(120):
        await asyncio.sleep(0.5)
        now = await history(handles)
        same = same + 1 if now == last and now[0] >= 0 else 0
        last = now
        if same >= 4:
            return last
    raise AssertionError("the campaign's workflows never went quiet")


async def set_paused(db: asyncpg.Pool, store: RedisLimitStore, paused: bool) -> None:
    """What the mailbox activity applies: PostgreSQL first, then Redis."""
    for mailbox in MAILBOXES:
        await accounts.set_paused(db, mailbox, paused, "paused for the test" if paused else "")
        await store.set_paused(mailbox, paused, "paused for the test" if paused else "")


async def test_a_campaign_paused_on_every_mailbox_for_ten_minutes_claims_nothing_then_completes(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, inbox: LocalSmtpServer,
    settings: Settings, running_worker: AttemptLog,
) -> None:
    for mailbox in MAILBOXES:
        await add_mailbox(db, mailbox, inbox.port)
    campaign_id, _ = await add_campaign(db, MAILBOXES, EMAILS, [("Hi", "One", 0), ("Re: Hi", "Two", 60)])
    store = RedisLimitStore(redis_client, settings.task_queue)
    await set_paused(db, store, True)

    prefix = settings.task_queue
    campaign = await env.client.start_workflow(
        CampaignWorkflow.run,
        CampaignInput(id_prefix=prefix, campaign_id=campaign_id, delays=[timedelta(0), timedelta(minutes=1)],
                      tuning=StepTuning(search_attributes=False, stall_check=timedelta(hours=1))),
        id=campaign_workflow_id(prefix, campaign_id), task_queue=send_task_queue(prefix),
    )
    handles = [campaign, *(env.client.get_workflow_handle(step_workflow_id(prefix, campaign_id, k))
                           for k in (1, 2))]
    before = await quiet(handles)
    await env.sleep(PAUSE)
    after = await quiet(handles)
    print(f"\nin {PAUSE} with every mailbox paused: {after[0] - before[0]} events,"
          f" {after[1] - before[1]} claims (before: {before[0]} events, {before[1]} claims)")
    assert after[1] == before[1], "a step claimed while every mailbox was paused"
    assert after[0] - before[0] <= 4
    assert not inbox.messages

    await set_paused(db, store, False)
    await campaign.signal(CAMPAIGN_CLAIM_AGAIN_SIGNAL)
    await campaign.result()
    assert Counter(r for m in inbox.messages for r in m.rcpt_tos) == Counter({e: 2 for e in EMAILS})

"""Waiting costs nothing (decision 0046): with every mailbox of a running campaign
paused, its workflows make no claims and add no events while the pause lasts, and
resuming the mailboxes tells the steps, which then finish the campaign.

Real stack: PostgreSQL, Redis, the Temporal dev server, a worker, an in-process SMTP
server. The pause lasts 30 s here; before the change the steps claimed the paused
mailboxes' prospects about twice a second for as long as it lasted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from client.api import OutreachClient
from config.names import DUE_SENDS, campaign_workflow_id, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state

EMAILS = [f"w{i}@example.com" for i in range(12)]
PAUSE_SECONDS = 30.0


async def history(handles: list[WorkflowHandle[Any, Any]]) -> tuple[int, int]:
    """Events in the latest run of each workflow, and the claims among them."""
    events = claims = 0
    for handle in handles:
        async for event in handle.fetch_history_events():
            events += 1
            scheduled = event.activity_task_scheduled_event_attributes
            if (event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                    and scheduled.activity_type.name == DUE_SENDS):
                claims += 1
    return events, claims


async def settled(handles: list[WorkflowHandle[Any, Any]]) -> tuple[int, int]:
    """The counts once they stop changing for 3 s (the sends in flight came back)."""
    last, since = await history(handles), time.monotonic()
    deadline = since + 60.0
    while time.monotonic() - since < 3.0:
        assert time.monotonic() < deadline, "the campaign's workflows never went quiet"
        await asyncio.sleep(0.5)
        now = await history(handles)
        if now != last:
            last, since = now, time.monotonic()
    return last


@pytest.mark.timeout(240)
async def test_a_campaign_whose_mailboxes_are_all_paused_makes_no_claims_until_they_resume(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient, worker: None,
    e2e_settings: Settings,
) -> None:
    mailboxes = ["mb-i1", "mb-i2"]
    for m in mailboxes:
        await add_mailbox(db, m, inbox.port)
    inbox.hang(at="data", seconds=0.2)
    campaign_id, _ = await add_campaign(db, mailboxes, EMAILS, [("Hi", "Hello", 0), ("Re: Hi", "Again", 0)])
    prefix = e2e_settings.task_queue
    handles = [client.temporal.get_workflow_handle(campaign_workflow_id(prefix, campaign_id)),
               *(client.temporal.get_workflow_handle(step_workflow_id(prefix, campaign_id, k))
                 for k in (1, 2))]

    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) >= 2, timeout=60)
    for m in mailboxes:
        await client.pause_mailbox(m, "checking the account")
    before = await settled(handles)
    sent_before = len(inbox.messages)
    await asyncio.sleep(PAUSE_SECONDS)
    after = await history(handles)
    added, claims = after[0] - before[0], after[1] - before[1]
    print(f"\nall mailboxes paused {PAUSE_SECONDS:.0f} s: {added} history events, {claims} claims")
    assert claims == 0 and added <= 4, (added, claims)
    assert len(inbox.messages) == sent_before < 2 * len(EMAILS)

    for m in mailboxes:
        await client.resume_mailbox(m)
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert [s["sent"] for s in status["steps"]] == [len(EMAILS), len(EMAILS)]
    assert Counter(m.rcpt_tos[0] for m in inbox.messages) == {e: 2 for e in EMAILS}

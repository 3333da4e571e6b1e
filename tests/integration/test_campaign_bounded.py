"""A campaign's workflow that holds for months (issue 21; docs/decisions/0048): it
continues as new with its steps running on, prospects added reach the steps without
touching the campaign's history, and a step that can no longer report its end is found.

Against the real stack: PostgreSQL, Redis, the Temporal dev server with a worker, and
an in-process SMTP server.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from config.names import campaign_workflow_id, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from specs.prospects import Prospect
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state

STEPS = [("Hello {{ first_name }}", "Step one", 0), ("Re: Hello {{ first_name }}", "Step two", 1),
         ("Re: Hello {{ first_name }}", "Step three", 1)]


@pytest.fixture
def bounded_settings(e2e_settings: Settings) -> Settings:
    # The smallest history budget, so a short test sees the campaign continue as new.
    return e2e_settings.model_copy(update={"campaign_events_per_run": 100,
                                           "campaign_step_check_seconds": 3.0})


@pytest.fixture
async def bounded_client(bounded_settings: Settings, db: asyncpg.Pool) -> AsyncIterator[OutreachClient]:
    c = await OutreachClient.connect(bounded_settings)
    yield c
    await c.close()


async def runs_of(temporal: Client, workflow_id: str) -> list[int]:
    """The history length of every run of a workflow id, oldest first."""
    lengths = []
    async for run in temporal.list_workflows(f"WorkflowId = '{workflow_id}'"):
        handle = temporal.get_workflow_handle(workflow_id, run_id=run.run_id)
        lengths.append((run.start_time, len([e async for e in handle.fetch_history_events()])))
    return [n for _, n in sorted(lengths)]


def deliveries(inbox: LocalSmtpServer) -> Counter[str]:
    return Counter(to for m in inbox.messages for to in m.rcpt_tos)


async def open_campaign(db: asyncpg.Pool, inbox: LocalSmtpServer, first: list[str]) -> str:
    await add_mailbox(db, "mb-months", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-months"], first, STEPS)
    await db.execute("UPDATE campaigns SET is_open = true WHERE id = $1", campaign_id)
    return campaign_id


async def test_a_campaign_continues_as_new_through_pauses_and_additions_and_completes_once(
    db: asyncpg.Pool, bounded_settings: Settings, inbox: LocalSmtpServer, worker: None,
    bounded_client: OutreachClient, dev_server: WorkflowEnvironment,
) -> None:
    client = bounded_client
    campaign_id = await open_campaign(db, inbox, ["p0@example.com"])
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "running", timeout=30)
    # Pauses and resumes cost the campaign's history; additions go to the steps.
    for i in range(1, 9):
        await client.add_prospects(campaign_id, [Prospect(f"p{i}@example.com", {"first_name": f"P{i}"}, "")])
        await client.pause_campaign(campaign_id)
        await client.resume_campaign(campaign_id)
    await client.close_campaign(campaign_id)
    status = await wait_for_state(client, campaign_id, "completed", timeout=180)

    assert deliveries(inbox) == {f"p{i}@example.com": 3 for i in range(9)}
    assert [s["sent"] for s in status["steps"]] == [9, 9, 9]
    runs = await runs_of(dev_server.client, campaign_workflow_id(bounded_settings.task_queue, campaign_id))
    print(f"campaign runs: {len(runs)}, events per run: {runs}")
    assert len(runs) > 1  # it continued as new, with its steps running on
    workflow_id = campaign_workflow_id(bounded_settings.task_queue, campaign_id)
    final = dev_server.client.get_workflow_handle(workflow_id)
    assert (await final.describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_prospects_added_to_running_steps_cost_the_campaign_nothing(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, dev_server: WorkflowEnvironment,
) -> None:
    campaign_id = await open_campaign(db, inbox, ["first@example.com"])
    handle = dev_server.client.get_workflow_handle(await client.start_campaign(campaign_id))
    await inbox.wait_for(lambda: len(inbox.messages_to("first@example.com")) == 3, timeout=60)
    before = len([e async for e in handle.fetch_history_events()])
    for i in range(20):
        await client.add_prospects(campaign_id, [Prospect(f"a{i}@example.com", {"first_name": "A"}, "")])
    await inbox.wait_for(lambda: all(len(inbox.messages_to(f"a{i}@example.com")) == 3 for i in range(20)),
                         timeout=120)
    after = len([e async for e in handle.fetch_history_events()])
    assert after == before, "an addition reached the campaign's history"
    await client.close_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert set(deliveries(inbox).values()) == {3}


async def test_a_step_terminated_out_of_band_is_found_and_the_campaign_completes(
    db: asyncpg.Pool, bounded_settings: Settings, inbox: LocalSmtpServer, worker: None,
    bounded_client: OutreachClient, dev_server: WorkflowEnvironment,
) -> None:
    """A terminated step cannot report its end: the campaign's look at its steps (every
    3 s here) finds it, and the steps run again for the prospects it left."""
    client = bounded_client
    campaign_id = await open_campaign(db, inbox, ["t0@example.com"])
    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages_to("t0@example.com")) == 3, timeout=60)
    prefix = bounded_settings.task_queue
    step3 = dev_server.client.get_workflow_handle(step_workflow_id(prefix, campaign_id, 3))
    await step3.terminate("out of band")
    await client.add_prospects(campaign_id, [Prospect("t1@example.com", {"first_name": "T"}, "")])
    await client.close_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert deliveries(inbox) == {"t0@example.com": 3, "t1@example.com": 3}


@pytest.mark.slow
async def test_an_open_campaign_fed_1000_times_keeps_every_history_far_below_the_warning(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, dev_server: WorkflowEnvironment,
) -> None:
    """Issue 21's measure: an open 3-step campaign fed 1,000 times, then closed. Before
    decision 0048 its one run held about 19 events per addition (about 19,000)."""
    campaign_id = await open_campaign(db, inbox, ["feed0@example.com"])
    await client.start_campaign(campaign_id)
    for i in range(1, 1000):
        await client.add_prospects(campaign_id, [Prospect(f"feed{i}@example.com", {"first_name": "F"}, "")])
        if i % 100 == 0:
            print(f"{i} additions")
    await client.close_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=900)

    assert deliveries(inbox) == {f"feed{i}@example.com": 3 for i in range(1000)}
    prefix = e2e_settings.task_queue
    histories = {"campaign": await runs_of(dev_server.client, campaign_workflow_id(prefix, campaign_id))}
    for k in (1, 2, 3):
        histories[f"step {k}"] = await runs_of(dev_server.client, step_workflow_id(prefix, campaign_id, k))
    largest = max(max(runs) for runs in histories.values())
    for name, runs in histories.items():
        print(f"{name}: {len(runs)} run(s), largest {max(runs)} events, total {sum(runs)}")
    print(f"largest history of any run: {largest} events (Temporal warns at 10,240)")
    assert largest < 5_000


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 21])
async def test_controls_in_any_order_while_the_campaign_continues_as_new_end_as_the_last_asked(
    db: asyncpg.Pool, bounded_settings: Settings, inbox: LocalSmtpServer, worker: None,
    bounded_client: OutreachClient, dev_server: WorkflowEnvironment, seed: int,
) -> None:
    """Additions, pauses and resumes in a seeded random order, some at once, while the
    campaign continues as new (its smallest budget); the last word is a resume, then a
    close: every prospect gets each step once, and the campaign completes."""
    rng = random.Random(seed)
    client = bounded_client
    campaign_id = await open_campaign(db, inbox, ["r0@example.com"])
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "running", timeout=30)
    added = 1

    async def add() -> None:
        nonlocal added
        i, added = added, added + 1
        await client.add_prospects(campaign_id, [Prospect(f"r{i}@example.com", {"first_name": "R"}, "")])

    for _ in range(25):
        burst = [rng.choice([add, add, client.pause_campaign, client.resume_campaign]) for _ in range(3)]
        await asyncio.gather(*(op() if op is add else op(campaign_id) for op in burst))
    await client.resume_campaign(campaign_id)
    await client.close_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=180)

    assert deliveries(inbox) == {f"r{i}@example.com": 3 for i in range(added)}
    runs = await runs_of(dev_server.client, campaign_workflow_id(bounded_settings.task_queue, campaign_id))
    print(f"seed {seed}: {added} prospects, campaign runs {runs}")
    assert len(runs) > 1

"""Tracing a send: search attributes find the step run holding it, and `outreach trace`
prints the ledger's view with the Web UI address of that run."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from client.trace import holding_query
from config.names import PROSPECT_IDS_ATTR, SEARCH_ATTRIBUTES, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_cli import outreach

BOUNCE = "5.1.1 trace-test mailbox does not exist"


async def wait_for_runs(temporal: Client, query: str, timeout: float = 20) -> list[str]:  # noqa: ASYNC109
    """Run ids matching a visibility query (visibility lags the history a little)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [wf.run_id async for wf in temporal.list_workflows(query)]
        if runs or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.2)


async def completed_campaign(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient,
) -> tuple[str, list[int]]:
    await add_mailbox(db, "mb-trace", inbox.port)
    inbox.script("t1@example.com", replies=[(550, BOUNCE)])
    campaign_id, prospect_ids = await add_campaign(
        db, ["mb-trace"], ["t0@example.com", "t1@example.com", "t2@example.com"], [("Hi", "Body", 0)]
    )
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=60)
    return campaign_id, prospect_ids


async def test_search_attributes_find_the_step_run_by_campaign_step_mailbox_and_prospect(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    dev_server: WorkflowEnvironment, e2e_settings: Settings,
) -> None:
    campaign_id, prospect_ids = await completed_campaign(db, inbox, client)
    temporal = dev_server.client
    step_id = step_workflow_id(e2e_settings.task_queue, campaign_id, 1)
    query = (f'OutreachCampaignId = "{campaign_id}" AND OutreachStep = 1'
             f' AND OutreachMailboxIds = "mb-trace" AND OutreachProspectIds = "{prospect_ids[1]}"')
    runs = await wait_for_runs(temporal, query)
    assert len(runs) == 1

    described = await temporal.get_workflow_handle(step_id, run_id=runs[0]).describe()
    attrs = described.typed_search_attributes
    assert sorted(attrs[PROSPECT_IDS_ATTR]) == sorted(str(p) for p in prospect_ids)
    # Ids only: no address anywhere in the attributes or the workflow id.
    assert "@" not in step_id
    assert not any("@" in str(attrs.get(k)) for k in SEARCH_ATTRIBUTES)


async def test_trace_prints_each_send_with_its_reply_and_the_address_of_its_run(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    dev_server: WorkflowEnvironment, e2e_settings: Settings,
) -> None:
    campaign_id, prospect_ids = await completed_campaign(db, inbox, client)
    bounced = prospect_ids[1]
    step_id = step_workflow_id(e2e_settings.task_queue, campaign_id, 1)
    runs = await wait_for_runs(dev_server.client, holding_query(step_id, bounced))
    assert len(runs) == 1
    url = f"http://127.0.0.1:8233/namespaces/default/workflows/{step_id}/{runs[0]}/history"

    for target in (str(bounced), "T1@example.com", f"{campaign_id}:1:{bounced}"):
        ran = await outreach(e2e_settings, "trace", target)
        assert ran.returncode == 0, ran.stderr
        assert f"prospect {bounced}  campaign {campaign_id}" in ran.stdout
        assert f"{campaign_id}:1:{bounced}" in ran.stdout and "hard_bounced" in ran.stdout
        assert f"550 {BOUNCE}" in ran.stdout, ran.stdout
        assert url in ran.stdout.splitlines()[-1]

    sent = await outreach(e2e_settings, "trace", str(prospect_ids[0]))
    assert " sent " in sent.stdout and "attempts 1" in sent.stdout


async def test_trace_of_an_unknown_prospect_is_a_clear_error(db: asyncpg.Pool, settings: Settings) -> None:
    for target in ("999999", "nobody@example.com", "cmp-x:1:5", "not-a-target"):
        ran = await outreach(settings, "trace", target)
        assert ran.returncode == 2
        assert ran.stderr.startswith("error: ")


async def test_search_attributes_register_is_idempotent(e2e_settings: Settings) -> None:
    ran = await outreach(e2e_settings, "search-attributes", "register")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "namespace default: search attributes already registered"

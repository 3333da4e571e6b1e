"""A signal the Temporal server does not take reaches the caller (client/campaign_controls.py):
ClientError naming the campaign, the signal and the server's reason, and the CLI prints it
and exits 2. The one case that is not an error: the server has no workflow and PostgreSQL
says the campaign has none to tell (not started, completed or cancelled)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from client import ClientError
from client.api import OutreachClient
from config.names import campaign_workflow_id, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from specs.prospects import Prospect
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_cli import outreach
from tests.integration.test_operator_controls import csv_file

# Step 2 a day after step 1: the campaign stays running while the test works on it.
STEPS = [("Hello {{ first_name }}", "Step one", 0), ("Re: Hello {{ first_name }}", "Step two", 86_400)]


async def running_then_terminated(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, client: OutreachClient, settings: Settings,
    inbox: LocalSmtpServer,
) -> str:
    """A campaign that PostgreSQL says is running, whose workflow was terminated out of band."""
    await add_mailbox(db, "mb-gone", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-gone"], ["first@example.com"], STEPS)
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "running", timeout=30)
    handle = dev_server.client.get_workflow_handle(campaign_workflow_id(settings.task_queue, campaign_id))
    await handle.terminate("terminated out of band by the test")
    return campaign_id


async def test_adding_prospects_to_a_campaign_whose_workflow_is_gone_raises_with_the_reason(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, client: OutreachClient,
    inbox: LocalSmtpServer, worker: None,
) -> None:
    campaign_id = await running_then_terminated(dev_server, db, client, e2e_settings, inbox)

    with pytest.raises(ClientError) as raised:
        await client.add_prospects(campaign_id, [Prospect("late@example.com", {"first_name": "Late"}, "")])

    message = str(raised.value)
    assert campaign_id in message and "prospects_added" in message
    assert "workflow execution already completed" in message and "NOT_FOUND" in message, message
    # What was committed stays committed; the error says the workflow did not hear of it.
    assert await db.fetchval(
        "SELECT count(*) FROM prospects WHERE campaign_id = $1 AND email = 'late@example.com'", campaign_id
    ) == 1
    assert (await client.campaign_status(campaign_id))["state"] == "running"


async def test_adding_prospects_while_the_steps_outlive_a_terminated_campaign_raises(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, client: OutreachClient,
    inbox: LocalSmtpServer, worker: None,
) -> None:
    """Steps outlive their campaign's runs (decision 0048), so they still run after the
    campaign's workflow was terminated: the addition must not go to them directly
    (no campaign would complete what they send), and the refusal reaches the caller."""
    await add_mailbox(db, "mb-open-gone", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-open-gone"], ["first@example.com"], STEPS)
    await db.execute("UPDATE campaigns SET is_open = true WHERE id = $1", campaign_id)
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "running", timeout=30)
    prefix = e2e_settings.task_queue
    step1 = dev_server.client.get_workflow_handle(step_workflow_id(prefix, campaign_id, 1))
    await inbox.wait_for(lambda: bool(inbox.messages_to("first@example.com")), timeout=30)
    await dev_server.client.get_workflow_handle(campaign_workflow_id(prefix, campaign_id)).terminate("test")
    try:
        assert (await step1.describe()).status is WorkflowExecutionStatus.RUNNING  # an open campaign's step 1
        with pytest.raises(ClientError, match="prospects_added"):
            await client.add_prospects(campaign_id, [Prospect("late@example.com", {"first_name": "L"}, "")])
    finally:
        for k in (1, 2):  # abandoned by the campaign: nobody else ends them
            step = dev_server.client.get_workflow_handle(step_workflow_id(prefix, campaign_id, k))
            with contextlib.suppress(RPCError):
                await step.terminate()


async def test_the_cli_prints_the_refusal_and_exits_non_zero(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, client: OutreachClient,
    inbox: LocalSmtpServer, worker: None, tmp_path: Path,
) -> None:
    campaign_id = await running_then_terminated(dev_server, db, client, e2e_settings, inbox)

    more = csv_file(tmp_path, "more.csv", ["late@example.com,Late"])
    ran = await outreach(e2e_settings, "campaigns", "add-prospects", campaign_id, str(more))

    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert f"error: campaign {campaign_id}: the Temporal server did not take the prospects_added signal" \
        in ran.stderr
    assert "workflow execution already completed" in ran.stderr and "Traceback" not in ran.stderr
    assert "added" not in ran.stdout


async def test_no_workflow_is_fine_when_postgresql_says_there_is_none_to_tell(
    db: asyncpg.Pool, e2e_settings: Settings, client: OutreachClient, inbox: LocalSmtpServer, worker: None,
) -> None:
    await add_mailbox(db, "mb-quiet", inbox.port)
    not_started, _ = await add_campaign(db, ["mb-quiet"], ["new@example.com"], STEPS[:1])
    await client.claim_again(not_started)  # a start reads the ledger: nothing to tell

    done, _ = await add_campaign(db, ["mb-quiet"], ["done@example.com"], STEPS[:1])
    await client.start_campaign(done)
    await wait_for_state(client, done, "completed", timeout=60)
    handle = client.temporal.get_workflow_handle(campaign_workflow_id(e2e_settings.task_queue, done))
    await handle.result()
    await client.claim_again(done)  # completed in both places: nothing left to claim


class _Refusing:
    """A workflow handle whose signals the server refuses, as over its signal limit."""

    def __init__(self, status: RPCStatusCode, message: str) -> None:
        self.error = RPCError(message, status, b"")

    async def signal(self, *_: Any) -> None:
        raise self.error


async def test_any_other_refusal_raises_whatever_postgresql_says(
    db: asyncpg.Pool, e2e_settings: Settings, client: OutreachClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    campaign_id, _ = await add_campaign(db, [], [], STEPS[:1])  # 'created': no workflow expected
    refusing = _Refusing(RPCStatusCode.INVALID_ARGUMENT,
                         "exceeded workflow execution limit for signal events")

    def handle(_: str) -> WorkflowHandle[Any, Any]:
        return refusing  # type: ignore[return-value]

    monkeypatch.setattr(client, "_campaign", handle)
    with pytest.raises(ClientError, match=f"campaign {campaign_id}: the Temporal server did not take the"
                                          " prospects_added signal: exceeded workflow execution limit for"
                                          r" signal events \(INVALID_ARGUMENT\)"):
        await client.claim_again(campaign_id)

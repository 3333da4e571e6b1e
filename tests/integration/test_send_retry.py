"""`outreach sends retry` (issue 15; docs/decisions/0040): unknown and failed sends go
again only on the operator's word, once each, also when the worker is down at the time.

Real stack: PostgreSQL, Redis, the Temporal dev server, a worker started and stopped
by the test, an in-process SMTP server; the CLI runs as a subprocess with no terminal.
"""

from __future__ import annotations

import asyncio
import os
import pty
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OutreachClient
from config.names import send_task_queue
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from store import StoreError
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_cli import OUTREACH, ROOT, Ran
from workers.registry import WORKFLOWS, build_activities

STEPS = [("Hello {{ first_name }}", "Step one", 0), ("Re: Hello {{ first_name }}", "Step two", 1)]


@pytest.fixture
def e2e_settings(e2e_settings: Settings) -> Settings:
    return e2e_settings.model_copy(update={"send_first_retry_seconds": 0.05})


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings
) -> AsyncIterator[None]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    async with Worker(env.client, task_queue=send_task_queue(settings.task_queue),
                      workflows=list(WORKFLOWS), max_concurrent_activities=100,
                      activities=build_activities(settings, db, redis_client, transport)):
        yield
    await transport.close()


async def outreach(settings: Settings, *args: str, stdin: int = asyncio.subprocess.DEVNULL) -> Ran:
    """The CLI; by default with stdin that is no terminal (/dev/null), as from a script or cron."""
    env = {**os.environ, "OUTREACH_DATABASE_URL": settings.database_url,
           "OUTREACH_REDIS_URL": settings.redis_url, "OUTREACH_TASK_QUEUE": settings.task_queue,
           "OUTREACH_TEMPORAL_ADDRESS": settings.temporal_address, "OUTREACH_MAILBOX_SPACING": "0"}
    proc = await asyncio.create_subprocess_exec(
        OUTREACH, *args, env=env, cwd=ROOT, stdin=stdin,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def send_states(db: asyncpg.Pool, campaign_id: str) -> dict[tuple[int, str], str]:
    rows = await db.fetch(
        "SELECT s.step, p.email, s.state FROM sends s JOIN prospects p ON p.id = s.prospect_id"
        " WHERE s.campaign_id = $1", campaign_id,
    )
    return {(r["step"], r["email"]): r["state"] for r in rows}


async def test_unknown_send_retried_while_the_worker_is_down_goes_once_when_it_is_back(
    db: asyncpg.Pool, redis_client: aioredis.Redis, dev_server: WorkflowEnvironment,
    e2e_settings: Settings, inbox: LocalSmtpServer, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-u", inbox.port)
    emails = ["u0@example.com", "u1@example.com", "u2@example.com"]
    campaign_id, _ = await add_campaign(db, ["mb-u"], emails, STEPS[:1])
    inbox.drop_after_data("u1@example.com")  # kept by the server, no reply: outcome unknown
    async with running_worker(dev_server, db, redis_client, e2e_settings):
        await client.start_campaign(campaign_id)
        await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert (await send_states(db, campaign_id))[(1, "u1@example.com")] == "unknown"
    first_copy = inbox.messages_to("u1@example.com")[0].message_id

    # Worker down from here. Without a terminal or --yes: says how many, changes nothing.
    refused = await outreach(e2e_settings, "sends", "retry", campaign_id, "--state", "unknown")
    assert refused.returncode == 2
    assert f"1 unknown send(s) of campaign {campaign_id} will be sent again" in refused.stdout
    assert "may already have been delivered" in refused.stdout and "--yes" in refused.stderr
    assert (await send_states(db, campaign_id))[(1, "u1@example.com")] == "unknown"
    none_failed = await outreach(e2e_settings, "sends", "retry", campaign_id, "--state", "failed", "--yes")
    assert none_failed.returncode == 0 and "no failed send(s)" in none_failed.stdout

    ran = await outreach(e2e_settings, "sends", "retry", campaign_id, "--state", "unknown", "--yes")
    assert ran.returncode == 0, ran.stderr
    assert "1 send(s) queued again" in ran.stdout
    assert (await client.campaign_status(campaign_id))["state"] == "running"
    assert (await send_states(db, campaign_id))[(1, "u1@example.com")] == "queued"
    again = await outreach(e2e_settings, "sends", "retry", campaign_id, "--state", "unknown", "--yes")
    assert again.returncode == 0 and "no unknown send(s)" in again.stdout
    assert len(inbox.messages) == 3  # nothing goes while no worker runs

    async with running_worker(dev_server, db, redis_client, e2e_settings):
        status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert status["steps"][0]["sent"] == 3
    copies = inbox.messages_to("u1@example.com")
    assert len(copies) == 2 and {m.message_id for m in copies} == {first_copy}  # the same message
    assert Counter(m.rcpt_tos[0] for m in inbox.messages) == {
        "u0@example.com": 1, "u1@example.com": 2, "u2@example.com": 1}


async def test_failed_sends_of_one_step_retried_continue_their_sequence(
    db: asyncpg.Pool, redis_client: aioredis.Redis, dev_server: WorkflowEnvironment,
    e2e_settings: Settings, inbox: LocalSmtpServer, client: OutreachClient, worker: None,
) -> None:
    await add_mailbox(db, "mb-f", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-f"], ["f0@example.com", "f1@example.com"], STEPS)
    inbox.script("f1@example.com", replies=[(451, "4.2.0 try later")] * 4)  # every attempt: failed
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert (await send_states(db, campaign_id))[(1, "f1@example.com")] == "failed"

    wrong_step = await outreach(e2e_settings, "sends", "retry", campaign_id, "--state", "failed",
                                "--step", "2", "--yes")
    assert wrong_step.returncode == 0 and "no failed send(s)" in wrong_step.stdout
    assert await client.count_retryable_sends(campaign_id, "failed", step=1) == 1
    retried = await client.retry_sends(campaign_id, "failed", step=1)
    assert (retried.count, retried.campaign_state) == (1, "completed")

    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert [s["sent"] for s in status["steps"]] == [2, 2]
    assert len(inbox.messages_to("f1@example.com")) == 2

    await db.execute("UPDATE sends SET state = 'failed' WHERE campaign_id = $1 AND step = 2", campaign_id)
    await db.execute("UPDATE campaigns SET state = 'cancelled' WHERE id = $1", campaign_id)
    with pytest.raises(StoreError, match="is cancelled"):
        await client.retry_sends(campaign_id, "failed")
    bad = await outreach(e2e_settings, "sends", "retry", campaign_id, "--state", "sent", "--yes")
    assert bad.returncode == 2 and "'sent' is not one of" in bad.stderr


async def answering(settings: Settings, answer: str, *args: str) -> Ran:
    """The CLI at a terminal (a pseudo-terminal), typing ``answer`` at the prompt."""
    main, terminal = pty.openpty()
    try:
        os.write(main, f"{answer}\n".encode())
        return await outreach(settings, *args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(main)


async def test_retry_asks_at_a_terminal_and_does_nothing_unless_told_yes(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, client: OutreachClient,
    worker: None,
) -> None:
    await add_mailbox(db, "mb-t", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-t"], ["t0@example.com", "t1@example.com"], STEPS[:1])
    inbox.script("t1@example.com", replies=[(451, "4.2.0 try later")] * 4)
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=120)

    said_no = await answering(e2e_settings, "n", "sends", "retry", campaign_id, "--state", "failed")
    assert said_no.returncode == 2 and "Send them again?" in said_no.stdout
    assert "not retried" in said_no.stderr
    assert (await send_states(db, campaign_id))[(1, "t1@example.com")] == "failed"

    said_yes = await answering(e2e_settings, "y", "sends", "retry", campaign_id, "--state", "failed")
    assert said_yes.returncode == 0, said_yes.stderr
    assert "1 failed send(s)" in said_yes.stdout and "1 send(s) queued again" in said_yes.stdout
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert status["steps"][0]["sent"] == 2

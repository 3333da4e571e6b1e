"""A worker killed while a soft-bounced send waits in its retry workflow (decision 0049):
another worker fires the timer, and the send is sent once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator

import asyncpg
import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from config.names import send_retry_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox, send_row
from tests.integration.conftest import temporal_address
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_worker_crash import OUTREACH, worker_env


@pytest.fixture
def retry_settings(settings: Settings, dev_server: WorkflowEnvironment) -> Settings:
    # A first retry long enough to kill the worker while the retry workflow sleeps.
    return settings.model_copy(update={
        "temporal_address": temporal_address(dev_server), "send_first_retry_seconds": 4.0,
        "step_min_sleep_seconds": 0.5,
    })


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=30)


async def _retry_workflow_started(client: OutreachClient, workflow_id: str) -> None:
    while True:
        try:
            await client.temporal.get_workflow_handle(workflow_id).describe()
            return
        except RPCError:  # not started yet
            await asyncio.sleep(0.05)


async def test_a_worker_killed_while_a_send_waits_for_its_retry_leaves_it_sent_once(
    db: asyncpg.Pool, retry_settings: Settings, workers: list[subprocess.Popen[bytes]],
) -> None:
    env = worker_env(retry_settings)
    first = subprocess.Popen([OUTREACH, "worker"], env=env, stderr=subprocess.DEVNULL)
    workers.append(first)
    async with LocalSmtpServer() as inbox:
        inbox.script("soft@example.com", replies=[(450, "4.2.1 Mailbox busy, try later")])
        await add_mailbox(db, "mb-retry", inbox.port)
        emails = ["soft@example.com", "a@example.com", "b@example.com"]
        campaign_id, (soft, *_) = await add_campaign(db, ["mb-retry"], emails, [("Hi", "Body", 0)])
        client = await OutreachClient.connect(retry_settings)
        try:
            await client.start_campaign(campaign_id)
            retry_id = send_retry_workflow_id(retry_settings.task_queue, campaign_id, 1, soft)
            await asyncio.wait_for(_retry_workflow_started(client, retry_id), 60)
            first.send_signal(signal.SIGKILL)  # its timer (4 s) has not fired
            first.wait(timeout=10)
            assert (await send_row(db, campaign_id, 1, soft))["attempts"] == 1
            workers.append(subprocess.Popen([OUTREACH, "worker"], env=env, stderr=subprocess.DEVNULL))
            await wait_for_state(client, campaign_id, "completed", timeout=120)
        finally:
            await client.close()
        received = Counter(r for m in inbox.messages for r in m.rcpt_tos)

    assert received == Counter(emails), "every prospect exactly once"
    row = await send_row(db, campaign_id, 1, soft)
    assert (row["state"], row["attempts"]) == ("sent", 2)

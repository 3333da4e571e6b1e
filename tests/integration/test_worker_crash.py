"""A worker killed between DATA and the ledger write: the send ends `unknown`, one copy only.

The SMTP server kills the worker process (SIGKILL) at the worst moment: it has
received the whole message, the client is waiting for the reply, and the
ledger has not recorded it. A second worker takes over the retried activity.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from config.names import campaign_workflow_id
from config.settings import Settings
from localsmtp.server import AcceptedMessage, LocalSmtpServer
from specs.prospects import Prospect
from tests.factories import add_campaign, add_mailbox
from tests.integration.conftest import temporal_address
from tests.integration.test_campaign_e2e import wait_for_state

OUTREACH = str(Path(sys.executable).parent / "outreach")


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "OUTREACH_TEMPORAL_ADDRESS": settings.temporal_address,
        "OUTREACH_DATABASE_URL": settings.database_url,
        "OUTREACH_REDIS_URL": settings.redis_url,
        "OUTREACH_TASK_QUEUE": settings.task_queue,
        "OUTREACH_MAILBOX_SPACING": str(settings.mailbox_spacing),
        "OUTREACH_LIMIT_OTHER_PER_MINUTE": str(settings.limit_other_per_minute),
        "OUTREACH_LIMIT_OTHER_CONNECTIONS": str(settings.limit_other_connections),
    }


@pytest.fixture
def crash_settings(settings: Settings, dev_server: WorkflowEnvironment) -> Settings:
    # A short activity timeout and first retry so the takeover happens in seconds.
    return settings.model_copy(update={
        "temporal_address": temporal_address(dev_server),
        "send_start_to_close_seconds": 5.0, "send_first_retry_seconds": 1.0,
        "step_min_sleep_seconds": 0.5,
    })


@pytest.fixture
def workers(crash_settings: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=30)


async def test_worker_killed_after_data_leaves_send_unknown_and_a_single_copy(
    db: asyncpg.Pool, crash_settings: Settings, workers: list[subprocess.Popen[bytes]],
) -> None:
    env = worker_env(crash_settings)
    first = subprocess.Popen([OUTREACH, "worker"], env=env, stderr=subprocess.DEVNULL)
    workers.append(first)

    def kill_at_data(message: AcceptedMessage) -> None:
        if "victim@example.com" in message.rcpt_tos and first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)

    async with LocalSmtpServer() as inbox:
        port = inbox.port
        inbox.on_data = kill_at_data
        await add_mailbox(db, "mb-crash", port)
        emails = ["a@example.com", "victim@example.com", "b@example.com", "c@example.com"]
        campaign_id, ids = await add_campaign(db, ["mb-crash"], emails, [("Hi", "Body", 0)])
        client = await OutreachClient.connect(crash_settings)
        try:
            await client.start_campaign(campaign_id)
            while first.poll() is None:
                await asyncio.sleep(0.1)
            assert first.returncode == -signal.SIGKILL
            workers.append(subprocess.Popen([OUTREACH, "worker"], env=env, stderr=subprocess.DEVNULL))
            await wait_for_state(client, campaign_id, "completed", timeout=120)
        finally:
            await client.close()
        received = Counter(r for m in inbox.messages for r in m.rcpt_tos)

    assert received == Counter(emails), "every prospect exactly once, the victim included"
    states = dict(await db.fetch(
        "SELECT p.email, s.state FROM sends s JOIN prospects p ON p.id = s.prospect_id"
        " WHERE s.campaign_id = $1", campaign_id,
    ))
    assert states["victim@example.com"] == "unknown"
    assert {e: s for e, s in states.items() if e != "victim@example.com"} == {
        "a@example.com": "sent", "b@example.com": "sent", "c@example.com": "sent"
    }


async def test_workers_killed_while_the_campaign_continues_as_new_leave_every_step_once_or_unknown(
    db: asyncpg.Pool, crash_settings: Settings, workers: list[subprocess.Popen[bytes]],
) -> None:
    """Issue 21: workers SIGKILLed every second or so while an open campaign with the
    smallest history budget is paused, resumed and fed (so it continues as new under
    the kills, decision 0048); then closed. Every prospect gets each step once (or a
    send ends `unknown` where a kill fell between DATA and the ledger), and the
    campaign completes."""
    settings = crash_settings.model_copy(update={"campaign_events_per_run": 100})
    env = worker_env(settings)

    def start_worker() -> None:
        workers.append(subprocess.Popen([OUTREACH, "worker"], env=env, stderr=subprocess.DEVNULL))

    start_worker()
    async with LocalSmtpServer() as inbox:
        await add_mailbox(db, "mb-kills", inbox.port)
        campaign_id, _ = await add_campaign(db, ["mb-kills"], ["k0@example.com"],
                                            [("Hi", "One", 0), ("Re: Hi", "Two", 1), ("Re: Hi", "Three", 1)])
        await db.execute("UPDATE campaigns SET is_open = true WHERE id = $1", campaign_id)
        client = await OutreachClient.connect(settings)
        try:
            await client.start_campaign(campaign_id)
            await wait_for_state(client, campaign_id, "running", timeout=60)
            for i in range(1, 13):
                await client.add_prospects(campaign_id, [Prospect(f"k{i}@example.com", {}, "")])
                await client.pause_campaign(campaign_id)
                await client.resume_campaign(campaign_id)
                if i % 3 == 0:  # kill the worker that runs, start another
                    os.kill(workers[-1].pid, signal.SIGKILL)
                    workers[-1].wait()
                    start_worker()
            await client.close_campaign(campaign_id)
            await wait_for_state(client, campaign_id, "completed", timeout=240)
            runs = [r async for r in client.temporal.list_workflows(
                f"WorkflowId = '{campaign_workflow_id(settings.task_queue, campaign_id)}'")]
        finally:
            await client.close()
        received = Counter(r for m in inbox.messages for r in m.rcpt_tos)

    states = Counter(r["state"] for r in await db.fetch("SELECT state FROM sends WHERE campaign_id = $1",
                                                        campaign_id))
    assert set(received) == {f"k{i}@example.com" for i in range(13)}
    assert all(n <= 3 for n in received.values()), received
    assert sum(received.values()) + states["unknown"] >= 3 * 13
    assert set(states) <= {"sent", "unknown"}, states
    assert len(runs) > 1, "the campaign never continued as new under the kills"

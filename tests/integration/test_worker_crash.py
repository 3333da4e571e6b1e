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
from config.settings import Settings
from localsmtp.server import AcceptedMessage, LocalSmtpServer
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

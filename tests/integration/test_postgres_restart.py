"""PostgreSQL restarts under a running worker: the database of these tests is a server
of their own (tests/postgres_private.py), stopped and started mid-run.

The reply of an SMTP transaction cannot be asked for again: if it cannot be
recorded, the send must end `unknown`. So recording it outlasts a restart, and a
restart in the middle of a campaign leaves every send `sent` exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

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
from store import ledger
from store.db import create_pool
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.postgres_private import PrivatePostgres, migrated_postgres
from workers.registry import WORKFLOWS, build_activities


@pytest.fixture(scope="module")
async def postgres() -> AsyncIterator[PrivatePostgres]:
    async with migrated_postgres() as server:
        yield server


@pytest.fixture
async def private_pool(postgres: PrivatePostgres) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres.url(), max_size=20)
    await pool.execute("TRUNCATE send_attempts, sends, prospects, steps, campaign_mailboxes, campaigns,"
                       " mailboxes, workspaces RESTART IDENTITY CASCADE")
    yield pool
    await pool.close()


async def test_a_reply_that_arrives_while_postgres_is_down_is_recorded_once_it_is_back(
    postgres: PrivatePostgres, private_pool: asyncpg.Pool,
) -> None:
    await add_mailbox(private_pool, "mb-pg", 2525)
    campaign_id, [prospect] = await add_campaign(private_pool, ["mb-pg"], ["p@example.com"],
                                                 [("Hi", "Body", 0)])
    await ledger.claim_due(private_pool, campaign_id, 1, as_of=_now(), limit=1, per_mailbox=1,
                           exclude_prospects=[], blocked_mailboxes=[], message_id=lambda p, d: f"<{p}@{d}>")
    attempt = await ledger.begin_attempt(private_pool, campaign_id, 1, prospect)
    assert await ledger.mark_data_started(private_pool, campaign_id, 1, prospect)

    await asyncio.to_thread(postgres.stop)
    record = asyncio.create_task(ledger.finish_attempt(
        private_pool, campaign_id, 1, prospect, attempt, "sent", "sent", ledger.Reply(250, "2.0.0", "OK")))
    await asyncio.sleep(2.0)
    assert not record.done(), "the write gave up while PostgreSQL was down"
    await asyncio.to_thread(postgres.start)
    await asyncio.wait_for(record, timeout=60)

    row = await private_pool.fetchrow("SELECT state, data_started_at FROM sends WHERE prospect_id = $1",
                                      prospect)
    assert row is not None and row["state"] == "sent" and row["data_started_at"] is None


async def test_a_campaign_survives_a_postgres_restart_mid_run_with_every_send_sent_once(
    postgres: PrivatePostgres, private_pool: asyncpg.Pool, dev_server: WorkflowEnvironment,
    redis_client: aioredis.Redis, e2e_settings: Settings,
) -> None:
    settings = e2e_settings.model_copy(
        update={"database_url": postgres.url(), "send_first_retry_seconds": 0.5})
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=30))
    emails = [f"p{i}@example.com" for i in range(30)]
    async with LocalSmtpServer() as inbox, Worker(
        dev_server.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=build_activities(settings, private_pool, redis_client, transport),
        max_concurrent_activities=100,
    ):
        await add_mailbox(private_pool, "mb-pg", inbox.port)
        campaign_id, _ = await add_campaign(private_pool, ["mb-pg"], emails, [("Hi", "Body", 0)])
        client = await OutreachClient.connect(settings)
        try:
            # One transaction's reply is held past the moment PostgreSQL goes down.
            inbox.hang("data", 4.0)
            await client.start_campaign(campaign_id)
            await _until(lambda: private_pool.fetchval(
                "SELECT count(*) FROM sends WHERE data_started_at IS NOT NULL"), "DATA to start")
            await postgres.restart_after(6.0)
            inbox.hang("data", 0)
            status = await wait_for_state(client, campaign_id, "completed", timeout=180)
        finally:
            await client.close()
    await transport.close()

    assert status["state"] == "completed"
    states = Counter(r["state"] for r in await private_pool.fetch("SELECT state FROM sends"))
    assert states == {"sent": 30}
    received = Counter(m.rcpt_tos[0] for m in inbox.messages)
    assert received == Counter(emails), "a send was lost or went out twice"


def _now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=1)


async def _until(count: object, what: str, timeout: float = 60.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await count():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)

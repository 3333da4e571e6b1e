"""Redis stopped mid-run: limits fail closed (nothing reaches the SMTP server while it is
down) and sending resumes when it returns, limits rebuilt from the ledger."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OutreachClient
from config.names import send_task_queue
from config.settings import Settings
from localsmtp.provider import HostBehaviour, Provider
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from workers.registry import WORKFLOWS, build_activities, build_transport


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, so stopping it disturbs no other test."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._listening():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def outage_worker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings,
    private_redis: PrivateRedis,
) -> AsyncIterator[Settings]:
    settings = e2e_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{private_redis.port}/0"}
    )
    # Connections are not retried forever inside one call: a dead Redis answers quickly.
    redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    transport = build_transport(settings, redis)
    async with Worker(
        dev_server.client, task_queue=send_task_queue(settings.task_queue),
        workflows=list(WORKFLOWS), activities=build_activities(settings, db, redis, transport),
    ):
        yield settings
    await transport.close()
    await redis.aclose()


async def test_no_send_while_redis_is_down_and_sending_resumes_after(
    db: asyncpg.Pool, outage_worker: Settings, private_redis: PrivateRedis,
) -> None:
    async with LocalSmtpServer() as inbox:
        inbox.hang(at="data", seconds=0.1)
        await add_mailbox(db, "mb-1", inbox.port)
        await add_mailbox(db, "mb-2", inbox.port)
        emails = [f"o{i}@example.com" for i in range(40)]
        campaign_id, _ = await add_campaign(db, ["mb-1", "mb-2"], emails, [("Hi", "Body", 0)])
        client = await OutreachClient.connect(outage_worker)
        try:
            await client.start_campaign(campaign_id)
            await inbox.wait_for(lambda: len(inbox.messages) >= 6, timeout=60)
            private_redis.stop()
            at_outage = len(inbox.messages)
            await asyncio.sleep(4)  # the outage lasts a while; then count what got through
            during = len(inbox.messages) - at_outage
            # Only transactions already past the limits (one per mailbox) may finish.
            assert during <= 2
            assert len(inbox.messages) < len(emails)
            private_redis.start()
            await wait_for_state(client, campaign_id, "completed", timeout=120)
        finally:
            await client.close()
        assert Counter(r for m in inbox.messages for r in m.rcpt_tos) == Counter(emails)


async def test_after_redis_loses_its_data_mid_run_the_provider_refuses_nothing(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings,
    private_redis: PrivateRedis,
) -> None:
    """A host that takes 4 messages in any 5 s and 2 connections at once, sent to without
    a pause; Redis restarts without persistence mid-run. What the gate forgot (the
    provider's window, the connections still open) is restored from the ledger before
    anything more is let through, so the host never refuses (docs/decisions/0029)."""
    provider = Provider([HostBehaviour("mx", max_connections=2, per_minute=4, window_seconds=5.0)])
    # Our window is 2 s longer than the host's, as production's 62 s are to a provider's
    # 60: room for a loaded machine's delay between a slot and its message. A refusal
    # would push the host back only briefly, so it shows as a refusal, not a time-out;
    # the other fuses are short too (as in the chaos suite), this test is about refusals.
    settings = e2e_settings.model_copy(update={
        "redis_url": f"redis://127.0.0.1:{private_redis.port}/0",
        "limit_other_per_minute": 4, "limit_provider_window_seconds": 7.0, "limit_other_connections": 2,
        "limit_restore_hold_seconds": 1.0, "smtp_idle_seconds": 1.0, "send_start_to_close_seconds": 10.0,
        "limit_throttle_jitter_seconds": 2.0, "limit_breaker_open_seconds": 2.0,
        "step_stall_check_seconds": 5.0,
    })
    redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    transport = build_transport(settings, redis)
    emails = [f"r{i}@example.com" for i in range(20)]
    async with provider, Worker(
        dev_server.client, task_queue=send_task_queue(settings.task_queue),
        workflows=list(WORKFLOWS), activities=build_activities(settings, db, redis, transport),
    ):
        await add_mailbox(db, "mb-1", provider.port("mx"))
        await add_mailbox(db, "mb-2", provider.port("mx"))
        campaign_id, _ = await add_campaign(db, ["mb-1", "mb-2"], emails, [("Hi", "Body", 0)])
        client = await OutreachClient.connect(settings)
        try:
            await client.start_campaign(campaign_id)
            await provider.wait_for(lambda: len(provider.accepted) >= 6, timeout=60)
            private_redis.stop()  # a restart without persistence: everything is gone
            private_redis.start()
            await wait_for_state(client, campaign_id, "completed", timeout=180)
        finally:
            await client.close()
    await transport.close()
    await redis.aclose()

    assert provider.refusals == [] and provider.refused_connections() == 0
    assert provider.peak_connections("mx") <= 2 and provider.most_in_window("mx", 5.0) <= 4
    assert sorted(r.recipient for r in provider.accepted) == sorted(emails)

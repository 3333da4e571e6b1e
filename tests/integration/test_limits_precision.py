"""Two worker processes share the limits through Redis: 300 emails over 6 mailboxes on
one provider limited to 60/min, through a host limited to 3 connections.

The SMTP server is the judge: it never sees more than 3 connections at once,
nor more than 60 messages in any 60-second window. The run's length against
what the limits require is printed (a figure, not an assertion).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import timedelta

import asyncpg
import pytest

from client.api import OutreachClient
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_worker_crash import OUTREACH, worker_env

PER_MINUTE, CONNECTIONS, EMAILS = 60, 3, 300


def most_in_any_window(instants: list[float], window: float) -> int:
    instants = sorted(instants)
    best, start = 0, 0
    for end, t in enumerate(instants):
        while t - instants[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.timeout(900)
async def test_two_workers_never_exceed_the_provider_rate_or_host_connections(
    db: asyncpg.Pool, e2e_settings: Settings
) -> None:
    settings = e2e_settings.model_copy(update={"step_window": 100})
    env = {**worker_env(settings), "OUTREACH_LIMIT_GMAIL_PER_MINUTE": str(PER_MINUTE),
           "OUTREACH_LIMIT_GMAIL_CONNECTIONS": str(CONNECTIONS), "OUTREACH_SMTP_IDLE_SECONDS": "2"}
    workers = [subprocess.Popen([OUTREACH, "worker"], env=env, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        async with LocalSmtpServer() as inbox:
            inbox.hang(at="data", seconds=0.05)  # real servers take a moment per message
            mailboxes = [f"mb-{i}" for i in range(6)]
            for m in mailboxes:
                await add_mailbox(db, m, inbox.port, provider="gmail")
            emails = [f"r{i}@example.com" for i in range(EMAILS)]
            campaign_id, _ = await add_campaign(db, mailboxes, emails, [("Hi", "Body", 0)])
            client = await OutreachClient.connect(settings)
            try:
                started = time.monotonic()
                await client.start_campaign(campaign_id)
                await wait_for_state(client, campaign_id, "completed", timeout=600)
                elapsed = time.monotonic() - started
            finally:
                await client.close()
            received = [m.received_at.timestamp() for m in inbox.messages]
            peak_connections = inbox.max_concurrent_connections
    finally:
        for w in workers:
            w.terminate()
        await asyncio.to_thread(lambda: [w.wait(timeout=60) for w in workers])

    assert len(received) == EMAILS
    assert peak_connections <= CONNECTIONS
    assert most_in_any_window(received, 60.0) <= PER_MINUTE
    # Paced at the limit: one send every 60/PER_MINUTE seconds.
    required = timedelta(minutes=(EMAILS - 1) / PER_MINUTE).total_seconds()
    print(f"\nlimits precision: {EMAILS} emails in {elapsed:.0f}s, limits require {required:.0f}s:"
          f" ratio {elapsed / required:.2f}; peak connections {peak_connections}/{CONNECTIONS},"
          f" busiest 60 s window {most_in_any_window(received, 60.0)}/{PER_MINUTE}")

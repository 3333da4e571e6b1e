"""Hearing replies within seconds (issue 25, part 5): with IMAP IDLE, real dovecot and
the real send worker, a reply stops its prospect's sequence within 3 s of being
appended (p99 over 40 replies, one after another); without IDLE nothing listens and the
poll schedule reads as before."""

from __future__ import annotations

import asyncio
import math
import time

import asyncpg
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from config.settings import Settings
from inbox.listen import InboxListener
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox, sealed
from tests.imap_server import ImapServer
from tests.integration.test_inbox_stops_sequence import (
    PASSWORD,
    SENDER,
    imap,  # noqa: F401 - the fixture
    reply_to,
)
from workers.registry import build_inbox_listener

REPLIES = 40


async def status(db: asyncpg.Pool, prospect: int) -> str:
    found: str = await db.fetchval("SELECT status FROM prospects WHERE id = $1", prospect)
    return found


async def test_with_idle_a_reply_stops_the_sequence_within_three_seconds(
    db: asyncpg.Pool, inbox: LocalSmtpServer, imap: ImapServer, worker: None,  # noqa: F811
    client: OutreachClient, dev_server: WorkflowEnvironment, e2e_settings: Settings,
) -> None:
    await db.execute("TRUNCATE suppressions, inbound_messages, inbox_cursors, sent_messages")
    await add_mailbox(db, "mb", inbox.port, email=SENDER)
    await db.execute(
        "UPDATE mailboxes SET imap_host = $1, imap_port = $2, imap_security = 'none',"
        " imap_username = $3, imap_password = $4 WHERE id = 'mb'",
        imap.host, imap.port, SENDER, sealed("mb", "imap_password", PASSWORD),
    )
    rcpts = [f"p{i}@idle.example.org" for i in range(REPLIES)]
    steps = [("Hello", "One", 0), ("Re: Hello", "Two", 3600)]
    campaign_id, ids = await add_campaign(db, ["mb"], rcpts, steps)
    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) == REPLIES, timeout=60)
    first = {m.rcpt_tos[0]: m for m in inbox.messages}

    listener = build_inbox_listener(e2e_settings.model_copy(update={"inbox_idle": True}), db)
    assert isinstance(listener, InboxListener)
    stop = asyncio.Event()
    listening = asyncio.create_task(listener.run(stop))
    try:
        deadline = time.monotonic() + 30
        while listener.watching != {("mb", "INBOX")}:
            assert time.monotonic() < deadline, "no IDLE connection within 30 s"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # the watcher's first pass (what came before it) and its IDLE
        latencies = []
        for rcpt, prospect in zip(rcpts, ids, strict=True):
            appended = time.monotonic()
            await asyncio.to_thread(imap.append, SENDER, reply_to(first[rcpt], "Thanks, not interested."))
            while await status(db, prospect) != "replied":
                assert time.monotonic() - appended < 30, f"{rcpt} not stopped within 30 s"
                await asyncio.sleep(0.02)
            latencies.append(time.monotonic() - appended)
    finally:
        stop.set()
        await listening
    ordered = sorted(latencies)
    p50, p99 = ordered[len(ordered) // 2], ordered[math.ceil(0.99 * len(ordered)) - 1]
    print(f"\nIDLE: append to stop over {REPLIES} replies: p50 {p50:.2f} s, p99 {p99:.2f} s,"
          f" max {ordered[-1]:.2f} s")
    assert p99 <= 3.0, ordered
    assert await db.fetchval("SELECT count(*) FROM sends WHERE campaign_id = $1 AND step = 2",
                             campaign_id) == 0
    assert listener.watching == set()  # every connection closed on stop


async def test_with_idle_off_nothing_listens_and_the_schedule_alone_reads(
        settings: Settings, db: asyncpg.Pool) -> None:
    assert build_inbox_listener(settings.model_copy(update={"inbox_idle": False}), db) is None

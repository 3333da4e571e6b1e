"""The deliverability guard on the real worker, Temporal dev server and an SMTP server
that answers 550 5.1.1 for some recipients (docs/decisions/0033): a mailbox is paused
at the bounce that takes it over the limit and not before, as an operator would pause
it, and an operator's resume is not undone by the bounces that caused the pause."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from activities.bounce_guard import BounceGuard
from client.api import OutreachClient
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from store import bounce_guard
from store.bounce_guard import RecentSends
from tests.factories import add_campaign, add_mailbox
from tests.integration.conftest import temporal_address
from tests.integration.test_campaign_e2e import wait_for_state
from workflows.mailbox import MailboxWorkflow

WINDOW, RATE = 40, 0.05  # more than 2 hard bounces among the last 40 sends pauses
GONE = (550, "5.1.1 User unknown")


@pytest.fixture
def e2e_settings(settings: Settings, dev_server: WorkflowEnvironment) -> Settings:
    return settings.model_copy(update={
        "temporal_address": temporal_address(dev_server), "step_min_sleep_seconds": 0.5,
        "paused_recheck_seconds": 0.5, "bounce_guard_window": WINDOW, "bounce_guard_rate": RATE,
    })


def guard_pauses() -> float:
    return REGISTRY.get_sample_value("outreach_bounce_guard_pauses_total", {"provider": "other"}) or 0.0


@pytest.mark.parametrize("bounced, sends, over", [
    (2, 40, False), (3, 40, True), (2, 2, False),  # the window is the denominator, not the sends
    (0, 0, False),
])
def test_the_limit_is_more_bounces_than_rate_of_a_full_window(bounced: int, sends: int, over: bool) -> None:
    assert RecentSends(sends=sends, bounced=bounced).over(WINDOW, RATE) is over


async def test_a_mailbox_is_paused_at_the_bounce_over_the_limit_and_a_resume_holds(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-g", inbox.port)
    pauses_before = guard_pauses()

    # Two hard bounces in ten sends: at the limit, not over it.
    first = [f"a{i}@example.com" for i in range(10)]
    for address in first[3:5]:
        inbox.script(address, replies=[GONE])
    campaign_a, _ = await add_campaign(db, ["mb-g"], first, [("Hi", "Body", 0)])
    await client.start_campaign(campaign_a)
    status = await wait_for_state(client, campaign_a, "completed", timeout=120)
    assert (status["steps"][0]["sent"], status["steps"][0]["hard_bounced"]) == (8, 2)
    assert await bounce_guard.recent_sends(db, "mb-g", WINDOW) == RecentSends(sends=10, bounced=2)
    mailbox = (await client.mailbox_status("mb-g"))[0]
    assert not mailbox["paused"] and guard_pauses() == pauses_before

    # A third: over the limit. The mailbox is paused by the operator's signal.
    second = [f"b{i}@example.com" for i in range(20)]
    inbox.script(second[0], replies=[GONE])
    campaign_b, _ = await add_campaign(db, ["mb-g"], second, [("Hi", "Body", 0)])
    await client.start_campaign(campaign_b)
    row = await _wait_for_paused(db, "mb-g")
    assert row["paused_by"] == "operator"
    assert row["pause_reason"].startswith("bounce_rate: 3 hard bounces in the last ")
    assert guard_pauses() == pauses_before + 1
    handle = client.temporal.get_workflow_handle(f"{client.settings.task_queue}-mailbox-mb-g")
    assert (await handle.query(MailboxWorkflow.status)).paused_by == "operator"

    # The operator resumes: the same three bounces do not pause it again.
    await client.resume_mailbox("mb-g")
    status = await wait_for_state(client, campaign_b, "completed", timeout=120)
    assert (status["steps"][0]["sent"], status["steps"][0]["hard_bounced"]) == (19, 1)
    mailbox = (await client.mailbox_status("mb-g"))[0]
    assert not mailbox["paused"] and guard_pauses() == pauses_before + 1
    since = await db.fetchval("SELECT bounce_guard_since FROM mailboxes WHERE id = 'mb-g'")
    assert since is not None
    after = await bounce_guard.recent_sends(db, "mb-g", WINDOW)
    assert after.bounced == 0 and after.sends <= 19


async def _wait_for_paused(db: asyncpg.Pool, mailbox_id: str) -> asyncpg.Record:
    deadline = time.monotonic() + 60
    while True:
        row = await db.fetchrow("SELECT paused, paused_by, pause_reason FROM mailboxes WHERE id = $1",
                                mailbox_id)
        if row is not None and row["paused"]:
            return row
        assert time.monotonic() < deadline, f"{mailbox_id} not paused: {dict(row or {})}"
        await asyncio.sleep(0.1)


async def test_sends_blocked_later_by_the_recipients_servers_pause_the_mailbox_at_their_rate(
    db: asyncpg.Pool, worker: None, client: OutreachClient,
) -> None:
    """Blocks read from the inbox (a DSN's 5.7.x: the address is fine, the sender is not
    trusted) count against the mailbox at their own rate, and pause it like bounces."""
    await add_mailbox(db, "mb-b", 2525)
    campaign_id, prospects = await add_campaign(db, ["mb-b"], [f"k{i}@example.com" for i in range(12)],
                                                [("Hi", "Body", 0)])
    await db.executemany(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, state, attempts, message_id,"
        " first_attempt_at) VALUES ($1, 1, $2, 'mb-b', 'sent', 1, $3, now())",
        [(campaign_id, p, f"<{p}@sender.example>") for p in prospects])

    async def block(prospect: int, uid: int) -> None:
        await db.execute(
            "INSERT INTO inbound_messages (mailbox_id, folder, uidvalidity, uid, class, verdict,"
            " campaign_id, step, prospect_id)"
            " VALUES ('mb-b', 'INBOX', 1, $1, 'bounce', 'blocked', $2, 1, $3)",
            uid, campaign_id, prospect)

    guard = BounceGuard(db, client.settings.task_queue, WINDOW, RATE, temporal=client.temporal,
                        block_rate=RATE)
    for uid, prospect in enumerate(prospects[:2], start=1):
        await block(prospect, uid)
    assert await bounce_guard.recent_sends(db, "mb-b", WINDOW) == RecentSends(sends=12, bounced=0, blocked=2)
    assert not await guard.after_bounce("mb-b")  # 2 of a 40-send window: at the limit

    await block(prospects[2], 3)
    assert await guard.after_bounce("mb-b")
    row = await _wait_for_paused(db, "mb-b")
    assert row["paused_by"] == "operator"
    assert row["pause_reason"].startswith("bounce_rate: 3 sends blocked by the recipients' servers")

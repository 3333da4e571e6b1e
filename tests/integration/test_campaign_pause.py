"""A campaign pause is a stop (decision 0044): once `campaigns pause` returns, no new
SMTP transaction of the campaign reaches DATA, claimed sends (some asleep on reserved
provider slots, one waiting to retry a soft bounce) go back to the queue unsent, and
after `campaigns resume` every prospect gets each step exactly once.

Real stack: PostgreSQL, Redis, the Temporal dev server, a worker, an in-process SMTP
server that takes a moment per message; the provider's limit binds, so sends wait on
their slots when the pause comes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import pytest

from client import InvalidState
from client.api import OutreachClient
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from store import UnknownRecord
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_cli import outreach

EMAILS = [f"c{i}@example.com" for i in range(30)]
SOFT = "c5@example.com"


@pytest.fixture
def e2e_settings(e2e_settings: Settings) -> Settings:
    # One send every 0.5 s at most (12 per 6 s): sends are asleep on their slots.
    return e2e_settings.model_copy(update={
        "limit_gmail_per_minute": 12, "limit_provider_window_seconds": 6.0,
        "send_first_retry_seconds": 1.0, "step_window": 30,
    })


@pytest.mark.timeout(240)
async def test_no_message_of_a_paused_campaign_reaches_data_until_it_is_resumed(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient, worker: None,
    e2e_settings: Settings,
) -> None:
    inbox.hang(at="data", seconds=0.1)  # real servers take a moment per message
    await add_mailbox(db, "mb-p", inbox.port, provider="gmail")
    campaign_id, _ = await add_campaign(db, ["mb-p"], EMAILS, [("Hi", "Hello", 0), ("Re: Hi", "Again", 0)])
    inbox.script(SOFT, replies=[(451, "4.2.1 Mailbox busy, try later")])

    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) >= 8, timeout=60)
    await client.pause_campaign(campaign_id)
    paused_at = time.time()
    assert (await client.campaign_status(campaign_id))["state"] == "paused"
    shown = await outreach(e2e_settings, "campaigns", "status", campaign_id)
    assert shown.returncode == 0 and "paused" in shown.stdout, shown

    await asyncio.sleep(6.0)  # longer than the soft bounce's retry and many slots
    # A transaction already in DATA when the command returned may finish (0.1 s here).
    late = [m for m in inbox.messages if m.received_at.timestamp() > paused_at + 1.0]
    assert late == [], [m.rcpt_tos for m in late]
    held = len(inbox.messages)
    assert held < 2 * len(EMAILS)
    queued = await db.fetchval(
        "SELECT count(*) FROM sends WHERE campaign_id = $1 AND state IN ('queued', 'soft_bounced')",
        campaign_id)
    sending = await db.fetchval(
        "SELECT count(*) FROM sends WHERE campaign_id = $1 AND state = 'sending'", campaign_id)
    assert sending == 0, "claimed sends went back to the queue unsent"
    print(f"\ncampaign pause: {held} messages before, none after; {queued} sends back in the queue")

    await client.resume_campaign(campaign_id)
    assert (await client.campaign_status(campaign_id))["state"] == "running"
    status = await wait_for_state(client, campaign_id, "completed", timeout=180)
    assert [s["sent"] for s in status["steps"]] == [len(EMAILS), len(EMAILS)]
    per_recipient = Counter(m.rcpt_tos[0] for m in inbox.messages)
    assert per_recipient == {email: 2 for email in EMAILS}


async def test_pausing_a_finished_or_unknown_campaign_is_a_clear_error(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient, worker: None,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb-q", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-q"], ["q@example.com"], [("Hi", "Hello", 0)])
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=60)
    with pytest.raises(InvalidState, match="completed"):
        await client.pause_campaign(campaign_id)
    with pytest.raises(UnknownRecord):
        await client.pause_campaign("cmp-nosuch")
    for args in (("pause", campaign_id), ("resume", campaign_id), ("pause", "cmp-nosuch")):
        ran = await outreach(e2e_settings, "campaigns", *args)
        assert ran.returncode != 0 and "error:" in ran.stderr, (args, ran)
    assert (await client.campaign_status(campaign_id))["state"] == "completed"

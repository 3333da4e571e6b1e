"""Events a CRM can use (issue 25, part 4): every type delivered signed, ids only unless
the operator opts in; `outreach webhook replay` sends a chosen window again under the
same ids; a receiver down for ten minutes (time-skipping) then gets every event, each
prospect's in the order they happened."""

from __future__ import annotations

import hmac
import json
import secrets
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.inbox import InboxActivities
from activities.inbox_models import WebhookInput, WebhookResult
from config.converter import data_converter
from config.names import DELIVER_WEBHOOK
from config.settings import Settings
from inbox.webhook import signature
from mail.unsubscribe import SendKey
from store import inbound, webhook_events
from store.inbound import Inbound, Match
from store.unsubscribes import unsubscribe
from tests.factories import add_campaign, add_mailbox, settings_ring
from tests.integration.test_cli import outreach
from tests.integration.test_inbox_webhook import SECRET, Receiver, receiver  # noqa: F401 - the fixture
from workflows.webhook import WebhookWorkflow

BIN = Path(sys.executable).parent
TYPES = {"sent", "hard_bounced", "replied", "unsubscribed", "complained", "postponed"}


async def sent(db: asyncpg.Pool, campaign_id: str, step: int, prospect: int, state: str = "sent") -> None:
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, attempts,"
        " first_attempt_at, sent_at, finished_at) VALUES ($1, $2, $3, 'mb', $4, $5, 1, now(), now(), now())",
        campaign_id, step, prospect, f"<{campaign_id}.{step}.{prospect}@sender.example.com>", state)


async def message(db: asyncpg.Pool, campaign_id: str, prospect: int, email: str, kind: str,
                  intent: str | None = None, back: date | None = None) -> None:
    """One inbox message recorded and acted on, as the poll does (inbox/poll.py)."""
    async with db.acquire() as conn, conn.transaction():
        found = Inbound("mb", "INBOX", 1, secrets.randbelow(10**9), None, kind, None,
                        Match(campaign_id, 1, prospect, email, "thread"), "", None, intent=intent,
                        intent_confidence=0.9 if intent else None, return_date=back)
        row_id = await inbound.record(conn, found)
        assert row_id is not None
        await inbound.act_on(conn, row_id, found)


async def every_kind(db: asyncpg.Pool) -> tuple[str, list[int]]:
    """One of each event, through the paths that write the facts."""
    await db.execute("TRUNCATE inbound_messages, webhook_events, suppressions")
    await add_mailbox(db, "mb", 2525)
    emails = [f"p{i}@x{i}.example.org" for i in range(5)]
    campaign_id, ids = await add_campaign(db, ["mb"], emails, [("Hi", "x", 0), ("Re: Hi", "y", 86400)])
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)
    for p in ids[:4]:
        await sent(db, campaign_id, 1, p)  # sent
    await sent(db, campaign_id, 1, ids[4], "hard_bounced")  # hard_bounced at SMTP time
    await message(db, campaign_id, ids[0], emails[0], "reply", "interested")  # replied
    await unsubscribe(db, SendKey("ws", campaign_id, 1, ids[1]))  # unsubscribed (one-click)
    await message(db, campaign_id, ids[2], emails[2], "complaint")  # complained
    await message(db, campaign_id, ids[3], emails[3], "auto_reply", "out_of_office")  # postponed
    return campaign_id, ids


def verified(r: Receiver) -> list[dict[str, Any]]:
    events = []
    for headers, body in r.bodies:
        expected = signature(SECRET, headers["X-Outreach-Timestamp"], body)
        assert hmac.compare_digest(headers["X-Outreach-Signature"], expected)
        events += json.loads(body)["events"]
    return events


async def test_every_event_type_is_delivered_signed_with_ids_only(
        db: asyncpg.Pool, receiver: Receiver) -> None:  # noqa: F811
    receiver.fail = 0
    campaign_id, ids = await every_kind(db)
    inbox = InboxActivities(db, settings_ring(), receiver.url, SECRET)
    result = await ActivityEnvironment().run(inbox.deliver_webhook, WebhookInput(batch_size=3))
    events = verified(receiver)
    # Four sent, one hard bounce, one each of the rest.
    assert result.delivered == len(events) == 9 and {e["type"] for e in events} == TYPES
    assert len({e["id"] for e in events}) == 9
    replied = next(e for e in events if e["type"] == "replied")
    assert (replied["class"], replied["prospect_id"], replied["step"]) == ("interested", ids[0], 1)
    postponed = next(e for e in events if e["type"] == "postponed")
    assert postponed["prospect_id"] == ids[3] and postponed["due_at"] > postponed["occurred_at"]
    assert "@x" not in json.dumps(events)  # ids only: no address
    assert (await ActivityEnvironment().run(inbox.deliver_webhook, WebhookInput())).delivered == 0

    # Opted in: the prospect's address, read at delivery.
    await db.execute("UPDATE webhook_events SET delivered_at = NULL")
    receiver.bodies.clear()
    with_address = InboxActivities(db, settings_ring(), receiver.url, SECRET, webhook_include_address=True)
    await ActivityEnvironment().run(with_address.deliver_webhook, WebhookInput())
    assert {e["email"] for e in verified(receiver)} == {f"p{i}@x{i}.example.org" for i in range(5)}


async def test_replay_sends_a_chosen_window_again_under_the_same_ids(
        db: asyncpg.Pool, receiver: Receiver, settings: Settings,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    receiver.fail = 0
    await every_kind(db)
    inbox = InboxActivities(db, settings_ring(), receiver.url, SECRET)
    await ActivityEnvironment().run(inbox.deliver_webhook, WebhookInput())
    first = verified(receiver)
    # A window holding only the postponement and what came after it.
    await db.execute("UPDATE webhook_events SET occurred_at = occurred_at - interval '2 days'"
                     " WHERE type <> 'postponed'")
    since = datetime.now(UTC) - timedelta(days=1)
    monkeypatch.setenv("OUTREACH_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("OUTREACH_WEBHOOK_SECRET", SECRET)
    for _ in range(2):
        receiver.bodies.clear()
        ran = await outreach(settings, "webhook", "replay", "--since", f"{since:%Y-%m-%dT%H:%M:%S}")
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == "replayed 1 events"
        assert [e["id"] for e in verified(receiver)] == [e["id"] for e in first if e["type"] == "postponed"]
    receiver.bodies.clear()
    ran = await outreach(settings, "webhook", "replay", "--since", "2000-01-01")
    assert [e["id"] for e in verified(receiver)] == [e["id"] for e in first]  # all, in the same order


async def test_events_older_than_the_window_are_forgotten_delivered_or_not(db: asyncpg.Pool) -> None:
    await every_kind(db)
    await db.execute("UPDATE webhook_events SET occurred_at = now() - interval '91 days' WHERE type = 'sent'")
    assert await webhook_events.forget_old(db, timedelta(days=90)) == 4  # never delivered: no webhook
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE type = 'sent'") == 0
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 5


class DownForTenMinutes:
    """The real delivery activity under its real name; the receiver refuses every POST
    until ten minutes (server time, skipped) after the first attempt."""

    def __init__(self, real: InboxActivities, endpoint: Receiver) -> None:
        self.real, self.receiver = real, endpoint
        self.first: datetime | None = None
        self.attempts: list[datetime] = []

    @activity.defn(name=DELIVER_WEBHOOK)
    async def deliver_webhook(self, inp: WebhookInput) -> WebhookResult:
        now = activity.info().started_time
        self.first = self.first or now
        self.attempts.append(now)
        self.receiver.fail = 1 if now - self.first < timedelta(minutes=10) else 0
        return await self.real.deliver_webhook(inp)


async def test_a_receiver_down_for_ten_minutes_then_gets_every_event_in_order(
        db: asyncpg.Pool, receiver: Receiver) -> None:  # noqa: F811
    campaign_id, ids = await every_kind(db)
    for p in ids[:4]:  # later events of the same prospects: step 2 sent
        await sent(db, campaign_id, 2, p)
    rows = await db.fetch("SELECT prospect_id, id FROM webhook_events ORDER BY seq")
    written = [(r["prospect_id"], r["id"]) for r in rows]
    down = DownForTenMinutes(InboxActivities(db, settings_ring(), receiver.url, SECRET), receiver)
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"), data_converter=data_converter(),
    ) as env:
        async with Worker(env.client, task_queue="webhook-down", workflows=[WebhookWorkflow],
                          activities=[down.deliver_webhook]):
            result = await env.client.execute_workflow(
                WebhookWorkflow.run, WebhookInput(timeout=timedelta(minutes=20), batch_size=4),
                id="webhook-down", task_queue="webhook-down")
    assert down.first is not None and down.attempts[-1] - down.first >= timedelta(minutes=10)
    assert len(down.attempts) >= 10  # backoff 2 s doubling to 60 s: a dozen refusals
    events = verified(receiver)
    assert result.delivered == len(events) == len(written)
    for prospect in ids:
        assert [e["id"] for e in events if e["prospect_id"] == prospect] == [
            i for p, i in written if p == prospect]

"""What issue 14 must show, end to end: real dovecot, the real send worker, the inbox
poll workflow on the maintenance worker, a 3-step campaign.

A replies (threaded) after step 1 and gets no step 2 or 3; B's automatic reply (not an
absence) changes nothing, so B's step 2 goes to the gate; C's DSN (hard) stops C and lists the
address; D replies without threading headers and is stopped by the From fallback.
Then B really replies while B's step 2 is held between the gate and DATA (at RCPT,
by the SMTP server): the check before DATA stops it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from activities.inbox_models import InboxPollInput, InboxPollResult
from client.api import OutreachClient
from config.names import maintenance_task_queue
from config.settings import Settings
from localsmtp.server import AcceptedMessage, LocalSmtpServer
from store.campaigns import campaign_status
from store.inbound import inbound_of
from tests.factories import add_campaign, add_mailbox, sealed
from tests.imap_server import ImapServer, running_imap
from tests.integration.conftest import MaintenanceWorkerFactory
from tests.integration.test_campaign_controls import until
from tests.integration.test_campaign_e2e import wait_for_state
from workers.registry import build_maintenance_activities
from workflows.inbox_poll import InboxPollWorkflow

SENDER = "mb@sender.example.com"
PASSWORD = "imap-pass"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"
A, B, C, D = "a@acme.example.org", "b@beta.example.org", "c@gamma.example.org", "d@delta.example.org"
AUTHSERV_ID = "mx.provider.example"  # the mailbox provider's Authentication-Results (decision 0050)


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    with running_imap({SENDER: PASSWORD}) as server:
        yield server


def reply_to(original: AcceptedMessage, body: str, *, threaded: bool = True, extra: str = "") -> bytes:
    """What the prospect's mail program writes back to the message the engine sent."""
    rcpt = original.rcpt_tos[0]
    mid = original.message_id
    thread = f"In-Reply-To: {mid}\r\nReferences: {mid}\r\n" if threaded else ""
    return (
        f"From: <{rcpt}>\r\nTo: <{SENDER}>\r\nSubject: Re: Hello\r\n"
        f"Message-ID: <{secrets.token_hex(6)}@{rcpt.split('@')[1]}>\r\n{thread}{extra}\r\n{body}\r\n"
    ).encode()


def fixture_bounce(recipient: str, message_id: str) -> bytes:
    text = (FIXTURES / "postfix_dsn_hard.eml").read_text("utf-8")
    text = text.replace("{recipient}", recipient).replace("{message_id}", message_id)
    # Each DSN is a message of its own: its own Message-ID.
    text = text.replace("<20261130060000.ABC123@", f"<{secrets.token_hex(6)}@")
    return text.replace("\n", "\r\n").encode()


def bounce_of(original: AcceptedMessage) -> bytes:
    return fixture_bounce(original.rcpt_tos[0], original.message_id or "")


async def poll_now(env: WorkflowEnvironment, settings: Settings) -> InboxPollResult:
    return await env.client.execute_workflow(
        InboxPollWorkflow.run, InboxPollInput(timeout=timedelta(seconds=60), imap_timeout_seconds=10),
        id=f"inbox-poll-{secrets.token_hex(4)}", task_queue=maintenance_task_queue(settings.task_queue),
    )


def sample(name: str, **labels: str) -> float | None:
    value: float | None = REGISTRY.get_sample_value(name, labels)
    return value


def to(inbox: LocalSmtpServer, rcpt: str) -> list[AcceptedMessage]:
    return [m for m in inbox.messages if list(m.rcpt_tos) == [rcpt]]


async def test_replies_and_bounces_stop_the_sequence(
    db: asyncpg.Pool, inbox: LocalSmtpServer, imap: ImapServer, worker: None, maintenance_worker: None,
    client: OutreachClient, dev_server: WorkflowEnvironment, e2e_settings: Settings,
) -> None:
    await db.execute("TRUNCATE suppressions, inbound_messages, inbox_cursors, sent_messages")
    await add_mailbox(db, "mb", inbox.port, email=SENDER)
    await db.execute(
        "UPDATE mailboxes SET imap_host = $1, imap_port = $2, imap_security = 'none',"
        " imap_username = $3, imap_password = $4, inbox_authserv_id = $5 WHERE id = 'mb'",
        imap.host, imap.port, SENDER, sealed("mb", "imap_password", PASSWORD), AUTHSERV_ID,
    )
    # Follow-ups 20 s apart: room for the replies to be read before step 2 is due.
    campaign_id, (a, b, c, d) = await add_campaign(
        db, ["mb"], [A, B, C, D], [("Hello", "Step one", 0), ("Re: Hello", "Step two", 20),
                                   ("Re: Hello", "Step three", 20)])

    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) == 4, timeout=60)
    first = {m.rcpt_tos[0]: m for m in inbox.messages}
    imap.append(SENDER, reply_to(first[A], "Not interested, thanks."))
    # An automatic reply that is no absence (an out-of-office would postpone: issue 25).
    imap.append(SENDER, reply_to(first[B], "Thank you for your message, we will answer it shortly.",
                                 extra="Auto-Submitted: auto-replied\r\n"))
    imap.append(SENDER, bounce_of(first[C]))
    # Without thread headers: matched by its From, which the mailbox's provider vouches for.
    imap.append(SENDER, reply_to(first[D], "Please stop.", threaded=False,
                                 extra=f"Authentication-Results: {AUTHSERV_ID}; dmarc=pass"
                                       " header.from=delta.example.org\r\n"))
    inbox.hold("rcpt")  # the next transaction (B's step 2, the only one left) waits at RCPT

    stops_before = sample("outreach_reply_to_stop_seconds_count") or 0.0
    polled = await poll_now(dev_server, e2e_settings)
    assert polled.found == {"reply": 2, "auto_reply": 1, "bounce": 1} and polled.stopped == 3
    assert polled.failed == []
    # The worker's metrics: by class, the stop latency of each stop, when the inbox was read.
    assert sample("outreach_reply_to_stop_seconds_count") == stops_before + 3
    assert sample("outreach_inbound_messages_total", mailbox="mb", **{"class": "bounce"}) is not None
    assert sample("outreach_inbound_bounces_total", mailbox="mb", verdict="hard") is not None
    assert sample("outreach_inbox_last_read_timestamp_seconds", mailbox="mb") is not None

    # B's step 2 passed the gate and waits at RCPT; now B really replies.
    await inbox.wait_for(lambda: inbox.held.get("rcpt") == 1, timeout=60)
    imap.append(SENDER, reply_to(first[B], "Actually, no thanks."))
    assert (await poll_now(dev_server, e2e_settings)).found == {"reply": 1}
    inbox.release("rcpt")

    await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert {rcpt: len(to(inbox, rcpt)) for rcpt in (A, B, C, D)} == {A: 1, B: 1, C: 1, D: 1}
    assert "DATA" in inbox.commands  # step 1's; B's step 2 never reached it
    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM prospects")}
    assert [statuses[p] for p in (a, b, c, d)] == ["replied", "replied", "hard_bounced", "replied"]
    listed = {r["entry"]: r["source"] for r in await db.fetch("SELECT entry, source FROM suppressions")}
    assert listed == {C: "hard_bounce"}

    async def b_step_2_recorded() -> bool:
        return await db.fetchval(
            "SELECT count(*) FROM send_attempts WHERE prospect_id = $1 AND step = 2"
            " AND finished_at IS NOT NULL", b) == 1

    await until(b_step_2_recorded, "B's step 2 attempt recorded")
    outcome = await db.fetchval("SELECT outcome FROM send_attempts WHERE prospect_id = $1 AND step = 2", b)
    state = await db.fetchval("SELECT state FROM sends WHERE prospect_id = $1 AND step = 2", b)
    assert (outcome, state) == ("stopped", "skipped")
    # `campaigns status`: replies per step (A, B and D answered step 1); `trace`: B's two messages.
    status = await campaign_status(db, campaign_id)
    assert status["replies"][0] == {"step": 1, "replies": 3, "reply_rate": 0.75}
    assert status["prospects"]["replied"] == 3 and status["prospects"]["hard_bounced"] == 1
    assert [m["class"] for m in await inbound_of(db, [b])] == ["auto_reply", "reply"]
    # Every stopped prospect's later steps: never sent.
    sent_later = await db.fetchval(
        "SELECT count(*) FROM sends WHERE campaign_id = $1 AND step > 1 AND state = 'sent'", campaign_id)
    assert sent_later == 0


async def test_hard_dsns_count_toward_the_deliverability_guard(
    db: asyncpg.Pool, imap: ImapServer, worker: None, dev_server: WorkflowEnvironment,
    e2e_settings: Settings, maintenance_worker_factory: MaintenanceWorkerFactory,
) -> None:
    """Two DSNs (hard) for a mailbox whose SMTP server accepted everything: over a
    guard of more than 1 in a window of 2, the mailbox is paused (decision 0033)."""
    await db.execute("TRUNCATE suppressions, inbound_messages, inbox_cursors, sent_messages")
    await add_mailbox(db, "mb", 2525, email=SENDER)
    await db.execute(
        "UPDATE mailboxes SET imap_host = $1, imap_port = $2, imap_security = 'none',"
        " imap_username = $3, imap_password = $4 WHERE id = 'mb'",
        imap.host, imap.port, SENDER, sealed("mb", "imap_password", PASSWORD),
    )
    campaign_id, prospects = await add_campaign(db, ["mb"], [A, B], [("Hello", "x", 0)])
    for p, rcpt in zip(prospects, (A, B), strict=True):
        message_id = f"<{campaign_id}.1.{p}.x@sender.example.com>"
        await db.execute(
            "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, attempts,"
            " first_attempt_at, sent_at, finished_at) VALUES ($1, 1, $2, 'mb', $3, 'sent', 1, now(), now(),"
            " now())", campaign_id, p, message_id)
        imap.append(SENDER, fixture_bounce(rcpt, message_id))
    settings = e2e_settings.model_copy(update={"bounce_guard_window": 2, "bounce_guard_rate": 0.5})
    activities = build_maintenance_activities(settings, db, dev_server.client)
    async with maintenance_worker_factory(settings, activities):
        polled = await poll_now(dev_server, settings)
    assert polled.found == {"bounce": 2} and polled.stopped == 2

    async def paused() -> bool:
        row = await db.fetchrow("SELECT paused, pause_reason FROM mailboxes WHERE id = 'mb'")
        return bool(row["paused"]) and row["pause_reason"].startswith("bounce_rate: 2 hard bounces")

    await until(paused, "the mailbox paused by the deliverability guard")

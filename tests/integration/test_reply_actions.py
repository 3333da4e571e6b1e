"""What issue 25 must show end to end, with real dovecot, the real send worker and the
inbox poll workflow: an out-of-office with a return date moves that prospect's next
step to the date plus the buffer (a buffer shortened to seconds), one without a date by
postpone_default, and both sequences then finish; "please remove me" lists the
address like the one-click link; a referral is exported with the referred address;
`inbox list` shows each class, newest first, without text; `campaigns status` counts
the classes per step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from store.campaigns import campaign_status
from tests.factories import add_campaign, add_mailbox, sealed
from tests.imap_server import ImapServer
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_cli import outreach
from tests.integration.test_inbox_stops_sequence import (
    AUTHSERV_ID,
    PASSWORD,
    SENDER,
    imap,  # noqa: F401 - the fixture
    poll_now,
    reply_to,
    sample,
    to,
)

DATED, UNDATED, REMOVE, REFER = ("dated@one.example.org", "undated@two.example.org",
                                 "remove@three.example.org", "refer@four.example.org")
AUTO = "Auto-Submitted: auto-replied\r\n"


async def test_out_of_office_postpones_and_opt_out_and_referral_act(
    db: asyncpg.Pool, inbox: LocalSmtpServer, imap: ImapServer, worker: None,  # noqa: F811
    maintenance_worker: None, client: OutreachClient, dev_server: WorkflowEnvironment,
    e2e_settings: Settings,
) -> None:
    await db.execute("TRUNCATE suppressions, inbound_messages, inbox_cursors, sent_messages")
    await add_mailbox(db, "mb", inbox.port, email=SENDER)  # in UTC
    await db.execute(
        "UPDATE mailboxes SET imap_host = $1, imap_port = $2, imap_security = 'none',"
        " imap_username = $3, imap_password = $4, inbox_authserv_id = $5 WHERE id = 'mb'",
        imap.host, imap.port, SENDER, sealed("mb", "imap_password", PASSWORD), AUTHSERV_ID,
    )
    campaign_id, (dated, undated, remove, refer) = await add_campaign(
        db, ["mb"], [DATED, UNDATED, REMOVE, REFER], [("Hello", "Step one", 0), ("Re: Hello", "Step two", 2)])
    # Shortened: the return day's start plus (seconds since midnight + 25 s) is 25 s from
    # now; without a date, 20 s. Step 2 would otherwise go 2 s after step 1.
    now = datetime.now(UTC)
    since_midnight = int((now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds())
    await db.execute(
        "UPDATE campaigns SET on_reply = $2 WHERE id = $1", campaign_id,
        {"actions": {"referral": "stop"}, "buffer_business_days": 0, "buffer_seconds": since_midnight + 25,
         "default_seconds": 20, "max_postpones": 2})
    await db.execute("UPDATE steps SET delay_seconds = 8 WHERE campaign_id = $1 AND step = 2", campaign_id)

    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) == 4, timeout=60)
    first = {m.rcpt_tos[0]: m for m in inbox.messages}
    today = now.strftime("%d %B %Y")  # "I am back on <today>": within range, so the date counts
    imap.append(SENDER, reply_to(first[DATED], f"I am out of the office and back on {today}.", extra=AUTO))
    imap.append(SENDER, reply_to(first[UNDATED], "I am on annual leave with limited access to email.",
                                 extra=AUTO))
    imap.append(SENDER, reply_to(first[REMOVE], "Please remove me from your list.\r\n\r\n"
                                 "On Mon, Alex <mb@sender.example.com> wrote:\r\n> Interested in a call?"))
    imap.append(SENDER, reply_to(first[REFER], "I'm not the right person, please contact"
                                 " jane.doe@four.example.org instead."))
    opted_out = sample("outreach_reply_intents_total", mailbox="mb", intent="unsubscribe", action="suppress")
    postponed = sample("outreach_postponements_total", mailbox="mb")
    polled = await poll_now(dev_server, e2e_settings)
    polled_at = datetime.now(UTC)
    assert polled.found == {"auto_reply": 2, "reply": 2} and polled.stopped == 2

    moves = {r["prospect_id"]: r for r in await db.fetch("SELECT * FROM postponements")}
    assert set(moves) == {dated, undated}
    expected = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(seconds=since_midnight + 25)
    assert moves[dated]["due_after"] == expected and moves[dated]["reason"].startswith("return date ")
    assert abs((moves[undated]["due_after"] - polled_at).total_seconds() - 20) < 5
    assert moves[undated]["reason"] == "no return date: 20s"
    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM prospects")}
    assert [statuses[p] for p in (dated, undated, remove, refer)] == ["active", "active", "unsubscribed",
                                                                        "replied"]
    listed = {r["entry"]: r["source"] for r in await db.fetch("SELECT entry, source FROM suppressions")}
    assert listed == {REMOVE: "unsubscribe"}

    # The postponed prospects' step 2 goes no earlier than the new time, and the campaign ends.
    await wait_for_state(client, campaign_id, "completed", timeout=120)
    second = {m.rcpt_tos[0]: m for m in inbox.messages if m.subject == "Re: Hello"}
    assert set(second) == {DATED, UNDATED}
    for rcpt, prospect in ((DATED, dated), (UNDATED, undated)):
        sent_at = await db.fetchval("SELECT sent_at FROM sends WHERE prospect_id = $1 AND step = 2", prospect)
        assert sent_at >= moves[prospect]["due_after"]
        assert second[rcpt].in_reply_to == first[rcpt].message_id  # threaded as before
    assert len(to(inbox, REMOVE)) == 1 and len(to(inbox, REFER)) == 1

    # What operators see: the referral exported with the address, the list, the counts.
    ran = await outreach(e2e_settings, "inbox", "referrals", "--campaign", campaign_id)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[1].endswith(f",{campaign_id},{refer},jane.doe@four.example.org")
    ran = await outreach(e2e_settings, "inbox", "list", "--campaign", campaign_id, "--json")
    rows = json.loads(ran.stdout)
    assert sorted(r["intent"] for r in rows) == ["out_of_office", "out_of_office", "referral", "unsubscribe"]
    assert [r["recorded_at"] for r in rows] == sorted((r["recorded_at"] for r in rows), reverse=True)
    assert all("remove" not in json.dumps(r).lower() for r in rows)  # no text of the messages
    ran = await outreach(e2e_settings, "inbox", "list", "--class", "referral")
    assert ran.stdout.count("\n") == 1 and f"prospect {refer} referral" in ran.stdout
    # `trace`: the class, what on_reply did, and the postponement.
    ran = await outreach(e2e_settings, "trace", str(dated))
    assert "intent out_of_office (0.90: out_of_office phrase (en), back " in ran.stdout, ran.stdout
    assert "action postpone" in ran.stdout
    assert f"postponed prospect {dated} step 2: " in ran.stdout and "(return date " in ran.stdout
    # The worker's metrics (the poll ran in this process's maintenance worker).
    assert sample("outreach_reply_intents_total", mailbox="mb", intent="unsubscribe",
                  action="suppress") == (opted_out or 0) + 1
    assert sample("outreach_postponements_total", mailbox="mb") == (postponed or 0) + 2
    status = await campaign_status(db, campaign_id)
    assert status["reply_classes"] == [{"step": 1, "classes": {"out_of_office": 2, "referral": 1,
                                                               "unsubscribe": 1}}]

"""Inbound mail from strangers, over a real dovecot (issue 22, items 1-4): forged
reports and unauthenticated senders change nothing beyond what they can prove, and
a crafted message never holds up the event loop."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
from prometheus_client import REGISTRY

from store import bounce_guard
from store.bounce_guard import RecentSends
from store.inbound import complaint_rate, events_since, inbound_of
from tests.factories import add_campaign
from tests.imap_server import ImapServer
from tests.integration import test_inbox_poll as inbox_poll
from tests.integration.test_inbox_poll import (
    ADDRESS,
    AUTHSERV_ID,
    MAILBOX,
    fixture,
    mail,
    poll,
    status,
    suppressed,
    vouched_for,
)
from tests.unit.test_inbox_cost import encoded_word_dsn

# The same dovecot and campaign as the inbox's own tests.
imap = inbox_poll.imap
campaign = inbox_poll.campaign

Campaign = tuple[str, list[int], list[str]]
A, B, C, D = "a@acme.example.org", "b@beta.example.org", "c@gamma.example.org", "d@delta.example.org"


def from_stranger(raw: bytes, sender: str = "eve@attacker.example") -> bytes:
    """A provider fixture re-sent by a stranger: their From, their own Message-ID."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith((b"from:", b"message-id:"))]
    return b"\r\n".join([f"From: {sender}".encode(), *lines]) + b"\r\n\r\n" + body


async def states(db: asyncpg.Pool, ids: list[int]) -> list[str]:
    return [await status(db, p) for p in ids]


def unproven(mailbox: str, kind: str, why: str) -> float:
    labels = {"mailbox": mailbox, "class": kind, "why": why}
    return REGISTRY.get_sample_value("outreach_inbound_unproven_total", labels) or 0.0


async def test_forged_dsns_a_plain_bounce_and_an_arf_report_from_a_stranger_change_nothing(
    db: asyncpg.Pool, imap: ImapServer, campaign: Campaign,
) -> None:
    campaign_id, (a, b, c, d), _ = campaign
    await db.execute("UPDATE sends SET first_attempt_at = now() WHERE campaign_id = $1", campaign_id)
    before = unproven(MAILBOX, "bounce", "no_message_id")
    # Each names a prospect we wrote to, none carries a Message-ID of ours.
    imap.append(ADDRESS, from_stranger(fixture("postfix_dsn_hard.eml", A, "<f1@attacker.example>")))
    for n, rcpt in enumerate((B, C, D), start=2):
        imap.append(ADDRESS, from_stranger(fixture("dsn_blocked.eml", rcpt, f"<f{n}@attacker.example>")))
    imap.append(ADDRESS, mail(
        "From: MAILER-DAEMON@attacker.example\nSubject: Undeliverable: Hi\nMessage-ID: <f5@attacker>",
        f"Delivery has failed to these recipients:\r\n{A}\r\n550 5.1.1 User unknown"))
    imap.append(ADDRESS, from_stranger(fixture("arf_complaint.eml", B, "<f6@attacker.example>")))

    result = await poll(db)

    assert [(f.kind, f.verdict, f.stopped) for f in result.found] == [
        ("bounce", "unproven", [])] * 5 + [("complaint", None, [])]
    assert await states(db, [a, b, c, d]) == ["active"] * 4
    assert await suppressed(db) == {}
    assert await db.fetchval("SELECT count(*) FROM sends WHERE state <> 'sent'") == 0
    assert await bounce_guard.recent_sends(db, MAILBOX, 10) == RecentSends(sends=4, bounced=0, blocked=0)
    assert await complaint_rate(db, MAILBOX) == 0.0
    assert await db.fetchval("SELECT paused FROM mailboxes WHERE id = $1", MAILBOX) is False
    # Recorded, with the reason, where an operator looks: the export and `trace`.
    rows = await db.fetch("SELECT proven, detail, acted FROM inbound_messages ORDER BY uid")
    assert [(r["proven"], r["acted"]) for r in rows] == [(False, False)] * 6
    assert all(r["detail"].startswith("not proof: no message id") for r in rows)
    exported = await events_since(db, datetime(2000, 1, 1, tzinfo=UTC))
    assert [(e["class"], e["proven"]) for e in exported] == [("bounce", False)] * 5 + [("complaint", False)]
    assert [(m["class"], m["proven"]) for m in await inbound_of(db, [a])] == [("bounce", False)] * 2
    assert unproven(MAILBOX, "bounce", "no_message_id") == before + 5


async def test_an_unauthenticated_unsubscribe_or_reply_stops_one_sequence_and_lists_nothing(
    db: asyncpg.Pool, imap: ImapServer, campaign: Campaign,
) -> None:
    campaign_id, (a, b, c, _), _ = campaign
    await db.execute("UPDATE campaigns SET stop_on_reply = 'workspace' WHERE id = $1", campaign_id)
    _, (a2, b2, c2) = await add_campaign(db, [MAILBOX], [A, B, C], [("Hi", "x", 0)])
    # The provider checked and DMARC failed; another server's pass; a pass from nobody.
    failed = f"Authentication-Results: {AUTHSERV_ID}; dmarc=fail header.from=beta.example.org"
    imap.append(ADDRESS, mail(f"{failed}\nFrom: {B}\nSubject: unsubscribe\nMessage-ID: <u1@x>"))
    imap.append(ADDRESS, mail("Authentication-Results: mx.attacker.example; dmarc=pass header.from="
                              f"gamma.example.org\nFrom: {C}\nSubject: unsubscribe\nMessage-ID: <u2@x>"))
    imap.append(ADDRESS, mail(f"From: {A}\nSubject: not interested\nMessage-ID: <r1@x>"))

    result = await poll(db)

    assert [(f.kind, f.stopped, f.proven) for f in result.found] == [
        ("unsubscribe", [b], False), ("unsubscribe", [c], False), ("reply", [a], False)]
    assert await states(db, [a, b, c]) == ["stopped"] * 3
    assert await states(db, [a2, b2, c2]) == ["active"] * 3
    assert await suppressed(db) == {}
    # No rate counts them: replies per step are the proven ones.
    assert await db.fetchval("SELECT count(*) FROM inbound_messages WHERE proven") == 0


async def test_a_message_whose_from_names_nobody_matches_no_send(
    db: asyncpg.Pool, imap: ImapServer, campaign: Campaign,
) -> None:
    _, (a, _, _, _), (a1, _, _, _) = campaign
    imap.append(ADDRESS, mail(f"Subject: Re: Hi\nMessage-ID: <n1@x>\nIn-Reply-To: {a1}"))  # no From
    imap.append(ADDRESS, mail(f"{vouched_for('acme.example.org')}\nFrom: {A} <eve@attacker.example>\n"
                              f"Subject: Re: Hi\nMessage-ID: <n2@x>\nIn-Reply-To: {a1}"))
    result = await poll(db)
    assert [(f.kind, f.send_key) for f in result.found] == [("other", None), ("other", None)]
    assert await status(db, a) == "active"


async def test_a_token_that_does_not_verify_acts_on_nobody_even_from_the_prospects_address(
    db: asyncpg.Pool, imap: ImapServer, campaign: Campaign,
) -> None:
    _, (_, _, c, _), _ = campaign
    imap.append(ADDRESS, mail(f"{vouched_for('gamma.example.org')}\nFrom: {C}\n"
                              f"Subject: unsubscribe u1.{'x' * 40}\nMessage-ID: <t1@x>"))
    result = await poll(db)
    assert [(f.kind, f.send_key, f.stopped) for f in result.found] == [("unsubscribe", None, [])]
    assert await status(db, c) == "active" and await suppressed(db) == {}


def two_block_dsn(message_id: str, first: tuple[str, str, str], second: tuple[str, str, str]) -> bytes:
    blocks = "".join(f"Final-Recipient: rfc822; {r}\r\nAction: {action}\r\nStatus: {code}\r\n\r\n"
                     for r, action, code in (first, second))
    return mail(
        "From: MAILER-DAEMON@mx.sender.example.com\nSubject: Delivery Status Notification\n"
        "Message-ID: <dsn2@mx>\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"",
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.sender.example.com\r\n\r\n{blocks}"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\n\r\n--b--",
    )


async def test_each_recipient_block_is_judged_and_applied_on_its_own(
    db: asyncpg.Pool, imap: ImapServer, campaign: Campaign,
) -> None:
    _, (a, b, _, _), (a1, b1, _, _) = campaign
    # A is delayed; the alias A forwards to is gone: A is not.
    alias = ("alias@acme.example.org", "failed", "5.1.1")
    imap.append(ADDRESS, two_block_dsn(a1, (A, "delayed", "4.4.7"), alias))
    # B's send came back, but the failure named is someone else's.
    imap.append(ADDRESS, mail(
        "From: MAILER-DAEMON@mx.sender.example.com\nSubject: Undelivered Mail Returned to Sender\n"
        "Message-ID: <dsn3@mx>",
        f"550 5.1.1 <other@beta.example.org>: user unknown\r\n\r\n> Message-ID: {b1}\r\n"))
    result = await poll(db)
    assert [(f.kind, f.verdict, f.stopped) for f in result.found] == [
        ("bounce", "delayed", []), ("bounce", "unproven", [])]
    assert await states(db, [a, b]) == ["active", "active"] and await suppressed(db) == {}
    rows = await db.fetch("SELECT verdict, proven, detail FROM inbound_messages ORDER BY uid")
    assert [(r["verdict"], r["proven"]) for r in rows] == [("delayed", True), (None, False)]
    assert rows[1]["detail"].startswith("not proof: other recipient")


async def test_a_bounce_that_quotes_our_message_id_in_its_text_acts_in_full(
    db: asyncpg.Pool, imap: ImapServer, campaign: Campaign,
) -> None:
    _, (a, _, _, _), (a1, _, _, _) = campaign
    # A provider that returns only the body, the original header quoted in it.
    imap.append(ADDRESS, mail(
        "From: MAILER-DAEMON@mx.sender.example.com\nSubject: Undelivered Mail Returned to Sender\n"
        "Message-ID: <dsn4@mx>",
        f"550 5.1.1 <{A}>: Recipient address rejected: User unknown\r\n\r\n"
        f"> From: {ADDRESS}\r\n> To: {A}\r\n> Message-ID: {a1}\r\n"))
    result = await poll(db)
    assert [(f.kind, f.verdict, f.stopped) for f in result.found] == [("bounce", "hard", [a])]
    assert await suppressed(db) == {A: "hard_bounce"}
    assert await db.fetchval("SELECT proven FROM inbound_messages") is True


async def test_a_two_mib_diagnostic_code_never_holds_up_the_event_loop(
    db: asyncpg.Pool, imap: ImapServer, campaign: Campaign,
) -> None:
    _, (a, _, _, _), (a1, _, _, _) = campaign
    raw = encoded_word_dsn(2 * 2**20 - 64 * 1024).replace(b"pat@prospect.example.org", A.encode())
    imap.append(ADDRESS, raw.replace(b"<cmp-1.1.7.k1abc@sender.example.com>", a1.encode()))
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    cpu = time.process_time()
    try:
        result = await poll(db)
    finally:
        ticking.cancel()
    print(f"\npoll of a 2 MiB encoded-word DSN: {time.process_time() - cpu:.3f} s of CPU,"
          f" longest gap on the event loop {max(gaps):.3f} s")
    assert [(f.kind, f.verdict, f.stopped) for f in result.found] == [("bounce", "hard", [a])]
    assert gaps and max(gaps) < 1.0

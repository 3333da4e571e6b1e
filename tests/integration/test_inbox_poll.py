"""Reading a real dovecot inbox: each class found, matched and acted on once, the
inbox left as it was, and the faults of the issue (refused login, renumbered
folder, oversized message, forged or foreign references) handled (issue 14)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from config.settings import Settings
from inbox.imap import ImapReader
from inbox.poll import PassResult, PollLimits, poll_mailbox
from mail.unsubscribe import SendKey, sign
from store.erasure import forget
from tests.factories import add_campaign, add_mailbox, sealed, settings_ring
from tests.imap_server import ImapServer, running_imap
from tests.integration.test_cli import outreach

MAILBOX = "mb-in"
ADDRESS = "ann@sender.example.com"
PASSWORD = "imap-pass"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"
LIMITS = PollLimits(max_message_bytes=2 * 2**20, match_window=timedelta(days=90), timeout=10)
# The test mailbox's provider: the one Authentication-Results header believed (decision 0050).
AUTHSERV_ID = "mx.provider.example"


def vouched_for(domain: str) -> str:
    """The header the mailbox's provider adds to a message whose From it verified."""
    return f"Authentication-Results: {AUTHSERV_ID}; dmarc=pass (p=REJECT) header.from={domain}"


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    with running_imap({ADDRESS: PASSWORD}) as server:
        yield server


async def add_imap_mailbox(db: asyncpg.Pool, imap: ImapServer, mailbox_id: str = MAILBOX,
                           email: str = ADDRESS, password: str = PASSWORD) -> None:
    await add_mailbox(db, mailbox_id, 2525, email=email)
    await db.execute(
        "UPDATE mailboxes SET imap_host = $2, imap_port = $3, imap_security = 'none',"
        " imap_username = $4, imap_password = $5, inbox_authserv_id = $6 WHERE id = $1",
        mailbox_id, imap.host, imap.port, email, sealed(mailbox_id, "imap_password", password), AUTHSERV_ID,
    )


async def sent(
    db: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int, mailbox_id: str = MAILBOX
) -> str:
    """Record step ``step`` as sent (as the send activity does); its Message-ID."""
    message_id = f"<{campaign_id}.{step}.{prospect_id}.k1abc@sender.example.com>"
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id)"
        " VALUES ($1, $2, $3, $4, $5)",
        campaign_id, step, prospect_id, mailbox_id, message_id,
    )
    await db.execute(
        "UPDATE sends SET state = 'sent', sent_at = now(), finished_at = now()"
        " WHERE campaign_id = $1 AND step = $2 AND prospect_id = $3",
        campaign_id, step, prospect_id,
    )
    return message_id


def mail(headers: str, body: str = "Thanks, not interested.") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body + "\r\n").encode()


def fixture(name: str, recipient: str, message_id: str) -> bytes:
    text = (FIXTURES / name).read_text("utf-8").replace("{recipient}", recipient)
    return text.replace("{message_id}", message_id).replace("\n", "\r\n").encode()


async def poll(db: asyncpg.Pool, limits: PollLimits = LIMITS) -> PassResult:
    return await poll_mailbox(db, MAILBOX, ring=settings_ring(), limits=limits)


async def status(db: asyncpg.Pool, prospect_id: int) -> str:
    found: str = await db.fetchval("SELECT status FROM prospects WHERE id = $1", prospect_id)
    return found


async def suppressed(db: asyncpg.Pool) -> dict[str, str]:
    rows = await db.fetch("SELECT entry, source FROM suppressions")
    return {r["entry"]: r["source"] for r in rows}


@pytest.fixture
async def campaign(db: asyncpg.Pool, imap: ImapServer) -> tuple[str, list[int], list[str]]:
    await db.execute("TRUNCATE suppressions, inbound_messages, inbox_cursors, sent_messages")
    await add_imap_mailbox(db, imap)
    prospects = ["a@acme.example.org", "b@beta.example.org", "c@gamma.example.org", "d@delta.example.org"]
    campaign_id, ids = await add_campaign(db, [MAILBOX], prospects, [("Hi", "One", 0), ("Re: Hi", "Two", 60)])
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)
    ids_sent = [await sent(db, campaign_id, 1, p) for p in ids]
    return campaign_id, ids, ids_sent


async def test_each_class_is_found_once_and_acted_on(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    campaign_id, (a, b, c, d), (a1, b1, c1, _) = campaign
    # A's step 2 is queued (claimed, waiting for the gate) when A's reply lands.
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id)"
        " VALUES ($1, 2, $2, $3, '<q@x>')", campaign_id, a, MAILBOX)
    imap.append(ADDRESS, mail(f"From: A <A@acme.example.org>\nSubject: Re: Hi\nMessage-ID: <ra@acme>\n"
                              f"In-Reply-To: {a1}\nReferences: {a1}"))
    imap.append(ADDRESS, mail(f"From: b@beta.example.org\nSubject: Out of office\nMessage-ID: <rb@beta>\n"
                              f"Auto-Submitted: auto-replied\nIn-Reply-To: {b1}"))
    imap.append(ADDRESS, fixture("postfix_dsn_hard.eml", "c@gamma.example.org", c1))
    # No thread headers: matched by its From, which the mailbox's provider vouches for.
    imap.append(ADDRESS, mail(f"{vouched_for('delta.example.org')}\n"
                              "From: d@delta.example.org\nSubject: no thanks\nMessage-ID: <rd@delta>"))
    imap.append(ADDRESS, mail("From: stranger@else.example.net\nSubject: hello\nMessage-ID: <s@else>"))

    result = await poll(db)

    assert result.error is None
    # B's out-of-office gives no date: its next step moves by postpone_default (7 days).
    postponed = (await db.fetchval("SELECT next_due_at FROM prospects WHERE id = $1", b)).isoformat()
    lines = [f.line() for f in result.found]
    assert lines == [
        f"{MAILBOX} INBOX uid 1 reply [not_interested] {campaign_id}:1:{a} stopped {a}",
        f"{MAILBOX} INBOX uid 2 auto_reply [out_of_office] {campaign_id}:1:{b} postponed to {postponed}",
        f"{MAILBOX} INBOX uid 3 bounce (hard) {campaign_id}:1:{c} stopped {c}",
        f"{MAILBOX} INBOX uid 4 reply [not_interested] {campaign_id}:1:{d} stopped {d}",
        f"{MAILBOX} INBOX uid 5 other [not_interested] unmatched",
    ]
    assert [await status(db, p) for p in (a, b, c, d)] == ["replied", "active", "hard_bounced", "replied"]
    assert await suppressed(db) == {"c@gamma.example.org": "hard_bounce"}
    queued = await db.fetchrow("SELECT state, last_reply FROM sends WHERE prospect_id = $1 AND step = 2", a)
    assert tuple(queued) == ("skipped", "prospect replied")
    matched = await db.fetch("SELECT uid, matched_by FROM inbound_messages ORDER BY uid")
    assert [r["matched_by"] for r in matched] == ["thread", "thread", "thread", "from", None]

    # Read-only: nothing marked \Seen, nothing moved or deleted.
    assert all("Seen" not in flags for flags in imap.flags(ADDRESS)) and len(imap.flags(ADDRESS)) == 5
    # A second pass finds nothing and changes nothing.
    assert (await poll(db)).found == []
    assert await db.fetchval("SELECT count(*) FROM inbound_messages") == 5


async def test_uidvalidity_change_rereads_without_doing_anything_twice(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    _, (a, b, _, _), (a1, b1, _, _) = campaign
    imap.append(ADDRESS, mail(f"From: a@acme.example.org\nMessage-ID: <ra@acme>\nIn-Reply-To: {a1}"))
    assert len((await poll(db)).found) == 1
    before = await db.fetchval("SELECT uidvalidity FROM inbox_cursors WHERE mailbox_id = $1", MAILBOX)

    imap.reset_uidvalidity(ADDRESS)
    imap.append(ADDRESS, mail(f"From: b@beta.example.org\nMessage-ID: <rb@beta>\nIn-Reply-To: {b1}"))
    result = await poll(db)

    after = await db.fetchval("SELECT uidvalidity FROM inbox_cursors WHERE mailbox_id = $1", MAILBOX)
    assert after != before
    assert [f.prospect_id for f in result.found] == [b]  # A's reply, renumbered, is not new
    assert await db.fetchval("SELECT count(*) FROM inbound_messages") == 2
    assert (await poll(db)).found == []


async def test_forged_and_foreign_references_stop_nobody(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    campaign_id, (a, b, _, _), (a1, _, _, _) = campaign
    # Another mailbox's campaign: its send's id named in a message to this mailbox.
    await add_mailbox(db, "mb-other", 2525, email="zed@sender.example.com")
    other_campaign, (z,) = await add_campaign(db, ["mb-other"], ["z@zeta.example.org"], [("Hi", "x", 0)])
    z1 = await sent(db, other_campaign, 1, z, "mb-other")
    imap.append(ADDRESS, mail(f"From: z@zeta.example.org\nMessage-ID: <f1@zeta>\nReferences: {z1}"))
    # A real id of ours, but written from outside the prospect's organisation.
    imap.append(ADDRESS, mail(f"From: eve@evil.example.net\nMessage-ID: <f2@evil>\nReferences: {a1}"))
    # An id of the right form that we never sent.
    guessed = f"<{campaign_id}.1.{b}.000000@sender.example.com>"
    imap.append(ADDRESS, mail(f"From: eve@evil.example.net\nMessage-ID: <f3@evil>\nIn-Reply-To: {guessed}"))
    # A DSN about a message that is not ours, for an address we never wrote to.
    imap.append(ADDRESS, fixture("postfix_dsn_hard.eml", "nobody@unknown.example.org", "<not-ours@x>"))

    result = await poll(db)

    assert [(f.kind, f.send_key) for f in result.found] == [
        ("other", None), ("other", None), ("other", None), ("bounce", None)]
    assert [await status(db, p) for p in (a, b, z)] == ["active", "active", "active"]
    assert await suppressed(db) == {}


async def test_blocked_bounce_complaint_and_unsubscribe(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    _, (a, b, c, _), (a1, b1, c1, _) = campaign
    imap.append(ADDRESS, fixture("dsn_blocked.eml", "a@acme.example.org", a1))
    imap.append(ADDRESS, fixture("arf_complaint.eml", "b@beta.example.org", b1))
    imap.append(ADDRESS, mail(f"{vouched_for('gamma.example.org')}\n"
                              "From: c@gamma.example.org\nSubject: unsubscribe\nMessage-ID: <u@g>"))

    result = await poll(db)

    assert [(f.kind, f.verdict, f.prospect_id) for f in result.found] == [
        ("bounce", "blocked", a), ("complaint", None, b), ("unsubscribe", None, c)]
    # Blocked: the address is fine; nothing stops or lists it.
    assert [await status(db, p) for p in (a, b, c)] == ["active", "suppressed", "unsubscribed"]
    assert await suppressed(db) == {"b@beta.example.org": "complaint", "c@gamma.example.org": "unsubscribe"}


async def test_oversized_message_is_classified_from_its_headers(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    _, (a, _, _, _), (a1, _, _, _) = campaign
    # A reply with a 50 MB attachment (base64 lines), far over the 2 MiB default.
    line = "QUFB" * 19 + "\r\n"
    attachment = (
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + line * (50 * 2**20 // len(line)) + "--b--"
    )
    imap.append(ADDRESS, mail(
        f"From: a@acme.example.org\nMessage-ID: <big@acme>\nIn-Reply-To: {a1}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"', attachment))
    result = await poll(db)
    assert [(f.kind, f.prospect_id) for f in result.found] == [("reply", a)]
    flags = await asyncio.to_thread(imap.flags, ADDRESS)  # still there, unread
    assert len(flags) == 1 and "Seen" not in flags[0]


async def test_refused_login_is_recorded_and_changes_nothing(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    await db.execute("UPDATE mailboxes SET imap_password = $2 WHERE id = $1",
                     MAILBOX, sealed(MAILBOX, "imap_password", "wrong"))
    result = await poll(db)
    assert result.found == [] and result.error is not None and "LOGIN refused" in result.error
    row = await db.fetchrow("SELECT error, uidvalidity FROM inbox_cursors WHERE mailbox_id = $1", MAILBOX)
    assert "LOGIN refused" in row["error"] and row["uidvalidity"] is None
    assert await db.fetchval("SELECT paused FROM mailboxes WHERE id = $1", MAILBOX) is False


async def test_stop_on_reply_workspace_stops_every_campaign_of_the_workspace(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    campaign_id, (a, _, _, _), (a1, _, _, _) = campaign
    await db.execute("UPDATE campaigns SET stop_on_reply = 'workspace' WHERE id = $1", campaign_id)
    _, (a_elsewhere,) = await add_campaign(db, [MAILBOX], ["a@acme.example.org"], [("Hi", "x", 0)])
    _, (a_other_ws,) = await add_campaign(db, [MAILBOX], ["a@acme.example.org"], [("Hi", "x", 0)],
                                          workspace="other")
    imap.append(ADDRESS, mail(f"From: a@acme.example.org\nMessage-ID: <ra@acme>\nIn-Reply-To: {a1}"))
    await poll(db)
    assert [await status(db, p) for p in (a, a_elsewhere, a_other_ws)] == ["replied", "stopped", "active"]


class DroppingProxy:
    """A TCP relay to the IMAP server that cuts both sides when the client sends its
    ``nth`` BODY.PEEK fetch: a server dropping the connection mid-FETCH."""

    def __init__(self, target: ImapServer, nth: int) -> None:
        self._target, self._nth, self._fetches = target, nth, 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self._target.host, self._target.port)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await r.read(65536):
                    if upstream and b"BODY.PEEK[" in data:
                        self._fetches += 1
                        if self._fetches == self._nth:
                            break
                    w.write(data)
                    await w.drain()
            except ConnectionError:
                pass
            finally:
                for writer in (client_w, server_w):
                    writer.close()

        await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False))


async def test_connection_dropped_mid_fetch_skips_nothing_and_repeats_nothing(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    _, (a, b, _, _), (a1, b1, _, _) = campaign
    imap.append(ADDRESS, mail(f"From: a@acme.example.org\nMessage-ID: <ra@acme>\nIn-Reply-To: {a1}"))
    imap.append(ADDRESS, mail(f"From: b@beta.example.org\nMessage-ID: <rb@beta>\nIn-Reply-To: {b1}"))
    async with DroppingProxy(imap, nth=2) as proxy:
        await db.execute("UPDATE mailboxes SET imap_port = $2 WHERE id = $1", MAILBOX, proxy.port)
        cut = await poll(db, PollLimits(timeout=3))
    assert [f.prospect_id for f in cut.found] == [a] and cut.error is not None and "FETCH" in cut.error
    assert await db.fetchval("SELECT error FROM inbox_cursors WHERE mailbox_id = $1", MAILBOX)

    await db.execute("UPDATE mailboxes SET imap_port = $2 WHERE id = $1", MAILBOX, imap.port)
    again = await poll(db)
    assert [f.prospect_id for f in again.found] == [b] and again.error is None
    assert await db.fetchval("SELECT error FROM inbox_cursors WHERE mailbox_id = $1", MAILBOX) is None
    assert [await status(db, p) for p in (a, b)] == ["replied", "replied"]


async def test_cli_poll_prints_one_line_per_new_message_and_json(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]], settings: Settings,
) -> None:
    campaign_id, (a, b, _, _), (a1, b1, _, _) = campaign
    imap.append(ADDRESS, mail(f"From: a@acme.example.org\nMessage-ID: <ra@acme>\nIn-Reply-To: {a1}"))
    ran = await outreach(settings, "inbox", "poll", MAILBOX)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        f"{MAILBOX} INBOX uid 1 reply [not_interested] {campaign_id}:1:{a} stopped {a}"]

    imap.append(ADDRESS, mail(f"From: b@beta.example.org\nSubject: Out of office\nIn-Reply-To: {b1}"))
    ran = await outreach(settings, "inbox", "poll", "--json")
    found = json.loads(ran.stdout)
    expected = [(2, "auto_reply", f"{campaign_id}:1:{b}")]
    assert [(f["uid"], f["kind"], f["send_key"]) for f in found] == expected
    assert (await outreach(settings, "inbox", "poll")).stdout == ""  # nothing new

    status = await outreach(settings, "mailboxes", "status", MAILBOX)
    assert "inbox: read " in status.stdout

    exported = await outreach(settings, "inbox", "export", "--since", "2000-01-01")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.split("\n")[0].endswith(f"reply {MAILBOX} {campaign_id}:1:{a}")
    assert len(exported.stdout.splitlines()) == 1  # the auto-reply is no event
    ran = await outreach(settings, "inbox", "export", "--since", "2000-01-01", "--json")
    as_json = json.loads(ran.stdout)
    assert [(e["class"], e["prospect_id"]) for e in as_json] == [("reply", a)]
    tomorrow = await outreach(settings, "inbox", "export", "--since", "2999-01-01")
    assert tomorrow.stdout == ""

    unknown = await outreach(settings, "inbox", "poll", "nope")
    assert unknown.returncode == 2 and "mailbox 'nope' does not exist" in unknown.stderr


async def test_stop_on_auto_reply_makes_an_out_of_office_stop_the_sequence(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    campaign_id, (a, _, _, _), (a1, _, _, _) = campaign
    await db.execute("UPDATE campaigns SET stop_on_auto_reply = true WHERE id = $1", campaign_id)
    imap.append(ADDRESS, mail(f"From: a@acme.example.org\nSubject: Out of office\nIn-Reply-To: {a1}"))
    result = await poll(db)
    assert [(f.kind, f.stopped) for f in result.found] == [("auto_reply", [a])]
    assert await status(db, a) == "replied"


class ChokingReader(ImapReader):
    """A real connection whose client chokes on the answer to EXAMINE, as a client
    library may on a server's odd reply."""

    async def examine(self, folder: str) -> int:
        await super().examine(folder)
        raise ValueError("unparseable answer")


async def test_an_unexpected_client_error_is_recorded_and_ends_only_that_pass(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    result = await poll_mailbox(db, MAILBOX, ring=settings_ring(), limits=LIMITS,
                                reader=lambda account, timeout: ChokingReader(account, timeout=timeout))
    assert result.error == "unexpected ValueError: unparseable answer"
    error = await db.fetchval("SELECT error FROM inbox_cursors WHERE mailbox_id = $1", MAILBOX)
    assert "unparseable" in error
    assert (await poll(db)).error is None  # the next pass, with a client that copes, reads


async def test_mailto_unsubscribe_with_a_signed_token_acts_on_the_send_it_names(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    campaign_id, (a, b, _, _), _ = campaign
    token = sign(settings_ring(), SendKey("ws", campaign_id, 1, a))
    # The mailto form, sent from an address we never wrote to (a forwarding alias).
    imap.append(ADDRESS, mail(f"From: alias@elsewhere.example.net\nSubject: Re: unsubscribe {token}"))
    # A token that does not verify acts on nobody (and the stranger matches no send).
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    imap.append(ADDRESS, mail(f"From: eve@evil.example.net\nSubject: unsubscribe {forged}"))
    result = await poll(db)
    assert [(f.kind, f.send_key) for f in result.found] == [
        ("unsubscribe", f"{campaign_id}:1:{a}"), ("unsubscribe", None)]
    assert [await status(db, p) for p in (a, b)] == ["unsubscribed", "active"]
    assert await suppressed(db) == {"a@acme.example.org": "unsubscribe"}
    matched = await db.fetchval("SELECT matched_by FROM inbound_messages WHERE uid = 1")
    assert matched == "token"


async def test_stored_details_hold_no_address(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    _, _, (_, b1, c1, _) = campaign
    imap.append(ADDRESS, fixture("postfix_dsn_hard.eml", "c@gamma.example.org", c1))
    imap.append(ADDRESS, fixture("arf_complaint.eml", "b@beta.example.org", b1))
    await poll(db)
    texts = [r["detail"] for r in await db.fetch("SELECT detail FROM inbound_messages")]
    texts += [r["reason"] or "" for r in await db.fetch("SELECT reason FROM suppressions")]
    texts += [r["last_reply"] or "" for r in await db.fetch("SELECT last_reply FROM sends")]
    assert texts and not [t for t in texts if "@" in t], texts
    # The DSN is in the ledger too: the deliverability guard counts it.
    assert await db.fetchval("SELECT count(*) FROM sends WHERE state = 'hard_bounced'") == 1


async def test_erasure_removes_the_inbox_records_of_the_person(
    db: asyncpg.Pool, imap: ImapServer, campaign: tuple[str, list[int], list[str]]
) -> None:
    _, (a, b, _, _), (a1, _, _, _) = campaign
    imap.append(ADDRESS, mail(
        f"From: a@acme.example.org\nMessage-ID: <ra@acme.example.org>\nIn-Reply-To: {a1}"))
    await poll(db)
    # A list of some size, as in use: forget() ANALYZEs the table, and statistics of one
    # lone erasure entry would steer later plans (other tests') to a sequential scan.
    await db.executemany("INSERT INTO suppressions (workspace_id, entry, source) VALUES ('ws', $1, 'manual')",
                         [(f"listed{n}@example.com",) for n in range(50)])
    await forget(db, settings_ring(), "A@acme.example.org", None)
    assert await db.fetchval("SELECT count(*) FROM sent_messages WHERE prospect_id = $1", a) == 0
    assert await db.fetchval("SELECT count(*) FROM inbound_messages WHERE prospect_id = $1", a) == 0
    assert await db.fetchval("SELECT count(*) FROM sent_messages WHERE prospect_id = $1", b) == 1
    rows = [*await db.fetch("SELECT * FROM sent_messages"), *await db.fetch("SELECT * FROM inbound_messages")]
    assert "acme.example.org" not in " ".join(str(tuple(r)) for r in rows)


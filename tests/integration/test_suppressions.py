"""The do-not-contact list on the real PostgreSQL: entries and scopes, imports, and the
places it is enforced: at import, in the step scheduler's claim, after a hard bounce,
and the one-address check for the moment before DATA (docs/decisions/0026)."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from client.api import OutreachClient
from localsmtp.server import LocalSmtpServer
from specs import SpecError
from specs.loading import load_campaign_file, load_mailboxes_file
from specs.suppressions import read_suppressions_csv
from store import ledger, suppressions
from store.importer import create_campaign, import_mailboxes
from store.ledger import Reply
from store.suppressions import GLOBAL, Scope, SuppressionError
from tests.factories import add_campaign, add_mailbox, send_row
from tests.integration.test_campaign_e2e import wait_for_state

WS = Scope.workspace("ws")
OTHER = Scope.workspace("other")


def message_id(prospect_id: int, domain: str) -> str:
    return f"<{prospect_id}.{secrets.token_hex(4)}@{domain}>"


async def claim(pool: asyncpg.Pool, campaign_id: str, step: int = 1, limit: int = 100) -> ledger.DueBatch:
    return await ledger.claim_due(pool, campaign_id, step, datetime.now(UTC), limit, 1_000_000, [], [],
                                  message_id)


async def statuses(pool: asyncpg.Pool, campaign_id: str) -> dict[str, str]:
    rows = await pool.fetch("SELECT email, status FROM prospects WHERE campaign_id = $1", campaign_id)
    return {r["email"]: r["status"] for r in rows}


# -- entries, scopes, canonical form ------------------------------------------

@pytest.mark.parametrize("written, stored", [
    ("Joe@Example.COM", "joe@example.com"),
    ("  joe@example.com ", "joe@example.com"),
    ("JOE@BÜCHER.de", "joe@bücher.de"),
    ("joe@xn--bcher-kva.de", "joe@bücher.de"),
    ("@Competitor.COM", "@competitor.com"),
    ("@XN--BCHER-KVA.DE", "@bücher.de"),
    ("J.Doe+news@Gmail.com", "j.doe+news@gmail.com"),  # no dot or +tag folding
])
async def test_entries_are_stored_in_one_canonical_form(db: asyncpg.Pool, written: str, stored: str) -> None:
    entry, new = await suppressions.add(db, WS, written)
    assert new and entry.entry == stored
    _, again = await suppressions.add(db, WS, stored.upper() if stored.isascii() else stored)
    assert not again
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 1


@pytest.mark.parametrize("bad, says", [
    ("not-an-address", "not a valid address"),
    ("competitor.com", "for a whole domain write @competitor.com"),
    ("@bad..com", "not a valid domain"),
    ("@", "not a valid domain"),
    ("jörg@example.com", "not a valid address"),  # SMTPUTF8 local parts are refused, as at import
    ("a@b.com\r\nBcc: x@y.com", "line break"),
])
async def test_bad_entries_are_refused_and_nothing_is_written(db: asyncpg.Pool, bad: str, says: str) -> None:
    with pytest.raises(SuppressionError, match=says):
        await suppressions.add(db, WS, bad)
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_scopes_are_separate_lists_and_an_entry_is_kept_with_its_first_source(db: asyncpg.Pool) -> None:
    await suppressions.add(db, WS, "a@example.com", reason="asked by phone")
    await suppressions.add(db, GLOBAL, "a@example.com", source="complaint")
    kept, new = await suppressions.add(db, WS, "A@example.com", reason="another reason")
    assert not new and (kept.source, kept.reason) == ("manual", "asked by phone")
    assert [(str(s.scope), s.source) for s in await suppressions.listed(db)] == [
        ("global", "complaint"), ("workspace:ws", "manual")]
    assert [s.entry for s in await suppressions.listed(db, OTHER)] == []

    removed = await suppressions.remove(db, WS, "A@EXAMPLE.com")
    assert removed.entry == "a@example.com"
    assert [str(s.scope) for s in await suppressions.listed(db)] == ["global"]
    with pytest.raises(SuppressionError, match="not on the workspace:ws list"):
        await suppressions.remove(db, WS, "a@example.com")


async def test_is_suppressed_checks_the_address_its_domain_the_workspace_and_global(db: asyncpg.Pool) -> None:
    await suppressions.add(db, WS, "Joe@Bücher.de")
    await suppressions.add(db, GLOBAL, "@Competitor.com")
    async with db.acquire() as conn:
        assert await suppressions.is_suppressed(conn, "ws", "JOE@xn--bcher-kva.DE")
        assert not await suppressions.is_suppressed(conn, "other", "joe@bücher.de")  # another workspace
        assert not await suppressions.is_suppressed(conn, "ws", "ann@bücher.de")
        assert await suppressions.is_suppressed(conn, "other", "Anyone@COMPETITOR.com")
        assert not await suppressions.is_suppressed(conn, "other", "x@sub.competitor.com")  # domain is exact
        # A list of realistic size, with its statistics: the plan must not depend on
        # what another test left in the planner's statistics.
        await conn.execute("INSERT INTO suppressions (workspace_id, entry, source)"
                           " SELECT NULL, 'x' || n || '@filler.example', 'import'"
                           " FROM generate_series(1, 5000) n")
        await conn.execute("ANALYZE suppressions")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN SELECT EXISTS (SELECT 1 FROM suppressions WHERE entry = ANY($2::text[])"
            " AND (workspace_id = $1 OR workspace_id IS NULL))", "ws", ["a@b.c", "@b.c"]))
    assert "suppressions_entry" in plan  # one index probe, however long the list


# -- import and export ---------------------------------------------------------

def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "list.csv"
    path.write_text(text, encoding="utf-8")
    return path


async def test_import_reads_addresses_domains_and_reasons_and_keeps_duplicates_once(
    db: asyncpg.Pool, tmp_path: Path
) -> None:
    path = write(tmp_path, "Address,Reason\nAnn@Example.com,asked\n@Rival.io,competitor\n\n"
                           "ann@example.COM,again\nbob@bücher.de,\n")
    rows = read_suppressions_csv(path)
    assert [(r.entry, r.reason) for r in rows] == [
        ("ann@example.com", "asked"), ("@rival.io", "competitor"), ("bob@bücher.de", None)]
    await suppressions.add(db, WS, "bob@bücher.de")
    assert await suppressions.add_many(db, WS, rows) == 2
    listed = {s.entry: s for s in await suppressions.listed(db, WS)}
    assert listed["@rival.io"].source == "import" and listed["bob@bücher.de"].source == "manual"


@pytest.mark.parametrize("text, problem", [
    ("address,reason\nok@example.com,x\nnot-an-address,y\n", "row 3, column address: not a valid address"),
    ("address,reason\nok@example.com,x\n@bad..com,\n", "row 3, column address: not a valid domain"),
    ("address,reason\nok@example.com,\"two\nlines\"\n", "row 2, column reason: must not contain a line"),
    ("address,reason\nok@example.com,x,extra\n", "row 2: has 3 cells, the header has 2"),
    ("email,reason\nok@example.com,x\n", "row 1 (header): unknown column 'email'"),
    ("", "row 1 (header): the file is empty"),
])
async def test_a_bad_row_imports_nothing_and_is_named_with_its_column(
    db: asyncpg.Pool, client: OutreachClient, tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(SpecError) as caught:
        await client.suppress_import(write(tmp_path, text), WS)
    assert problem in str(caught.value)
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_export_writes_what_import_reads_back(
    db: asyncpg.Pool, client: OutreachClient, tmp_path: Path
) -> None:
    await client.suppress_add("ann@example.com", WS, reason="said no, twice")
    await client.suppress_add("@rival.io", WS)
    out = io.StringIO()
    assert await client.suppress_export(out, WS) == 2
    assert out.getvalue().splitlines()[0] == "address,reason,source,scope,created_at"
    path = write(tmp_path, out.getvalue())
    assert await client.suppress_import(path, OTHER) == (2, 2)
    copied = await suppressions.listed(db, OTHER)
    assert [(s.entry, s.reason, s.source) for s in copied] == [
        ("@rival.io", None, "import"), ("ann@example.com", "said no, twice", "import")]


# -- enforcement ----------------------------------------------------------------

async def test_campaign_import_marks_listed_prospects_suppressed(db: asyncpg.Pool, tmp_path: Path) -> None:
    await import_mailboxes(db, load_mailboxes_file("examples/mailboxes.yaml"))
    await suppressions.add(db, Scope.workspace("acme"), "Ann@Example.com")
    await suppressions.add(db, GLOBAL, "@rival.io")
    await suppressions.add(db, OTHER, "carl@example.com")  # another workspace's list: no effect
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        "name: C\nworkspace: acme\nmailboxes: [demo-1]\nsteps:\n  - {subject: Hi, body: x}\n"
        "prospects:\n  - {email: ANN@example.com}\n  - {email: bob@RIVAL.io}\n"
        "  - {email: carl@example.com}\n  - {email: dora@example.com}\n"
    )
    created = await create_campaign(db, load_campaign_file(campaign))
    assert (created.prospects, created.suppressed) == (4, 2)
    assert await statuses(db, created.id) == {"ANN@example.com": "suppressed", "bob@rival.io": "suppressed",
                                              "carl@example.com": "active", "dora@example.com": "active"}


async def test_a_prospect_listed_after_import_is_never_claimed_and_its_open_send_is_skipped(
    db: asyncpg.Pool,
) -> None:
    await add_mailbox(db, "mb", 2525)
    emails = ["ann@example.com", "bob@rival.io", "cy@rival.io", "dan@example.com", "eve@example.com"]
    campaign_id, ids = await add_campaign(db, ["mb"], emails, [("Hi", "x", 0)])
    first = await claim(db, campaign_id, limit=1)
    assert [c.prospect_id for c in first.sends] == [ids[0]]  # ann's send is now open (queued)

    await suppressions.add(db, WS, "Ann@Example.com")
    await suppressions.add(db, GLOBAL, "@RIVAL.io")  # every address of the domain
    batch = await claim(db, campaign_id)
    assert {c.prospect_id for c in batch.sends} == {ids[3], ids[4]}
    assert batch.pending == 2  # dan's and eve's, claimed and open; the listed ones are settled
    row = await send_row(db, campaign_id, 1, ids[0])
    assert (row["state"], row["last_reply"]) == ("skipped", "suppressed")
    assert await statuses(db, campaign_id) == {
        "ann@example.com": "suppressed", "bob@rival.io": "suppressed", "cy@rival.io": "suppressed",
        "dan@example.com": "active", "eve@example.com": "active"}
    assert {c.prospect_id for c in (await claim(db, campaign_id)).sends} == {ids[3], ids[4]}


async def test_the_claim_sees_an_entry_the_moment_it_is_added(db: asyncpg.Pool) -> None:
    """No page in between: a full page (no settling) still leaves the listed address out."""
    await add_mailbox(db, "mb", 2525)
    campaign_id, ids = await add_campaign(db, ["mb"], ["a@x.com", "b@x.com", "c@y.com"], [("Hi", "x", 0)])
    await suppressions.add(db, WS, "b@x.com")
    batch = await claim(db, campaign_id, limit=2)
    assert [c.prospect_id for c in batch.sends] == [ids[0], ids[2]] and batch.pending is None


async def test_a_step_whose_remaining_prospects_are_all_listed_has_nothing_pending(db: asyncpg.Pool) -> None:
    await add_mailbox(db, "mb", 2525)
    steps = [("Hi", "x", 0), ("Re", "y", 0)]
    campaign_id, ids = await add_campaign(db, ["mb"], ["a@x.com", "b@x.com"], steps)
    await claim(db, campaign_id)
    for pid in ids:
        attempt = await ledger.begin_attempt(db, campaign_id, 1, pid)
        await ledger.finish_attempt(db, campaign_id, 1, pid, attempt, "sent", "sent", Reply(250, None, "ok"))
    await suppressions.add(db, GLOBAL, "@x.com")
    follow_up = await claim(db, campaign_id, step=2)
    assert follow_up.sends == [] and follow_up.pending == 0 and follow_up.next_due_at is None


@pytest.mark.parametrize("enhanced, text, listed", [
    ("5.1.1", "5.1.1 User unknown", True),
    ("5.2.1", "5.2.1 Mailbox disabled", True),
    ("5.6.0", "5.6.0 Message content rejected", False),  # about the message, not the address
    (None, "No such user here", False),  # no enhanced code: not sure enough to list it forever
])
async def test_a_hard_bounce_lists_a_gone_address_in_the_workspace_in_its_transaction(
    db: asyncpg.Pool, enhanced: str | None, text: str, listed: bool,
) -> None:
    await add_mailbox(db, "mb", 2525)
    campaign_id, [pid] = await add_campaign(db, ["mb"], ["Gone@Bücher.de"], [("Hi", "x", 0)])
    await claim(db, campaign_id)
    attempt = await ledger.begin_attempt(db, campaign_id, 1, pid)
    await ledger.finish_attempt(db, campaign_id, 1, pid, attempt, "hard_bounced", "hard_bounce",
                                Reply(550, enhanced, text))
    entries = await suppressions.listed(db)
    if listed:
        assert [(e.entry, str(e.scope), e.source, e.reason) for e in entries] == [
            ("gone@bücher.de", "workspace:ws", "hard_bounce", text)]
    else:
        assert entries == []


async def test_a_campaign_whose_other_prospects_are_listed_after_import_completes_without_them(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb", inbox.port)
    emails = ["keep@example.com", "ann@example.com", "x1@rival.io", "x2@Rival.io"]
    campaign_id, _ = await add_campaign(db, ["mb"], emails, [("Hi", "one", 0), ("Re: Hi", "two", 1)])
    await client.suppress_add("ANN@example.com", WS)
    await client.suppress_add("@rival.io", GLOBAL, reason="competitor")

    await client.start_campaign(campaign_id)
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert {m.rcpt_tos[0] for m in inbox.messages} == {"keep@example.com"}
    assert len(inbox.messages) == 2
    assert status["prospects"] == {"active": 1, "replied": 0, "hard_bounced": 0, "unsubscribed": 0,
                                   "suppressed": 3, "stopped": 0}

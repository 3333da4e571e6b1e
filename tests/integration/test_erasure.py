"""Erasure (`outreach prospects forget`, docs/decisions/0032) on the real PostgreSQL:
nothing of the address is left in any table (read back with pg_dump and every text
column), only its keyed hash on the list, which a later import and the before-DATA
check match, under every key of the ring."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from client.api import OutreachClient
from config.secrets import generate_entry, key_ring
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from specs.loading import load_campaign_file, load_mailboxes_file
from store import erasure, suppressions
from store.address_hash import current_hash
from store.importer import create_campaign, import_mailboxes
from store.suppressions import GLOBAL, Scope, SuppressionError
from tests.conftest import TEST_SECRET_KEYS
from tests.factories import send_row
from tests.integration.test_cli import outreach
from tests.integration.test_stop_before_data import _attempt_outcome, _held_mid_transaction

ADDRESS = "Zed.Erasable@Example.ORG"
NEEDLE = "zed.erasable"  # its local part: nothing containing it may remain, in any case
RING = key_ring(TEST_SECRET_KEYS)


def campaign_file(tmp_path: Path, workspace: str, *emails: str) -> Path:
    path = tmp_path / f"c-{workspace}-{len(list(tmp_path.iterdir()))}.yaml"
    items = "".join(f"  - {{email: {e}, first_name: Zed, company: Erasable Ltd}}\n" for e in emails)
    path.write_text(f"name: C\nworkspace: {workspace}\nmailboxes: [demo-1]\nsteps:\n"
                    f"  - {{subject: Hi, body: x}}\n  - {{subject: Again, body: y, delay: 1d}}\n"
                    f"prospects:\n{items}")
    return path


async def seed(db: asyncpg.Pool, tmp_path: Path) -> dict[str, str]:
    """Two workspaces' campaigns with the address, its sends, attempts and replies that
    quote it, list entries, and a pause reason naming it."""
    await import_mailboxes(db, load_mailboxes_file("examples/mailboxes.yaml"))
    ids = {}
    for ws in ("acme", "other"):
        created = await create_campaign(
            db, load_campaign_file(campaign_file(tmp_path, ws, ADDRESS, f"ann@{ws}.example")))
        ids[ws] = created.id
    quote = "550 5.1.1 <zed.erasable@example.org>: Recipient address rejected"
    for campaign_id in ids.values():
        rows = await db.fetch("SELECT id, email FROM prospects WHERE campaign_id = $1", campaign_id)
        for row in rows:
            mine = row["email"].lower().startswith(NEEDLE)
            await db.execute(
                "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, state, last_reply,"
                " message_id, first_attempt_at, finished_at)"
                " VALUES ($1, 1, $2, 'demo-1', $3, $4, $5, now(), now())",
                campaign_id, row["id"], "hard_bounced" if mine else "sent",
                quote if mine else f"250 ok, and a copy went to {ADDRESS.upper()}",
                f"<{row['id']}.x@example.com>")
            await db.execute(
                "INSERT INTO send_attempts (campaign_id, step, prospect_id, attempt, outcome, reply)"
                " VALUES ($1, 1, $2, 1, 'hard_bounce', $3)", campaign_id, row["id"], quote)
            if mine:  # step 2 queued for it
                await db.execute(
                    "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id)"
                    " VALUES ($1, 2, $2, 'demo-1', $3)",
                    campaign_id, row["id"], f"<{row['id']}.y@example.com>")
    await suppressions.add(db, Scope.workspace("acme"), ADDRESS, reason="asked by phone")
    await suppressions.add(db, GLOBAL, ADDRESS, source="complaint")
    await suppressions.add(db, GLOBAL, "@rival.example", reason=f"after {ADDRESS} complained")
    await db.execute("UPDATE mailboxes SET paused = true, pause_reason = $1 WHERE id = 'demo-2'",
                     f"sender_problem: 550 {ADDRESS} is blocked")
    return ids


async def pg_dump(settings: Settings) -> str:
    proc = await asyncio.create_subprocess_exec(
        "pg_dump", "--data-only", settings.database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().lower()


async def every_text_column(db: asyncpg.Pool) -> str:
    """Every column of every table of the schema, as text, and the planner's samples."""
    columns = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name IN"
        " (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        "  AND table_schema = 'public')")
    assert len({c["table_name"] for c in columns}) >= 9
    parts = []
    for c in columns:
        values = await db.fetch(f'SELECT "{c["column_name"]}"::text AS v FROM "{c["table_name"]}"')
        parts += [v["v"] or "" for v in values]
    stats = await db.fetch("SELECT most_common_vals::text AS a, histogram_bounds::text AS b FROM pg_stats"
                           " WHERE schemaname = 'public'")
    parts += [f"{s['a']} {s['b']}" for s in stats]
    return "\n".join(parts).lower()


async def test_forget_everywhere_leaves_nothing_of_the_address_and_a_later_import_is_suppressed(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path, client: OutreachClient,
) -> None:
    await seed(db, tmp_path)
    await db.execute("ANALYZE")
    assert NEEDLE in await pg_dump(settings)  # the check can see it while it is there

    done = await client.forget_prospect("zed.erasable@EXAMPLE.org")
    assert (done.scope, done.prospects, done.sends_ended, done.entries_removed) == ("global", 2, 2, 2)
    assert done.hash_entry.startswith(f"hmac:{RING.current_id}:")

    assert NEEDLE not in await pg_dump(settings)
    assert NEEDLE not in await every_text_column(db)
    kept = {(s.entry, s.source) for s in await suppressions.listed(db)}
    assert (done.hash_entry, "erasure") in kept and ("@rival.example", "manual") in kept
    states = await db.fetch("SELECT state, count(*) AS n FROM sends GROUP BY state ORDER BY state")
    assert {r["state"]: r["n"] for r in states} == {"hard_bounced": 2, "sent": 2, "skipped": 2}

    # Never written to again: a later import, in any workspace, marks it suppressed
    # without storing it.
    for ws in ("acme", "newcomer"):
        again = await create_campaign(
            db, load_campaign_file(campaign_file(tmp_path, ws, "ZED.ERASABLE@example.org", "bo@x.example")))
        assert (again.prospects, again.suppressed) == (2, 1)
    assert NEEDLE not in await every_text_column(db)
    async with db.acquire() as conn:
        assert await suppressions.is_suppressed(conn, "anywhere", ADDRESS, RING)
        assert not await suppressions.is_suppressed(conn, "anywhere", "zed.erasable2@example.org", RING)


async def test_forget_in_one_workspace_keeps_the_others_and_the_cli_says_what_it_did(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path,
) -> None:
    ids = await seed(db, tmp_path)
    ran = await outreach(settings, "prospects", "forget", ADDRESS, "--workspace", "acme", "--json")
    assert ran.returncode == 0, ran.stderr
    done = json.loads(ran.stdout)
    assert (done["scope"], done["prospects"], done["entries_removed"]) == ("workspace:acme", 1, 1)

    left = await db.fetch("SELECT p.email, c.workspace_id, p.status FROM prospects p"
                          " JOIN campaigns c ON c.id = p.campaign_id WHERE lower(p.email) LIKE 'zed%'")
    assert [(r["workspace_id"], r["status"]) for r in left] == [("other", "active")]
    acme = await db.fetchval("SELECT string_agg(coalesce(s.last_reply, '') || p.email || p.fields::text, ' ')"
                             " FROM prospects p LEFT JOIN sends s ON s.prospect_id = p.id"
                             " WHERE p.campaign_id = $1", ids["acme"])
    assert NEEDLE not in acme.lower()
    global_list = await suppressions.listed(db, GLOBAL)
    assert [s.source for s in global_list if s.entry == ADDRESS.lower()] == ["complaint"]

    again = await create_campaign(db, load_campaign_file(campaign_file(tmp_path, "acme", ADDRESS)))
    elsewhere = await create_campaign(
        db, load_campaign_file(campaign_file(tmp_path, "third", "zed.erasable@x.example")))
    assert again.suppressed == 1 and elsewhere.suppressed == 0

    bad = await outreach(settings, "prospects", "forget", "@example.org", "--workspace", "acme")
    assert bad.returncode == 2 and "is not an address" in bad.stderr


async def test_erasure_entries_match_under_every_key_of_the_ring_and_a_lost_key_refuses_imports(
    db: asyncpg.Pool, tmp_path: Path,
) -> None:
    await import_mailboxes(db, load_mailboxes_file("examples/mailboxes.yaml"))
    await erasure.forget(db, RING, ADDRESS, "acme")
    rotated = key_ring(f"{generate_entry('k2')},{TEST_SECRET_KEYS}")  # `keys rotate`: newest first
    only_new = key_ring(generate_entry("k3"))
    async with db.acquire() as conn:
        assert await suppressions.is_suppressed(conn, "acme", ADDRESS.upper(), rotated)
        assert not await suppressions.is_suppressed(conn, "acme", ADDRESS, only_new)

    created = await create_campaign(db, load_campaign_file(campaign_file(tmp_path, "acme", "ann@x.example")))
    await db.execute("INSERT INTO prospects (campaign_id, email, mailbox_id) VALUES ($1, $2, 'demo-1')",
                     created.id, ADDRESS)
    async with db.acquire() as conn, conn.transaction():
        assert await suppressions.mark_suppressed_prospects(conn, created.id, "acme", rotated) == 1
    with pytest.raises(SuppressionError, match=f"key id\\(s\\) {RING.current_id}, which"):
        async with db.acquire() as conn, conn.transaction():
            await suppressions.mark_suppressed_prospects(conn, created.id, "acme", only_new)


async def test_an_erasure_entry_stops_a_send_before_data_by_its_hash_alone(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
) -> None:
    # Only the hash is added (no row stripped), as if the prospect had come by a path
    # that skipped the import's check: the moment before DATA still matches it.
    campaign_id, prospect = await _held_mid_transaction(db, inbox, client, "Late@Example.com")
    await suppressions.add(db, Scope.workspace("ws"), current_hash(RING, "late@example.com"),
                           source="erasure")
    inbox.release("rcpt")

    assert await _attempt_outcome(db, campaign_id) == "stopped"
    row = await send_row(db, campaign_id, 1, prospect)
    assert (row["state"], row["last_reply"], row["data_started_at"]) == ("skipped", "suppressed", None)
    assert "DATA" not in inbox.commands and inbox.messages == []


async def test_erasure_forgets_the_referrals_a_prospect_made_and_those_naming_the_address(
    db: asyncpg.Pool,
) -> None:
    """Issue 25: a referral keeps an address someone else wrote; erasing that address, or
    the prospect who wrote it, forgets the row, and the postponements go with the prospect."""
    from tests.factories import add_campaign, add_mailbox

    await add_mailbox(db, "mb", 2525)
    campaign_id, (ada, ben) = await add_campaign(db, ["mb"], ["ada@a.example.org", "ben@b.example.org"],
                                                 [("Hi", "x", 0)])
    await db.executemany(
        "INSERT INTO referrals (inbound_id, workspace_id, campaign_id, prospect_id, referred_email)"
        " VALUES ($1, 'ws', $2, $3, $4)",
        [(1, campaign_id, ada, "Jane.Doe@c.example.org"), (2, campaign_id, ben, "sam@b.example.org")])
    await db.execute(
        "INSERT INTO postponements (inbound_id, campaign_id, prospect_id, step, due_before, due_after,"
        " reason) VALUES (3, $1, $2, 2, now(), now() + interval '1 day', 'no return date: 604800s')",
        campaign_id, ben)
    ring = key_ring(TEST_SECRET_KEYS)
    await erasure.forget(db, ring, "jane.doe@c.example.org", "ws")
    assert [r["inbound_id"] for r in await db.fetch("SELECT inbound_id FROM referrals")] == [2]
    await erasure.forget(db, ring, "ben@b.example.org", "ws")
    assert await db.fetchval("SELECT count(*) FROM referrals") == 0
    assert await db.fetchval("SELECT count(*) FROM postponements") == 0

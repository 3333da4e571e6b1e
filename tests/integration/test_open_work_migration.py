"""Migration 0009 on a database with campaigns under way: every prospect ends up waiting
for the right step at the right time, or for none (docs/decisions/0037)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from store.migrate import available_migrations, ensure_database
from tests.conftest import PG_ADMIN_URL

OPEN_WORK = 9
SENT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def before_0009() -> AsyncIterator[asyncpg.Connection]:
    """A fresh database with every migration before 0009 applied."""
    name = f"outreach_test_m{secrets.token_hex(4)}"
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    await ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        for migration in available_migrations():
            if migration.version < OPEN_WORK:
                await conn.execute(migration.sql)
        yield conn
    finally:
        await conn.close()
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_the_backfill_puts_each_prospect_where_its_sends_left_it(
    before_0009: asyncpg.Connection,
) -> None:
    conn = before_0009
    await conn.execute(
        "INSERT INTO mailboxes (id, email, provider, smtp_host, smtp_port, security, daily_limit, timezone,"
        " window_start, window_end, window_days) VALUES ('mb', 'mb@x.example', 'other', '127.0.0.1', 25,"
        " 'none', 10, 'UTC', '00:00', '23:00', '{1,2,3,4,5,6,7}')")
    await conn.execute("INSERT INTO workspaces (id) VALUES ('ws')")
    await conn.execute(
        "INSERT INTO campaigns (id, name, workspace_id, state) VALUES ('c', 'c', 'ws', 'running')")
    await conn.execute("INSERT INTO campaign_mailboxes VALUES ('c', 'mb')")
    await conn.execute("INSERT INTO steps (campaign_id, step, subject, body, delay_seconds) VALUES"
                       " ('c', 1, 's', 'b', 0), ('c', 2, 's', 'b', 3600), ('c', 3, 's', 'b', 7200)")
    # prospect -> its sends by step: (state, sent_at)
    history: dict[str, dict[int, str]] = {
        "new": {},
        "queued1": {1: "queued"},
        "failed1": {1: "failed"},
        "sent1": {1: "sent"},
        "sending2": {1: "sent", 2: "sending"},
        "unknown2": {1: "sent", 2: "unknown"},
        "done": {1: "sent", 2: "sent", 3: "sent"},
        "replied": {1: "sent"},
    }
    ids = {}
    for email, sends in history.items():
        ids[email] = pid = await conn.fetchval(
            "INSERT INTO prospects (campaign_id, email, mailbox_id, status) VALUES ('c', $1, 'mb', $2)"
            " RETURNING id", f"{email}@p.example", "replied" if email == "replied" else "active")
        for step, state in sends.items():
            await conn.execute(
                "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, sent_at)"
                " VALUES ('c', $1, $2, 'mb', $3, $4, $5)",
                step, pid, f"<{pid}.{step}@x>", state,
                SENT + timedelta(hours=step) if state == "sent" else None)

    migration = next(m for m in available_migrations() if m.version == OPEN_WORK)
    await conn.execute(migration.sql)

    rows = {r["id"]: (r["next_step"], r["next_due_at"])
            for r in await conn.fetch("SELECT id, next_step, next_due_at FROM prospects")}
    minus_infinity = await conn.fetchval("SELECT '-infinity'::timestamptz")
    assert rows[ids["new"]] == (1, minus_infinity)
    assert rows[ids["queued1"]] == (1, minus_infinity)
    assert rows[ids["failed1"]] == (None, None)
    assert rows[ids["sent1"]] == (2, SENT + timedelta(hours=1) + timedelta(seconds=3600))
    assert rows[ids["sending2"]] == (2, SENT + timedelta(hours=1) + timedelta(seconds=3600))
    assert rows[ids["unknown2"]] == (None, None)
    assert rows[ids["done"]] == (None, None)
    # Its status keeps it out of the index, whatever its columns say.
    assert rows[ids["replied"]][0] == 2
    # And from now on the trigger keeps them: the step-2 send of sending2 ends sent.
    await conn.execute("UPDATE sends SET state = 'sent', sent_at = $2 WHERE prospect_id = $1 AND step = 2",
                       ids["sending2"], SENT + timedelta(days=1))
    moved = await conn.fetchrow("SELECT next_step, next_due_at FROM prospects WHERE id = $1", ids["sending2"])
    assert moved == (3, SENT + timedelta(days=1, seconds=7200))

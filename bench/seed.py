"""A benchmark's inputs, written straight to its database: mailboxes on the local
provider and a one-step campaign, prospects assigned to mailboxes round-robin.

Mailboxes have no SMTP login (the local provider asks for none), so nothing here
depends on how credentials are stored.

After loading, the tables are ANALYZEd, as autovacuum would soon after an import
on a production server. The development server runs with autovacuum off, and
without statistics the scheduler's due-sends query is planned as a nested loop
over every prospect and every send of the campaign, which makes a 5,000-prospect
campaign several times slower (docs/benchmarks.md); `analyze=False` shows that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import time

import asyncpg

SUBJECT = "Hello {{ first_name }}"
BODY = "Hi {{ first_name }},\n\nA short note from the benchmark.\n"


@dataclass(frozen=True)
class Mailbox:
    id: str
    email: str
    daily_limit: int


@dataclass(frozen=True)
class Seeded:
    campaign_id: str
    mailboxes: list[Mailbox]
    prospects: int


def mailbox_email(mailbox_id: str) -> str:
    return f"{mailbox_id}@sender.example.com"


def prospect_email(prefix: str, i: int) -> str:
    return f"{prefix}-p{i}@example.com"


async def seed_campaign(
    conn: asyncpg.Connection, prefix: str, smtp_port: int, daily_limits: list[int], prospects: int,
    analyze: bool = True,
) -> Seeded:
    """Mailboxes `{prefix}-mb{i}` (one per daily limit) on 127.0.0.1:`smtp_port`, and a
    campaign of `prospects` prospects, one step sent at once."""
    boxes = [Mailbox(f"{prefix}-mb{i}", mailbox_email(f"{prefix}-mb{i}"), cap)
             for i, cap in enumerate(daily_limits)]
    campaign_id = f"cmp-{secrets.token_hex(5)}"
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO mailboxes (id, email, provider, smtp_host, smtp_port, security, daily_limit,"
            " timezone, window_start, window_end, window_days)"
            " VALUES ($1, $2, 'other', '127.0.0.1', $3, 'none', $4, 'UTC', $5, $6, $7)",
            [(b.id, b.email, smtp_port, b.daily_limit, time.min, time.max, [1, 2, 3, 4, 5, 6, 7])
             for b in boxes],
        )
        await conn.execute("INSERT INTO workspaces (id) VALUES ('bench') ON CONFLICT DO NOTHING")
        await conn.execute(
            "INSERT INTO campaigns (id, name, workspace_id) VALUES ($1, 'bench', 'bench')", campaign_id
        )
        await conn.executemany(
            "INSERT INTO campaign_mailboxes (campaign_id, mailbox_id) VALUES ($1, $2)",
            [(campaign_id, b.id) for b in boxes],
        )
        await conn.execute(
            "INSERT INTO steps (campaign_id, step, subject, body, delay_seconds) VALUES ($1, 1, $2, $3, 0)",
            campaign_id, SUBJECT, BODY,
        )
        await conn.copy_records_to_table(
            "prospects", columns=["campaign_id", "email", "fields", "mailbox_id"],
            records=[(campaign_id, prospect_email(prefix, i), f'{{"first_name": "P{i}"}}',
                      boxes[i % len(boxes)].id) for i in range(prospects)],
        )
    if analyze:
        await conn.execute("ANALYZE")
    return Seeded(campaign_id, boxes, prospects)

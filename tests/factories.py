"""Rows for tests, written straight to PostgreSQL (the importers have their own tests)."""

from __future__ import annotations

import secrets
from datetime import time

import asyncpg

from config.secrets import KeyRing, key_ring
from config.settings import Settings
from store.secret_values import seal


def settings_ring() -> KeyRing:
    """The ring tests/conftest.py puts in OUTREACH_SECRET_KEYS (or a test's own)."""
    return key_ring(Settings().secret_keys)


def sealed(mailbox_id: str, column: str, value: str, ring: KeyRing | None = None) -> str:
    """A credential as the store keeps it in ``mailboxes.<column>``, for tests that
    write the column directly (the database refuses one in the clear)."""
    return seal(ring or settings_ring(), value, table_column=f"mailboxes.{column}", mailbox_id=mailbox_id)


def sealed_password(mailbox_id: str, password: str, ring: KeyRing | None = None) -> str:
    return sealed(mailbox_id, "password", password, ring)


async def add_mailbox(
    pool: asyncpg.Pool, mailbox_id: str, port: int, *, daily_limit: int = 10_000,
    email: str | None = None, provider: str = "other",
) -> None:
    await pool.execute(
        """
        INSERT INTO mailboxes (id, email, provider, smtp_host, smtp_port, security, username,
                               password, daily_limit, timezone, window_start, window_end, window_days)
        VALUES ($1, $2, $3, '127.0.0.1', $4, 'none', $1, $9, $5, 'UTC', $6, $7, $8)
        """,
        mailbox_id, email or f"{mailbox_id}@sender.example.com", provider, port, daily_limit,
        time.min, time.max, [1, 2, 3, 4, 5, 6, 7], sealed(mailbox_id, "password", "secret"),
    )


async def add_campaign(
    pool: asyncpg.Pool,
    mailbox_ids: list[str],
    prospects: list[str],
    steps: list[tuple[str, str, int]],  # (subject, body, delay seconds)
    workspace: str = "ws",
) -> tuple[str, list[int]]:
    """A campaign with prospects assigned to mailboxes round-robin; returns (id, prospect ids)."""
    campaign_id = f"cmp-{secrets.token_hex(5)}"
    await pool.execute("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT DO NOTHING", workspace)
    await pool.execute(
        "INSERT INTO campaigns (id, name, workspace_id) VALUES ($1, 'test', $2)", campaign_id, workspace
    )
    await pool.executemany(
        "INSERT INTO campaign_mailboxes (campaign_id, mailbox_id) VALUES ($1, $2)",
        [(campaign_id, m) for m in mailbox_ids],
    )
    await pool.executemany(
        "INSERT INTO steps (campaign_id, step, subject, body, delay_seconds) VALUES ($1, $2, $3, $4, $5)",
        [(campaign_id, k, s, b, d) for k, (s, b, d) in enumerate(steps, start=1)],
    )
    ids = []
    for i, email in enumerate(prospects):
        ids.append(await pool.fetchval(
            "INSERT INTO prospects (campaign_id, email, fields, mailbox_id) VALUES ($1, $2, $3, $4)"
            " RETURNING id",
            campaign_id, email, {"first_name": f"P{i}"}, mailbox_ids[i % len(mailbox_ids)],
        ))
    return campaign_id, ids


async def send_row(pool: asyncpg.Pool, campaign_id: str, step: int, prospect_id: int) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM sends WHERE campaign_id = $1 AND step = $2 AND prospect_id = $3",
        campaign_id, step, prospect_id,
    )
    assert row is not None, f"no ledger row for {campaign_id}:{step}:{prospect_id}"
    return row

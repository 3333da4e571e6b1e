"""Writing validated specs: mailboxes (upserted) and new campaigns, each import
in one transaction, so a failed import leaves the database as it was."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from specs import Problem, SpecError
from specs.campaigns import LoadedCampaign
from specs.mailboxes import MailboxSpec

Conn = asyncpg.Connection | PoolConnectionProxy

# A re-import changes what the file describes; pause state belongs to the
# operator and the health checks, so it is left alone.
_UPSERT_MAILBOX = """
INSERT INTO mailboxes (id, email, provider, smtp_host, smtp_port, security, username, password,
                       password_env, daily_limit, timezone, window_start, window_end, window_days,
                       warmup_start, warmup_increment, auth_kind, oauth_provider, oauth_client_id,
                       oauth_client_secret, oauth_refresh_token)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21)
ON CONFLICT (id) DO UPDATE SET
    email = excluded.email, provider = excluded.provider, smtp_host = excluded.smtp_host,
    smtp_port = excluded.smtp_port, security = excluded.security, username = excluded.username,
    password = excluded.password, password_env = excluded.password_env,
    daily_limit = excluded.daily_limit, timezone = excluded.timezone,
    window_start = excluded.window_start, window_end = excluded.window_end,
    window_days = excluded.window_days, warmup_start = excluded.warmup_start,
    warmup_increment = excluded.warmup_increment, auth_kind = excluded.auth_kind,
    oauth_provider = excluded.oauth_provider, oauth_client_id = excluded.oauth_client_id,
    oauth_client_secret = excluded.oauth_client_secret,
    oauth_refresh_token = excluded.oauth_refresh_token,
    -- a new refresh token makes the cached access token suspect
    oauth_access_token = CASE WHEN excluded.oauth_refresh_token
        IS DISTINCT FROM mailboxes.oauth_refresh_token THEN NULL
        ELSE mailboxes.oauth_access_token END,
    updated_at = now()
"""


@dataclass(frozen=True)
class CampaignCreated:
    id: str
    prospects: int
    warnings: list[str]  # duplicates dropped, one line each


async def import_mailboxes(pool: asyncpg.Pool, specs: Sequence[MailboxSpec]) -> list[str]:
    """Inserts or updates ``specs``; returns their ids in order."""
    ids = [spec.id for spec in specs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise SpecError([Problem("<mailboxes>", "", f"ids given twice: {', '.join(repeated)}")])
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(_UPSERT_MAILBOX, [_mailbox_row(spec) for spec in specs])
    return ids


def _mailbox_row(spec: MailboxSpec) -> tuple[Any, ...]:
    w = spec.window
    return (
        spec.id, spec.email, spec.provider, spec.smtp_host, spec.smtp_port, spec.security,
        spec.username, spec.password, spec.password_env, spec.daily_limit, spec.timezone,
        w.start, w.end, list(w.days),
        spec.warmup.start if spec.warmup else None, spec.warmup.increment if spec.warmup else 0,
        "oauth2" if spec.oauth else "password",
        *(
            (spec.oauth.provider, spec.oauth.client_id, spec.oauth.client_secret,
             spec.oauth.refresh_token)
            if spec.oauth else (None, None, None, None)
        ),
    )


async def create_campaign(pool: asyncpg.Pool, loaded: LoadedCampaign) -> CampaignCreated:
    """Writes a new campaign with its steps, mailboxes and prospects, or nothing."""
    spec = loaded.spec
    campaign_id = "cmp-" + secrets.token_hex(5)
    async with pool.acquire() as conn, conn.transaction():
        await _require_mailboxes(conn, spec.mailboxes, loaded.source)
        await conn.execute(
            "INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", spec.workspace
        )
        await conn.execute(
            "INSERT INTO campaigns (id, name, workspace_id) VALUES ($1, $2, $3)",
            campaign_id, spec.name, spec.workspace,
        )
        await conn.executemany(
            "INSERT INTO steps (campaign_id, step, subject, body, delay_seconds)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (campaign_id, n, step.subject, step.body, step.delay_seconds)
                for n, step in enumerate(spec.steps, 1)
            ],
        )
        await conn.executemany(
            "INSERT INTO campaign_mailboxes (campaign_id, mailbox_id) VALUES ($1, $2)",
            [(campaign_id, mailbox_id) for mailbox_id in spec.mailboxes],
        )
        await _insert_prospects(conn, campaign_id, loaded)
    warnings = [str(w) for w in loaded.warnings]
    return CampaignCreated(campaign_id, len(loaded.prospects), warnings)


async def _require_mailboxes(conn: Conn, ids: list[str], source: str) -> None:
    rows = await conn.fetch("SELECT id FROM mailboxes WHERE id = any($1::text[])", ids)
    unknown = sorted(set(ids) - {row["id"] for row in rows})
    if unknown:
        message = f"unknown mailbox(es): {', '.join(unknown)} (import them first)"
        raise SpecError([Problem(source, "mailboxes", message)])


async def _insert_prospects(conn: Conn, campaign_id: str, loaded: LoadedCampaign) -> None:
    # executemany pipelines the rows (100k in well under a second). Binary COPY
    # is not an option: the pool's jsonb codec is text-only.
    # Round-robin in prospect order spreads the list evenly over the mailboxes;
    # every follow-up then leaves from the prospect's mailbox.
    pool_ids = loaded.spec.mailboxes
    await conn.executemany(
        "INSERT INTO prospects (campaign_id, email, fields, mailbox_id) VALUES ($1, $2, $3, $4)",
        [
            (campaign_id, p.email, p.fields, pool_ids[i % len(pool_ids)])
            for i, p in enumerate(loaded.prospects)
        ],
    )

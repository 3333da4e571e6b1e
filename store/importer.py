"""Writing validated specs: mailboxes (upserted) and new campaigns, each import
in one transaction, so a failed import leaves the database as it was.

Mailbox credentials are sealed with the key ring before they reach the
database (docs/decisions/0015); without a key, an import that carries one is
refused and nothing is written."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from config.secrets import KeyRing, SecretKeyError, key_ring
from config.settings import Settings
from specs import Problem, SpecError
from specs.campaigns import LoadedCampaign
from specs.mailboxes import MailboxSpec
from specs.prospects import Prospect
from store import StoreError, accounts, inbox_settings, sender_identity, suppressions, variants
from store.open_work import first_openings
from store.secret_values import seal
from worktime.places import Place, PlaceError

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
    -- a new refresh token makes the cached access token suspect ($22: the file's
    -- refresh token is the stored one; sealed values differ even when equal)
    oauth_access_token = CASE WHEN $22::boolean THEN mailboxes.oauth_access_token END,
    updated_at = now()
"""


@dataclass(frozen=True)
class CampaignCreated:
    id: str
    prospects: int
    warnings: list[str]  # duplicates dropped, one line each
    suppressed: int = 0  # prospects on the do-not-contact list, marked 'suppressed' at once
    active_elsewhere: int = 0  # skipped by `dedupe: workspace`: active in another running campaign


@dataclass(frozen=True)
class ProspectsInserted:
    added: int
    duplicates: int  # already in the campaign
    active_elsewhere: int  # `dedupe: workspace`: active in another running campaign
    addresses: list[str]  # those added, lower-cased


async def import_mailboxes(
    pool: asyncpg.Pool, specs: Sequence[MailboxSpec], ring: KeyRing | None = None
) -> list[str]:
    """Inserts or updates ``specs``; returns their ids in order.

    ``ring`` seals the credentials; by default the one OUTREACH_SECRET_KEYS (or
    .env) holds, needed only if some mailbox carries a credential.
    """
    ids = [spec.id for spec in specs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise SpecError([Problem("<mailboxes>", "", f"ids given twice: {', '.join(repeated)}")])
    if ring is None and any(_has_credential(spec) for spec in specs):
        ring = _settings_ring()
    async with pool.acquire() as conn, conn.transaction():
        stored = await accounts.refresh_tokens(conn, ids, ring=ring) if ring else {}
        rows = [_mailbox_row(spec, ring, stored) for spec in specs]
        await conn.executemany(_UPSERT_MAILBOX, rows)
        await sender_identity.store_mailboxes(conn, specs)
        # Apart from the upsert: read only by `mailboxes check-dns` (store/sender_dns.py).
        await conn.executemany("UPDATE mailboxes SET dkim_selector = $2 WHERE id = $1",
                               [(spec.id, spec.dkim_selector) for spec in specs])
        await inbox_settings.store_imap_settings(conn, specs, ring)
    return ids


def _has_credential(spec: MailboxSpec) -> bool:
    return spec.password is not None or spec.oauth is not None or spec.imap_password is not None


def _settings_ring() -> KeyRing:
    try:
        # Read now, not from get_settings()'s cache: `outreach dev`/`demo` may
        # have just created the development key.
        return key_ring(Settings().secret_keys)
    except SecretKeyError as exc:
        # One line for the operator; nothing has been written yet.
        raise StoreError(f"no mailbox imported: {exc}") from None


def _mailbox_row(
    spec: MailboxSpec, ring: KeyRing | None, stored_refresh_tokens: dict[str, str | None]
) -> tuple[Any, ...]:
    def sealed(column: str, value: str | None) -> str | None:
        if value is None:
            return None
        assert ring is not None  # import_mailboxes got one for any credential
        return seal(ring, value, table_column=f"mailboxes.{column}", mailbox_id=spec.id)

    w = spec.window
    oauth = spec.oauth
    same_refresh_token = oauth is not None and stored_refresh_tokens.get(spec.id) == oauth.refresh_token
    return (
        spec.id, spec.email, spec.provider, spec.smtp_host, spec.smtp_port, spec.security,
        spec.username, sealed("password", spec.password), spec.password_env, spec.daily_limit,
        spec.timezone, w.start, w.end, list(w.days),
        spec.warmup.start if spec.warmup else None, spec.warmup.increment if spec.warmup else 0,
        "oauth2" if oauth else "password",
        *(
            (oauth.provider, oauth.client_id, sealed("oauth_client_secret", oauth.client_secret),
             sealed("oauth_refresh_token", oauth.refresh_token))
            if oauth else (None, None, None, None)
        ),
        same_refresh_token,
    )


async def create_campaign(pool: asyncpg.Pool, loaded: LoadedCampaign) -> CampaignCreated:
    """Writes a new campaign with its steps, mailboxes and prospects, or nothing.
    Prospects on the workspace's or the global do-not-contact list are 'suppressed'."""
    spec = loaded.spec
    campaign_id = "cmp-" + secrets.token_hex(5)
    async with pool.acquire() as conn, conn.transaction():
        await _require_mailboxes(conn, spec.mailboxes, loaded.source)
        await conn.execute(
            "INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", spec.workspace
        )
        await conn.execute(
            "INSERT INTO campaigns (id, name, workspace_id, is_open, dedupe) VALUES ($1, $2, $3, $4, $5)",
            campaign_id, spec.name, spec.workspace, spec.open, spec.dedupe,
        )
        await conn.execute(
            "UPDATE campaigns SET stop_on_reply = $2, stop_on_auto_reply = $3, schedule = $4,"
            " default_timezone = $5, on_reply = $6 WHERE id = $1",
            campaign_id, spec.reply_stops, spec.stop_on_auto_reply,
            spec.schedule.schedule().as_json() if spec.schedule else None, spec.default_timezone,
            spec.reply_policy.stored(),
        )
        await conn.executemany(
            "INSERT INTO steps (campaign_id, step, subject, body, delay_seconds, delay_business_days)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (campaign_id, n, *variants.legacy_subject_body(spec.steps, n), step.delay_seconds,
                 step.delay_business_days)
                for n, step in enumerate(spec.steps, 1)
            ],
        )
        await variants.store_variants(conn, campaign_id, spec.steps)
        await conn.executemany(
            "INSERT INTO campaign_mailboxes (campaign_id, mailbox_id) VALUES ($1, $2)",
            [(campaign_id, mailbox_id) for mailbox_id in spec.mailboxes],
        )
        await sender_identity.store_campaign(conn, campaign_id, spec)
        inserted = await insert_prospects(
            conn, campaign_id, spec.workspace, loaded.prospects, spec.mailboxes,
            dedupe_workspace=spec.dedupe == "workspace",
        )
        suppressed = await suppressions.mark_suppressed_prospects(conn, campaign_id, spec.workspace)
    warnings = [str(w) for w in loaded.warnings]
    return CampaignCreated(campaign_id, inserted.added, warnings, suppressed, inserted.active_elsewhere)


async def _require_mailboxes(conn: Conn, ids: list[str], source: str) -> None:
    rows = await conn.fetch("SELECT id, retired_at FROM mailboxes WHERE id = any($1::text[])", ids)
    unknown = sorted(set(ids) - {row["id"] for row in rows})
    if unknown:
        message = f"unknown mailbox(es): {', '.join(unknown)} (import them first)"
        raise SpecError([Problem(source, "mailboxes", message)])
    retired = sorted(row["id"] for row in rows if row["retired_at"] is not None)
    if retired:
        raise SpecError([Problem(source, "mailboxes", f"retired mailbox(es): {', '.join(retired)}")])


def _located(prospect: Prospect) -> Place:
    try:
        return prospect.located()
    except PlaceError as exc:  # a Prospect built in Python, its fields not read by a spec
        raise SpecError([Problem("<prospects>", f"{prospect.where}, {exc.column}", str(exc))]) from exc


async def insert_prospects(
    conn: Conn, campaign_id: str, workspace_id: str, prospects: Sequence[Prospect],
    mailbox_ids: Sequence[str], *, dedupe_workspace: bool = False,
) -> ProspectsInserted:
    """Add ``prospects`` to a campaign, skipping addresses it already has (and, with
    ``dedupe_workspace``, addresses active in another running campaign of the
    workspace). For campaigns created and added to alike.

    Run in the caller's transaction, which holds the campaign's row lock when the
    campaign already exists, so two imports into one campaign take turns and count
    exactly; the workspace dedupe also locks the workspace row, for the same
    reason across campaigns.
    """
    addresses = [p.email.lower() for p in prospects]
    present = {r["e"] for r in await conn.fetch(
        "SELECT lower(email) AS e FROM prospects WHERE campaign_id = $1 AND lower(email) = any($2::text[])",
        campaign_id, addresses,
    )}
    elsewhere: set[str] = set()
    if dedupe_workspace:
        await conn.execute("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE", workspace_id)
        elsewhere = {r["e"] for r in await conn.fetch(
            "SELECT DISTINCT lower(p.email) AS e FROM prospects p JOIN campaigns c ON c.id = p.campaign_id"
            " WHERE lower(p.email) = any($3::text[]) AND p.status = 'active' AND c.workspace_id = $1"
            " AND c.id <> $2 AND c.state IN ('running', 'paused')",
            workspace_id, campaign_id, addresses,
        )} - present
    fresh = [p for p in prospects if p.email.lower() not in present | elsewhere]
    # executemany pipelines the rows (100k in well under a second). Binary COPY
    # is not an option: the pool's jsonb codec is text-only.
    # Round-robin in prospect order spreads the list evenly over the mailboxes,
    # continuing where the campaign's earlier prospects left off; every
    # follow-up then leaves from the prospect's mailbox.
    start = await conn.fetchval("SELECT count(*) FROM prospects WHERE campaign_id = $1", campaign_id)
    # A prospect whose zone was not found takes the campaign's default_timezone, or
    # (NULL) its mailbox's, read where its window is needed (store/open_work.py).
    campaign = await conn.fetchrow("SELECT schedule, default_timezone FROM campaigns WHERE id = $1",
                                   campaign_id)
    assert campaign is not None  # created or locked by the caller
    assigned = [(p, mailbox_ids[(start + i) % len(mailbox_ids)]) for i, p in enumerate(fresh)]
    places = [(pl.timezone or campaign["default_timezone"], pl, m)
              for pl, m in ((_located(p), m) for p, m in assigned)]
    # With a recipient window, step 1 is due at each prospect's first opening from now,
    # so the index of open work is in sending order from the start (decision 0051).
    dues = await first_openings(conn, campaign["schedule"], [(z, pl.country, pl.subdivision, m)
                                                             for z, pl, m in places])
    await conn.executemany(
        "INSERT INTO prospects (campaign_id, email, fields, mailbox_id, timezone, timezone_source,"
        " country, subdivision, next_due_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, '-infinity'::timestamptz))",
        [
            (campaign_id, p.email, p.fields, m, zone, place.source, place.country, place.subdivision, due)
            for (p, m), (zone, place, _), due in zip(assigned, places, dues, strict=True)
        ],
    )
    return ProspectsInserted(len(fresh), len(prospects) - len(fresh) - len(elsewhere), len(elsewhere),
                             [p.email.lower() for p in fresh])

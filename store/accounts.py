"""What sending needs to know about a mailbox: its SMTP account, window, cap and pause flag.

The one place that reads mailbox credentials (DESIGN.md section 6): a password
is taken from the row, or from the worker's environment variable the row names,
and never leaves the activity that asked for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, time

import asyncpg

from limits.policy import WarmUp
from limits.window import SendingWindow
from store import StoreError, UnknownRecord


@dataclass(frozen=True)
class MailboxRecord:
    id: str
    email: str
    provider: str
    smtp_host: str
    smtp_port: int
    security: str
    username: str | None
    daily_limit: int
    window: SendingWindow
    paused: bool
    pause_reason: str
    warmup: WarmUp | None = None

    def cap_on(self, now: datetime) -> int:
        """Today's cap: the daily limit, or less while the mailbox warms up."""
        return self.warmup.cap(self.daily_limit, now) if self.warmup else self.daily_limit

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]


_SELECT = """
SELECT id, email, provider, smtp_host, smtp_port, security, username, daily_limit,
       timezone, window_start, window_end, window_days, paused, coalesce(pause_reason, '') AS reason,
       warmup_start, warmup_increment, warmup_began
FROM mailboxes WHERE id = $1
"""


def _window(row: asyncpg.Record) -> SendingWindow:
    # time.max stands for an end of "24:00"; PostgreSQL stores it as 24:00:00.
    end: time = row["window_end"]
    return SendingWindow(row["window_start"], end, frozenset(row["window_days"]), row["timezone"])


async def mailbox_record(conn: asyncpg.Pool | asyncpg.Connection, mailbox_id: str) -> MailboxRecord:
    row = await conn.fetchrow(_SELECT, mailbox_id)
    if row is None:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    return MailboxRecord(
        id=row["id"], email=row["email"], provider=row["provider"], smtp_host=row["smtp_host"],
        smtp_port=row["smtp_port"], security=row["security"], username=row["username"],
        daily_limit=row["daily_limit"], window=_window(row), paused=row["paused"],
        pause_reason=row["reason"],
        warmup=WarmUp(row["warmup_start"], row["warmup_increment"], row["warmup_began"])
        if row["warmup_start"] else None,
    )


async def mailbox_password(conn: asyncpg.Pool | asyncpg.Connection, mailbox_id: str) -> str | None:
    row = await conn.fetchrow("SELECT password, password_env FROM mailboxes WHERE id = $1", mailbox_id)
    if row is None:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    if row["password_env"]:
        value = os.environ.get(row["password_env"])
        if value is None:
            raise StoreError(
                f"mailbox {mailbox_id!r}: environment variable {row['password_env']} is not set"
            )
        return value
    password: str | None = row["password"]
    return password


async def set_paused(
    pool: asyncpg.Pool, mailbox_id: str, paused: bool, reason: str, paused_by: str | None = None
) -> None:
    """``paused_by``: 'operator' (the default) or 'health_check'; cleared on resume."""
    status = await pool.execute(
        "UPDATE mailboxes SET paused = $2, pause_reason = $3,"
        " paused_by = CASE WHEN $2 THEN coalesce($4, 'operator') END,"
        " paused_at = CASE WHEN $2 THEN now() END, updated_at = now() WHERE id = $1",
        mailbox_id, paused, reason or None, paused_by,
    )
    if status.endswith(" 0"):
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")


async def list_mailboxes(pool: asyncpg.Pool, mailbox_id: str | None = None) -> list[dict[str, object]]:
    """Mailboxes with their pause state and today's UTC send count, for status output."""
    rows = await pool.fetch(
        """
        SELECT m.id, m.email, m.provider, m.smtp_host, m.daily_limit, m.timezone, m.paused,
               m.pause_reason,
               (SELECT count(*) FROM sends s WHERE s.mailbox_id = m.id
                  AND s.first_attempt_at >= date_trunc('day', now() AT TIME ZONE m.timezone)
                                             AT TIME ZONE m.timezone) AS sent_today
        FROM mailboxes m WHERE $1::text IS NULL OR m.id = $1 ORDER BY m.id
        """,
        mailbox_id,
    )
    if mailbox_id is not None and not rows:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    return [dict(r) for r in rows]


# -- health checks and OAuth2 (docs/decisions/0012) ---------------------------


async def mailboxes_to_check(pool: asyncpg.Pool) -> list[tuple[str, str | None]]:
    """(id, paused_by) of every mailbox a health check looks at: the active ones and
    those a health check paused. An operator's pause is left alone."""
    rows = await pool.fetch(
        "SELECT id, paused_by FROM mailboxes WHERE NOT paused OR paused_by = 'health_check' ORDER BY id"
    )
    return [(r["id"], r["paused_by"]) for r in rows]


async def pause_source(pool: asyncpg.Pool, mailbox_id: str) -> str | None:
    """Who paused the mailbox ('operator', 'health_check'), or None if it is not paused."""
    paused_by: str | None = await pool.fetchval(
        "SELECT paused_by FROM mailboxes WHERE id = $1 AND paused", mailbox_id
    )
    return paused_by


@dataclass(frozen=True)
class OAuthGrant:
    provider: str  # google | microsoft
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str = field(default="", repr=False)
    access_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None


async def oauth_grant(pool: asyncpg.Pool, mailbox_id: str) -> OAuthGrant | None:
    """The mailbox's OAuth2 grant, or None if it authenticates with a password."""
    row = await pool.fetchrow(
        "SELECT auth_kind, oauth_provider, oauth_client_id, oauth_client_secret,"
        " oauth_refresh_token, oauth_access_token, oauth_expires_at FROM mailboxes WHERE id = $1",
        mailbox_id,
    )
    if row is None:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    if row["auth_kind"] != "oauth2":
        return None
    return OAuthGrant(
        provider=row["oauth_provider"], client_id=row["oauth_client_id"],
        client_secret=row["oauth_client_secret"], refresh_token=row["oauth_refresh_token"],
        access_token=row["oauth_access_token"], expires_at=row["oauth_expires_at"],
    )


async def store_access_token(
    pool: asyncpg.Pool, mailbox_id: str, token: str, expires_at: datetime, refresh_token: str | None
) -> None:
    """Keep a refreshed access token (and the new refresh token, if the provider rotated it)."""
    await pool.execute(
        "UPDATE mailboxes SET oauth_access_token = $2, oauth_expires_at = $3,"
        " oauth_refresh_token = coalesce($4, oauth_refresh_token), updated_at = now() WHERE id = $1",
        mailbox_id, token, expires_at, refresh_token,
    )

"""What sending needs to know about a mailbox: its SMTP account, window, cap and pause flag.

The one place that reads mailbox credentials (DESIGN.md section 6): a password
is taken from the row, or from the worker's environment variable the row names,
and never leaves the activity that asked for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import time

import asyncpg

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

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]


_SELECT = """
SELECT id, email, provider, smtp_host, smtp_port, security, username, daily_limit,
       timezone, window_start, window_end, window_days, paused, coalesce(pause_reason, '') AS reason
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


async def set_paused(pool: asyncpg.Pool, mailbox_id: str, paused: bool, reason: str) -> None:
    status = await pool.execute(
        "UPDATE mailboxes SET paused = $2, pause_reason = $3,"
        " paused_at = CASE WHEN $2 THEN now() END, updated_at = now() WHERE id = $1",
        mailbox_id, paused, reason or None,
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

"""What sending needs to know about a mailbox: its SMTP account, window, cap and pause flag.

The one place that reads mailbox credentials (docs/decisions/0015-secret-keys-and-credentials.md): a password
is taken from the row, or from the worker's environment variable the row names,
and never leaves the activity that asked for it. Stored credentials are
encrypted (store/secret_values.py, docs/decisions/0015): reading one needs the
key ring, and ``rotate_credentials`` moves them all to its newest key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, time

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from config.secrets import KeyRing
from limits.policy import WarmUp
from limits.window import SendingWindow
from store import StoreError, UnknownRecord
from store.secret_values import CREDENTIAL_COLUMNS, PREFIX, key_id_of, open_, seal


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


_RECORD_COLUMNS = (
    "id, email, provider, smtp_host, smtp_port, security, username, daily_limit,"
    " timezone, window_start, window_end, window_days, paused, pause_reason,"
    " warmup_start, warmup_increment, warmup_began"
)
_SELECT = f"SELECT {_RECORD_COLUMNS} FROM mailboxes WHERE id = $1"


def _window(row: asyncpg.Record) -> SendingWindow:
    # time.max stands for an end of "24:00"; PostgreSQL stores it as 24:00:00.
    end: time = row["window_end"]
    return SendingWindow(row["window_start"], end, frozenset(row["window_days"]), row["timezone"])


async def mailbox_record(conn: asyncpg.Pool | asyncpg.Connection, mailbox_id: str) -> MailboxRecord:
    row = await conn.fetchrow(_SELECT, mailbox_id)
    if row is None:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    return _record(row)


def _record(row: asyncpg.Record) -> MailboxRecord:
    return MailboxRecord(
        id=row["id"], email=row["email"], provider=row["provider"], smtp_host=row["smtp_host"],
        smtp_port=row["smtp_port"], security=row["security"], username=row["username"],
        daily_limit=row["daily_limit"], window=_window(row), paused=row["paused"],
        pause_reason=row["pause_reason"] or "",
        warmup=WarmUp(row["warmup_start"], row["warmup_increment"], row["warmup_began"])
        if row["warmup_start"] else None,
    )


def _open(ring: KeyRing, stored: str | None, column: str, mailbox_id: str) -> str | None:
    if stored is None:
        return None
    return open_(ring, stored, table_column=f"mailboxes.{column}", mailbox_id=mailbox_id)


def _seal(ring: KeyRing, value: str | None, column: str, mailbox_id: str) -> str | None:
    if value is None:
        return None
    return seal(ring, value, table_column=f"mailboxes.{column}", mailbox_id=mailbox_id)


async def mailbox_password(
    conn: asyncpg.Pool | asyncpg.Connection, mailbox_id: str, *, ring: KeyRing
) -> str | None:
    row = await conn.fetchrow("SELECT password, password_env FROM mailboxes WHERE id = $1", mailbox_id)
    if row is None:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    return _password(row, mailbox_id, ring)


def _password(row: asyncpg.Record, mailbox_id: str, ring: KeyRing) -> str | None:
    if row["password_env"]:
        value = os.environ.get(row["password_env"])
        if value is None:
            raise StoreError(
                f"mailbox {mailbox_id!r}: environment variable {row['password_env']} is not set"
            )
        return value
    return _open(ring, row["password"], "password", mailbox_id)


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
               m.pause_reason, m.imap_host IS NOT NULL AS reads_replies,
               (SELECT min(c.read_at) FROM inbox_cursors c WHERE c.mailbox_id = m.id) AS inbox_read_at,
               (SELECT string_agg(c.folder || ': ' || c.error, '; ') FROM inbox_cursors c
                  WHERE c.mailbox_id = m.id AND c.error IS NOT NULL) AS inbox_error,
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


async def oauth_grant(pool: asyncpg.Pool, mailbox_id: str, *, ring: KeyRing) -> OAuthGrant | None:
    """The mailbox's OAuth2 grant, or None if it authenticates with a password."""
    row = await pool.fetchrow(
        "SELECT auth_kind, oauth_provider, oauth_client_id, oauth_client_secret,"
        " oauth_refresh_token, oauth_access_token, oauth_expires_at FROM mailboxes WHERE id = $1",
        mailbox_id,
    )
    if row is None:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    return _grant(row, mailbox_id, ring)


def _grant(row: asyncpg.Record, mailbox_id: str, ring: KeyRing) -> OAuthGrant | None:
    if row["auth_kind"] != "oauth2":
        return None
    return OAuthGrant(
        provider=row["oauth_provider"], client_id=row["oauth_client_id"],
        client_secret=_open(ring, row["oauth_client_secret"], "oauth_client_secret", mailbox_id),
        refresh_token=_open(ring, row["oauth_refresh_token"], "oauth_refresh_token", mailbox_id) or "",
        access_token=_open(ring, row["oauth_access_token"], "oauth_access_token", mailbox_id),
        expires_at=row["oauth_expires_at"],
    )


async def store_access_token(
    pool: asyncpg.Pool, mailbox_id: str, token: str, expires_at: datetime, refresh_token: str | None,
    *, ring: KeyRing,
) -> None:
    """Keep a refreshed access token (and the new refresh token, if the provider rotated it)."""
    await pool.execute(
        "UPDATE mailboxes SET oauth_access_token = $2, oauth_expires_at = $3,"
        " oauth_refresh_token = coalesce($4, oauth_refresh_token), updated_at = now() WHERE id = $1",
        mailbox_id, _seal(ring, token, "oauth_access_token", mailbox_id), expires_at,
        _seal(ring, refresh_token, "oauth_refresh_token", mailbox_id),
    )


async def refresh_tokens(
    conn: asyncpg.Connection | PoolConnectionProxy, mailbox_ids: list[str],
    *, ring: KeyRing,
) -> dict[str, str | None]:
    """The stored refresh token of each mailbox that has one (None where it cannot be
    read), its row locked until the transaction ends: an import compares them."""
    rows = await conn.fetch(
        "SELECT id, oauth_refresh_token FROM mailboxes WHERE id = any($1::text[])"
        " AND oauth_refresh_token IS NOT NULL FOR UPDATE",
        mailbox_ids,
    )
    found: dict[str, str | None] = {}
    for row in rows:
        try:
            found[row["id"]] = _open(ring, row["oauth_refresh_token"], "oauth_refresh_token", row["id"])
        except StoreError:
            found[row["id"]] = None  # unreadable: the import replaces it anyway
    return found


# -- key rotation (docs/decisions/0015) ----------------------------------------


@dataclass
class Rotation:
    """What ``rotate_credentials`` did, in stored values (not mailboxes)."""

    key_id: str
    resealed: int = 0  # moved from an older key to the newest
    sealed_clear: int = 0  # stored in the clear before encryption existed, now sealed
    current: int = 0  # already under the newest key: left as they were


_COLUMNS_SQL = ", ".join(CREDENTIAL_COLUMNS)
_HAS_CREDENTIAL = " OR ".join(f"{c} IS NOT NULL" for c in CREDENTIAL_COLUMNS)


async def rotate_credentials(pool: asyncpg.Pool, ring: KeyRing, batch_size: int = 500) -> Rotation:
    """Re-encrypt every stored credential under the ring's newest key.

    Batches of mailboxes, each in its own transaction with its rows locked, so a
    token refreshed meanwhile is never overwritten with an older one. Running it
    again changes nothing. A value no key of the ring opens stops it with a
    CredentialError naming the mailbox, column and key id; the batches before
    it are done, and a rerun (with that key back in the ring) carries on.
    """
    done = Rotation(ring.current_id)
    last = ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, {_COLUMNS_SQL} FROM mailboxes WHERE id > $1 AND ({_HAS_CREDENTIAL})"
                " ORDER BY id LIMIT $2 FOR UPDATE",
                last, batch_size,
            )
            for row in rows:
                values = [_rotated(ring, row, column, done) for column in CREDENTIAL_COLUMNS]
                if values != [row[c] for c in CREDENTIAL_COLUMNS]:
                    await conn.execute(
                        "UPDATE mailboxes SET "
                        + ", ".join(f"{c} = ${n}" for n, c in enumerate(CREDENTIAL_COLUMNS, 2))
                        + " WHERE id = $1",
                        row["id"], *values,
                    )
        if len(rows) < batch_size:
            return done
        last = rows[-1]["id"]


def _rotated(ring: KeyRing, row: asyncpg.Record, column: str, done: Rotation) -> str | None:
    stored: str | None = row[column]
    if stored is None:
        return None
    key_id = key_id_of(stored)
    if key_id == ring.current_id:
        done.current += 1
        return stored
    if key_id is None:
        done.sealed_clear += 1
        value = stored
    else:
        done.resealed += 1
        value = _open(ring, stored, column, row["id"]) or ""
    return _seal(ring, value, column, row["id"])


async def credential_key_ids(pool: asyncpg.Pool) -> dict[str | None, int]:
    """How many stored credentials each key id holds (None: in the clear)."""
    rows = await pool.fetch(
        f"""
        SELECT CASE WHEN left(v, {len(PREFIX)}) = '{PREFIX}' THEN split_part(v, ':', 3) END AS key_id,
               count(*) AS n
        FROM mailboxes, LATERAL (VALUES {", ".join(f"({c})" for c in CREDENTIAL_COLUMNS)}) AS c(v)
        WHERE v IS NOT NULL GROUP BY 1 ORDER BY 1 NULLS FIRST
        """
    )
    return {r["key_id"]: r["n"] for r in rows}


# -- one read for a send (docs/decisions/0038) ---------------------------------

@dataclass(frozen=True)
class SendingMailbox:
    """A mailbox as a send needs it, read in the send's one query: its record, and its
    credentials still sealed (opened only once the send gets that far)."""

    record: MailboxRecord
    _row: asyncpg.Record = field(repr=False)

    def grant(self, ring: KeyRing) -> OAuthGrant | None:
        return _grant(self._row, self.record.id, ring)

    def password(self, ring: KeyRing) -> str | None:
        return _password(self._row, self.record.id, ring)


def sending_mailbox(row: asyncpg.Record) -> SendingMailbox:
    """From a whole ``mailboxes`` row (``SELECT m ... FROM mailboxes m``, a composite)."""
    return SendingMailbox(_record(row), row)

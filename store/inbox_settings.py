"""A mailbox's IMAP settings: written with the mailbox, read by the inbox reader.

The IMAP password is sealed like the SMTP credentials (store/secret_values.py);
left out, the SMTP username and password (or password_env) are used. Only the
inbox reader opens it (``imap_account``), and only for the pass that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from config.secrets import KeyRing
from specs.mailboxes import MailboxSpec
from store import StoreError, UnknownRecord
from store.secret_values import open_, seal

Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy

_UPDATE = """
UPDATE mailboxes SET imap_host = $2, imap_port = $3, imap_security = $4, imap_username = $5,
                     imap_password = $6, imap_password_env = $7, imap_folders = $8,
                     inbox_authserv_id = $9
WHERE id = $1
"""


async def store_imap_settings(
    conn: asyncpg.Connection | PoolConnectionProxy, specs: Sequence[MailboxSpec], ring: KeyRing | None
) -> None:
    """Write each spec's IMAP settings (NULLs when it has none) on its imported row."""
    rows = []
    for spec in specs:
        password = None
        if spec.imap_password is not None:
            assert ring is not None  # import_mailboxes got one for any credential
            password = seal(ring, spec.imap_password, table_column="mailboxes.imap_password",
                            mailbox_id=spec.id)
        has = spec.imap_host is not None
        rows.append((
            spec.id, spec.imap_host, spec.imap_port if has else None,
            spec.imap_security if has else None, spec.imap_username, password,
            spec.imap_password_env, list(spec.imap_folders), spec.imap_authserv_id if has else None,
        ))
    await conn.executemany(_UPDATE, rows)


@dataclass(frozen=True)
class ImapAccount:
    mailbox_id: str
    email: str
    host: str
    port: int
    security: str
    username: str
    password: str = field(repr=False)  # for XOAUTH2, the access token (filled per pass)
    folders: tuple[str, ...]
    oauth: bool = False  # log in with XOAUTH2 and the mailbox's OAuth2 access token
    # Whose Authentication-Results vouch for a sender (docs/decisions/0050); None: nobody's.
    authserv_id: str | None = None


async def imap_mailboxes(conn: Conn, mailbox_id: str | None = None) -> list[str]:
    """Ids of the mailboxes whose inbox is read (all, or the one named)."""
    rows = await conn.fetch(
        "SELECT id, imap_host FROM mailboxes WHERE $1::text IS NULL OR id = $1 ORDER BY id", mailbox_id
    )
    if mailbox_id is not None and not rows:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    if mailbox_id is not None and rows[0]["imap_host"] is None:
        raise StoreError(f"mailbox {mailbox_id!r} has no IMAP settings: its replies are not read")
    return [r["id"] for r in rows if r["imap_host"] is not None]


async def imap_account(conn: Conn, mailbox_id: str, *, ring: KeyRing) -> ImapAccount:
    row = await conn.fetchrow(
        "SELECT email, username, password, password_env, auth_kind, imap_host, imap_port, imap_security,"
        " imap_username, imap_password, imap_password_env, imap_folders, inbox_authserv_id"
        " FROM mailboxes WHERE id = $1",
        mailbox_id,
    )
    if row is None:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    if row["imap_host"] is None:
        raise StoreError(f"mailbox {mailbox_id!r} has no IMAP settings")
    if row["imap_password"] is not None or row["imap_password_env"] is not None:
        column, stored, env = "imap_password", row["imap_password"], row["imap_password_env"]
    else:
        column, stored, env = "password", row["password"], row["password_env"]
    oauth = False
    if column == "password" and row["auth_kind"] == "oauth2":
        oauth, password = True, ""  # XOAUTH2 with the same token as SMTP
    elif env:
        from_env = os.environ.get(env)
        if from_env is None:
            raise StoreError(f"mailbox {mailbox_id!r}: environment variable {env} is not set")
        password = from_env
    elif stored is not None:
        password = open_(ring, stored, table_column=f"mailboxes.{column}", mailbox_id=mailbox_id)
    else:
        raise StoreError(f"mailbox {mailbox_id!r} has no password to log in to IMAP with")
    return ImapAccount(
        mailbox_id=mailbox_id, email=row["email"], host=row["imap_host"], port=row["imap_port"],
        security=row["imap_security"], username=row["imap_username"] or row["username"] or row["email"],
        password=password, folders=tuple(row["imap_folders"]), oauth=oauth,
        authserv_id=row["inbox_authserv_id"],
    )

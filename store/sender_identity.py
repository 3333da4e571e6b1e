"""Who a message says it is from: the mailbox's display name and Reply-To, the campaign's
override of the name, and where and how it offers to unsubscribe (docs/decisions/0031).

Written by the importers in their own transactions, next to (not inside) the rows
they upsert, and read once per send beside the send's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from specs.campaigns import CampaignSpec
from specs.mailboxes import MailboxSpec
from store import UnknownRecord

Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True)
class SenderIdentity:
    from_name: str | None  # the campaign's, else the mailbox's
    reply_to: str | None
    unsubscribe_mailto: str  # the mailbox's unsubscribe_mailto, else the mailbox itself
    footer: bool  # the campaign asks for a visible unsubscribe line in the body


async def store_mailboxes(conn: Conn, specs: Sequence[MailboxSpec]) -> None:
    """In the import's transaction: each mailbox's identity, as its file says (a field
    left out clears it, like every other field of a re-import)."""
    await conn.executemany(
        "UPDATE mailboxes SET from_name = $2, reply_to = $3, unsubscribe_mailto = $4 WHERE id = $1",
        [(s.id, s.from_name, s.reply_to, s.unsubscribe_mailto) for s in specs],
    )


async def store_campaign(conn: Conn, campaign_id: str, spec: CampaignSpec) -> None:
    """In the campaign's creating transaction: its from_name and unsubscribe choice."""
    await conn.execute(
        "UPDATE campaigns SET from_name = $2, unsubscribe = $3 WHERE id = $1",
        campaign_id, spec.from_name, spec.unsubscribe,
    )


async def for_send(pool: asyncpg.Pool, campaign_id: str, mailbox_id: str) -> SenderIdentity:
    row = await pool.fetchrow(
        "SELECT coalesce(c.from_name, m.from_name) AS from_name, m.reply_to,"
        " coalesce(m.unsubscribe_mailto, m.email) AS mailto, c.unsubscribe"
        " FROM campaigns c, mailboxes m WHERE c.id = $1 AND m.id = $2",
        campaign_id, mailbox_id,
    )
    if row is None:
        raise UnknownRecord(f"campaign {campaign_id!r} or mailbox {mailbox_id!r} does not exist")
    return SenderIdentity(row["from_name"], row["reply_to"], row["mailto"],
                          row["unsubscribe"] == "header_and_footer")

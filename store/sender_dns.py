"""`mailboxes check-dns` and the health check: each mailbox's From domain and DKIM
selector, and their DNS records judged (mail/sender_dns.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from mail.sender_dns import SenderReport, TxtLookup, check_sender
from store import UnknownRecord


@dataclass(frozen=True)
class SenderDomain:
    mailbox_id: str
    email: str
    dkim_selector: str | None


async def sender_domains(pool: asyncpg.Pool, mailbox_id: str | None = None) -> list[SenderDomain]:
    rows = await pool.fetch(
        "SELECT id, email, dkim_selector FROM mailboxes WHERE $1::text IS NULL OR id = $1 ORDER BY id",
        mailbox_id,
    )
    if mailbox_id is not None and not rows:
        raise UnknownRecord(f"mailbox {mailbox_id!r} does not exist")
    return [SenderDomain(r["id"], r["email"], r["dkim_selector"]) for r in rows]


async def check_senders(
    pool: asyncpg.Pool, lookup: TxtLookup, mailbox_id: str | None = None
) -> list[SenderReport]:
    """Every mailbox's report (or one's), looked up concurrently."""
    domains = await sender_domains(pool, mailbox_id)
    return list(await asyncio.gather(
        *(check_sender(lookup, d.mailbox_id, d.email, d.dkim_selector) for d in domains)))

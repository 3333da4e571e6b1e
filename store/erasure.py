"""Erasure (``outreach prospects forget``, docs/decisions/0032): a person's address
and data leave every table, and only a keyed hash of the address stays on the
do-not-contact list, so they are never written to, nor stored, again.

In one transaction, in the workspace given or in every workspace:

- their prospect rows keep their ids (the ledger and any running step refer to
  them) but lose the address (``erased-<id>@erased.invalid``), every field, and
  leave ``active`` (``suppressed``);
- their open sends that have not begun DATA end ``skipped``; every reply text of
  their sends and attempts is cleared;
- reply and reason texts elsewhere that quote the address (another send's bounce,
  a pause reason, a list entry's reason) are cleared;
- their plain entries on the list go, and one erasure entry (the hash under the
  ring's newest key) is added: the workspace's, or the global list's.

Tables that a later change adds and that hold addresses must be added here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from config.secrets import KeyRing
from specs.suppressions import is_domain
from store.address_hash import current_hash, is_hashed
from store.suppressions import ERASURE_LOCK, Executor, Scope, SuppressionError, entry_of

ERASED_DOMAIN = "erased.invalid"  # RFC 2606: never a real address


@dataclass(frozen=True)
class Erasure:
    scope: str  # "workspace:W" or "global"
    prospects: int  # rows stripped of the address and data
    sends_ended: int  # open sends that will not go
    texts_cleared: int  # reply and reason texts cleared
    entries_removed: int  # plain list entries of the address
    hash_entry: str  # the erasure entry kept

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _spellings(entry: str) -> list[str]:
    """The address as it may be quoted in a server's reply: as stored, and with its
    domain in ASCII (punycode)."""
    local, domain = entry.rsplit("@", 1)
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_domain = domain
    return sorted({entry, f"{local}@{ascii_domain}"})


# $1 the workspace (NULL: every workspace); $2 the address's spellings.
_QUOTES = "EXISTS (SELECT 1 FROM unnest($2::text[]) a WHERE strpos(lower({col}), a) > 0)"
_IN_SCOPE = "(SELECT id FROM campaigns WHERE $1::text IS NULL OR workspace_id = $1)"


async def forget(pool: asyncpg.Pool, ring: KeyRing, address: str, workspace: str | None) -> Erasure:
    """Erase ``address`` in ``workspace``, or everywhere when None."""
    entry = entry_of(address)
    if is_domain(entry) or is_hashed(entry):
        raise SuppressionError(f"{address!r} is not an address: erasure takes one person's address")
    scope = Scope.workspace(workspace) if workspace is not None else Scope()
    spellings = _spellings(entry)
    kept = current_hash(ring, entry)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ERASURE_LOCK)
        if workspace is not None:
            await conn.execute("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT DO NOTHING", workspace)
        ids = [r["id"] for r in await conn.fetch(
            f"SELECT id FROM prospects WHERE lower(email) = ANY($2::text[])"
            f" AND campaign_id IN {_IN_SCOPE}", workspace, spellings)]
        await conn.execute(
            "UPDATE prospects SET email = 'erased-' || id || $2, fields = '{}', stop_reason = NULL,"
            " status = CASE WHEN status = 'active' THEN 'suppressed' ELSE status END"
            " WHERE id = ANY($1::bigint[])", ids, "@" + ERASED_DOMAIN)
        ended = await conn.execute(
            "UPDATE sends SET state = 'skipped', last_reply = NULL, updated_at = now(), finished_at = now()"
            " WHERE prospect_id = ANY($1::bigint[]) AND state IN ('queued', 'soft_bounced')"
            " AND data_started_at IS NULL", ids)
        cleared = await _clear_texts(conn, ids, workspace, spellings)
        # The inbox reader's records: sent Message-IDs with the recipient's address, and
        # inbound messages (their Message-IDs name the person's domain).
        await conn.execute("DELETE FROM sent_messages WHERE prospect_id = ANY($1::bigint[])", ids)
        await conn.execute("DELETE FROM inbound_messages WHERE prospect_id = ANY($1::bigint[])", ids)
        # What their replies said (issue 25): postponements, and referrals they made or
        # that name the address itself.
        await conn.execute("DELETE FROM postponements WHERE prospect_id = ANY($1::bigint[])", ids)
        await conn.execute(
            "DELETE FROM referrals WHERE prospect_id = ANY($1::bigint[])"
            " OR (lower(referred_email) = ANY($2::text[])"
            "     AND ($3::text IS NULL OR workspace_id = $3))", ids, spellings, workspace)
        removed = await conn.execute(
            "DELETE FROM suppressions WHERE entry = $1 AND ($2::text IS NULL OR workspace_id = $2)",
            entry, workspace)
        await conn.execute(
            "INSERT INTO suppressions (workspace_id, entry, source) VALUES ($1, $2, 'erasure')"
            " ON CONFLICT (workspace_id, entry) DO NOTHING", workspace, kept)
    # Column statistics sample values (pg_stats): refresh them so none holds the address.
    await pool.execute("ANALYZE prospects, sends, send_attempts, suppressions, sent_messages")
    return Erasure(scope=str(scope), prospects=len(ids), sends_ended=_count(ended),
                   texts_cleared=cleared, entries_removed=_count(removed), hash_entry=kept)


async def _clear_texts(
    conn: Executor, ids: list[int], workspace: str | None, spellings: list[str]
) -> int:
    """Reply and reason texts: every one of the person's sends, and any other in scope
    that quotes the address (a server's reply often does)."""
    in_ledger = f"(prospect_id = ANY($3::bigint[]) OR (campaign_id IN {_IN_SCOPE} AND {{quotes}}))"
    total = 0
    for table, col in (("sends", "last_reply"), ("send_attempts", "reply")):
        where = in_ledger.format(quotes=_QUOTES.format(col=col))
        total += _count(await conn.execute(
            f"UPDATE {table} SET {col} = NULL WHERE {col} IS NOT NULL AND {where}",
            workspace, spellings, ids))
    total += _count(await conn.execute(
        "UPDATE suppressions SET reason = NULL WHERE reason IS NOT NULL"
        f" AND ($1::text IS NULL OR workspace_id = $1) AND {_QUOTES.format(col='reason')}",
        workspace, spellings))
    # Mailboxes belong to no workspace: a pause reason quoting the address goes anyway.
    total += _count(await conn.execute(
        "UPDATE mailboxes SET pause_reason = 'erased'"
        f" WHERE pause_reason IS NOT NULL AND {_QUOTES.format(col='pause_reason').replace('$2', '$1')}",
        spellings))
    return total


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])

"""The do-not-contact list: addresses and whole domains no campaign may write to, per
workspace and globally (docs/decisions/0026).

Entries are canonical (specs/suppressions.py): ``local@domain`` or ``@domain``,
normalized and lower-cased like ``lower(prospects.email)``, so that every check
is an equality on the indexed ``entry`` column. The checks:

- ``mark_suppressed_prospects``: at import, a new campaign's listed prospects;
- ``IN_CAMPAIGN_SCOPE``: in the step scheduler's claim (store/open_work.py): a listed
  address is never claimed, however late its entry was added; the claim marks the
  listed prospects it meets 'suppressed' and ends their open sends 'skipped';
- ``UNLISTED``: the same as an anti-join, in the check right before DATA;
- ``record_hard_bounce``: a hard bounce that says the address is gone lists it;
- ``is_suppressed``: one address, for the check right before DATA.

Erasure entries (``hmac:<key id>:<hex>``, docs/decisions/0032) hold an erased
address's keyed hash, never the address: import and ``is_suppressed`` hash the
addresses they check under every key of the ring. The claim and the moment before
DATA read only active prospects, and erasure left none with the address, while an
import made after it marks the address's prospects suppressed (ERASURE_LOCK
orders the two); the check before DATA matches the hashes as well (NOT_ERASED).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from config.secrets import KeyRing, key_ring
from config.settings import get_settings
from specs.csv_cells import neutral_row
from specs.scalars import check_slug
from specs.suppressions import (
    EXPORT_COLUMNS,
    SuppressionRow,
    canonical_entry,
    checked_reason,
    is_domain,
)
from store import StoreError
from store.address_hash import every_hash, hasher, is_hashed, key_id_of

Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy

SOURCES = ("manual", "unsubscribe", "hard_bounce", "reply", "complaint", "import", "erasure")
# A transaction-level advisory lock: an erasure holds it exclusively, an import's
# marking shared, so an import racing an erasure either sees its entry or has its
# prospects found by it (docs/decisions/0032).
ERASURE_LOCK = 0x6F7574_0032


class SuppressionError(StoreError, ValueError):
    """An entry that is not an address or ``@domain``, a bad scope, or an entry not listed."""


@dataclass(frozen=True)
class Scope:
    """One workspace's list, or the global one (``workspace_id`` None) that every
    workspace obeys."""

    workspace_id: str | None = None

    @classmethod
    def workspace(cls, workspace_id: str) -> Scope:
        try:
            return cls(check_slug(workspace_id))
        except ValueError as exc:
            raise SuppressionError(f"workspace {exc}") from exc

    def __str__(self) -> str:
        return "global" if self.workspace_id is None else f"workspace:{self.workspace_id}"


GLOBAL = Scope()


@dataclass(frozen=True)
class Suppression:
    entry: str  # "local@domain" or "@domain"
    scope: Scope
    source: str
    reason: str | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """What ``outreach suppress list --json`` prints for it."""
        kind, value = ("domain", self.entry[1:]) if is_domain(self.entry) else ("address", self.entry)
        if is_hashed(self.entry):  # an erased address: only its keyed hash is kept
            kind = "hash"
        return {kind: value, "scope": str(self.scope), "workspace": self.scope.workspace_id,
                "source": self.source, "reason": self.reason,
                "created_at": self.created_at.isoformat()}


def write_csv(out: TextIO, entries: list[Suppression]) -> None:
    """Entries as CSV, in the form ``read_suppressions_csv`` reads back. A reason may be
    a remote server's reply and an address may look like a formula: no cell starts one
    (specs/csv_cells.py)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for s in entries:
        writer.writerow(neutral_row(
            [s.entry, s.reason or "", s.source, str(s.scope), s.created_at.isoformat()]))


def entry_of(text: str) -> str:
    """The canonical entry of an address or ``@domain``, or SuppressionError."""
    try:
        return canonical_entry(text)
    except ValueError as exc:
        raise SuppressionError(f"{text.strip()!r}: {exc}") from exc


_CAMPAIGN_WORKSPACE = "(SELECT c.workspace_id FROM campaigns c WHERE c.id = $1)"


def _scope_of(workspace_sql: str) -> str:
    return f"(s.workspace_id = {workspace_sql} OR s.workspace_id IS NULL)"


def _listed_ids(rows: str, id_col: str, email_col: str, workspace_sql: str) -> str:
    """SQL: the ids of ``rows`` whose address or domain is listed in the workspace or
    globally. Two equality joins, not one lookup per row: the planner hashes the
    scope's entries against a large set, or probes ``suppressions_entry`` for a small one."""
    scope = _scope_of(workspace_sql)
    return (
        f"SELECT r.{id_col} FROM {rows} r JOIN suppressions s ON s.entry = lower(r.{email_col})"
        f" WHERE {scope} UNION SELECT r.{id_col} FROM {rows} r JOIN suppressions s"
        f" ON s.entry = '@' || split_part(lower(r.{email_col}), '@', 2) WHERE {scope}"
    )


# In the claim (store/open_work.py), alias ``s``, $1 the campaign: an entry in its scope.
IN_CAMPAIGN_SCOPE = _scope_of(_CAMPAIGN_WORKSPACE)

# Appended to a query over prospects (alias ``p``, $1 the campaign; the check right
# before DATA, store/ledger.py): an anti-join on the address and on its domain, each
# an equality looked up in ``suppressions_entry``.
UNLISTED = f"""  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.entry = lower(p.email)
                  AND {_scope_of(_CAMPAIGN_WORKSPACE)})
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.entry = '@' || split_part(lower(p.email), '@', 2)
                  AND {_scope_of(_CAMPAIGN_WORKSPACE)})
"""

# Beside UNLISTED in the check right before DATA: $4 holds the prospect's address
# hashed under every key of the ring (``address_hash.every_hash``), so an erasure
# entry stops the send too, whatever path the prospect came by.
NOT_ERASED = f"""  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.entry = ANY($4::text[])
                  AND {_scope_of(_CAMPAIGN_WORKSPACE)})
"""

async def is_suppressed(
    conn: Executor, workspace_id: str, address: str, ring: KeyRing | None = None
) -> bool:
    """Whether ``address`` (or its domain) is listed in the workspace or globally, or
    was erased there (its hash under any key of ``ring``; by default the ring of
    OUTREACH_SECRET_KEYS)."""
    entry = entry_of(address)
    if is_domain(entry) or is_hashed(entry):
        raise SuppressionError(f"{address!r} is not an address")
    ring = ring or key_ring(get_settings().secret_keys)
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE entry = ANY($2::text[])"
        " AND (workspace_id = $1 OR workspace_id IS NULL))",
        workspace_id, [entry, "@" + entry.rsplit("@", 1)[1], *every_hash(ring, entry)],
    )
    return bool(found)


async def add(
    pool: asyncpg.Pool, scope: Scope, text: str, *, source: str = "manual", reason: str | None = None
) -> tuple[Suppression, bool]:
    """List an address or ``@domain``; return the entry and whether it is new (an entry
    already listed in the scope keeps its source and reason)."""
    entry = entry_of(text)
    if source not in SOURCES:
        raise SuppressionError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    try:
        reason = checked_reason(reason or "")
    except ValueError as exc:
        raise SuppressionError(f"reason {exc}") from exc
    in_scope, scope_args = _in_scope(scope, 2)
    async with pool.acquire() as conn, conn.transaction():
        await _ensure_workspace(conn, scope)
        row = await conn.fetchrow(
            "INSERT INTO suppressions (workspace_id, entry, source, reason) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (workspace_id, entry) DO NOTHING RETURNING *",
            scope.workspace_id, entry, source, reason,
        )
        new = row is not None
        if row is None:
            row = await conn.fetchrow(
                f"SELECT * FROM suppressions WHERE entry = $1 AND {in_scope}", entry, *scope_args
            )
    assert row is not None  # inserted, or there already
    return _suppression(row), new


async def remove(pool: asyncpg.Pool, scope: Scope, text: str) -> Suppression:
    """Take an entry off a scope's list; SuppressionError if it is not on it."""
    entry = entry_of(text)
    in_scope, scope_args = _in_scope(scope, 2)
    row = await pool.fetchrow(
        f"DELETE FROM suppressions WHERE entry = $1 AND {in_scope} RETURNING *", entry, *scope_args
    )
    if row is None:
        raise SuppressionError(f"{entry} is not on the {scope} list")
    return _suppression(row)


async def listed(pool: asyncpg.Pool, scope: Scope | None = None) -> list[Suppression]:
    """A scope's entries (every scope's when None): global first, then by workspace, entry."""
    if scope is None:
        rows = await pool.fetch(
            "SELECT * FROM suppressions ORDER BY workspace_id NULLS FIRST, entry"
        )
    else:
        in_scope, scope_args = _in_scope(scope, 1)
        rows = await pool.fetch(f"SELECT * FROM suppressions WHERE {in_scope} ORDER BY entry", *scope_args)
    return [_suppression(r) for r in rows]


async def add_many(
    pool: asyncpg.Pool, scope: Scope, rows: list[SuppressionRow], *, source: str = "import"
) -> int:
    """List every row in one transaction; return how many were not listed yet."""
    async with pool.acquire() as conn, conn.transaction():
        await _ensure_workspace(conn, scope)
        status = await conn.execute(
            "INSERT INTO suppressions (workspace_id, entry, source, reason)"
            " SELECT $1, e.entry, $2, e.reason FROM unnest($3::text[], $4::text[]) AS e (entry, reason)"
            " ON CONFLICT (workspace_id, entry) DO NOTHING",
            scope.workspace_id, source, [r.entry for r in rows], [r.reason for r in rows],
        )
    return int(status.rsplit(" ", 1)[1])


async def mark_suppressed_prospects(
    conn: Executor, campaign_id: str, workspace_id: str, ring: KeyRing | None = None
) -> int:
    """At import: a campaign's active prospects that are listed, or erased (by hash,
    under ``ring``, by default OUTREACH_SECRET_KEYS's), become 'suppressed'."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", ERASURE_LOCK)
    new_prospects = "(SELECT id, email FROM prospects WHERE campaign_id = $1 AND status = 'active')"
    status = await conn.execute(
        f"UPDATE prospects SET status = 'suppressed'"
        f" WHERE id IN ({_listed_ids(new_prospects, 'id', 'email', '$2')})",
        campaign_id, workspace_id,
    )
    return int(status.rsplit(" ", 1)[1]) + await _mark_erased(conn, campaign_id, workspace_id, ring)


async def _mark_erased(conn: Executor, campaign_id: str, workspace_id: str, ring: KeyRing | None) -> int:
    """The erased addresses among a new campaign's prospects: each address hashed under
    the keys the scope's erasure entries were made with (a partial index finds those)."""
    erased = {r["entry"] for r in await conn.fetch(
        "SELECT entry FROM suppressions WHERE entry LIKE 'hmac:%'"
        " AND (workspace_id = $1 OR workspace_id IS NULL)", workspace_id)}
    if not erased:
        return 0
    ring = ring or key_ring(get_settings().secret_keys)
    keys = dict(ring.keys)
    lost = sorted({key_id_of(e) for e in erased} - keys.keys())
    if lost:
        # Refused rather than risk writing to someone erased: only the key can match them.
        raise SuppressionError(
            f"erasure entries were made under key id(s) {', '.join(lost)}, which"
            " OUTREACH_SECRET_KEYS no longer holds; add the key(s) back to check them"
        )
    used = [hasher(kid, keys[kid]) for kid in sorted({key_id_of(e) for e in erased})]
    rows = await conn.fetch(
        "SELECT id, lower(email) AS entry FROM prospects WHERE campaign_id = $1 AND status = 'active'",
        campaign_id,
    )
    hits = [r["id"] for r in rows if any(hash_entry(r["entry"]) in erased for hash_entry in used)]
    if not hits:
        return 0
    # Marked, and not stored: the row keeps no address and no field (store/erasure.py).
    status = await conn.execute(
        "UPDATE prospects SET status = 'suppressed', email = 'erased-' || id || '@erased.invalid',"
        " fields = '{}' WHERE id = ANY($1::bigint[])", hits
    )
    return int(status.rsplit(" ", 1)[1])


def address_is_gone(enhanced: str | None) -> bool:
    """A hard bounce that says the address itself is bad (5.1.x: no such mailbox or
    domain; 5.2.1: mailbox disabled), not the message (size, content) or a policy."""
    if enhanced is None:
        return False
    return enhanced.startswith("5.1.") or enhanced == "5.2.1"


async def record_hard_bounce(
    conn: Executor, campaign_id: str, prospect_id: int, enhanced: str | None, reply: str
) -> bool:
    """In the transaction recording a hard bounce: list the prospect's address in its
    campaign's workspace if the reply says the address is gone; return whether it did."""
    if not address_is_gone(enhanced):
        return False
    status = await conn.execute(
        "INSERT INTO suppressions (workspace_id, entry, source, reason)"
        " SELECT c.workspace_id, lower(p.email), 'hard_bounce', $3"
        " FROM prospects p JOIN campaigns c ON c.id = p.campaign_id"
        " WHERE p.id = $2 AND p.campaign_id = $1"
        " ON CONFLICT (workspace_id, entry) DO NOTHING",
        campaign_id, prospect_id, reply[:500] or None,
    )
    return status.endswith(" 1")


def _in_scope(scope: Scope, param: int) -> tuple[str, list[str]]:
    """SQL selecting a scope's rows with an index (``IS NOT DISTINCT FROM`` would not use
    one), and its argument, numbered ``param``."""
    if scope.workspace_id is None:
        return "workspace_id IS NULL", []
    return f"workspace_id = ${param}", [scope.workspace_id]


async def _ensure_workspace(conn: Executor, scope: Scope) -> None:
    # A list may be filled before the workspace's first campaign exists.
    if scope.workspace_id is not None:
        await conn.execute(
            "INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", scope.workspace_id
        )


def _suppression(row: asyncpg.Record) -> Suppression:
    return Suppression(entry=row["entry"], scope=Scope(row["workspace_id"]), source=row["source"],
                       reason=row["reason"], created_at=row["created_at"])

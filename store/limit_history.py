"""What the ledger says the shared limits must still count, for the limit store to
restore after it lost its state (docs/decisions/0029).

Every SMTP transaction is an attempt row, begun before the connection opens: its
start counts in its provider's window, and its connection may be open until the
attempt ends (a transaction in progress) or until the connection's idle time after
it (a pooled connection waiting for the next send). Counting every recent attempt
as its own connection over-counts where sends shared one: conservative by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


@dataclass(frozen=True)
class LimitHistory:
    now: datetime  # the database's clock, which the attempts were stamped with
    provider_sends: dict[str, list[tuple[str, datetime]]]  # provider -> (attempt, started)
    host_connections: dict[str, list[tuple[str, datetime]]]  # host -> (attempt, open until)
    active_hosts: list[str]  # hosts with an attempt in the span asked for


async def limit_history(
    pool: asyncpg.Pool, provider_window: timedelta, connection_lease: timedelta, idle: timedelta,
    active: timedelta,
) -> LimitHistory:
    """Attempts of the last ``provider_window`` by provider, connections that may still
    be open by host, and the hosts attempted in the last ``active``."""
    since = max(provider_window, connection_lease, active)
    async with pool.acquire() as conn:
        now: datetime = await conn.fetchval("SELECT now()")
        rows = await conn.fetch(
            "SELECT a.id, a.started_at, a.finished_at, m.provider, m.smtp_host FROM send_attempts a"
            " JOIN sends s ON s.campaign_id = a.campaign_id AND s.step = a.step"
            " AND s.prospect_id = a.prospect_id JOIN mailboxes m ON m.id = s.mailbox_id"
            " WHERE a.started_at > $1 ORDER BY a.started_at",
            now - since,
        )
    providers: dict[str, list[tuple[str, datetime]]] = {}
    connections: dict[str, list[tuple[str, datetime]]] = {}
    hosts: dict[str, None] = {}
    for r in rows:
        if r["started_at"] > now - active:
            hosts[r["smtp_host"]] = None
        attempt = str(r["id"])
        if r["started_at"] > now - provider_window:
            providers.setdefault(r["provider"], []).append((attempt, r["started_at"]))
        ended = r["finished_at"]
        open_until = r["started_at"] + connection_lease if ended is None else ended + idle
        if open_until > now:
            connections.setdefault(r["smtp_host"], []).append((attempt, open_until))
    return LimitHistory(now, providers, connections, list(hosts))

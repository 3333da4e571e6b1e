"""Gauges only PostgreSQL and Redis know, refreshed by each worker every 15 s.

Each refresh is a handful of indexed counts (sends_open, sends_cleanup, the
sends primary key) and one Redis pipeline over the hosts of the mailbox set.
Every worker exports the same values; dashboards and alerts take ``max``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from config.names import redis_key
from telemetry.metrics import (
    BACKLOG,
    CIRCUIT_OPEN,
    MAILBOXES_PAUSED,
    PAUSE_REASONS,
    UNKNOWN_SENDS,
    pause_class,
)

log = structlog.get_logger(__name__)

REFRESH_SECONDS = 15.0

# Due now: claimed rows waiting for the gate or a send, plus prospects whose next
# step is due and not claimed yet, read from the index of open work
# (docs/decisions/0037): its cost is the backlog's size, not the campaigns'.
# Per running campaign (aggregates in LATERAL are planned per campaign, on the
# partial indexes sends_open and prospects_open_work), and the "not claimed yet"
# test as a scalar subquery: one primary-key probe per due prospect, never a hash
# of every send.
_BACKLOG = """
SELECT coalesce(sum(q.n + u.n), 0) FROM campaigns c
CROSS JOIN LATERAL (SELECT count(*) AS n FROM sends s
                    WHERE s.campaign_id = c.id AND s.state = 'queued') q
CROSS JOIN LATERAL (SELECT count(*) AS n FROM prospects p
                    WHERE p.campaign_id = c.id AND p.status = 'active' AND p.next_step IS NOT NULL
                      AND p.next_due_at <= now()
                      AND (SELECT true FROM sends s WHERE s.campaign_id = p.campaign_id
                             AND s.step = p.next_step AND s.prospect_id = p.id) IS NULL) u
WHERE c.state = 'running'
"""

# On the partial index sends_unknown (migration 0009): as many rows as there are.
_UNKNOWN = "SELECT count(*) FROM sends WHERE state = 'unknown'"


class LedgerGauges:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, key_prefix: str) -> None:
        self._pool = pool
        self._redis = redis
        self._prefix = key_prefix

    async def refresh(self) -> None:
        BACKLOG.set(await self._pool.fetchval(_BACKLOG))
        UNKNOWN_SENDS.set(await self._pool.fetchval(_UNKNOWN))
        reasons = await self._pool.fetch("SELECT coalesce(pause_reason, '') AS r FROM mailboxes WHERE paused")
        paused = Counter(pause_class(row["r"]) for row in reasons)
        for reason in (*PAUSE_REASONS, "operator"):
            MAILBOXES_PAUSED.labels(reason=reason).set(paused[reason])
        await self._refresh_circuits()

    async def _refresh_circuits(self) -> None:
        """Open or half-open while the breaker hash holds ``open_until`` (a success deletes it)."""
        hosts = [r["smtp_host"] for r in await self._pool.fetch("SELECT DISTINCT smtp_host FROM mailboxes")]
        async with self._redis.pipeline(transaction=False) as pipe:
            for host in hosts:
                pipe.hget(redis_key(self._prefix, "host", host, "breaker"), "open_until")
            values = await pipe.execute()
        for host, value in zip(hosts, values, strict=True):
            CIRCUIT_OPEN.labels(host=host).set(1 if value and int(value) > 0 else 0)

    async def run(self, stop: asyncio.Event, every: float = REFRESH_SECONDS) -> None:
        """Refresh until ``stop``; a failed refresh is logged and tried again next time."""
        while not stop.is_set():
            try:
                await self.refresh()
            except (OSError, asyncpg.PostgresError, RedisError) as exc:
                log.warning("metrics_refresh_failed", error=str(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=every)
            except TimeoutError:
                pass

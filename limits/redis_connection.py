"""The workers' Redis client: from ``OUTREACH_REDIS_URL``, or, with
``OUTREACH_REDIS_SENTINELS`` set, the primary that Redis Sentinel names.

Through Sentinel the client asks the sentinels for the primary whenever it
opens a connection, so after a failover its next connection goes to the
promoted replica; commands that were in flight fail with a ``RedisError``,
which the limit store turns into "limits unavailable" (no send starts; the
activity retries). The URL still carries the primary's credentials, database
and TLS settings, so one set of settings serves both set-ups.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel

from config.settings import Settings, sentinel_addresses


def connect_redis(settings: Settings) -> aioredis.Redis:
    """A client for the limits' Redis (no I/O until the first command)."""
    if not settings.redis_sentinels:
        return aioredis.from_url(settings.redis_url)
    options = _primary_options(settings.redis_url)
    sentinel_options = {k: v for k, v in options.items() if k not in {"db", "username", "password"}}
    if settings.redis_sentinel_password:
        sentinel_options["password"] = settings.redis_sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2 on
        sentinel_addresses(settings.redis_sentinels), sentinel_kwargs=sentinel_options, **options)
    primary: aioredis.Redis = sentinel.master_for(settings.redis_sentinel_master,
                                                  redis_class=_PrimaryThroughSentinels)
    return primary


class _PrimaryThroughSentinels(aioredis.Redis):
    """Closing it closes the connections to the sentinels too (the Sentinel object
    that holds them is reachable only through the pool)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        pool = self.connection_pool
        await super().aclose(close_connection_pool)
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", []):
            await sentinel.aclose()


def _primary_options(url: str) -> dict[str, Any]:
    """Connection options of the URL without its address (the sentinels give that)."""
    options: dict[str, Any] = dict(parse_url(url))
    options.pop("host", None)
    options.pop("port", None)
    options.pop("path", None)
    # Sentinel's pool picks its own connection class; it only needs to know TLS is on.
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return options

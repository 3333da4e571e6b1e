"""The asyncpg connection pool, with JSON decoded for jsonb columns, and a way to
outlast a PostgreSQL restart for the writes that cannot be asked for again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")

# The server went away (a restart ends every session), or is not accepting
# connections yet (starting up, shutting down): the same statement can succeed
# once it is back. Errors in the statement itself are not among them.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,  # connection refused while the server is down
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class _Connection(asyncpg.Connection):
    """A pooled connection given back without asyncpg's reset query (``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``): it was one more
    transaction for every statement the pool ran, half of them per email
    (docs/decisions/0038). Nothing here leaves session state on a pooled connection
    (no LISTEN, advisory lock, cursor or SET: those that need one use their own
    connection), and an open transaction is still rolled back on release."""

    def get_reset_query(self) -> str:
        return ""


# Custom plans (docs/decisions/0038): asyncpg prepares every statement, and after five
# runs PostgreSQL may keep a generic plan for the connection's life. One made while
# the ledger was small (or analyzed empty) scanned all of `sends` for a primary-key
# update, and kept doing so as the ledger grew.
_SESSION = {"plan_cache_mode": "force_custom_plan"}


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool: Any = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection, connection_class=_Connection,
        server_settings=_SESSION,
    )
    return pool  # type: ignore[no-any-return]


async def outlasting_restarts(write: Callable[[], Awaitable[T]], *, patience: float, what: str) -> T:
    """Run ``write``, again and again while PostgreSQL is unreachable, for up to
    ``patience`` seconds. Only for writes that are safe to repeat (the same
    values again) even if an earlier try committed before its connection died."""
    deadline = time.monotonic() + patience
    delay = 0.2
    while True:
        try:
            return await write()
        except CONNECTION_LOST as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("postgres_unreachable_retrying", what=what, error=type(exc).__name__,
                        retry_in=round(delay, 1))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

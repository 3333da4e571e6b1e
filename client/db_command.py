"""How a CLI command that needs only PostgreSQL runs: a small pool for the one action,
and known errors as one line on stderr with exit code 2 (no traceback)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import asyncpg

from client.output import echo
from config.settings import get_settings
from specs import SpecError
from store import StoreError

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    echo(f"error: {message}", err=True)
    sys.exit(2)


def run_on_database(action: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    from store.db import create_pool

    async def run() -> T:
        pool = await create_pool(get_settings().database_url, max_size=2)
        try:
            return await action(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(run())
    except (StoreError, SpecError) as exc:
        fail(str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        fail(f"cannot reach the database: {exc}")

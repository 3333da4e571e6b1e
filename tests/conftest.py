"""Fixtures over the real services: a fresh PostgreSQL database per test run,
Redis under a per-run key prefix, and the project's settings pointed at both."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.worker._workflow import _WorkflowWorker

from config.secrets import generate_entry
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from store.db import create_pool
from store.migrate import migrate
from workers.sandbox_guard import no_collection

# Every test, and every process a test starts, encrypts under this ring (a
# fresh key per run): credentials at rest and Temporal payloads need one.
TEST_SECRET_KEYS = os.environ.setdefault("OUTREACH_SECRET_KEYS", generate_entry("test1"))

PG_ADMIN_URL = os.environ.get("OUTREACH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OUTREACH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _db_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    name = f"outreach_test_{secrets.token_hex(4)}"
    url = _db_url(name)
    await migrate(url)  # creates the database, then the schema
    yield url
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, max_size=20)
    yield p
    await p.close()


@pytest.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The pool, with every table emptied first so a test sees only its own rows."""
    await pool.execute(
        "TRUNCATE send_attempts, sends, prospects, steps, campaign_mailboxes, campaigns,"
        " mailboxes, workspaces RESTART IDENTITY CASCADE"
    )
    return pool


@pytest.fixture
def key_prefix() -> str:
    return f"outreach-test-{secrets.token_hex(4)}"


@pytest.fixture
async def redis_client(key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    yield client
    keys = [k async for k in client.scan_iter(f"{key_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def settings(database_url: str, key_prefix: str) -> Settings:
    # Limits that do not bind unless a test sets them: tests of other behaviour
    # should not wait on spacing or a provider's 30/min.
    return Settings(
        database_url=database_url, redis_url=REDIS_URL, task_queue=key_prefix,
        mailbox_spacing=0.0, limit_other_per_minute=100_000, limit_other_connections=100,
    )


@pytest.fixture
async def inbox() -> AsyncIterator[LocalSmtpServer]:
    """An in-process SMTP server on a free loopback port, for one test."""
    box = LocalSmtpServer()
    await box.start("127.0.0.1", 0)
    yield box
    await box.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_collection_while_the_sandbox_validates() -> Iterator[None]:
    """Every Worker and Replayer of the tests validates its workflows with no garbage
    collection running, as the production worker does (workers/sandbox_guard.py): a
    collection's finalizer that imports mid-load fails the load on Python 3.11."""
    original = _WorkflowWorker.__init__

    def guarded(self: _WorkflowWorker, *args: Any, **kwargs: Any) -> None:
        with no_collection():
            original(self, *args, **kwargs)

    _WorkflowWorker.__init__ = guarded  # type: ignore[method-assign]
    yield
    _WorkflowWorker.__init__ = original  # type: ignore[method-assign]


# The quick tier for working is `pytest -m "not slow"` (under 10 minutes on the 2-core
# machine); CI runs everything. Slow: the kinds that take minutes (fault runs, the image,
# browsers, a compose stack, benchmarks' smoke runs, limits paced at real or near-real
# speed, restarted servers, killed workers, outages waited out), and the files whose
# tests each run a campaign for tens of seconds (by the durations of a full run:
# `pytest --durations=0`), or whose subject the quick tier covers elsewhere.
_SLOW_MARKS = {"chaos", "image", "e2e"}
_SLOW_FILES = {
    "test_limits_precision.py", "test_retry_places.py", "test_redis_sentinel.py",
    "test_postgres_restart.py", "test_compose_stack.py", "test_bench_smoke.py", "test_herd.py",
    "test_operator_controls.py", "test_redis_outage.py", "test_campaign_pause.py",
    "test_idle_waiting.py", "test_record_histories.py", "test_suppress_cli.py", "test_gate_outage.py",
    "test_worker_crash.py", "test_send_retry_crash.py", "test_variants.py", "test_variants_winner.py",
    "test_reply_actions.py", "test_inbox_idle.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        slow_kind = any(item.get_closest_marker(mark) for mark in _SLOW_MARKS)
        if slow_kind or item.path.name in _SLOW_FILES or item.path.parent.name == "browser":
            item.add_marker(pytest.mark.slow)

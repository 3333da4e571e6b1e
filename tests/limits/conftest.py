"""One contract, two stores: every test in this folder runs against both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from limits.memory_store import MemoryLimitStore
from limits.redis_store import RedisLimitStore
from limits.store import AdmitRequest, LimitStore, Restoration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DAY = (datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))
NOTHING_LOST = Restoration(provider_sends={}, provider_window=timedelta(seconds=60), host_connections={},
                           held_hosts=[], hold_until=NOW)


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[LimitStore]:
    store: LimitStore = MemoryLimitStore() if request.param == "memory" else RedisLimitStore(
        redis_client, key_prefix)
    await store.restore(NOTHING_LOST)  # a store starts untrusted: restored from an empty ledger
    yield store


def admit_request(send_key: str, now: datetime = NOW, **changes: object) -> AdmitRequest:
    base = AdmitRequest(
        mailbox_id="mb", send_key=send_key, now=now, day=DAY, cap=1000, provider="gmail",
        provider_limit=1000, provider_window=timedelta(seconds=60), host="smtp.test",
        spacing_gap=timedelta(0), horizon=timedelta(minutes=10), probe_ttl=timedelta(minutes=2),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def ready(store: LimitStore, *mailboxes: str) -> LimitStore:
    for m in mailboxes or ("mb",):
        await store.rebuild_mailbox(m, paused=False, reason="", sends=[])
    return store

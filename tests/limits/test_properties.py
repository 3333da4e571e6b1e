"""Random interleavings of many concurrent callers never exceed a limit, in either store."""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from limits.memory_store import MemoryLimitStore
from limits.redis_store import RedisLimitStore
from limits.store import LimitStore, Verdict
from tests.conftest import REDIS_URL
from tests.limits.conftest import NOTHING_LOST, NOW, admit_request

WINDOW = timedelta(seconds=60)
# (milliseconds after NOW, mailbox index): callers arriving at the same instant run concurrently
arrivals = st.lists(st.tuples(st.integers(0, 150_000), st.integers(0, 3)), min_size=1, max_size=50)


def run_with(kind: str, body: Callable[[LimitStore], Awaitable[None]]) -> None:
    async def main() -> None:
        if kind == "memory":
            memory = MemoryLimitStore()
            await memory.restore(NOTHING_LOST)
            await body(memory)
            return
        client = aioredis.from_url(REDIS_URL)
        prefix = f"outreach-prop-{secrets.token_hex(4)}"
        try:
            redis_store = RedisLimitStore(client, prefix)
            await redis_store.restore(NOTHING_LOST)
            await body(redis_store)
        finally:
            keys = [k async for k in client.scan_iter(f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["memory", "redis"])
@settings(max_examples=40, deadline=None)
@given(events=arrivals, provider_limit=st.integers(1, 5), cap=st.integers(1, 8))
def test_no_provider_window_and_no_mailbox_day_ever_exceeds_its_limit(
    kind: str, events: list[tuple[int, int]], provider_limit: int, cap: int
) -> None:
    async def body(store: LimitStore) -> None:
        for m in range(4):
            await store.rebuild_mailbox(f"mb{m}", paused=False, reason="", sends=[])
        by_time: dict[int, list[int]] = defaultdict(list)
        for i, (offset, _) in enumerate(events):
            by_time[offset].append(i)
        granted: list[tuple[float, int]] = []  # (instant, mailbox)
        for offset in sorted(by_time):
            requests = [
                admit_request(f"c:1:{i}", NOW + timedelta(milliseconds=offset),
                              mailbox_id=f"mb{events[i][1]}", cap=cap, provider_limit=provider_limit,
                              provider_window=WINDOW)
                for i in by_time[offset]
            ]
            results = await asyncio.gather(*(store.admit(r) for r in requests))
            granted += [(r.at.timestamp(), events[int(q.send_key.rsplit(":", 1)[1])][1])
                        for q, r in zip(requests, results, strict=True) if r.verdict is Verdict.GO]
        instants = sorted(at for at, _ in granted)
        for i in range(len(instants) - provider_limit):
            assert instants[i + provider_limit] - instants[i] >= WINDOW.total_seconds()
        per_mailbox = defaultdict(int)
        for _, mailbox in granted:
            per_mailbox[mailbox] += 1
        assert all(n <= cap for n in per_mailbox.values())

    run_with(kind, body)


@pytest.mark.parametrize("kind", ["memory", "redis"])
@settings(max_examples=40, deadline=None)
@given(callers=st.lists(st.sampled_from(["h1", "h2"]), min_size=1, max_size=30),
       limit=st.integers(1, 4))
def test_concurrent_lease_requests_never_exceed_the_limit_and_lose_no_slot(
    kind: str, callers: list[str], limit: int
) -> None:
    async def body(store: LimitStore) -> None:
        results = await asyncio.gather(*(
            store.acquire_lease(f"host:{h}", f"l{i}", limit, NOW, timedelta(minutes=2))
            for i, h in enumerate(callers)
        ))
        for host in ("h1", "h2"):
            held = sum(1 for h, ok in zip(callers, results, strict=True) if ok and h == host)
            assert held == min(limit, callers.count(host))

    run_with(kind, body)

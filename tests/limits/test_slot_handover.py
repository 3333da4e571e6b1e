"""Found by the chaos suite (tests/chaos): a connection that replaces a closed one keeps its host
slot, even when the closed one's release runs late (it is not awaited)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as aioredis

from limits.host_slots import HostSlots
from limits.redis_store import RedisLimitStore
from mail.transport import SmtpAccount
from tests.limits.conftest import NOTHING_LOST


def account(mailbox_id: str) -> SmtpAccount:
    return SmtpAccount(mailbox_id=mailbox_id, host="mx.example.com", port=25, security="none",
                       max_connections=1)


async def test_a_late_release_of_a_closed_connection_leaves_its_replacement_the_slot(
    redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    store = RedisLimitStore(redis_client, key_prefix)
    await store.restore(NOTHING_LOST)
    slots, other_worker = HostSlots(store, timedelta(seconds=60)), HostSlots(store, timedelta(seconds=60))
    assert await slots.hold(account("mb-1"))
    # The transport closes the connection and schedules its release, then opens the
    # replacement, which holds the slot again before that release has run.
    late_release = asyncio.create_task(slots.release(account("mb-1")))
    assert await slots.hold(account("mb-1"))
    await late_release
    assert not await other_worker.hold(account("mb-2")), "the one slot must still be taken"
    await slots.release(account("mb-1"))
    assert await other_worker.hold(account("mb-2"))


class SlowReleases(RedisLimitStore):
    """The real store, whose lease releases wait for a go: a ZREM that takes longer
    than the next hold's ZADD, as on a busy machine (they use different connections)."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        super().__init__(redis, prefix)
        self.releasing = asyncio.Event()
        self.go = asyncio.Event()

    async def release_lease(self, scope: str, lease_id: str) -> None:
        self.releasing.set()
        await self.go.wait()
        await super().release_lease(scope, lease_id)


async def test_a_release_under_way_lands_before_the_replacement_holds_the_slot(
    redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    store = SlowReleases(redis_client, key_prefix)
    await store.restore(NOTHING_LOST)
    slots, other_worker = HostSlots(store, timedelta(seconds=60)), HostSlots(store, timedelta(seconds=60))
    assert await slots.hold(account("mb-1"))
    release = asyncio.create_task(slots.release(account("mb-1")))
    await store.releasing.wait()  # past its check: the lease is on its way out
    replacement = asyncio.create_task(slots.hold(account("mb-1")))
    await asyncio.sleep(0.05)  # the replacement's ZADD would land now, before the ZREM
    store.go.set()
    await release
    assert await replacement
    assert not await other_worker.hold(account("mb-2")), "the replacement's connection has the one slot"

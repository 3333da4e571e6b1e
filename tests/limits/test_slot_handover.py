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

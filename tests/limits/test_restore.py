"""A store that lost its state (Redis restarted without persistence, flushed, or failed
over to an empty replica) admits nothing and takes no lease until it is restored from
the ledger: provider windows, host connections that may still be open, and a push-back
for every host (its breaker is unknown). Both stores, one contract."""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis

from limits.memory_store import MemoryLimitStore
from limits.redis_store import RedisLimitStore
from limits.store import LimitStore, Restoration, Verdict, generation_of, host_scope
from tests.limits.conftest import NOW, admit_request, ready

MINUTE = timedelta(seconds=60)
TTL = timedelta(minutes=3)


async def lose_state(store: LimitStore, redis_client: aioredis.Redis, key_prefix: str) -> None:
    if isinstance(store, MemoryLimitStore):
        store.forget_everything()
        return
    keys = [k async for k in redis_client.scan_iter(f"{key_prefix}*")]
    assert keys, "the store kept nothing in Redis"
    await redis_client.delete(*keys)


def restoration(provider_sends: dict[str, list[tuple[str, object]]] | None = None,
                connections: dict[str, list[tuple[str, object]]] | None = None,
                hold: timedelta = timedelta(0)) -> Restoration:
    return Restoration(provider_sends=provider_sends or {}, provider_window=MINUTE,  # type: ignore[arg-type]
                       host_connections=connections or {}, held_hosts=["smtp.test"] if hold else [],
                       hold_until=NOW + hold)


async def test_a_store_that_lost_its_state_admits_nothing_and_takes_no_lease_until_restored(
    store: LimitStore, redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    await ready(store)
    assert (await store.admit(admit_request("c:1:1"))).verdict is Verdict.GO
    await lose_state(store, redis_client, key_prefix)

    assert (await store.admit(admit_request("c:1:2"))).verdict is Verdict.RESTORE
    assert not await store.acquire_lease(host_scope("smtp.test"), "w:mb", 5, NOW, TTL)
    assert not await store.acquire_lease("workspace:ws", "c:1:2#1", 50, NOW, TTL)

    assert await store.restore(restoration())
    assert (await store.admit(admit_request("c:1:2"))).verdict is Verdict.REBUILD  # then the mailbox
    assert await store.acquire_lease(host_scope("smtp.test"), "w:mb", 5, NOW, TTL)


async def test_sends_the_ledger_saw_in_the_last_window_still_count_against_the_provider(
    store: LimitStore, redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    await lose_state(store, redis_client, key_prefix)
    started = NOW - timedelta(seconds=10)
    await store.restore(restoration({"gmail": [(f"a{i}", started) for i in range(3)]}))
    await ready(store)
    admitted = await store.admit(admit_request("c:1:1", provider_limit=3))
    assert admitted.verdict is Verdict.GO and admitted.at == started + MINUTE


async def test_connections_that_may_still_be_open_hold_their_host_slots_until_they_may_have_closed(
    store: LimitStore, redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    await lose_state(store, redis_client, key_prefix)
    open_until = NOW + timedelta(seconds=30)
    await store.restore(restoration(connections={"smtp.test": [("a1", open_until), ("a2", open_until)]}))
    assert not await store.acquire_lease(host_scope("smtp.test"), "w:mb", 2, NOW, TTL)
    assert await store.acquire_lease(host_scope("smtp.test"), "w:mb", 3, NOW, TTL)  # room for a third
    assert await store.acquire_lease(host_scope("smtp.test"), "w:mb2", 2, open_until, TTL)


async def test_every_host_is_held_back_after_a_restore_as_if_pushed_back(
    store: LimitStore, redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    await lose_state(store, redis_client, key_prefix)
    await store.restore(restoration(hold=timedelta(seconds=20)))
    await ready(store)
    admitted = await store.admit(admit_request("c:1:1"))
    assert admitted.verdict is Verdict.GO and admitted.at == NOW + timedelta(seconds=20)


async def test_a_second_restore_of_a_store_already_trusted_changes_nothing(
    store: LimitStore, redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    await lose_state(store, redis_client, key_prefix)
    assert await store.restore(restoration())
    late = restoration({"gmail": [("a1", NOW)]}, hold=timedelta(minutes=5))
    assert not await store.restore(late)  # another worker restored first: its view stands
    await ready(store)
    admitted = await store.admit(admit_request("c:1:1", provider_limit=1))
    assert admitted.verdict is Verdict.GO and admitted.at == NOW


async def test_a_slot_granted_before_the_loss_is_refused_when_its_send_comes_to_use_it(
    store: LimitStore, redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    """The ledger knows sends that started, not slots granted for later: a send
    sleeping until its slot asks the gate again instead of using a forgotten one."""
    await ready(store)
    before = await store.admit(admit_request("c:1:1"))
    assert generation_of(before.reservation)
    assert await store.acquire_lease("workspace:ws", "c:1:1#1", 50, NOW, TTL,
                                     generation_of(before.reservation))
    await lose_state(store, redis_client, key_prefix)
    await store.restore(restoration())
    assert not await store.acquire_lease("workspace:ws", "c:1:1#1", 50, NOW, TTL,
                                         generation_of(before.reservation))
    await ready(store)
    again = await store.admit(admit_request("c:1:1"))
    assert await store.acquire_lease("workspace:ws", "c:1:1#1", 50, NOW, TTL,
                                     generation_of(again.reservation))


async def test_an_attempt_that_ends_shortens_the_slot_restored_for_it_to_its_idle_time(
    store: LimitStore, redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    """A slot restored for an attempt in progress would hold its host for a whole
    lease; when the attempt ends, its connection is open at most for its idle time."""
    await lose_state(store, redis_client, key_prefix)
    await store.restore(restoration(connections={"smtp.test": [("41", NOW + TTL)]}))
    assert not await store.acquire_lease(host_scope("smtp.test"), "w:mb", 1, NOW, TTL)

    idle_until = NOW + timedelta(seconds=1)
    await store.record_connection("smtp.test", True, NOW, 5, timedelta(minutes=5), "41", idle_until)
    assert not await store.acquire_lease(host_scope("smtp.test"), "w:mb", 1, NOW, TTL)
    assert await store.acquire_lease(host_scope("smtp.test"), "w:mb", 1, idle_until, TTL)
    # An attempt nothing was restored for leaves no slot behind.
    await store.record_connection("smtp.test", True, NOW, 5, timedelta(minutes=5), "42", NOW + TTL)
    assert await store.acquire_lease(host_scope("smtp.test"), "w:mb2", 2, idle_until, TTL)


async def test_a_store_restarted_from_an_older_snapshot_or_failed_over_is_restored_again(
    redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    """Redis restarted from a snapshot (or a replica promoted) still has a generation key,
    but one another server wrote: its state may lack the last writes (leases of open
    connections, a day's last reservations), so it is restored like an empty one, and
    every mailbox is rebuilt from the ledger. Redis only: the run id is Redis's."""
    store = RedisLimitStore(redis_client, key_prefix)
    await store.restore(restoration())
    await ready(store)
    assert (await store.admit(admit_request("c:1:1"))).verdict is Verdict.GO
    generation_key = f"{key_prefix}:generation"
    token, _, run_id = (await redis_client.get(generation_key)).rpartition(":")
    assert run_id == (await redis_client.info("server"))["run_id"]

    # What a snapshot written by the server before a restart looks like to the new one.
    await redis_client.set(generation_key, f"{token}:{'0' * 40}")

    assert (await store.admit(admit_request("c:1:2"))).verdict is Verdict.RESTORE
    assert not await store.acquire_lease(host_scope("smtp.test"), "w:mb", 5, NOW, TTL)
    assert await store.restore(restoration())
    assert not await store.restore(restoration())  # once
    # The mailbox was ready in the old generation: rebuilt now, with what the ledger says.
    assert (await store.admit(admit_request("c:1:2"))).verdict is Verdict.REBUILD
    await store.rebuild_mailbox("mb", paused=False, reason="", sends=[("c:1:1", NOW)])
    assert (await store.admit(admit_request("c:1:2", cap=1))).verdict is Verdict.WAIT
    assert await store.acquire_lease(host_scope("smtp.test"), "w:mb", 5, NOW, TTL)

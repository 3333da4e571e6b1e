"""Per provider (sliding window with reservations), per host (connections, breaker,
push-back) and per workspace (in flight)."""

from __future__ import annotations

from datetime import timedelta

from limits.store import LimitStore, Verdict
from tests.limits.conftest import NOW, admit_request, ready

MINUTE = timedelta(seconds=60)


async def test_provider_sends_are_paced_window_over_limit_apart(store: LimitStore) -> None:
    await ready(store)
    ats = [(await store.admit(admit_request(f"c:1:{i}", provider_limit=3))).at for i in range(7)]
    assert ats == [NOW + i * timedelta(seconds=20) for i in range(7)]


async def test_an_unused_provider_slot_can_be_given_back(store: LimitStore) -> None:
    await ready(store)
    first = await store.admit(admit_request("c:1:1", provider_limit=1))
    await store.refund("gmail", first.reservation)
    assert (await store.admit(admit_request("c:1:2", provider_limit=1))).at == NOW


async def test_provider_window_edge_is_exact(store: LimitStore) -> None:
    await ready(store)
    await store.admit(admit_request("c:1:1", provider_limit=1))
    just_before = await store.admit(admit_request("c:1:2", NOW + MINUTE - timedelta(milliseconds=1),
                                                  provider_limit=1))
    assert just_before.at == NOW + MINUTE  # the 60th second still holds the first send
    at_edge = await store.admit(admit_request("c:1:3", NOW + 2 * MINUTE, provider_limit=1))
    assert at_edge.at == NOW + 2 * MINUTE


async def test_push_back_delays_a_hosts_next_send(store: LimitStore) -> None:
    await ready(store)
    await store.push_back("smtp.test", NOW + timedelta(minutes=2))
    await store.push_back("smtp.test", NOW + timedelta(minutes=1))  # never shortens
    assert (await store.admit(admit_request("c:1:1"))).at == NOW + timedelta(minutes=2)


async def test_breaker_opens_after_five_failures_then_lets_one_probe_decide(store: LimitStore) -> None:
    await ready(store)
    opens = [await store.record_connection("smtp.test", False, NOW, 5, timedelta(minutes=5))
             for _ in range(5)]
    assert opens == [False, False, False, False, True]
    blocked = await store.admit(admit_request("c:1:1"))
    assert blocked.verdict is Verdict.WAIT and blocked.at == NOW + timedelta(minutes=5)

    half_open = NOW + timedelta(minutes=5)
    probe = await store.admit(admit_request("c:1:1", half_open))
    assert probe.verdict is Verdict.GO and probe.probe
    other = await store.admit(admit_request("c:1:2", half_open))
    assert other.verdict is Verdict.WAIT and "probe" in other.reason

    assert await store.record_connection("smtp.test", False, half_open, 5, timedelta(minutes=5))
    reopened = await store.admit(admit_request("c:1:2", half_open))
    assert reopened.at == half_open + timedelta(minutes=5)

    later = half_open + timedelta(minutes=5)
    assert (await store.admit(admit_request("c:1:2", later))).probe
    assert not await store.record_connection("smtp.test", True, later, 5, timedelta(minutes=5))
    closed = await store.admit(admit_request("c:1:3", later))
    assert closed.verdict is Verdict.GO and not closed.probe


async def test_a_success_resets_the_consecutive_failure_count(store: LimitStore) -> None:
    for _ in range(4):
        await store.record_connection("smtp.test", False, NOW, 5, timedelta(minutes=5))
    await store.record_connection("smtp.test", True, NOW, 5, timedelta(minutes=5))
    for _ in range(4):
        assert not await store.record_connection("smtp.test", False, NOW, 5, timedelta(minutes=5))


def lease(store: LimitStore, scope: str, lease_id: str, limit: int, now=NOW):  # type: ignore[no-untyped-def]
    return store.acquire_lease(scope, lease_id, limit, now, timedelta(minutes=3))


async def test_host_connections_are_capped_and_released(store: LimitStore) -> None:
    assert await lease(store, "host:h", "a", 2)
    assert await lease(store, "host:h", "b", 2)
    assert not await lease(store, "host:h", "c", 2)
    assert await lease(store, "host:h", "a", 2)  # renewing a held lease takes no new slot
    await store.release_lease("host:h", "a")
    assert await lease(store, "host:h", "c", 2)


async def test_scopes_are_independent(store: LimitStore) -> None:
    assert await lease(store, "workspace:a", "x", 1)
    assert await lease(store, "workspace:b", "x", 1)
    assert not await lease(store, "workspace:a", "y", 1)


async def test_a_dead_workers_leases_expire_by_themselves(store: LimitStore) -> None:
    assert await lease(store, "host:h", "a", 1)
    assert not await lease(store, "host:h", "b", 1)
    later = NOW + timedelta(minutes=3, seconds=1)
    assert await lease(store, "host:h", "b", 1, now=later)

"""The unsubscribe server's per-client token bucket, on a clock the test moves."""

from __future__ import annotations

from client.http_guard import client_key
from client.unsubscribe_server import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_per_client() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("b")  # another client has its own bucket
    clock.now += 1.0  # one token a second
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    clock.now += 3600
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]  # never above the burst
    assert limiter.retry_after() == 1


def test_ten_thousand_requests_in_a_minute_get_through_only_the_burst_and_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=120, burst=60, clock=clock)
    allowed = 0
    for i in range(10_000):
        clock.now = 1000.0 + 60.0 * i / 10_000
        allowed += limiter.allow("198.51.100.7")
    assert 60 + 119 <= allowed <= 60 + 120


def test_the_table_stays_bounded_and_busy_clients_keep_their_state() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=1, burst=2, clock=clock, max_clients=1000)
    limiter.allow("busy")
    limiter.allow("busy")  # empty now
    for i in range(5000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}")
        if i % 100 == 0:
            assert not limiter.allow("busy")  # seen recently: never the one forgotten
    assert len(limiter) <= 1000


def test_the_addresses_of_one_ipv6_64_share_a_bucket() -> None:
    """The server keys the bucket with client_key: a host picks any address of its /64."""
    limiter = RateLimiter(per_minute=60, burst=2, clock=Clock())
    one_64 = ["2001:db8:7:1::1", "2001:db8:7:1::2", "2001:db8:7:1:ffff::3"]
    assert [limiter.allow(client_key(a)) for a in one_64] == [True, True, False]
    assert limiter.allow(client_key("2001:db8:7:2::1"))  # the next /64
    assert [limiter.allow(client_key(a)) for a in ("192.0.2.1", "192.0.2.2")] == [True, True]

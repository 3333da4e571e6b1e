"""Redis Sentinel: the workers' Redis client finds the primary through real sentinels,
and after the primary dies its next connection goes to the promoted replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from config.settings import Settings
from limits.redis_connection import connect_redis
from tests.redis_ha import MASTER, RedisSentinels


@pytest.fixture
async def sentinels(tmp_path: Path) -> AsyncIterator[RedisSentinels]:
    ha = RedisSentinels(tmp_path)
    try:
        await ha.start()
        yield ha
    finally:
        ha.stop()


async def served_by(client: aioredis.Redis) -> int:
    config = await client.config_get("port")
    return int(config["port"] if "port" in config else config[b"port"])


async def test_the_client_follows_a_failover_to_the_promoted_replica(sentinels: RedisSentinels) -> None:
    settings = Settings(redis_sentinels=sentinels.sentinels, redis_sentinel_master=MASTER,
                        redis_url="redis://ignored-host:1/0")
    client = connect_redis(settings)
    counter = client.register_script("return redis.call('INCR', KEYS[1])")
    try:
        assert await served_by(client) == sentinels.primary_port
        assert await counter(keys=["failover-test"]) == 1

        sentinels.kill_primary()
        deadline = time.monotonic() + 60
        while True:  # in-flight commands fail while the sentinels promote the replica
            try:
                # The script cache is not replicated: this also goes through NOSCRIPT.
                after = await counter(keys=["failover-test"])
                break
            except RedisError:
                assert time.monotonic() < deadline, "no primary came back through the sentinels"
                await asyncio.sleep(0.2)
        assert await served_by(client) == sentinels.replica_port
        assert await sentinels.primary_port_now() == sentinels.replica_port
        assert after == 2  # the replica had the write before the primary died
    finally:
        await client.aclose()


async def test_the_url_still_gives_the_database_and_password_through_sentinel(
    sentinels: RedisSentinels,
) -> None:
    settings = Settings(redis_sentinels=sentinels.sentinels, redis_sentinel_master=MASTER,
                        redis_url="redis://nobody:wrong-password@ignored-host:1/3")
    client = connect_redis(settings)
    try:
        # The primary has no such ACL user: the URL's credentials reached it and were refused.
        with pytest.raises(RedisError, match="WRONGPASS|invalid username"):
            await client.ping()
    finally:
        await client.aclose()
    client = connect_redis(settings.model_copy(update={"redis_url": "redis://ignored-host:1/3"}))
    try:
        await client.set("db-test", "x")
        async with aioredis.Redis(port=sentinels.primary_port, db=3) as direct:
            assert await direct.get("db-test") == b"x"
    finally:
        await client.aclose()


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:notaport", "host:70000", ":26379"])
def test_a_malformed_sentinel_list_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="OUTREACH_REDIS_SENTINELS"):
        Settings(redis_sentinels=value)


def test_sentinel_lists_accept_spaces_and_ipv6() -> None:
    from config.settings import sentinel_addresses

    assert sentinel_addresses(" a:1, [::1]:26379 ,") == [("a", 1), ("::1", 26379)]

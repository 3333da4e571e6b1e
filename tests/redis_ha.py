"""A real Redis Sentinel set-up on loopback: one primary, one replica and three
sentinels, each a `redis-server` process of the test's own in a temporary directory
(sentinels run as `redis-server FILE --sentinel`, what Debian's redis-sentinel does)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.processes import free_port, wait_until_listening

MASTER = "outreach"


class RedisSentinels:
    def __init__(self, directory: Path, down_after_ms: int = 1000) -> None:
        self.dir = directory
        self.down_after_ms = down_after_ms
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> str:
        """The value of OUTREACH_REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    async def start(self) -> None:
        self._server(self.primary_port)
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        for port in (self.primary_port, self.replica_port):
            await wait_until_listening(port, "redis-server", 10)
        await self._until(self._replica_in_sync, "the replica to sync")
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
            )
            self._spawn(port, ["redis-server", str(conf), "--sentinel"])
            await wait_until_listening(port, "redis-sentinel", 10)
        await self._until(self._sentinels_agree, "the sentinels to find each other and the replica")

    def kill_primary(self) -> None:
        self._kill(self.primary_port)

    async def restart_primary(self, gap: float) -> None:
        """Kill whichever server is the primary now and start it again, empty, on its port
        after `gap` seconds (shorter than the sentinels' down-after time, so they keep it
        as the primary): the replica then resyncs from it and loses everything too."""
        port = await self.primary_port_now()
        self._kill(port)
        await asyncio.sleep(gap)
        self._server(port)
        await wait_until_listening(port, "redis-server", 10)

    async def fail_over(self, timeout: float = 60.0) -> int:  # noqa: ASYNC109
        """Kill the primary, wait for the sentinels to promote the replica, then bring the
        old primary back as the new one's replica. Returns the new primary's port."""
        old = await self.primary_port_now()
        self._kill(old)
        deadline = time.monotonic() + timeout
        while (new := await self._primary_or(old)) == old:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no failover after {timeout} s (logs in {self.dir})")
            await asyncio.sleep(0.2)
        self._server(old, "--replicaof", "127.0.0.1", str(new))
        await wait_until_listening(old, "redis-server", 10)
        return new

    async def _primary_or(self, fallback: int) -> int:
        """The primary's port as any sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                async with aioredis.Redis(port=port, decode_responses=True) as s:
                    _host, primary = await s.sentinel_get_master_addr_by_name(MASTER)
                    return int(primary)
            except (RedisError, OSError):
                continue
        return fallback

    def _kill(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    async def primary_port_now(self) -> int:
        """The primary's port as the sentinels name it now."""
        async with aioredis.Redis(port=self.sentinel_ports[0], decode_responses=True) as s:
            _host, port = await s.sentinel_get_master_addr_by_name(MASTER)
            return int(port)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
        self.procs.clear()

    def _server(self, port: int, *extra: str) -> None:
        self._spawn(port, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", str(self.dir), *extra])

    def _spawn(self, port: int, argv: list[str]) -> None:
        with (self.dir / f"redis-{port}.log").open("ab") as log:  # the child keeps its own copy
            self.procs[port] = subprocess.Popen(argv, stdout=log, stderr=log)

    async def _replica_in_sync(self) -> bool:
        async with aioredis.Redis(port=self.replica_port, decode_responses=True) as r:
            return (await r.info("replication")).get("master_link_status") == "up"

    async def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            async with aioredis.Redis(port=port, decode_responses=True) as s:
                if len(await s.sentinel_sentinels(MASTER)) < 2 or not await s.sentinel_slaves(MASTER):
                    return False
        return True

    async def _until(self, check: object, what: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while not await check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what} (logs in {self.dir})")
            await asyncio.sleep(0.2)

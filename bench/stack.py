"""The local stack a benchmark runs on, all of it its own: a Temporal dev server, a
redis-server and a PostgreSQL database, plus `outreach worker` processes.

Private processes (not the shared ones on the standard ports) so their CPU and
command counts belong to the benchmark alone: the Temporal server's and Redis'
pids are known, and Redis' INFO commandstats counts only our commands.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import asyncpg
import redis.asyncio as aioredis
from temporalio.client import Client

from client.search_attributes import dev_server_flags
from config.converter import data_converter
from config.secrets import generate_entry
from store.migrate import migrate

BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("OUTREACH_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")

# Workers and this process must share one key ring (payloads are encrypted);
# a fresh one unless the caller brought their own.
os.environ.setdefault("OUTREACH_SECRET_KEYS", generate_entry("bench"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(ready: Callable[[], Awaitable[None]], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await ready()
            return
        except Exception as exc:  # noqa: BLE001 - anything short of ready means "not yet"
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {within:.0f} s: {exc}") from exc
            await asyncio.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class TemporalServer:
    """`temporal server start-dev`, headless and in memory, on free ports."""

    def __init__(self) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None

    async def start(self) -> Client:
        self.proc = subprocess.Popen(
            [str(BIN / "temporal"), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
             "--port", str(self.port), "--http-port", str(free_port()),
             "--metrics-port", str(self.metrics_port), "--log-level", "error", *dev_server_flags()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        async def connect() -> None:
            self.client = await Client.connect(self.address, data_converter=data_converter())

        await _until(connect, f"Temporal dev server on {self.address}")
        assert self.client is not None
        return self.client

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


class PrivateRedis:
    """A redis-server of the benchmark's own, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        )

        async def ping() -> None:
            client = aioredis.from_url(self.url)
            try:
                await client.ping()
            finally:
                await client.aclose()

        await _until(ping, f"redis-server on port {self.port}", within=15)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


class BenchDatabase:
    """A fresh PostgreSQL database with the schema, dropped at the end."""

    def __init__(self) -> None:
        self.name = f"outreach_bench_{secrets.token_hex(3)}"
        self.url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{self.name}"

    async def create(self) -> None:
        await migrate(self.url)

    async def drop(self) -> None:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()


class Stack:
    """Temporal, Redis and a database for one engine run."""

    def __init__(self) -> None:
        self.temporal = TemporalServer()
        self.redis = PrivateRedis()
        self.database = BenchDatabase()

    @property
    def client(self) -> Client:
        assert self.temporal.client is not None, "the stack is not started"
        return self.temporal.client

    async def __aenter__(self) -> Self:
        try:
            await self.database.create()
            await self.redis.start()
            await self.temporal.start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        self.temporal.stop()
        self.redis.stop()
        await self.database.drop()

    def worker_env(self, prefix: str, settings: dict[str, str]) -> dict[str, str]:
        """The environment of an `outreach worker` on this stack; `settings` are
        OUTREACH_* overrides (limits, tuning)."""
        return {
            **os.environ,
            "OUTREACH_TEMPORAL_ADDRESS": self.temporal.address,
            "OUTREACH_DATABASE_URL": self.database.url,
            "OUTREACH_REDIS_URL": self.redis.url,
            "OUTREACH_TASK_QUEUE": prefix,
            "OUTREACH_METRICS_PORT": "0",
            **settings,
        }


class Workers:
    """`outreach worker` subprocesses; stopped with SIGTERM (graceful), like in production."""

    def __init__(self, count: int, env: dict[str, str], log_dir: Path | None = None) -> None:
        self._count = count
        self._env = env
        self._log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self) -> list[int]:
        for i in range(self._count):
            log: int | IO[bytes] = subprocess.DEVNULL
            if self._log_dir is not None:
                log = (self._log_dir / f"{self._env['OUTREACH_TASK_QUEUE']}-worker{i}.log").open("ab")
                self._logs.append(log)
            self.procs.append(subprocess.Popen(
                [str(BIN / "outreach"), "worker"], env=self._env,
                stdout=subprocess.DEVNULL, stderr=log,
            ))
        return [p.pid for p in self.procs]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"outreach worker (pid {proc.pid}) exited with {proc.returncode}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            _stop(proc, grace=130.0)  # the worker's own grace is the send timeout (120 s)
        for log in self._logs:
            log.close()

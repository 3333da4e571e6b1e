"""The processes a chaos run kills and restarts: a file-backed Temporal dev server,
Redis (a private server, or a primary, a replica and three sentinels), a private
PostgreSQL, and `outreach worker` subprocesses. Each is restarted on the same port
(and, for Temporal, the same database file), as an operator's supervisor would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest
from temporalio.client import Client

from client.search_attributes import dev_server_flags
from tests.postgres_private import PrivatePostgres, migrated_postgres
from tests.processes import free_port, wait_until_listening
from tests.redis_ha import RedisSentinels

BIN = Path(sys.executable).parent
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chaos"


class DevServer:
    """`temporal server start-dev` on a fixed port with its state in a file."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.db_file = state_dir / "temporal.db"
        self._log = state_dir / "temporal.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "temporal"), "server", "start-dev", "--ip", "127.0.0.1",
                 "--port", str(self.port), "--headless", "--db-filename", str(self.db_file),
                 "--log-level", "error", *dev_server_flags()],
                stdout=log, stderr=log,
            )
        await self.wait_ready()

    async def wait_ready(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Listening is not enough: the frontend answers health checks once its services run."""
        deadline = time.monotonic() + timeout
        await wait_until_listening(self.port, "temporal", timeout)
        while True:
            try:
                client = await Client.connect(self.address)
                if await client.service_client.check_health():
                    return
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"temporal at {self.address} not healthy after {timeout} s")
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class PrivateRedis:
    """A redis-server of this run's own (no persistence: a restart loses everything)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        )
        await wait_until_listening(self.port, "redis-server", 10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Workers:
    """`outreach worker` processes, each restartable in its slot; logs appended per slot."""

    def __init__(self, count: int, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._logs: list[IO[bytes]] = [(log_dir / f"worker-{i}.log").open("ab") for i in range(count)]
        self.unexpected_exits = 0  # exits nobody asked for (e.g. Temporal went away at start-up)

    def start(self, slot: int) -> None:
        self.procs[slot] = subprocess.Popen(
            [str(BIN / "outreach"), "worker"], env=self.env, stdout=self._logs[slot],
            stderr=self._logs[slot],
        )

    def kill(self, slot: int) -> None:
        proc = self.procs[slot]
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs[slot] = None  # down until restarted on purpose

    def restart_exited(self) -> None:
        for slot, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is not None:
                self.unexpected_exits += 1
                self.start(slot)

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()


@pytest.fixture
def chaos_dir(tmp_path: Path) -> Path:
    """Where the run's records and summary are kept (CI uploads test-artifacts/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.log"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture
async def dev_server_process(tmp_path: Path) -> AsyncIterator[DevServer]:
    server = DevServer(tmp_path)
    await server.start()
    yield server
    server.kill()


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis()
    await server.start()
    yield server
    server.kill()


@pytest.fixture
def workers_factory(chaos_dir: Path) -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for workers in made:
        workers.stop()


@pytest.fixture
async def redis_ha(tmp_path: Path) -> AsyncIterator[RedisSentinels]:
    """A primary, a replica and three sentinels (tests/redis_ha.py). The sentinels wait
    4 s before calling the primary down, so a quick restart stays a restart and only a
    primary that stays away is failed over."""
    directory = tmp_path / "redis-ha"
    directory.mkdir()
    ha = RedisSentinels(directory, down_after_ms=4000)
    try:
        await ha.start()
        yield ha
    finally:
        ha.stop()


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A PostgreSQL of the run's own, migrated, so the run can restart it."""
    async with migrated_postgres() as server:
        yield server

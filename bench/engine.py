"""One measured campaign through the engine, on a stack of its own (bench.stack: a
fresh Temporal server, Redis and database, so no run inherits another's ledger
rows or histories): seed, start `outreach worker` processes, start the campaign,
wait, and collect what every process spent.

Shared by the capacity, scale-out and precision scenarios; each decides the
limits (OUTREACH_* settings) and when the run is over.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from bench.procstats import PostgresWork, ProcessCpu, RedisCommands
from bench.seed import Seeded, seed_campaign
from bench.stack import PG_ADMIN_URL, Stack, Workers
from bench.temporal_cost import TemporalCost, run_cost, server_actions
from client.api import OutreachClient
from config.names import campaign_workflow_id, send_task_queue
from config.settings import Settings
from localsmtp.provider import AcceptedRecord, Provider


@dataclass
class EngineRun:
    seeded: Seeded
    workers: int
    started_at: float  # time.time() of `start_campaign`: every step-1 send is due then
    delivered: list[AcceptedRecord]
    elapsed: float  # start to the last acceptance
    cpu: dict[str, float]
    peak_rss_mb: dict[str, float]
    redis: RedisCommands
    postgres: PostgresWork
    temporal: TemporalCost
    server_actions: float | None
    # False: the campaign workflow had not completed some time after its last
    # message arrived (the run was measured anyway; see campaign_completed).
    completed: bool
    claimed_at: dict[str, float] = field(default_factory=dict)  # message_id -> ledger row created

    @property
    def sends_per_minute(self) -> float:
        return len(self.delivered) / self.elapsed * 60 if self.elapsed > 0 else 0.0

    def latencies(self, since: Callable[[AcceptedRecord], float | None]) -> list[float]:
        out = [r.at - t for r in self.delivered if (t := since(r)) is not None]
        return sorted(out)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, nearest rank; 0 for none."""
    if not values:
        return 0.0
    rank = max(1, min(len(values), round(q / 100 * len(values) + 0.5)))
    return values[rank - 1]


def client_settings(stack: Stack, prefix: str, overrides: dict[str, str]) -> Settings:
    """The client's settings: the same tuning the workers get through their environment."""
    values: dict[str, Any] = {k.removeprefix("OUTREACH_").lower(): v for k, v in overrides.items()}
    return Settings(temporal_address=stack.temporal.address, database_url=stack.database.url,
                    redis_url=stack.redis.url, task_queue=prefix, metrics_port=0, **values)


async def wait_for_pollers(stack: Stack, prefix: str, count: int, workers: Workers) -> None:
    """Until `count` workers poll the send queue: their start-up is not the engine's speed."""
    request = DescribeTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=send_task_queue(prefix)),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + 120
    while True:
        workers.check_alive()
        reply = await stack.client.workflow_service.describe_task_queue(request)
        if len({p.identity for p in reply.pollers}) >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} worker(s) did not start polling within 120 s")
        await asyncio.sleep(0.2)


async def claimed_times(db_url: str, campaign_id: str) -> dict[str, float]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT message_id, extract(epoch FROM created_at)::float8 AS at FROM sends"
            " WHERE campaign_id = $1", campaign_id)
    finally:
        await conn.close()
    return {r["message_id"]: r["at"] for r in rows}


# Seeds a run's campaign: (connection, prefix, SMTP port) -> what was seeded.
Seeder = Callable[[asyncpg.Connection, str, int], Awaitable[Seeded]]


async def run_campaign(
    provider: Provider, host: str, *, prospects: int, daily_limits: list[int],
    workers: int, settings: dict[str, str], done: Callable[[OutreachClient, Seeded], Any],
    within: float, log_dir: Path | None = None, analyze: bool = True,
    seed: Seeder | None = None, count_start: bool = True,
) -> EngineRun:
    """Seed a campaign on the provider's `host`, run it with `workers` worker processes
    until `done(client, seeded)` returns (at most `within` seconds), and measure it.

    `seed` replaces the default one-step campaign; `count_start=False` leaves the
    one-off `start_campaign` (which counts the campaign's prospects) out of the
    PostgreSQL and Redis figures."""
    async with Stack() as stack:
        return await _measured(stack, provider, host, prospects=prospects, daily_limits=daily_limits,
                               workers=workers, settings=settings, done=done, within=within,
                               log_dir=log_dir, analyze=analyze, seed=seed, count_start=count_start)


async def _measured(
    stack: Stack, provider: Provider, host: str, *, prospects: int, daily_limits: list[int],
    workers: int, settings: dict[str, str], done: Callable[[OutreachClient, Seeded], Any],
    within: float, log_dir: Path | None, analyze: bool, seed: Seeder | None, count_start: bool,
) -> EngineRun:
    prefix = f"bench-{secrets.token_hex(3)}"
    conn = await asyncpg.connect(stack.database.url)
    try:
        if seed is None:
            seeded = await seed_campaign(conn, prefix, provider.port(host), daily_limits, prospects, analyze)
        else:
            seeded = await seed(conn, prefix, provider.port(host))
    finally:
        await conn.close()
    procs = Workers(workers, stack.worker_env(prefix, settings), log_dir)
    redis = RedisCommands(stack.redis.url)
    postgres = PostgresWork(PG_ADMIN_URL, stack.database.name)
    client: OutreachClient | None = None
    try:
        pids = procs.start()
        client = await OutreachClient.connect(client_settings(stack, prefix, settings))
        await wait_for_pollers(stack, prefix, workers, procs)
        assert stack.temporal.proc is not None and stack.redis.proc is not None
        cpu = ProcessCpu({**{f"worker{i}": pid for i, pid in enumerate(pids)},
                          "temporal": stack.temporal.proc.pid, "redis": stack.redis.proc.pid,
                          "bench": os.getpid()})
        actions_before = await server_actions(stack.temporal.metrics_port)
        first = len(provider.accepted)
        if count_start:
            await redis.start()
            await postgres.start()
        cpu.start()
        started = time.time()
        await client.start_campaign(seeded.campaign_id)
        if not count_start:
            await redis.start()
            await postgres.start()
        completed = await asyncio.wait_for(_until_done(done, client, seeded, procs), within)
        await postgres.sample()
        cpu.stop()
        await redis.stop()
    finally:
        if client is not None:
            await client.close()
        procs.stop()  # before postgres.stop(): backends flush their counters as they exit
        await postgres.stop()
    actions_after = await server_actions(stack.temporal.metrics_port)
    delivered = [r for r in provider.accepted[first:] if r.host == host and r.acknowledged]
    last = max((r.at for r in delivered), default=started)
    return EngineRun(
        seeded=seeded, workers=workers, started_at=started, delivered=delivered,
        elapsed=last - started, cpu=cpu.seconds, peak_rss_mb=cpu.peak_rss_mb, redis=redis,
        postgres=postgres, temporal=await run_cost(stack.client, prefix),
        server_actions=None if actions_before is None or actions_after is None
        else actions_after - actions_before,
        completed=completed is not False,
        claimed_at=await claimed_times(stack.database.url, seeded.campaign_id),
    )


async def _until_done(
    done: Callable[[OutreachClient, Seeded], Any], client: OutreachClient, seeded: Seeded, procs: Workers,
) -> Any:
    task = asyncio.ensure_future(done(client, seeded))
    try:
        while not task.done():
            procs.check_alive()
            await asyncio.wait({task}, timeout=1.0)
        return task.result()
    finally:
        task.cancel()


def campaign_completed(
    provider: Provider, host: str, expected: int, stall_seconds: float = 60.0,
) -> Callable[[OutreachClient, Seeded], Any]:
    """Done when the campaign workflow has completed (every send has its final state);
    or, if it has not `stall_seconds` after the provider has all `expected` messages,
    done anyway with False, so a campaign that never ends is reported, not waited on."""
    first = len(provider.accepted)

    async def done(client: OutreachClient, seeded: Seeded) -> bool:
        handle = client.temporal.get_workflow_handle(
            campaign_workflow_id(client.settings.task_queue, seeded.campaign_id))
        result = asyncio.ensure_future(handle.result())
        try:
            while not result.done():
                arrived = sum(1 for r in provider.accepted[first:] if r.host == host and r.acknowledged)
                if arrived >= expected:
                    await asyncio.wait({result}, timeout=stall_seconds)
                    return result.done()
                await asyncio.wait({result}, timeout=0.5)
            result.result()
            return True
        finally:
            result.cancel()

    return done

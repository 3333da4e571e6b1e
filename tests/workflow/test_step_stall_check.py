"""The safety net under the step workflow's wake-up rules: an idle step that expects
nothing (no timer, nothing in flight) claims again after the stall check, and reports
what it finds then as a stall (an error log line with the ids, and a metric).

The lost wake-up is staged by a claim that answers once as if work were pending but
neither due nor due later, which no correct ledger answers: the step then has nothing
to wait for but a signal that never comes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import urllib.request
from datetime import timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import DueSendsInput, DueSendsResult
from config.converter import data_converter
from config.names import DUE_SENDS, STEP_STALLS_METRIC, campaign_workflow_id, send_task_queue
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from tests.factories import add_campaign, add_mailbox
from tests.workflow.conftest import take_activity
from workers.registry import WORKFLOWS, build_activities
from workflows.campaign import CampaignWorkflow
from workflows.models import CampaignInput, StepTuning


class OneLostWakeUp:
    def __init__(self, ledger: object) -> None:
        self.ledger = ledger
        self.lied = False

    @activity.defn(name=DUE_SENDS)
    async def due_sends(self, inp: DueSendsInput) -> DueSendsResult:
        if not self.lied:
            self.lied = True
            return DueSendsResult(sends=[], next_due_at=None, pending=1)
        result: DueSendsResult = await self.ledger.due_sends(inp)  # type: ignore[attr-defined]
        return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stalls_counted(url: str) -> float:
    """The counter as Prometheus stores it: the SDK's exporter writes counters
    without the `_total` suffix (which prometheus_client's parser would add)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(m[1]) for m in re.finditer(rf"^{STEP_STALLS_METRIC}{{[^}}]*}} (\S+)$", text, re.M))


async def test_an_idle_step_with_a_lost_wake_up_claims_at_the_stall_check_and_reports_it(
    env: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}")))
    temporal = await Client.connect(env.client.service_client.config.target_host,
                                    data_converter=data_converter(), runtime=runtime)
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    ledger, activities = take_activity(build_activities(settings, db, redis_client, transport), DUE_SENDS)
    lost = OneLostWakeUp(ledger)
    caplog.set_level(logging.ERROR, logger="temporalio.workflow")
    async with LocalSmtpServer() as inbox, Worker(
        temporal, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=[*activities, lost.due_sends],
    ):
        await add_mailbox(db, "mb-stall", inbox.port)
        campaign_id, ids = await add_campaign(db, ["mb-stall"], ["a@example.com", "b@example.com"],
                                              [("Hi", "Body", 0)])
        handle = await env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(id_prefix=settings.task_queue, campaign_id=campaign_id, delays=[timedelta(0)],
                          tuning=StepTuning(search_attributes=False, stall_check=timedelta(minutes=10))),
            id=campaign_workflow_id(settings.task_queue, campaign_id),
            task_queue=send_task_queue(settings.task_queue),
        )
        # The server skips the stall check's ten minutes; real seconds bound the test.
        await asyncio.wait_for(handle.result(), timeout=60)
        deadline = time.monotonic() + 10
        while (found := stalls_counted(f"http://127.0.0.1:{port}/metrics")) < 1:
            assert time.monotonic() < deadline, "the stall was not counted"
            await asyncio.sleep(0.2)
    await transport.close()

    assert lost.lied and len(inbox.messages) == 2
    assert found == 1
    stalls = [r.getMessage() for r in caplog.records if "step stalled" in r.getMessage()]
    assert len(stalls) == 1
    assert campaign_id in stalls[0] and str(ids[0]) in stalls[0] and str(ids[1]) in stalls[0]

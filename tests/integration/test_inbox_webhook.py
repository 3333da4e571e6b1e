"""The webhook: inbound events POSTed signed, retried with backoff by the Temporal
activity when the receiver fails, each accepted batch marked so it is not sent again."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from temporalio.testing import WorkflowEnvironment

from activities.inbox import InboxActivities
from activities.inbox_models import WebhookInput, WebhookResult
from config.names import maintenance_task_queue
from config.settings import Settings
from inbox.webhook import signature
from tests.factories import add_campaign, add_mailbox, settings_ring
from tests.integration.conftest import MaintenanceWorkerFactory
from workflows.webhook import WebhookWorkflow

SECRET = "whsec-test"


class Receiver:
    """A CRM's endpoint: fails the first ``fail`` requests with 503, then accepts."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=503)
        self.bodies.append((dict(request.headers), body))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(fail=2)
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}/hook"
    yield r
    await runner.cleanup()


async def add_events(db: asyncpg.Pool) -> tuple[str, int]:
    await db.execute("TRUNCATE inbound_messages, webhook_events")
    await add_mailbox(db, "mb", 2525)
    campaign_id, (p,) = await add_campaign(db, ["mb"], ["p@x.example.org"], [("Hi", "x", 0)])
    rows = [("reply", None), ("auto_reply", None), ("bounce", "hard"), ("other", None)]
    for uid, (kind, verdict) in enumerate(rows, 1):
        await db.execute(
            "INSERT INTO inbound_messages (mailbox_id, folder, uidvalidity, uid, class, verdict,"
            " campaign_id, step, prospect_id) VALUES ('mb', 'INBOX', 1, $1, $2, $3, $4, 1, $5)",
            uid, kind, verdict, campaign_id, p,
        )
    return campaign_id, p


async def deliver(env: WorkflowEnvironment, settings: Settings) -> WebhookResult:
    return await env.client.execute_workflow(
        WebhookWorkflow.run, WebhookInput(timeout=timedelta(seconds=60)),
        id=f"webhook-{secrets.token_hex(4)}", task_queue=maintenance_task_queue(settings.task_queue),
    )


async def test_events_are_signed_retried_and_sent_once(
    db: asyncpg.Pool, dev_server: WorkflowEnvironment, e2e_settings: Settings, receiver: Receiver,
    maintenance_worker_factory: MaintenanceWorkerFactory,
) -> None:
    campaign_id, prospect = await add_events(db)
    inbox = InboxActivities(db, settings_ring(), receiver.url, SECRET)
    async with maintenance_worker_factory(e2e_settings, [inbox.deliver_webhook]):
        result = await deliver(dev_server, e2e_settings)
        assert result.delivered == 2 and receiver.fail == 0  # after two 503s, with backoff
        assert (await deliver(dev_server, e2e_settings)).delivered == 0  # nothing twice

    (headers, body), = receiver.bodies
    expected = signature(SECRET, headers["X-Outreach-Timestamp"], body)
    assert hmac.compare_digest(headers["X-Outreach-Signature"], expected)
    assert abs(int(headers["X-Outreach-Timestamp"]) - time.time()) < 300
    events: list[dict[str, Any]] = json.loads(body)["events"]
    assert [(e["type"], e.get("class"), e["campaign_id"], e["prospect_id"]) for e in events] == [
        ("replied", "other", campaign_id, prospect), ("hard_bounced", None, campaign_id, prospect)]
    assert "p@x.example.org" not in body.decode()  # ids only, no address


async def test_without_a_url_nothing_is_sent(db: asyncpg.Pool) -> None:
    await add_events(db)
    assert (await InboxActivities(db, settings_ring()).deliver_webhook(WebhookInput())).delivered == 0
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE delivered_at IS NOT NULL") == 0
